"""Cross-rate statistical arbitrage (``[strategy] name = "cross_rate_reversion"``).

A pair X/Y and the pairs X/Q and Y/Q of its assets with a third asset Q imply a cross rate:
X/Y should trade at X/Q divided by Y/Q. The log *residual* ``ln(mid X/Y) - ln(mid X/Q) +
ln(mid Y/Q)`` wanders around a small mean (fees and spreads keep it from being zero) and comes
back (``[sim.market] residual_bps`` makes the simulator's do so). Per *relation* (a pair and one
third asset: ETHBTC with USDT, ETHBTC with FDUSD, ...) the strategy keeps the residual's
running mean and variance, exponentially weighted in market time (``half_life_s``), and:

- flat, when the residual is ``entry_z`` standard deviations off its mean: trades X/Y toward
  the implied rate (buys it when it is cheap, sells it when it is rich). Maker first, taker
  when the edge pays for it: when a full reversion pays the pair's spread and two taker fees,
  one IOC order takes the touch; when it pays only a maker fee and a taker fee (the entry
  rests at its own side's touch, so the round trip crosses no spread), one LIMIT_MAKER order
  rests there for ``maker_rest_ms`` (the executor cancels it then) and what it filled is the
  position (``maker_rest_ms = 0``: taker entries only);
- holding, closes the position with one IOC order the other way when the residual is back
  within ``exit_z`` of its mean, was held ``max_hold_s``, or moved ``stop_bps`` further against
  it since the entry.

Each is a one-leg group for the engine (``StrategyEngine``: thresholds, cooldown, in-flight per
key, model score). The key is the relation. An entry's edge is the deviation from the mean less
the round trip's cost (a taker entry: the pair's spread and two taker fees; a resting entry: a
maker and a taker fee): what a full reversion would earn.
A close is not an opportunity but the end of one, so it is held to neither ``min_edge_bps`` nor
``min_score`` (``Evaluation.closing``); its edge is what the position made so far, after costs.
The position is the strategy's own: what the entry filled makes it, what the close filled
unmakes it, counted when each group ends (``on_taken``, ``on_exec``).

The residual statistics and the signals run in one numba call per batch (``scan_residuals``);
Python sizes the rows of the market event that produced signals (``evaluation``): the pair's
touch, the size cap of its quote asset (``[strategy] max_start``), exchange filters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ctrader.core.records import MD_EVENT, STRATEGY_IDS, Decision, ExecKind, MdKind, Side
from ctrader.market.books import BookCache, apply_md, tradeable
from ctrader.strategy.decide import would_refuse
from ctrader.strategy.state import DecisionArrays, DecisionState
from ctrader.strategy.triangular import parse_amounts
from ctrader.venue.decimals import ONE

STRATEGY_ID = STRATEGY_IDS["cross_rate_reversion"]
N_LEGS = 1
_TRADE = int(MdKind.TRADE)
_LN2 = math.log(2.0)

# relation statistics (float64 columns of ``stats``)
S_MEAN, S_VAR, S_N, S_LAST_NS = 0, 1, 2, 3
N_STATS = 4
# position per relation (float64 columns of ``pos``): side +1 long X/Y, -1 short, 0 flat
P_SIDE, P_QTY, P_ENTRY_RESID, P_ENTRY_NS = 0, 1, 2, 3
N_POS = 4
# parameters (float64 vector)
(A_HALF_LIFE_NS, A_MIN_OBS, A_ENTRY_Z, A_EXIT_Z, A_MAX_HOLD_NS, A_STOP, A_MAX_AGE_NS, A_FEES,
 A_MAKER_FEES, A_MAKER) = range(10)
N_PARAMS = 10              # A_FEES: a taker round trip's fees; A_MAKER_FEES: a resting entry's; A_MAKER: 1 rests
# signal rows (float64 columns of ``out``)
O_REL, O_RESID, O_DEV, O_SD, O_Z, O_CLOSE, O_WHY, O_REST = range(8)
N_OUT = 8                  # O_REST: 1 when the entry rests as a maker (the edge does not pay a taker)
# why a row closes a position
WHY_ENTRY, WHY_REVERTED, WHY_HELD_TOO_LONG, WHY_STOPPED = 0, 1, 2, 3

FEATURES = ("residual_z", "residual_dev_bps", "residual_sd_bps", "spread_bps", "closing", "held_s")


@njit(cache=True)
def _mid(books, sid):
    b = books[sid]
    return 0.5 * (b.bid_px[0] + b.ask_px[0])


@njit(cache=True)
def update_stats(stats, r, resid, now, half_life_ns):
    """One observation of relation ``r``'s residual at ``now``: the exponentially weighted mean
    and variance, each old observation's weight halving every ``half_life_ns`` of market time."""
    if stats[r, S_N] == 0:
        stats[r, S_MEAN] = resid
        stats[r, S_VAR] = 0.0
    else:
        dt = max(now - stats[r, S_LAST_NS], 0.0)
        keep = math.exp(-dt * _LN2 / half_life_ns)
        alpha = 1.0 - keep
        d = resid - stats[r, S_MEAN]
        stats[r, S_MEAN] += alpha * d
        stats[r, S_VAR] = keep * (stats[r, S_VAR] + alpha * d * d)
    stats[r, S_N] += 1
    stats[r, S_LAST_NS] = now


