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

import numpy as np
from numba import njit

from ctrader.core.records import MD_EVENT, Decision, MdKind
from ctrader.market.books import BookCache, apply_md
from ctrader.strategy import kernels as K
from ctrader.strategy.features import (
    FEATURES,
    N_FEATURES,
    compute_features,
    new_market_stats,
    update_market_stats,
)
from ctrader.strategy.triangles import SymbolTable, TriangleTable

STRATEGY_ID = 1
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


@njit(cache=True)
def scan_records(recs, start, n, books, book, tri, sym, params, edge_since, stats, max_start,
                 outf, outi, feat):
    """Apply ``recs[start:n]`` until one yields candidates: returns (next index, candidate rows)."""
    for i in range(start, n):
        sid = apply_md(books, recs, i)
        if sid < 0 or recs[i].kind == _TRADE:
            continue
        now = recs[i].recv_mono_ns
        b = books[sid]
        if b.n_bids > 0 and b.n_asks > 0:
            update_market_stats(stats, sid, 0.5 * (b.bid_px[0] + b.ask_px[0]), now)
        m = K.evaluate_symbol(sid, now, tri, sym, book, params, edge_since, outf, outi)
        if m > 0:
            compute_features(outf, outi, m, tri, stats, edge_since, max_start, now, feat)
            return i + 1, m
    return n, 0


def book_views(cache: BookCache) -> tuple:
    """The kernels' view of a BookCache (no copies: field views of its structured array)."""
    b = cache.books
    return (b["bid_px"], b["bid_qty"], b["ask_px"], b["ask_qty"], b["n_bids"], b["n_asks"], b["flags"],
            b["last_recv_mono_ns"])


class TriangularArbitrage:
    name = "triangular"
    strategy_id = STRATEGY_ID
    features = FEATURES
    n_legs = N_LEGS

    def __init__(self, cfg, universe, books: BookCache | None = None) -> None:
        sc = cfg.strategy
        self.universe = universe
        self.books = books if books is not None else BookCache(len(universe.symbols))
        self.table = TriangleTable.from_universe(universe)
        self.symbols = SymbolTable.from_universe(universe)
        self.max_start = parse_amounts(sc.max_start, universe)
        self.params = K.make_params(universe.taker_fee, sc.min_marginal_edge_bps * 1e-4,
                                    sc.max_book_age_ms * 1e6, getattr(sc, "limit_slippage_bps", 0.0) * 1e-4)
        self.tri = K.tri_arrays(self.table)
        self.sym = K.sym_arrays(self.symbols, self.max_start)
        self.book = book_views(self.books)
        self.edge_since = np.zeros(self.table.n_triangles, dtype=np.int64)
        self.stats = new_market_stats(len(universe.symbols))
        rows = max(1, self.table.n_triangles) + 1
        self.outf = np.zeros((rows, K.NF), dtype=np.float64)
        self.outi = np.zeros((rows, K.NI), dtype=np.int64)
        self.feat = np.zeros((rows, N_FEATURES), dtype=np.float32)

    @property
    def n_triangles(self) -> int:
        return self.table.n_triangles

    def scan(self, records: np.ndarray, start: int, n: int) -> tuple[int, int]:
        return scan_records(records, start, n, self.books.books, self.book, self.tri, self.sym, self.params,
                            self.edge_since, self.stats, self.max_start, self.outf, self.outi, self.feat)

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

    def warmup(self, full: bool = False) -> None:
        """Run every kernel the live path uses once on dummy data, so no JIT compile happens
        mid-market; ``full`` also compiles the rescan and single-triangle entry points."""
        dummy = TriangularArbitrage.__new__(TriangularArbitrage)
        dummy.__dict__.update(self.__dict__)
        dummy.books = BookCache(len(self.universe.symbols))
        dummy.book = book_views(dummy.books)
        dummy.edge_since = np.zeros_like(self.edge_since)
        dummy.stats = new_market_stats(len(self.universe.symbols))
        recs = np.zeros(1, MD_EVENT)
        recs["kind"] = MdKind.SNAPSHOT
        recs["n_bids"] = recs["n_asks"] = 1
        recs["bid_px"][0, 0], recs["ask_px"][0, 0] = 1.0, 1.01
        recs["bid_qty"][0, 0] = recs["ask_qty"][0, 0] = 1.0
        dummy.scan(recs, 0, 1)
        if full:
            dummy.evaluate_all(1)
            if self.table.n_triangles:
                dummy.evaluate_one(0, 1, 1.0)
