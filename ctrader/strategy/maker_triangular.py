"""Maker-taker triangular arbitrage (``[strategy] name = "maker_triangular"``).

A taker triangle pays three taker fees (0.1% each: ~30 bp) and so earns only on dislocations
wider than that. Here one leg of the cycle rests as a LIMIT_MAKER order and the other two are
taken only once it fills: one maker fee and two taker fees, and the resting leg's price does
the rest. Per triangle (each cycle once, whatever asset it is listed from):

- **placing**: for each leg, the post-only price that makes the whole cycle earn
  ``margin_bps`` after the fees with the other two legs at the touch (``maker_quote``); the leg
  whose price sits closest to its touch is where resting is cheapest (distance, then the queue
  ahead and the symbol's trade rate go to the model as features). Within ``max_distance_bps``
  of the touch it is a candidate for the engine (edge, score, in-flight, budget as for every
  strategy); taken, one LIMIT_MAKER order goes out as leg 0 of a three-leg group, expiring
  after ``max_rest_s`` (the executor cancels it then).
- **re-pricing**: as the books move, a resting order whose cycle would now earn less than
  ``cancel_edge_bps`` is re-priced at once (cancel-replace) or, with no price within reach,
  canceled; one whose profitable price moved ``reprice_ticks`` is re-priced after
  ``min_rest_ms`` on the book, within ``max_reprices_per_10s`` (cancels are never held back).
  A book gone stale cancels it: its hedges would be blind.
- **hedging**: the first fill report of the resting order (partial or full) sends the other
  two legs at once as IOC orders for what filled (group legs 1 and 2, ``hedge_slippage_bps``
  beyond the touch), and cancels what still rests. What it fills after that, and a hedge that
  fails, the executor unwinds under its policy when the group ends (``Group.resting_lead``).

At most ``max_resting`` orders rest at once, and the amount resting in each asset is capped
(``resting_notional``). The scan and the quotes run in one numba call per batch
(``scan_makers``); Python sizes the candidates (``evaluation``: the cap of the asset the order
spends, the hedges' touch depth, exchange filters) and builds the orders working
(``take_actions``, ``on_exec``).
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ctrader.core.records import (
    MD_EVENT,
    ORDER_INTENT,
    STRATEGY_IDS,
    Decision,
    ExecKind,
    IntentAction,
    MdKind,
    OrderType,
    Side,
    TimeInForce,
)
from ctrader.market.books import BookCache, apply_md, tradeable
from ctrader.strategy.decide import would_refuse
from ctrader.strategy.protocol import FollowUp
from ctrader.strategy.state import DecisionArrays, DecisionState
from ctrader.strategy.triangles import TriangleTable
from ctrader.strategy.triangular import parse_amounts
from ctrader.venue.decimals import ONE

STRATEGY_ID = STRATEGY_IDS["maker_triangular"]
N_LEGS = 3
_TRADE = int(MdKind.TRADE)
_BUY = int(Side.BUY)
_LN2 = math.log(2.0)
_WINDOW_NS = 10_000_000_000
MAX_REPRICES_PER_ORDER = 999        # a replacement's client id ends in r<n>: 36 characters at most

# working-order state per triangle (float64 columns of ``rest``)
R_STATE, R_LEG, R_TICKS, R_LAST_NS = range(4)
N_REST = 4
ST_NONE, ST_RESTING, ST_FROZEN = 0, 1, 2       # frozen: canceling or hedged, nothing more to do
# parameters (float64 vector)
(A_FM, A_FT, A_MARGIN, A_CANCEL_EDGE, A_MAX_DIST, A_REPRICE_TICKS, A_MIN_REST_NS, A_MAX_AGE_NS,
 A_RATE_HL_NS, A_FULL) = range(10)
N_PARAMS = 10
# candidate rows (float64 columns of ``out``)
O_TRI, O_LEG, O_TICKS, O_EDGE, O_DIST = range(5)
N_OUT = 5
# actions on working orders (float64 columns of ``act``)
C_TRI, C_KIND, C_TICKS, C_EDGE = range(4)
N_ACT = 4
KIND_CANCEL, KIND_REPLACE = 1, 2
# per-symbol trade rate (float64 columns of ``trades``): trades per second, exponentially weighted
T_RATE, T_LAST_NS = 0, 1

FEATURES = ("distance_bps", "edge_bps", "maker_spread_bps", "queue_ahead", "hedge_spread_bps",
            "trade_rate")


# --- kernels -------------------------------------------------------------------------------------

@njit(cache=True)
def taker_rate(books, sid, side):
    """What one unit of the leg's input asset turns into at the touch, before fees."""
    b = books[sid]
    return 1.0 / b.ask_px[0] if side == _BUY else b.bid_px[0]