@njit(cache=True)
def scan_residuals(recs, start, n, books, rel, sym_ptr, sym_rel, stats, pos, params, out, dec):
    """Apply ``recs[start:n]`` until one yields signal rows: (next index, rows in ``out``).

    A book record updates the relations through its symbol whose three books are tradeable
    (fresh, two-sided, uncrossed): each is judged on its statistics before this observation,
    then the observation is added. A signal the engine would refuse anyway (``dec``, its
    ``DecisionArrays``: the relation in flight or in its cooldown, no room in the group budget)
    is not proposed."""
    d = DecisionArrays(*dec)
    for i in range(start, n):
        sid = apply_md(books, recs, i)
        if sid < 0 or recs[i].kind == _TRADE:
            continue
        now = recs[i].recv_mono_ns
        m = 0
        for j in range(sym_ptr[sid], sym_ptr[sid + 1]):
            r = sym_rel[j]
            c, a, b = rel[r, 0], rel[r, 1], rel[r, 2]
            age = params[A_MAX_AGE_NS]
            if not (tradeable(books, c, now, age) and tradeable(books, a, now, age)
                    and tradeable(books, b, now, age)):
                continue
            resid = math.log(_mid(books, c)) - math.log(_mid(books, a)) + math.log(_mid(books, b))
            seen = stats[r, S_N]
            dev = resid - stats[r, S_MEAN]
            sd = math.sqrt(stats[r, S_VAR])
            update_stats(stats, r, resid, now, params[A_HALF_LIFE_NS])
            if seen < params[A_MIN_OBS] or sd <= 0.0:
                continue
            z = dev / sd
            side = pos[r, P_SIDE]
            why = -1
            rest = 0.0
            if side == 0.0:
                # an entry is a candidate when a full reversion would pay the round trip: taking,
                # the pair's spread and two taker fees; resting at its side's touch, a maker and
                # a taker fee (the engine's min_edge_bps on top)
                bc = books[c]
                spread = (bc.ask_px[0] - bc.bid_px[0]) / _mid(books, c)
                if abs(z) >= params[A_ENTRY_Z]:
                    if abs(dev) > spread + params[A_FEES]:
                        why = WHY_ENTRY
                    elif params[A_MAKER] > 0.0 and abs(dev) > params[A_MAKER_FEES]:
                        why = WHY_ENTRY
                        rest = 1.0
            elif pos[r, P_QTY] > 0.0:
                if side * z >= -params[A_EXIT_Z]:
                    why = WHY_REVERTED
                elif side * (pos[r, P_ENTRY_RESID] - resid) >= params[A_STOP]:
                    why = WHY_STOPPED
                elif now - pos[r, P_ENTRY_NS] >= params[A_MAX_HOLD_NS]:
                    why = WHY_HELD_TOO_LONG
            if why < 0 or would_refuse(r, now, d):
                continue
            out[m, O_REL] = r
            out[m, O_RESID] = resid
            out[m, O_DEV] = dev
            out[m, O_SD] = sd
            out[m, O_Z] = z
            out[m, O_CLOSE] = 0.0 if why == WHY_ENTRY else 1.0
            out[m, O_WHY] = why
            out[m, O_REST] = rest
            m += 1
        if m > 0:
            return i + 1, m
    return n, 0


