"""Triangles and per-symbol trading rules as flat arrays the numba kernels read.

A ``TriangleTable`` holds every triangle of a universe as ``(T, 3)`` arrays of leg symbols and
sides, plus a CSR index ``symbol -> triangles`` so that one book update re-evaluates only the
triangles that contain the updated symbol::

    table = TriangleTable.from_universe(uni)
    for t in table.triangles_of(uni.symbol_id("ETHBTC")):
        ...                                   # the kernels do this in njit code

``SymbolTable`` holds, per symbol id, the filters the evaluation must respect (tick, step, min
qty, min notional, PERCENT_PRICE_BY_SIDE multipliers) as float64/int64 arrays.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ctrader.venue.decimals import ONE


@dataclass(frozen=True)
class TriangleTable:
    legs_symbol: np.ndarray   # int32 (T, 3): symbol id of each leg, in trading order
    legs_side: np.ndarray     # int8 (T, 3): Side of each leg (BUY: spend quote for base)
    start_asset: np.ndarray   # int32 (T,): the asset the cycle starts and ends in
    sym_ptr: np.ndarray       # int64 (S + 1,): CSR row pointers, symbol -> triangles
    sym_tri: np.ndarray       # int32 (nnz,): triangle ids, ascending per symbol

    @property
    def n_triangles(self) -> int:
        return int(self.legs_symbol.shape[0])

    @property
    def n_symbols(self) -> int:
        return int(self.sym_ptr.shape[0] - 1)

    def triangles_of(self, symbol_id: int) -> np.ndarray:
        return self.sym_tri[self.sym_ptr[symbol_id]:self.sym_ptr[symbol_id + 1]]

    @classmethod
    def build(cls, n_symbols: int, triangles: Iterable[tuple[int, Sequence]]) -> TriangleTable:
        """From ``(start_asset_id, legs)`` in triangle-id order; a leg is ``(symbol_id, side)`` or
        an object with ``symbol_id`` and ``side`` (``ctrader.market.universe.Leg``)."""
        starts, syms, sides = [], [], []
        for start, legs in triangles:
            pairs = [(leg.symbol_id, leg.side) if hasattr(leg, "symbol_id") else leg for leg in legs]
            starts.append(int(start))
            syms.append([int(s) for s, _ in pairs])
            sides.append([int(side) for _, side in pairs])
        n = len(starts)
        legs_symbol = np.asarray(syms, dtype=np.int32).reshape(n, 3)
        legs_side = np.asarray(sides, dtype=np.int8).reshape(n, 3)
        # CSR: count triangles per symbol (a symbol appears at most once per triangle), then fill.
        counts = np.zeros(n_symbols, dtype=np.int64)
        for t in range(n):
            for s in set(legs_symbol[t].tolist()):
                counts[s] += 1
        sym_ptr = np.zeros(n_symbols + 1, dtype=np.int64)
        np.cumsum(counts, out=sym_ptr[1:])
        sym_tri = np.zeros(int(sym_ptr[-1]), dtype=np.int32)
        fill = sym_ptr[:-1].copy()
        for t in range(n):
            for s in sorted(set(legs_symbol[t].tolist())):
                sym_tri[fill[s]] = t
                fill[s] += 1
        return cls(legs_symbol, legs_side, np.asarray(starts, dtype=np.int32), sym_ptr, sym_tri)

    @classmethod
    def from_universe(cls, uni) -> TriangleTable:
        """Every triangle of ``uni.triangles()`` (ids are the triangles' own ids)."""
        tris = sorted(uni.triangles(), key=lambda t: t.id)
        if any(t.id != i for i, t in enumerate(tris)):
            raise ValueError("universe triangle ids must be 0..T-1")
        return cls.build(len(uni.symbols), [(t.start_asset_id, t.legs) for t in tris])


@dataclass(frozen=True)
class SymbolTable:
    """Per-symbol filters, indexed by symbol id."""
    tick: np.ndarray          # float64 tick size (price units of the quote asset)
    step: np.ndarray          # float64 LOT_SIZE step (base asset)
    tick_units: np.ndarray    # int64 tick in 1e-8 units (exact)
    step_units: np.ndarray    # int64 step in 1e-8 units (exact)
    min_qty: np.ndarray       # float64 LOT_SIZE minQty
    min_notional: np.ndarray  # float64 NOTIONAL/MIN_NOTIONAL minimum, in the quote asset
    pp: np.ndarray            # float64 (S, 4): bid_up, bid_down, ask_up, ask_down (0 = no filter)
    base_asset: np.ndarray    # int32
    quote_asset: np.ndarray   # int32

    @classmethod
    def from_universe(cls, uni) -> SymbolTable:
        syms = uni.symbols
        tick_units = np.array([max(1, int(s.tick_units)) for s in syms], dtype=np.int64)
        step_units = np.array([max(1, int(s.step_units)) for s in syms], dtype=np.int64)
        return cls(
            tick=tick_units / ONE, step=step_units / ONE, tick_units=tick_units, step_units=step_units,
            min_qty=np.array([float(s.min_qty) for s in syms], dtype=np.float64),
            min_notional=np.array([float(s.min_notional) for s in syms], dtype=np.float64),
            pp=np.array([[s.pp_bid_up, s.pp_bid_down, s.pp_ask_up, s.pp_ask_down] for s in syms],
                        dtype=np.float64).reshape(len(syms), 4),
            base_asset=np.array([s.base_id for s in syms], dtype=np.int32),
            quote_asset=np.array([s.quote_id for s in syms], dtype=np.int32),
        )