@njit(cache=True)
def cycle_edge(books, syms, sides, m, px, fm, ft):
    """Net edge of the cycle with leg ``m`` filled as a maker at ``px`` and the other two taken
    at the touch: one maker and two taker fees."""
    g = 1.0
    for k in range(3):
        if k == m:
            g *= 1.0 / px if sides[k] == _BUY else px
        else:
            g *= taker_rate(books, syms[k], sides[k])
    return g * (1.0 - fm) * (1.0 - ft) * (1.0 - ft) - 1.0


@njit(cache=True)
def maker_quote(books, syms, sides, m, tick, fm, ft, margin):
    """Leg ``m`` resting: (price in ticks, the cycle's net edge there, distance behind the touch
    as a fraction of the mid; negative inside the spread). The price is the one making the
    cycle earn ``margin`` with the other legs at the touch, kept post-only (a buy below the
    ask, a sell above the bid); ticks 0 when there is none."""
    other = 1.0
    for k in range(3):
        if k != m:
            other *= taker_rate(books, syms[k], sides[k])
    keep = (1.0 - fm) * (1.0 - ft) * (1.0 - ft)
    b = books[syms[m]]
    bid, ask = b.bid_px[0], b.ask_px[0]
    mid = 0.5 * (bid + ask)
    if other <= 0.0 or mid <= 0.0:
        return 0, 0.0, np.inf
    if sides[m] == _BUY:
        bound = other * keep / (1.0 + margin)          # the highest price that still pays
        ticks = min(math.floor(bound / tick), round(ask / tick) - 1)
        if ticks <= 0:
            return 0, 0.0, np.inf
        dist = (bid - ticks * tick) / mid
    else:
        bound = (1.0 + margin) / (other * keep)        # the lowest
        ticks = max(math.ceil(bound / tick), round(bid / tick) + 1)
        dist = (ticks * tick - ask) / mid
    return ticks, cycle_edge(books, syms, sides, m, ticks * tick, fm, ft), dist


@njit(cache=True)
def best_quote(books, syms, sides, tick, fm, ft, margin):
    """The leg where resting is cheapest (the price closest to its touch; ties: the first):
    (leg, ticks, edge, distance); leg -1 when no leg has a price."""
    best, best_ticks, best_edge, best_dist = -1, 0, 0.0, np.inf
    for m in range(3):
        ticks, edge, dist = maker_quote(books, syms, sides, m, tick[syms[m]], fm, ft, margin)
        if ticks > 0 and dist < best_dist:
            best, best_ticks, best_edge, best_dist = m, ticks, edge, dist
    return best, best_ticks, best_edge, best_dist


@njit(cache=True)
def note_trade(trades, sid, now, half_life_ns):
    """One market trade on ``sid``: its trade rate (per second, weights halving every
    ``half_life_ns``)."""
    dt = max(now - trades[sid, T_LAST_NS], 0.0) if trades[sid, T_LAST_NS] > 0 else 0.0
    trades[sid, T_RATE] = trades[sid, T_RATE] * math.exp(-dt * _LN2 / half_life_ns) + _LN2 / (half_life_ns / 1e9)
    trades[sid, T_LAST_NS] = now


@njit(cache=True)
def _act(act, k, t, kind, ticks, edge):
    act[k, C_TRI] = t
    act[k, C_KIND] = kind
    act[k, C_TICKS] = ticks
    act[k, C_EDGE] = edge
    return k + 1