def relations(universe) -> np.ndarray:
    """(cross, X/Q, Y/Q) symbol ids of every pair X/Y with a third asset Q both of its assets
    trade against as bases (X/Q and Y/Q listed), one row per (pair, Q)."""
    rows = []
    for s in universe.symbols:
        for q in universe.assets:
            if q in (s.base, s.quote):
                continue
            a = universe.by_name.get(s.base + q)
            b = universe.by_name.get(s.quote + q)
            if a is not None and b is not None and a.base == s.base and b.base == s.quote:
                rows.append((s.id, a.id, b.id))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def symbol_index(rel: np.ndarray, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR index symbol -> the relations it is part of."""
    lists: list[list[int]] = [[] for _ in range(n_symbols)]
    for r, row in enumerate(rel):
        for sid in row:
            lists[int(sid)].append(r)
    ptr = np.zeros(n_symbols + 1, np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    flat = np.array([r for x in lists for r in x], dtype=np.int64)
    return ptr, flat


@dataclass
class Evaluation:
    """The signal rows of one market event (the engine's generic path reads these columns)."""
    key: np.ndarray          # relation id
    verdict: np.ndarray      # 0 or Decision.SKIP_*
    edge: np.ndarray         # fraction: an entry's, after the round trip's costs; a close's, so far
    size: np.ndarray         # notional in the pair's quote asset
    pnl: np.ndarray          # expected PnL in the pair's quote asset
    features: np.ndarray     # float32 (n, len(FEATURES))
    leg_symbol: np.ndarray   # (n, 1)
    leg_side: np.ndarray
    leg_px: np.ndarray
    leg_qty: np.ndarray
    leg_limit: np.ndarray
    leg_ticks: np.ndarray
    leg_steps: np.ndarray
    closing: np.ndarray      # bool: closes a position (no edge or score threshold)
    rest_ns: np.ndarray      # > 0: the order rests as a LIMIT_MAKER this long (the engine's intents)
    resid: np.ndarray        # the residual when decided (a position's entry residual)
    why: np.ndarray          # WHY_*: an entry, or why it closes

    def __len__(self) -> int:
        return len(self.key)


class CrossRateReversion:
    """The ``Strategy`` (``ctrader.strategy.protocol``) of cross-rate statistical arbitrage;
    keys are relation ids (``relations``)."""
    name = "cross_rate_reversion"
    strategy_id = STRATEGY_ID
    features = FEATURES
    n_legs = N_LEGS
    fused = False

    def __init__(self, cfg, universe, books: BookCache | None = None) -> None:
        sc = cfg.strategy
        rc = sc.cross_rate_reversion
        self.universe = universe
        self.books = books if books is not None else BookCache(len(universe.symbols))
        self.rel = relations(universe)
        self.sym_ptr, self.sym_rel = symbol_index(self.rel, len(universe.symbols))
        self.stats = np.zeros((len(self.rel), N_STATS))
        self.pos = np.zeros((len(self.rel), N_POS))
        self.params = np.zeros(N_PARAMS)
        self.params[A_HALF_LIFE_NS] = rc.half_life_s * 1e9
        self.params[A_MIN_OBS] = rc.min_observations
        self.params[A_ENTRY_Z] = rc.entry_z
        self.params[A_EXIT_Z] = rc.exit_z
        self.params[A_MAX_HOLD_NS] = rc.max_hold_s * 1e9
        self.params[A_STOP] = rc.stop_bps * 1e-4
        self.params[A_MAX_AGE_NS] = sc.max_book_age_ms * 1e6
        self.params[A_FEES] = 2 * universe.taker_fee
        self.params[A_MAKER_FEES] = universe.maker_fee + universe.taker_fee
        self.maker_rest_ns = int(rc.maker_rest_ms * 1e6)
        self.params[A_MAKER] = 1.0 if self.maker_rest_ns > 0 else 0.0
        self.maker_fee = universe.maker_fee
        self.slippage = rc.limit_slippage_bps * 1e-4
        self.fee = universe.taker_fee
        self.max_notional = parse_amounts(sc.max_start, universe)      # per asset: the pair's quote
        self.out = np.zeros((max(1, len(self.rel)), N_OUT))
        self._now = 0
        self._last: Evaluation | None = None
        self._groups: dict[int, tuple[int, bool]] = {}      # group id -> (relation, closing)
        self.taken = dict.fromkeys(("entry", "reverted", "held_too_long", "stopped"), 0)   # groups, by why
        self.dust_left = 0              # positions too small to close, let go (see ``evaluation``)
        self._cfg_strategy = sc
        # the engine's DecisionState (``bind_decisions``); alone, a fresh one of its own
        self._decisions = DecisionState(sc, self.n_keys, 1, STRATEGY_ID, N_LEGS, 0, 0)

    def bind_decisions(self, state) -> None:
        """The engine's ``DecisionState``: the scan proposes no signal it would refuse."""
        self._decisions = state

    @property
    def n_keys(self) -> int:
        return max(1, len(self.rel))

    @property
    def max_rows(self) -> int:
        return self.out.shape[0]

    def scan(self, records: np.ndarray, start: int, n: int) -> tuple[int, int]:
        i, m = scan_residuals(records, start, n, self.books.books, self.rel, self.sym_ptr, self.sym_rel,
                              self.stats, self.pos, self.params, self.out, self._decisions.arrays)
        if m:
            self._now = int(records[i - 1]["recv_mono_ns"])
        return i, m

    def evaluation(self, n: int) -> Evaluation:
        """Rows 0..n-1 of the last scan, sized on the pair's touch."""
        books = self.books.books
        ev = Evaluation(key=self.out[:n, O_REL].astype(np.int64), verdict=np.zeros(n, np.uint8),
                        edge=np.zeros(n), size=np.zeros(n), pnl=np.zeros(n),
                        features=np.zeros((n, len(FEATURES)), np.float32),
                        leg_symbol=np.zeros((n, 1), np.int64), leg_side=np.zeros((n, 1), np.int64),
                        leg_px=np.zeros((n, 1)), leg_qty=np.zeros((n, 1)), leg_limit=np.zeros((n, 1)),
                        leg_ticks=np.zeros((n, 1), np.int64), leg_steps=np.zeros((n, 1), np.int64),
                        closing=self.out[:n, O_CLOSE] > 0, resid=self.out[:n, O_RESID].copy(),
                        rest_ns=np.where(self.out[:n, O_REST] > 0, self.maker_rest_ns, 0).astype(np.int64),
                        why=self.out[:n, O_WHY].astype(np.int64))
        for j in range(n):
            r = int(ev.key[j])
            info = self.universe.symbols[int(self.rel[r, 0])]
            b = books[info.id]
            bid, ask = float(b["bid_px"][0]), float(b["ask_px"][0])
            spread = (ask - bid) / (0.5 * (ask + bid))
            dev, sd, z = self.out[j, O_DEV], self.out[j, O_SD], self.out[j, O_Z]
            if ev.closing[j]:
                side = Side.SELL if self.pos[r, P_SIDE] > 0 else Side.BUY
                qty = self.pos[r, P_QTY]
                # what the position made so far: the residual's move its way, less the costs
                edge = self.pos[r, P_SIDE] * (self.out[j, O_RESID] - self.pos[r, P_ENTRY_RESID]) - spread - 2 * self.fee
                held = (self._now - self.pos[r, P_ENTRY_NS]) / 1e9
            elif ev.rest_ns[j]:
                # resting at its own side's touch (post-only: a buy at the bid is below the ask)
                side = Side.BUY if dev < 0 else Side.SELL
                px = bid if side == Side.BUY else ask
                qty = self.max_notional[info.quote_id] / px if px > 0 else 0.0
                edge = abs(dev) - self.maker_fee - self.fee
                held = 0.0
            else:
                side = Side.BUY if dev < 0 else Side.SELL       # toward the implied rate
                cap = self.max_notional[info.quote_id]
                px = ask if side == Side.BUY else bid
                qty = min(cap / px if px > 0 else 0.0,
                          float(b["ask_qty"][0] if side == Side.BUY else b["bid_qty"][0]))
                edge = abs(dev) - spread - 2 * self.fee
                held = 0.0
            if ev.rest_ns[j]:
                touch = bid if side == Side.BUY else ask
                ticks = round(round(touch * ONE) / info.tick_units)
            else:
                touch = ask if side == Side.BUY else bid
                limit = touch * (1 + self.slippage) if side == Side.BUY else touch * (1 - self.slippage)
                ticks = (math.ceil if side == Side.BUY else math.floor)(round(limit * ONE) / info.tick_units)
            steps = int(round(qty * ONE) // info.step_units)
            qty_units = steps * info.step_units
            ev.leg_symbol[j, 0], ev.leg_side[j, 0] = info.id, int(side)
            ev.leg_px[j, 0], ev.leg_limit[j, 0] = touch, ticks * info.tick_units / ONE
            ev.leg_ticks[j, 0], ev.leg_steps[j, 0], ev.leg_qty[j, 0] = ticks, steps, qty_units / ONE
            ev.edge[j] = edge
            ev.size[j] = qty_units / ONE * touch
            ev.pnl[j] = edge * ev.size[j]
            ev.features[j] = (z, dev * 1e4, sd * 1e4, spread * 1e4, float(ev.closing[j]), held)
            if not ev.closing[j] and self.max_notional[info.quote_id] <= 0:
                ev.verdict[j] = Decision.SKIP_RISK           # no size cap for this quote asset
            elif not info.meets_minimums(steps, ticks):
                ev.verdict[j] = Decision.SKIP_FILTER
                if ev.closing[j]:
                    # what is held is below the pair's filters: no order can close it, so the
                    # relation lets it go (the executor's accounting still holds it) rather
                    # than ask again on every update and never enter again
                    self.pos[r, P_SIDE] = self.pos[r, P_QTY] = 0.0
                    self.dust_left += 1
        self._last = ev
        return ev

    # --- positions -------------------------------------------------------------------------------

    def on_taken(self, rows: np.ndarray, group_ids: np.ndarray) -> None:
        """The engine took rows ``rows`` of the last evaluation as groups ``group_ids``."""
        ev = self._last
        for j, gid in zip(rows.tolist(), group_ids.tolist(), strict=True):
            r = int(ev.key[j])
            closing = bool(ev.closing[j])
            self._groups[int(gid)] = (r, closing)
            self.taken[("entry", "reverted", "held_too_long", "stopped")[int(ev.why[j])]] += 1
            if not closing:      # the entry's terms; its fills make the position
                self.pos[r, P_SIDE] = 1.0 if ev.leg_side[j, 0] == Side.BUY else -1.0
                self.pos[r, P_ENTRY_RESID] = ev.resid[j]
                self.pos[r, P_ENTRY_NS] = self._now
                self.pos[r, P_QTY] = 0.0

    def on_exec(self, records: np.ndarray) -> None:
        """When a group ends, what its order filled in all (the terminal report's ``cum_qty``)
        is added to its relation's position (an entry) or taken from it (a close); a relation
        left holding nothing is flat again. Partial fills change nothing before: the key is in
        flight until then, so nothing is decided on them, and a replay delivers the end of a
        group when the session's strategy learned of it (partial reports may arrive otherwise)."""
        for rec in records:
            kind = int(rec["kind"])
            if kind not in (ExecKind.FILL, ExecKind.CANCELED, ExecKind.REJECTED, ExecKind.REFUSED):
                continue
            group = self._groups.pop(int(rec["group_id"]), None)
            if group is None:
                continue
            r, closing = group
            filled = float(rec["cum_qty"])
            self.pos[r, P_QTY] += -filled if closing else filled
            if self.pos[r, P_QTY] <= 1e-12:
                self.pos[r, P_QTY] = 0.0
                self.pos[r, P_SIDE] = 0.0

    def positions(self) -> dict[str, float]:
        """Open positions by relation name (``ETHBTC~USDT``), signed base quantity."""
        out = {}
        for r in np.flatnonzero(self.pos[:, P_QTY] > 0):
            c, a, _ = (self.universe.symbols[int(s)] for s in self.rel[r])
            out[f"{c.name}~{a.quote}"] = float(self.pos[r, P_SIDE] * self.pos[r, P_QTY])
        return out

    def warmup(self, full: bool = False) -> None:
        """Compile the scan on dummy data (a throwaway book cache and state)."""
        recs = np.zeros(1, MD_EVENT)
        recs["kind"] = MdKind.SNAPSHOT
        recs["n_bids"] = recs["n_asks"] = 1
        recs["bid_px"][0, 0], recs["ask_px"][0, 0] = 1.0, 1.01
        recs["bid_qty"][0, 0] = recs["ask_qty"][0, 0] = 1.0
        scan_residuals(recs, 0, 1, BookCache(len(self.universe.symbols)).books, self.rel, self.sym_ptr,
                       self.sym_rel, np.zeros_like(self.stats), np.zeros_like(self.pos), self.params,
                       np.zeros_like(self.out),
                       DecisionState(self._cfg_strategy, self.n_keys, 1, STRATEGY_ID, N_LEGS, 0, 0).arrays)
