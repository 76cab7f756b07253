"""Triangular arbitrage: the first strategy behind ``StrategyEngine`` (``[strategy] name = "triangular"``).

A strategy turns md records into *evaluations*: for the market event that produced candidates,
one row per candidate with its key (here the triangle id), a verdict of its own (0 = tradeable,
else a ``Decision.SKIP_*``), net edge, size, expected PnL, features and legs. The engine does
the rest (model scoring, thresholds, cooldown, ids, intents, journal), so a second strategy is a
new module with the same ``scan`` / ``evaluation`` / ``warmup`` methods, registered in
``ctrader.strategy.registry``::

    strat = TriangularArbitrage(cfg, uni, book_cache)
    i, n = strat.scan(records, 0, len(records))    # applies records until one yields candidates
    ev = strat.evaluation(n)                        # the candidates of record i - 1

``scan`` runs in one numba call per batch: book update (``ctrader.market.books.apply_md``),
per-symbol statistics, re-evaluation of the triangles through the updated symbol only (CSR
index), features. It returns to Python only when a record produced candidates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit

from ctrader.core.records import MAX_FEATURES, MAX_LEGS, MD_EVENT, STRATEGY_IDS, Decision, MdKind
from ctrader.market.books import BookCache, apply_md
from ctrader.strategy import decide as D
from ctrader.strategy import kernels as K
from ctrader.strategy.features import (
    FEATURES,
    N_FEATURES,
    compute_features,
    new_market_stats,
    update_market_stats,
)
from ctrader.strategy.state import DecisionArrays, DecisionState, EventOutput, EventRows
from ctrader.strategy.triangles import SymbolTable, TriangleTable

STRATEGY_ID = STRATEGY_IDS["triangular"]
N_LEGS = 3
_TRADE = int(MdKind.TRADE)

# kernel status -> the strategy's own verdict (0: tradeable, the engine decides)
_VERDICT = np.zeros(8, dtype=np.uint8)
_VERDICT[K.ST_OK] = 0
_VERDICT[K.ST_STALE] = Decision.SKIP_STALE
_VERDICT[K.ST_FILTER] = Decision.SKIP_FILTER
_VERDICT[K.ST_RISK] = Decision.SKIP_RISK
_VERDICT[K.ST_EDGE_LOW] = Decision.SKIP_EDGE


@dataclass
class Evaluation:
    """The candidates of one market event (n rows; arrays may be views valid until the next scan)."""
    key: np.ndarray          # int: what cooldown and in-flight tracking are per (triangle id)
    verdict: np.ndarray      # uint8: 0 or Decision.SKIP_*
    edge: np.ndarray         # net edge after fees of the rounded legs
    size: np.ndarray         # start amount
    pnl: np.ndarray          # expected PnL in the start asset
    features: np.ndarray     # float32 (n, N_FEATURES)
    leg_symbol: np.ndarray   # (n, 3)
    leg_side: np.ndarray     # (n, 3)
    leg_px: np.ndarray       # average price walked
    leg_qty: np.ndarray      # base quantity (on its step)
    leg_limit: np.ndarray    # IOC limit price (on its tick)
    leg_ticks: np.ndarray    # int64 limit price / tick
    leg_steps: np.ndarray    # int64 quantity / step
    closing = None           # no row closes a position: every group is flat when its legs are done

    def __len__(self) -> int:
        return len(self.key)


def parse_amounts(items, uni) -> np.ndarray:
    """["USDT=1000", ...] -> float64 per asset id (0 for assets not listed or not in the universe)."""
    out = np.zeros(len(uni.assets), dtype=np.float64)
    for item in items:
        asset, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"strategy.max_start: expected ASSET=AMOUNT, got {item!r}")
        asset = asset.strip().upper()
        if asset in uni.assets:
            out[uni.asset_id(asset)] = float(value)
    return out


# scan_decide outcomes
DONE = 0          # every record applied
INTENTS = 1       # record i - 1 produced intents (its candidates and intents are written)
SCORE = 2         # record i - 1 has rows for the model: score them, then complete_event
FULL = 3          # the candidate buffer is nearly full: take its rows, call again from i


class TriangularArrays(NamedTuple):
    """The strategy's own arrays, as its kernels take them (a plain tuple over the boundary, named
    inside: see ``ctrader.strategy.state`` for why)."""
    books: np.ndarray        # BOOK records (BookCache.books)
    book: tuple              # field views of ``books`` (book_views)
    tri: tuple               # triangle table (kernels.tri_arrays)
    sym: tuple               # symbol rules and size caps (kernels.sym_arrays)
    params: np.ndarray       # kernels.make_params
    edge_since: np.ndarray   # int64 per triangle: when its edge appeared (0: none)
    stats: np.ndarray        # per-symbol market statistics (features.new_market_stats)
    max_start: np.ndarray    # float64 per asset: largest start amount
    outf: np.ndarray         # float64 (rows, kernels.NF): evaluation rows
    outi: np.ndarray         # int64 (rows, kernels.NI)
    feat: np.ndarray         # float32 (rows, N_FEATURES)


@njit(cache=True)
def scan_records(recs, start, n, arrays):
    """Apply ``recs[start:n]`` until one yields candidates: returns (next index, candidate rows)."""
    a = TriangularArrays(*arrays)
    books, book, tri, sym, params, edge_since = a.books, a.book, a.tri, a.sym, a.params, a.edge_since
    outf, outi = a.outf, a.outi
    keep = 1.0 - params[K.P_FEE]
    sym_ptr, sym_tri = tri[3], tri[4]
    for i in range(start, n):
        # the same per-record body as scan_decide (see there why it is written out)
        sid = apply_md(books, recs, i)
        if sid < 0 or recs[i].kind == _TRADE:
            continue
        now = recs[i].recv_mono_ns
        b = books[sid]
        if b.n_bids > 0 and b.n_asks > 0:
            update_market_stats(a.stats, sid, 0.5 * (b.bid_px[0] + b.ask_px[0]), now)
        m = 0
        for j in range(sym_ptr[sid], sym_ptr[sid + 1]):
            t = sym_tri[j]
            if K.top_rate(t, tri, book, keep) <= 1.0:
                edge_since[t] = 0
                continue
            K.evaluate_triangle(t, now, tri, sym, book, params, outf, outi, m)
            if outf[m, K.F_EDGE_TOP] > 0.0:
                if edge_since[t] == 0:
                    edge_since[t] = now
                m += 1
            else:
                edge_since[t] = 0
        if m > 0:
            compute_features(outf, outi, m, tri, a.stats, edge_since, a.max_start, now, a.feat)
            return i + 1, m
    return n, 0


@njit(cache=True)
def complete_event(recs, i, m, has_score, arrays, dec, rows, out):
    """Phase 2 of the decision for the candidates of record ``i``, then their journal rows
    (``cands[cand_n[0]:]``) and, when groups fired, their intents (``intents[int_n[0]:]``;
    client order ids are the caller's). Returns the number of groups fired."""
    a, d, r, o = TriangularArrays(*arrays), DecisionArrays(*dec), EventRows(*rows), EventOutput(*out)
    outf, outi, feat = a.outf, a.outi, a.feat
    decision, group_ids, score = r.decision, r.group_ids, r.score
    p, st = d.params[0], d.state[0]
    now = recs[i].recv_mono_ns
    fired = D.finish_decide(m, outi[:, K.I_TRI], outf[:, K.F_PNL], score, has_score, now, d, decision, group_ids,
                            r.journal)
    legs_symbol, legs_side = a.tri[0], a.tri[1]
    sid = p.strategy_id
    ts, mono = recs[i].recv_ts_ns, recs[i].recv_mono_ns
    if fired > 0:                       # intents first: they are what the market is waiting for
        created = D.clock_ns()
        n_int = o.int_n[0]
        cause = recs[i].symbol_id
        for j in range(m):
            if decision[j] != D.TAKEN:
                continue
            t = outi[j, K.I_TRI]
            # The leg on the symbol that just moved goes out first: it is the one every
            # competitor races for (the others are priced off books nobody is racing on yet).
            first = 0
            for k in range(N_LEGS):
                if legs_symbol[t, k] == cause:
                    first = k
            for q in range(N_LEGS):
                k = (first + q) % N_LEGS
                x = o.intents[n_int]
                x.group_id = group_ids[j]
                x.symbol_id = legs_symbol[t, k]
                x.strategy_id = sid
                x.leg = k
                x.n_legs = N_LEGS
                x.side = legs_side[t, k]
                x.order_type = p.order_type
                x.tif = p.tif
                x.price_ticks = outi[j, K.I_TICKS + k]
                x.qty_steps = outi[j, K.I_STEPS + k]
                x.price = outf[j, K.F_LIMIT + k]
                x.qty = outf[j, K.F_QTY + k]
                x.cause_recv_ts_ns = ts
                x.cause_recv_mono_ns = mono
                x.created_mono_ns = created
                x.score = score[j]
                x.expected_edge = outf[j, K.F_EDGE]
                n_int += 1
        o.int_n[0] = n_int
        D.note_tick_to_intent(st, created - mono)
    eval_ns = D.clock_ns()
    nf = min(feat.shape[1], MAX_FEATURES)
    n_cand = o.cand_n[0]
    for j in range(m):
        if r.journal[j] == 0:
            continue
        t = outi[j, K.I_TRI]
        c = o.cands[n_cand]
        c.group_id = group_ids[j]
        c.triangle_id = t
        c.strategy_id = sid
        c.decision = decision[j]
        c.n_features = nf
        c.event_recv_ts_ns = ts
        c.event_recv_mono_ns = mono
        c.eval_mono_ns = eval_ns
        c.edge = outf[j, K.F_EDGE]
        c.size_start = outf[j, K.F_SIZE]
        c.expected_pnl = outf[j, K.F_PNL]
        c.score = score[j]
        for k in range(MAX_LEGS):
            if k < N_LEGS:
                c.leg_symbol_id[k] = legs_symbol[t, k]
                c.leg_side[k] = legs_side[t, k]
                c.leg_px[k] = outf[j, K.F_PX + k]
                c.leg_qty[k] = outf[j, K.F_QTY + k]
            else:
                c.leg_symbol_id[k] = 0
                c.leg_side[k] = 0
                c.leg_px[k] = 0.0
                c.leg_qty[k] = 0.0
        for f in range(MAX_FEATURES):
            c.features[f] = feat[j, f] if f < nf else 0.0
        n_cand += 1
    o.cand_n[0] = n_cand
    D.note_decision_latency(st, D.clock_ns() - st.t0)
    return fired


@njit(cache=True)
def scan_decide(recs, start, n, arrays, dec, rows, has_model, out):
    """Apply, evaluate and decide ``recs[start:n]`` with no return to Python until there is
    something for it to do: returns (next index, candidate rows of record next - 1, outcome)."""
    a, d, r = TriangularArrays(*arrays), DecisionArrays(*dec), EventRows(*rows)
    books, book, tri, sym, params, edge_since = a.books, a.book, a.tri, a.sym, a.params, a.edge_since
    outf, outi = a.outf, a.outi
    st, keys = d.state[0], d.keys
    cand_n, cands = out[1], out[0]
    decision, score = r.decision, r.score
    n_rows = outf.shape[0]
    keep = 1.0 - params[K.P_FEE]
    sym_ptr, sym_tri = tri[3], tri[4]
    for i in range(start, n):
        if cand_n[0] + n_rows > cands.shape[0]:
            return i, 0, FULL
        # Written out (here and in scan_records) rather than a helper: calls, even numba-inlined
        # ones, that take the tuples of arrays cost ~3x the whole top-of-book check per record.
        sid = apply_md(books, recs, i)
        if sid < 0 or recs[i].kind == _TRADE:
            continue
        now = recs[i].recv_mono_ns
        b = books[sid]
        if b.n_bids > 0 and b.n_asks > 0:
            update_market_stats(a.stats, sid, 0.5 * (b.bid_px[0] + b.ask_px[0]), now)
        m = 0
        for j in range(sym_ptr[sid], sym_ptr[sid + 1]):
            t = sym_tri[j]
            if K.top_rate(t, tri, book, keep) <= 1.0:      # no edge: the common case, decided inline
                edge_since[t] = 0
                keys[t].skip_noted = 0                      # its next SKIP_RISK is journaled (decide.py)
                continue
            if m == 0:
                st.t0 = D.clock_ns()                        # decision latency: from the first candidate
            K.evaluate_triangle(t, now, tri, sym, book, params, outf, outi, m)
            if outf[m, K.F_EDGE_TOP] > 0.0:
                if edge_since[t] == 0:
                    edge_since[t] = now
                m += 1
            else:
                edge_since[t] = 0
                keys[t].skip_noted = 0
        if m == 0:
            continue
        compute_features(outf, outi, m, tri, a.stats, edge_since, a.max_start, now, a.feat)
        for j in range(m):
            decision[j] = _VERDICT[outi[j, K.I_STATUS]]
            score[j] = np.nan
        n_open = D.pre_decide(m, decision, outi[:, K.I_TRI], outf[:, K.F_EDGE], recs[i].recv_mono_ns, d, decision,
                              r.journal)
        if n_open > 0 and has_model:
            return i + 1, m, SCORE
        if complete_event(recs, i, m, False, arrays, dec, rows, out) > 0:
            return i + 1, m, INTENTS
    return n, 0, DONE


def book_views(cache: BookCache) -> tuple:
    """The kernels' view of a BookCache (no copies: field views of its structured array)."""
    b = cache.books
    return (b["bid_px"], b["bid_qty"], b["ask_px"], b["ask_qty"], b["n_bids"], b["n_asks"], b["flags"],
            b["last_recv_mono_ns"])


class TriangularArbitrage:
    """The ``Strategy`` (``ctrader.strategy.protocol``) of triangular arbitrage: keys are triangle ids."""
    name = "triangular"
    strategy_id = STRATEGY_ID
    features = FEATURES
    n_legs = N_LEGS
    fused = True                     # scan_decide / complete_event / event_features: the hot path

    def __init__(self, cfg, universe, books: BookCache | None = None) -> None:
        sc = cfg.strategy
        self.universe = universe
        self.books = books if books is not None else BookCache(len(universe.symbols))
        self.table = TriangleTable.from_universe(universe)
        self.symbols = SymbolTable.from_universe(universe)
        self.max_start = parse_amounts(sc.max_start, universe)
        self.params = K.make_params(universe.taker_fee, sc.min_marginal_edge_bps * 1e-4,
                                    sc.max_book_age_ms * 1e6, sc.limit_slippage_bps * 1e-4)
        self.tri = K.tri_arrays(self.table)
        self.sym = K.sym_arrays(self.symbols, self.max_start)
        self.edge_since = np.zeros(self.table.n_triangles, dtype=np.int64)
        self.stats = new_market_stats(len(universe.symbols))
        rows = max(1, self.table.n_triangles) + 1
        self.outf = np.zeros((rows, K.NF), dtype=np.float64)
        self.outi = np.zeros((rows, K.NI), dtype=np.int64)
        self.feat = np.zeros((rows, N_FEATURES), dtype=np.float32)
        self._pack()

    def _pack(self) -> None:
        """The kernels' argument tuple, after any of its arrays was replaced."""
        self.book = book_views(self.books)
        self.arrays = tuple(TriangularArrays(
            books=self.books.books, book=self.book, tri=self.tri, sym=self.sym, params=self.params,
            edge_since=self.edge_since, stats=self.stats, max_start=self.max_start, outf=self.outf, outi=self.outi,
            feat=self.feat))

    @property
    def n_triangles(self) -> int:
        return self.table.n_triangles

    @property
    def n_keys(self) -> int:
        """Keys are triangle ids."""
        return self.table.n_triangles

    @property
    def max_rows(self) -> int:
        """Most candidate rows one market event can produce."""
        return self.outf.shape[0]

    def scan(self, records: np.ndarray, start: int, n: int) -> tuple[int, int]:
        """Apply records until one yields candidates, deciding nothing (training, ML loop):
        (next index, rows); ``evaluation(rows)`` has them."""
        return scan_records(records, start, n, self.arrays)

    def scan_decide(self, records: np.ndarray, start: int, end: int, dec: tuple, rows: tuple, has_model: bool,
                    out: tuple) -> tuple[int, int, int]:
        return scan_decide(records, start, end, self.arrays, dec, rows, has_model, out)

    def complete_event(self, records: np.ndarray, i: int, m: int, dec: tuple, rows: tuple, out: tuple) -> int:
        return complete_event(records, i, m, True, self.arrays, dec, rows, out)

    def event_features(self, m: int) -> np.ndarray:
        return self.feat[:m]

    def evaluate_all(self, now_ns: int) -> int:
        """Re-evaluate every triangle (a full rescan); rows as in ``scan``; features included."""
        n = K.evaluate_all(now_ns, self.tri, self.sym, self.book, self.params, self.edge_since, self.outf,
                           self.outi)
        compute_features(self.outf, self.outi, n, self.tri, self.stats, self.edge_since, self.max_start, now_ns,
                         self.feat)
        return n

    def evaluate_one(self, triangle: int, now_ns: int, max_start: float | None = None) -> tuple[int, np.ndarray, np.ndarray]:
        """Evaluate one triangle now, optionally with another size cap: (status, float row, int row).
        Used for labels (the same triangle re-evaluated after a latency)."""
        sym = self.sym
        if max_start is not None:
            caps = self.max_start.copy()
            caps[self.table.start_asset[triangle]] = max_start
            sym = K.sym_arrays(self.symbols, caps)
        outf = np.zeros((1, K.NF))
        outi = np.zeros((1, K.NI), dtype=np.int64)
        status = K.evaluate_triangle(triangle, now_ns, self.tri, sym, self.book, self.params, outf, outi, 0)
        return int(status), outf[0], outi[0]

    def evaluation(self, n: int) -> Evaluation:
        """Rows 0..n-1 of the last scan, as views (valid until the next scan)."""
        f, i = self.outf[:n], self.outi[:n]
        tris = i[:, K.I_TRI]
        return Evaluation(
            key=tris, verdict=_VERDICT[i[:, K.I_STATUS]], edge=f[:, K.F_EDGE], size=f[:, K.F_SIZE],
            pnl=f[:, K.F_PNL], features=self.feat[:n], leg_symbol=self.table.legs_symbol[tris],
            leg_side=self.table.legs_side[tris], leg_px=f[:, K.F_PX:K.F_PX + 3], leg_qty=f[:, K.F_QTY:K.F_QTY + 3],
            leg_limit=f[:, K.F_LIMIT:K.F_LIMIT + 3], leg_ticks=i[:, K.I_TICKS:K.I_TICKS + 3],
            leg_steps=i[:, K.I_STEPS:K.I_STEPS + 3])

    def on_taken(self, rows: np.ndarray, group_ids: np.ndarray) -> None:
        """Nothing to keep: a triangle's group holds no position once its legs are done."""

    def on_exec(self, records: np.ndarray) -> None:
        """Nothing to keep (the engine frees the triangle when its legs are done)."""

    def warmup(self, full: bool = False) -> None:
        """Run every kernel the live path uses once on dummy data, so no JIT compile happens
        mid-market; ``full`` also compiles the rescan and single-triangle entry points."""
        dummy = TriangularArbitrage.__new__(TriangularArbitrage)
        dummy.__dict__.update(self.__dict__)
        dummy.books = BookCache(len(self.universe.symbols))
        dummy.edge_since = np.zeros_like(self.edge_since)
        dummy.stats = new_market_stats(len(self.universe.symbols))
        dummy._pack()
        recs = np.zeros(1, MD_EVENT)
        recs["kind"] = MdKind.SNAPSHOT
        recs["n_bids"] = recs["n_asks"] = 1
        recs["bid_px"][0, 0], recs["ask_px"][0, 0] = 1.0, 1.01
        recs["bid_qty"][0, 0] = recs["ask_qty"][0, 0] = 1.0
        dummy.scan(recs, 0, 1)
        _warm_fused(dummy, recs)
        if full:
            dummy.evaluate_all(1)
            if self.table.n_triangles:
                dummy.evaluate_one(0, 1, 1.0)


def _warm_fused(strategy: TriangularArbitrage, recs: np.ndarray) -> None:
    """Compile scan_decide and complete_event on a throwaway decision state."""
    from types import SimpleNamespace

    from ctrader.core.records import CANDIDATE, ORDER_INTENT

    sc = SimpleNamespace(min_edge_bps=0.0, min_score=0.0, cooldown_ms=0.0, inflight_timeout_ms=1.0,
                         max_groups_per_event=1, max_groups_in_flight=1, max_groups_per_10s=1)
    dec = DecisionState(sc, strategy.n_triangles, 1, STRATEGY_ID, N_LEGS, 2, 1)
    rows = strategy.max_rows
    work = tuple(EventRows.zeros(rows))
    out = tuple(EventOutput(np.zeros(rows, CANDIDATE), np.zeros(1, np.int64), np.zeros(rows * N_LEGS, ORDER_INTENT),
                            np.zeros(1, np.int64)))
    strategy.scan_decide(recs, 0, len(recs), dec.arrays, work, True, out)
    strategy.complete_event(recs, 0, 0, dec.arrays, work, out)