@njit(cache=True)
def scan_makers(recs, start, n, books, legs_symbol, legs_side, canon, sym_ptr, sym_tri, tick, rest, trades,
                params, out, act, dec):
    """Apply ``recs[start:n]`` until one yields candidates or actions: (next index, candidate
    rows in ``out``, action rows in ``act``). A book record looks at the triangles through its
    symbol: those with an order working get a re-price or cancel when due, the others a quote,
    unless the engine could not take it anyway (``dec``, the engine's ``DecisionArrays``: the
    triangle in flight or in its cooldown, no room in the group budget). That flood of SKIP_RISK
    rows is not proposed: a quiet market re-quotes every triangle on every update, and each row
    costs Python time (the triangular kernel decides in numba instead)."""
    fm, ft, margin = params[A_FM], params[A_FT], params[A_MARGIN]
    age = params[A_MAX_AGE_NS]
    d = DecisionArrays(*dec)
    for i in range(start, n):
        sid = apply_md(books, recs, i)
        if sid < 0:
            continue
        now = recs[i].recv_mono_ns
        if recs[i].kind == _TRADE:
            note_trade(trades, sid, now, params[A_RATE_HL_NS])
            continue
        m = 0
        k = 0
        for j in range(sym_ptr[sid], sym_ptr[sid + 1]):
            t = sym_tri[j]
            state = rest[t, R_STATE]
            if not canon[t] or state == ST_FROZEN:
                continue
            syms, sides = legs_symbol[t], legs_side[t]
            fresh = (tradeable(books, syms[0], now, age) and tradeable(books, syms[1], now, age)
                     and tradeable(books, syms[2], now, age))
            if state == ST_RESTING:
                leg = int(rest[t, R_LEG])
                if not fresh:
                    k = _act(act, k, t, KIND_CANCEL, 0, 0.0)
                    continue
                cur = rest[t, R_TICKS]
                ticks, edge, dist = maker_quote(books, syms, sides, leg, tick[syms[leg]], fm, ft, margin)
                reachable = ticks > 0 and dist <= params[A_MAX_DIST]
                if cycle_edge(books, syms, sides, leg, cur * tick[syms[leg]], fm, ft) < params[A_CANCEL_EDGE]:
                    if reachable and ticks != cur:
                        k = _act(act, k, t, KIND_REPLACE, ticks, edge)
                    else:
                        k = _act(act, k, t, KIND_CANCEL, 0, 0.0)
                elif (reachable and abs(ticks - cur) >= params[A_REPRICE_TICKS]
                      and now - rest[t, R_LAST_NS] >= params[A_MIN_REST_NS]):
                    k = _act(act, k, t, KIND_REPLACE, ticks, edge)
                continue
            if not fresh or params[A_FULL] > 0:      # full: max_resting orders rest already
                continue
            if would_refuse(t, now, d):
                continue
            leg, ticks, edge, dist = best_quote(books, syms, sides, tick, fm, ft, margin)
            if leg >= 0 and dist <= params[A_MAX_DIST]:
                out[m, O_TRI] = t
                out[m, O_LEG] = leg
                out[m, O_TICKS] = ticks
                out[m, O_EDGE] = edge
                out[m, O_DIST] = dist
                m += 1
        if m > 0 or k > 0:
            return i + 1, m, k
    return n, 0, 0


def canonical_triangles(table: TriangleTable) -> np.ndarray:
    """bool per triangle: the first listing of its cycle. A cycle through two start assets is
    listed once per start asset (PnL is counted in each); a resting leg is chosen among all
    three legs, so one listing is enough."""
    seen: set[tuple] = set()
    keep = np.zeros(table.n_triangles, dtype=np.bool_)
    for t in range(table.n_triangles):
        legs = [(int(s), int(d)) for s, d in zip(table.legs_symbol[t], table.legs_side[t], strict=True)]
        key = min(tuple(legs[(r + k) % 3] for k in range(3)) for r in range(3))
        if key not in seen:
            seen.add(key)
            keep[t] = True
    return keep


# --- the strategy ----------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """The placement candidates of one market event; legs in group order (leg 0 rests)."""
    key: np.ndarray          # triangle id
    verdict: np.ndarray      # 0 or Decision.SKIP_*
    edge: np.ndarray         # the cycle's net edge at the resting price (one maker, two taker fees)
    size: np.ndarray         # what the resting order spends, in its input asset
    pnl: np.ndarray          # expected PnL in that asset when it fills and the hedges fill
    features: np.ndarray     # float32 (n, len(FEATURES))
    leg_symbol: np.ndarray   # (n, 3)
    leg_side: np.ndarray
    leg_px: np.ndarray       # leg 0: the resting price; hedges: the touch now
    leg_qty: np.ndarray
    leg_limit: np.ndarray
    leg_ticks: np.ndarray
    leg_steps: np.ndarray
    cycle_leg: np.ndarray    # which leg of the triangle rests
    spends: np.ndarray       # asset id the resting order spends
    closing = None

    def __len__(self) -> int:
        return len(self.key)


@dataclass
class Working:
    """One triangle's resting order and what became of it."""
    tri: int
    group_id: int
    symbols: tuple[int, int, int]     # group legs: 0 rests, 1 and 2 hedge
    sides: tuple[int, int, int]
    qty_steps: int
    expires_ns: int
    edge: float
    spends: int                       # asset id it spends
    spend_amount: float
    live: list[str] = field(default_factory=list)       # client ids sent and not ended (last: current)
    ticks_of: dict[str, int] = field(default_factory=dict)
    filled: dict[str, tuple[float, float]] = field(default_factory=dict)   # coid -> (cum qty, cum quote)
    version: int = 0
    canceling: bool = False
    hedged_qty: float = 0.0           # what the hedges were sized on (0: not hedged)
    hedges_done: set[int] = field(default_factory=set)

    @property
    def filled_qty(self) -> float:
        return sum(q for q, _ in self.filled.values())

    @property
    def filled_quote(self) -> float:
        return sum(v for _, v in self.filled.values())


class MakerTriangular:
    """The ``Strategy`` (``ctrader.strategy.protocol``) of maker-taker triangular arbitrage;
    keys are triangle ids. Working orders are its own (``take_actions``, ``on_exec``)."""
    name = "maker_triangular"
    strategy_id = STRATEGY_ID
    features = FEATURES
    n_legs = N_LEGS
    fused = False

    def __init__(self, cfg, universe, books: BookCache | None = None) -> None:
        sc = cfg.strategy
        mc = sc.maker_triangular
        self._cfg_strategy = sc
        self.universe = universe
        self.books = books if books is not None else BookCache(len(universe.symbols))
        self.table = TriangleTable.from_universe(universe)
        self.canon = canonical_triangles(self.table)
        self.tick = np.array([s.tick_units / ONE for s in universe.symbols], dtype=np.float64)
        n_tri = max(1, self.table.n_triangles)
        self.rest = np.zeros((n_tri, N_REST))
        self.trades = np.zeros((len(universe.symbols), 2))
        self.params = np.zeros(N_PARAMS)
        self.params[A_FM], self.params[A_FT] = universe.maker_fee, universe.taker_fee
        self.params[A_MARGIN] = mc.margin_bps * 1e-4
        self.params[A_CANCEL_EDGE] = mc.cancel_edge_bps * 1e-4
        self.params[A_MAX_DIST] = mc.max_distance_bps * 1e-4
        self.params[A_REPRICE_TICKS] = mc.reprice_ticks
        self.params[A_MIN_REST_NS] = mc.min_rest_ms * 1e6
        self.params[A_MAX_AGE_NS] = sc.max_book_age_ms * 1e6
        self.params[A_RATE_HL_NS] = 10e9
        self.max_rest_ns = int(mc.max_rest_s * 1e9)
        self.max_reprices = int(mc.max_reprices_per_10s)
        self.max_resting = int(mc.max_resting)
        self.hedge_slippage = mc.hedge_slippage_bps * 1e-4
        self.max_start = parse_amounts(sc.max_start, universe)
        cap = parse_amounts(mc.resting_notional, universe)
        listed = {str(x).partition("=")[0].strip().upper() for x in mc.resting_notional}
        self.resting_cap = np.array([cap[i] if a in listed else self.max_start[i] * self.max_resting
                                     for i, a in enumerate(universe.assets)], dtype=np.float64)
        self.out = np.zeros((n_tri, N_OUT))
        self.act = np.zeros((n_tri, N_ACT))
        self._n_act = 0
        self._now = 0
        self._now_ts = 0
        # the engine's DecisionState (``bind_decisions``); alone, a fresh one of its own
        self._decisions = DecisionState(sc, self.n_keys, 1, STRATEGY_ID, N_LEGS, 0, 0)
        self._client_id = lambda gid, leg: f"ct{gid:x}L{leg}"
        self.working: dict[int, Working] = {}        # triangle -> its working order
        self.by_group: dict[int, int] = {}           # group id -> triangle
        self._reprice_times: deque[int] = deque()    # market ns of the re-prices in the last 10 s
        self.counts = dict.fromkeys(("placed", "repriced", "reprices_held", "canceled", "hedged", "filled",
                                     "ended_unfilled", "late_fills"), 0)

    def bind_decisions(self, state) -> None:
        """The engine's ``DecisionState``: the scan proposes no triangle it would refuse."""
        self._decisions = state

    def _dec(self) -> tuple:
        return self._decisions.arrays

    def bind_client_ids(self, client_order_id) -> None:
        """The engine's ``client_order_id(group_id, leg)``: names of the orders sent later."""
        self._client_id = client_order_id

    @property
    def n_keys(self) -> int:
        return max(1, self.table.n_triangles)

    @property
    def max_rows(self) -> int:
        return self.out.shape[0]

    # --- market data -----------------------------------------------------------------------------

    def scan(self, records: np.ndarray, start: int, n: int) -> tuple[int, int]:
        t = self.table
        self.params[A_FULL] = len(self.working) >= self.max_resting
        i, m, k = scan_makers(records, start, n, self.books.books, t.legs_symbol, t.legs_side, self.canon,
                              t.sym_ptr, t.sym_tri, self.tick, self.rest, self.trades, self.params,
                              self.out, self.act, self._dec())
        self._n_act = k
        if m or k:
            self._now = int(records[i - 1]["recv_mono_ns"])
            self._now_ts = int(records[i - 1]["recv_ts_ns"])
        return i, m

    def _group_legs(self, t: int, m: int) -> tuple[tuple, tuple]:
        order = [(m + g) % 3 for g in range(3)]
        return (tuple(int(self.table.legs_symbol[t, c]) for c in order),
                tuple(int(self.table.legs_side[t, c]) for c in order))

    def _hedge_plan(self, syms, sides, received: float) -> list[tuple[int, int, float, float]]:
        """The two hedge legs for ``received`` of what the resting leg bought: per leg (ticks,
        steps, limit price, touch price), each sized on the one before at the touch."""
        books = self.books.books
        ft = self.params[A_FT]
        plan = []
        amount = received
        for g in (1, 2):
            info = self.universe.symbols[syms[g]]
            b = books[syms[g]]
            if sides[g] == _BUY:
                touch = float(b["ask_px"][0])
                limit = touch * (1 + self.hedge_slippage)
                ticks = math.ceil(round(limit * ONE) / info.tick_units)
                px = ticks * info.tick_units / ONE
                steps = int(round(amount / px * ONE) // info.step_units) if px > 0 else 0
                qty = steps * info.step_units / ONE
                amount = qty * (1 - ft)
            else:
                touch = float(b["bid_px"][0])
                limit = touch * (1 - self.hedge_slippage)
                ticks = max(1, math.floor(round(limit * ONE) / info.tick_units))
                steps = int(round(amount * ONE) // info.step_units)
                qty = steps * info.step_units / ONE
                amount = qty * touch * (1 - ft)
            plan.append((ticks, steps, ticks * info.tick_units / ONE, touch))
        return plan

    def evaluation(self, n: int) -> Evaluation:
        """Rows 0..n-1 of the last scan, sized: the cap of the asset the order spends, scaled
        down to what the hedges' touch can take, on the resting symbol's step."""
        books = self.books.books
        fm = self.params[A_FM]
        z = np.zeros
        ev = Evaluation(key=self.out[:n, O_TRI].astype(np.int64), verdict=z(n, np.uint8), edge=self.out[:n, O_EDGE].copy(),
                        size=z(n), pnl=z(n), features=z((n, len(FEATURES)), np.float32),
                        leg_symbol=z((n, 3), np.int64), leg_side=z((n, 3), np.int64), leg_px=z((n, 3)),
                        leg_qty=z((n, 3)), leg_limit=z((n, 3)), leg_ticks=z((n, 3), np.int64),
                        leg_steps=z((n, 3), np.int64), cycle_leg=self.out[:n, O_LEG].astype(np.int64),
                        spends=z(n, np.int64))
        resting = self._resting_amounts()
        for j in range(n):
            t, m, ticks = int(ev.key[j]), int(ev.cycle_leg[j]), int(self.out[j, O_TICKS])
            syms, sides = self._group_legs(t, m)
            info = self.universe.symbols[syms[0]]
            px = ticks * info.tick_units / ONE
            buy = sides[0] == _BUY
            spends = info.quote_id if buy else info.base_id
            cap = self.max_start[spends]
            qty = cap / px if buy else cap
            # the hedges take the touch: no more than it shows
            plan = self._hedge_plan(syms, sides, (qty if buy else qty * px) * (1 - fm))
            for g, (_, steps, _, _) in zip((1, 2), plan, strict=True):
                b = books[syms[g]]
                depth = float(b["ask_qty"][0] if sides[g] == _BUY else b["bid_qty"][0])
                want = steps * self.universe.symbols[syms[g]].step_units / ONE
                if want > depth > 0:
                    qty *= depth / want
            steps0 = int(round(qty * ONE) // info.step_units)
            qty_units = steps0 * info.step_units
            qty = qty_units / ONE
            plan = self._hedge_plan(syms, sides, (qty if buy else qty * px) * (1 - fm))
            ev.leg_symbol[j], ev.leg_side[j] = syms, sides
            ev.leg_px[j, 0], ev.leg_limit[j, 0], ev.leg_ticks[j, 0] = px, px, ticks
            ev.leg_steps[j, 0], ev.leg_qty[j, 0] = steps0, qty
            for g, (h_ticks, h_steps, h_limit, touch) in zip((1, 2), plan, strict=True):
                h_info = self.universe.symbols[syms[g]]
                ev.leg_px[j, g], ev.leg_limit[j, g], ev.leg_ticks[j, g] = touch, h_limit, h_ticks
                ev.leg_steps[j, g], ev.leg_qty[j, g] = h_steps, h_steps * h_info.step_units / ONE
            ev.spends[j] = spends
            ev.size[j] = qty * px if buy else qty
            ev.pnl[j] = ev.edge[j] * ev.size[j]
            ev.features[j] = self._features(syms, sides, ticks, qty, float(self.out[j, O_DIST]), float(ev.edge[j]))
            if cap <= 0 or len(self.working) >= self.max_resting or \
                    resting.get(spends, 0.0) + ev.size[j] > self.resting_cap[spends] + 1e-12:
                ev.verdict[j] = Decision.SKIP_RISK      # no size cap for the asset, or resting is full
            elif not self._passes_filters(ev, j):
                ev.verdict[j] = Decision.SKIP_FILTER
        return ev

    def _passes_filters(self, ev: Evaluation, j: int) -> bool:
        return all(self.universe.symbols[int(ev.leg_symbol[j, g])].meets_minimums(int(ev.leg_steps[j, g]),
                                                                                    int(ev.leg_ticks[j, g]))
                   for g in range(3))

    def _features(self, syms, sides, ticks: int, qty: float, dist: float, edge: float) -> tuple:
        books = self.books.books
        b = books[syms[0]]
        bid, ask = float(b["bid_px"][0]), float(b["ask_px"][0])
        mid = 0.5 * (bid + ask)
        px = ticks * self.tick[syms[0]]
        # what rests ahead of us at our price or better (the queue a fill waits through)
        if sides[0] == _BUY:
            levels = zip(b["bid_px"][:int(b["n_bids"])], b["bid_qty"][:int(b["n_bids"])], strict=True)
            ahead = sum(float(q) for p, q in levels if p >= px - 1e-12)
        else:
            levels = zip(b["ask_px"][:int(b["n_asks"])], b["ask_qty"][:int(b["n_asks"])], strict=True)
            ahead = sum(float(q) for p, q in levels if p <= px + 1e-12)
        hedge_spread = 0.0
        for g in (1, 2):
            h = books[syms[g]]
            hb, ha = float(h["bid_px"][0]), float(h["ask_px"][0])
            hedge_spread += (ha - hb) / (0.5 * (ha + hb))
        return (dist * 1e4, edge * 1e4, (ask - bid) / mid * 1e4, min(ahead / qty, 1000.0) if qty > 0 else 1000.0,
                hedge_spread * 1e4, float(self.trades[syms[0], T_RATE]))

    def _resting_amounts(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for w in self.working.values():
            if not w.hedged_qty:
                out[w.spends] = out.get(w.spends, 0.0) + w.spend_amount
        return out

    # --- orders --------------------------------------------------------------------------------

    def _intent(self, gid: int, leg: int, sid: int, side: int, ticks: int, steps: int, edge: float,
                coid: str) -> np.ndarray:
        info = self.universe.symbols[sid]
        rec = np.zeros(1, ORDER_INTENT)
        r = rec[0]
        r["group_id"], r["symbol_id"], r["strategy_id"] = gid, sid, self.strategy_id
        r["leg"], r["n_legs"], r["side"] = leg, N_LEGS, side
        r["price_ticks"], r["qty_steps"] = ticks, steps
        r["price"], r["qty"] = ticks * info.tick_units / ONE, steps * info.step_units / ONE
        r["cause_recv_ts_ns"], r["cause_recv_mono_ns"] = self._now_ts, self._now
        r["created_mono_ns"] = time.monotonic_ns()
        r["score"] = np.nan
        r["expected_edge"] = edge
        r["client_order_id"] = coid.encode()
        return rec

    def intents_of(self, ev: Evaluation, rows: np.ndarray, score: np.ndarray, group_ids: np.ndarray,
                   rec) -> np.ndarray:
        """The engine took ``rows``: one LIMIT_MAKER order each, leg 0 of its group, expiring
        after ``max_rest_s``."""
        out = []
        for j in rows.tolist():
            gid, t = int(group_ids[j]), int(ev.key[j])
            syms = tuple(int(x) for x in ev.leg_symbol[j])
            sides = tuple(int(x) for x in ev.leg_side[j])
            coid = self._client_id(gid, 0)
            ticks, steps = int(ev.leg_ticks[j, 0]), int(ev.leg_steps[j, 0])
            rec_i = self._intent(gid, 0, syms[0], sides[0], ticks, steps, float(ev.edge[j]), coid)
            r = rec_i[0]
            r["order_type"], r["tif"] = OrderType.LIMIT_MAKER, TimeInForce.NONE
            r["cause_recv_ts_ns"], r["cause_recv_mono_ns"] = rec["recv_ts_ns"], rec["recv_mono_ns"]
            r["score"] = score[j]
            w = Working(t, gid, syms, sides, steps, int(rec["recv_mono_ns"]) + self.max_rest_ns, float(ev.edge[j]),
                        int(ev.spends[j]), float(ev.size[j]))
            r["good_till_mono_ns"] = w.expires_ns
            w.live.append(coid)
            w.ticks_of[coid] = ticks
            self.working[t] = w
            self.by_group[gid] = t
            self.rest[t] = (ST_RESTING, ev.cycle_leg[j], ticks, int(rec["recv_mono_ns"]))
            self.counts["placed"] += 1
            out.append(rec_i)
        return np.concatenate(out, dtype=ORDER_INTENT) if out else np.zeros(0, ORDER_INTENT)

    def on_taken(self, rows: np.ndarray, group_ids: np.ndarray) -> None:
        """Nothing: ``intents_of`` registered the orders."""

    def take_actions(self, rec) -> np.ndarray:
        """The last scan's re-prices (REPLACE) and cancels (CANCEL) of working orders."""
        k, self._n_act = self._n_act, 0
        if k == 0:
            return np.zeros(0, ORDER_INTENT)
        now = int(rec["recv_mono_ns"])
        while self._reprice_times and now - self._reprice_times[0] >= _WINDOW_NS:
            self._reprice_times.popleft()
        out = []
        for row in self.act[:k]:
            t, kind = int(row[C_TRI]), int(row[C_KIND])
            w = self.working.get(t)
            if w is None or w.canceling or w.hedged_qty or not w.live:
                continue
            if kind == KIND_REPLACE and w.version < MAX_REPRICES_PER_ORDER:
                if len(self._reprice_times) >= self.max_reprices:
                    self.counts["reprices_held"] += 1       # proposed again on the next update
                    continue
                self._reprice_times.append(now)
                w.version += 1
                ticks = int(row[C_TICKS])
                coid = f"{self._client_id(w.group_id, 0)}r{w.version}"
                rec_i = self._intent(w.group_id, 0, w.symbols[0], w.sides[0], ticks, w.qty_steps, float(row[C_EDGE]),
                                     coid)
                r = rec_i[0]
                r["order_type"], r["tif"] = OrderType.LIMIT_MAKER, TimeInForce.NONE
                r["action"] = IntentAction.REPLACE
                r["target_client_order_id"] = w.live[-1].encode()
                r["good_till_mono_ns"] = w.expires_ns
                w.live.append(coid)
                w.ticks_of[coid] = ticks
                self.rest[t, R_TICKS], self.rest[t, R_LAST_NS] = ticks, now
                self.counts["repriced"] += 1
                out.append(rec_i)
            else:
                out.extend(self._cancels(w))
                self.counts["canceled"] += 1
        return np.concatenate(out, dtype=ORDER_INTENT) if out else np.zeros(0, ORDER_INTENT)

    def _cancels(self, w: Working) -> list[np.ndarray]:
        """CANCEL intents for whatever of ``w`` may still rest; nothing more is done on it."""
        w.canceling = True
        self.rest[w.tri, R_STATE] = ST_FROZEN
        out = []
        for coid in w.live:
            rec = np.zeros(1, ORDER_INTENT)
            rec[0]["group_id"], rec[0]["strategy_id"], rec[0]["symbol_id"] = w.group_id, self.strategy_id, w.symbols[0]
            rec[0]["action"] = IntentAction.CANCEL
            rec[0]["target_client_order_id"] = coid.encode()
            rec[0]["cause_recv_ts_ns"], rec[0]["cause_recv_mono_ns"] = self._now_ts, self._now
            out.append(rec)
        return out

    # --- executions ----------------------------------------------------------------------------

    def on_exec(self, records: np.ndarray) -> FollowUp | None:
        """Fills of a resting order send its hedges (and cancel what still rests); a resting
        order that ended with nothing filled frees its triangle (``FollowUp.ended``); a group
        whose hedges ended is forgotten."""
        touched: list[Working] = []
        for rec in records:
            t = self.by_group.get(int(rec["group_id"]))
            if t is None:
                continue
            w = self.working[t]
            kind, leg = int(rec["kind"]), int(rec["leg"])
            coid = rec["client_order_id"].rstrip(b"\0").decode()
            terminal = kind in (ExecKind.FILL, ExecKind.CANCELED, ExecKind.REJECTED, ExecKind.REFUSED)
            if leg == 0:
                if kind in (ExecKind.PARTIAL_FILL, ExecKind.FILL) or (terminal and float(rec["cum_qty"]) > 0):
                    q, v = w.filled.get(coid, (0.0, 0.0))
                    w.filled[coid] = (max(q, float(rec["cum_qty"])), max(v, float(rec["cum_quote"])))
                if terminal and coid in w.live:
                    w.live.remove(coid)
                    if w.live and not w.canceling and not w.hedged_qty:
                        # a replacement refused or rejected: the order before it still rests
                        self.rest[t, R_TICKS] = w.ticks_of[w.live[-1]]
            elif leg in (1, 2) and terminal:
                w.hedges_done.add(leg)
            if w not in touched:
                touched.append(w)
        intents: list[np.ndarray] = []
        ended: list[int] = []
        for w in touched:
            filled = w.filled_qty
            if filled > 0 and not w.hedged_qty and (not w.live or self._hedgeable(w, filled)):
                # (a fill too small for the hedges' filters waits for more while it rests)
                intents.extend(self._hedges(w, filled))
                if w.live:
                    intents.extend(self._cancels(w))
            elif w.hedged_qty and filled > w.hedged_qty + 1e-12:
                self.counts["late_fills"] += 1          # the executor unwinds it when the group ends
                w.hedged_qty = filled
            if not w.live and (not w.hedged_qty or w.hedges_done == {1, 2}):
                if not w.hedged_qty:
                    self.counts["ended_unfilled"] += 1
                    ended.append(w.group_id)
                self._forget(w)
        if not intents and not ended:
            return None
        return FollowUp(np.concatenate(intents, dtype=ORDER_INTENT) if intents else np.zeros(0, ORDER_INTENT),
                        ended)

    def _received(self, w: Working, filled: float) -> float:
        """What ``filled`` of the resting leg brought in, less the maker fee."""
        return (filled if w.sides[0] == _BUY else w.filled_quote) * (1 - self.params[A_FM])

    def _hedgeable(self, w: Working, filled: float) -> bool:
        """Whether hedges for ``filled`` pass the exchange filters (quantity and notional)."""
        plan = self._hedge_plan(w.symbols, w.sides, self._received(w, filled))
        return all(self.universe.symbols[w.symbols[g]].meets_minimums(steps, ticks)
                   for g, (ticks, steps, _, _) in zip((1, 2), plan, strict=True))

    def _hedges(self, w: Working, filled: float) -> list[np.ndarray]:
        """The IOC orders of legs 1 and 2 for ``filled`` of the resting leg (what it bought,
        less the maker fee), at the touch plus ``hedge_slippage_bps``."""
        received = self._received(w, filled)
        w.hedged_qty = filled
        self.rest[w.tri, R_STATE] = ST_FROZEN
        self.counts["hedged"] += 1
        out = []
        for g, (ticks, steps, _, _) in zip((1, 2), self._hedge_plan(w.symbols, w.sides, received), strict=True):
            rec = self._intent(w.group_id, g, w.symbols[g], w.sides[g], ticks, steps, w.edge,
                               self._client_id(w.group_id, g))
            rec[0]["order_type"], rec[0]["tif"] = OrderType.LIMIT, TimeInForce.IOC
            out.append(rec)
        return out

    def _forget(self, w: Working) -> None:
        if w.hedged_qty:
            self.counts["filled"] += 1
        self.working.pop(w.tri, None)
        self.by_group.pop(w.group_id, None)
        self.rest[w.tri] = 0.0

    def order_stats(self) -> dict:
        """What became of its resting orders (``StrategyEngine.stats``: ``orders``)."""
        return {**self.counts, "resting": len(self.working)}

    def warmup(self, full: bool = False) -> None:
        """Compile the scan on dummy data (a throwaway book cache and state)."""
        recs = np.zeros(2, MD_EVENT)
        recs["kind"] = (MdKind.SNAPSHOT, MdKind.TRADE)
        recs["n_bids"] = recs["n_asks"] = 1
        recs["bid_px"][:, 0], recs["ask_px"][:, 0] = 1.0, 1.01
        recs["bid_qty"][:, 0] = recs["ask_qty"][:, 0] = 1.0
        recs["trade_px"], recs["trade_qty"] = 1.0, 1.0
        t = self.table
        scan_makers(recs, 0, 2, BookCache(len(self.universe.symbols)).books, t.legs_symbol, t.legs_side,
                    self.canon, t.sym_ptr, t.sym_tri, self.tick, np.zeros_like(self.rest),
                    np.zeros_like(self.trades), self.params, np.zeros_like(self.out), np.zeros_like(self.act),
                    DecisionState(self._cfg_strategy, self.n_keys, 1, STRATEGY_ID, N_LEGS, 0, 0).arrays)
