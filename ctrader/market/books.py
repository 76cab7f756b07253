"""Per-symbol book state rebuilt from md ring records: what the strategy and paper fills see.

One numpy structured array, one row per symbol id, updated by the njit ``apply_md`` so numba
kernels (triangle evaluation, the paper fill model) read it directly:

    cache = BookCache(len(uni.symbols))
    for i in range(n):                       # records read from the md ring
        apply_md(cache.books, batch, i)
    if tradeable(cache.books, sid, now_mono_ns, max_age_ns): ... cache.books[sid]["ask_px"][0]

Rules, so a wrong book is never traded on:
- DEPTH / SNAPSHOT records replace the levels; their STALE/CROSSED flags become the book's.
- BOOK_TICKER replaces the best level and drops deeper levels it crosses (bookTicker streams
  faster than depth@100ms). bookTicker and depth share Binance's update-id sequence, so a depth
  record older than the last bookTicker keeps that newer best level on top, and a bookTicker
  older than the book is ignored.
- STATUS carries state changes (e.g. STALE the moment the feed sees a gap).
- A book whose best bid >= best ask is CROSSED, whatever the feed said.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ctrader.core.records import BOOK_DEPTH, MdFlag, MdKind

D = BOOK_DEPTH

BOOK_STATE = np.dtype([
    ("bid_px", np.float64, (D,)), ("bid_qty", np.float64, (D,)),
    ("ask_px", np.float64, (D,)), ("ask_qty", np.float64, (D,)),
    ("n_bids", np.int32), ("n_asks", np.int32),
    ("flags", np.int32),                 # MdFlag bits: STALE, CROSSED
    ("updates", np.int64),
    ("last_update_id", np.int64),
    ("last_recv_mono_ns", np.int64),
    ("last_recv_ts_ns", np.int64),
    ("last_exch_ts_ns", np.int64),
    # the newest bookTicker, re-applied over an older depth record
    ("bt_update_id", np.int64),
    ("bt_bid_px", np.float64), ("bt_bid_qty", np.float64),
    ("bt_ask_px", np.float64), ("bt_ask_qty", np.float64),
    ("last_trade_px", np.float64),
], align=True)

_STALE = int(MdFlag.STALE)
_CROSSED = int(MdFlag.CROSSED)
_K_TICKER = int(MdKind.BOOK_TICKER)
_K_DEPTH = int(MdKind.DEPTH)
_K_SNAPSHOT = int(MdKind.SNAPSHOT)
_K_TRADE = int(MdKind.TRADE)
_K_STATUS = int(MdKind.STATUS)


class BookCache:
    def __init__(self, n_symbols: int) -> None:
        self.books = np.zeros(n_symbols, BOOK_STATE)
        # Nothing is known about a symbol before its first record: stale until then.
        self.books["flags"] = _STALE

    def __len__(self) -> int:
        return len(self.books)


@njit(cache=True)
def _put_best_bid(b, px, qty):
    # drop levels at or above the new best bid, then insert it on top
    keep = 0
    for i in range(b.n_bids):
        if b.bid_px[i] < px:
            b.bid_px[keep] = b.bid_px[i]
            b.bid_qty[keep] = b.bid_qty[i]
            keep += 1
    n = min(keep + 1, D) if qty > 0 else keep
    if qty > 0:
        for i in range(n - 1, 0, -1):
            b.bid_px[i] = b.bid_px[i - 1]
            b.bid_qty[i] = b.bid_qty[i - 1]
        b.bid_px[0] = px
        b.bid_qty[0] = qty
    b.n_bids = n


@njit(cache=True)
def _put_best_ask(b, px, qty):
    keep = 0
    for i in range(b.n_asks):
        if b.ask_px[i] > px:
            b.ask_px[keep] = b.ask_px[i]
            b.ask_qty[keep] = b.ask_qty[i]
            keep += 1
    n = min(keep + 1, D) if qty > 0 else keep
    if qty > 0:
        for i in range(n - 1, 0, -1):
            b.ask_px[i] = b.ask_px[i - 1]
            b.ask_qty[i] = b.ask_qty[i - 1]
        b.ask_px[0] = px
        b.ask_qty[0] = qty
    b.n_asks = n


@njit(cache=True)
def _mark_crossed(b):
    if b.n_bids > 0 and b.n_asks > 0 and b.bid_px[0] >= b.ask_px[0]:
        b.flags |= _CROSSED
    else:
        b.flags &= ~_CROSSED


@njit(cache=True)
def apply_md(books, recs, i):
    """Apply md record ``recs[i]`` to ``books``; returns the symbol id it touched (-1: none)."""
    r = recs[i]
    sid = r.symbol_id
    if sid < 0 or sid >= books.shape[0]:
        return -1
    b = books[sid]
    kind = r.kind
    if kind == _K_TRADE:
        b.last_trade_px = r.trade_px
        return sid
    if kind == _K_TICKER:
        if r.last_update_id < b.last_update_id and r.last_update_id < b.bt_update_id:
            return sid                              # older than what the book already shows
        b.bt_update_id = r.last_update_id
        b.bt_bid_px = r.bid_px[0]
        b.bt_bid_qty = r.bid_qty[0]
        b.bt_ask_px = r.ask_px[0]
        b.bt_ask_qty = r.ask_qty[0]
        if r.n_bids > 0:
            _put_best_bid(b, r.bid_px[0], r.bid_qty[0])
        if r.n_asks > 0:
            _put_best_ask(b, r.ask_px[0], r.ask_qty[0])
        if r.flags & _STALE:
            b.flags |= _STALE
        if r.last_update_id > b.last_update_id:
            b.last_update_id = r.last_update_id
    elif kind == _K_DEPTH or kind == _K_SNAPSHOT:
        nb = min(r.n_bids, D)
        na = min(r.n_asks, D)
        for k in range(nb):
            b.bid_px[k] = r.bid_px[k]
            b.bid_qty[k] = r.bid_qty[k]
        for k in range(na):
            b.ask_px[k] = r.ask_px[k]
            b.ask_qty[k] = r.ask_qty[k]
        b.n_bids = nb
        b.n_asks = na
        b.flags = r.flags & (_STALE | _CROSSED)
        if kind == _K_SNAPSHOT:
            b.bt_update_id = 0                      # a rebuilt book supersedes older tickers
        elif b.bt_update_id > r.last_update_id:     # a newer bookTicker stays on top
            _put_best_bid(b, b.bt_bid_px, b.bt_bid_qty)
            _put_best_ask(b, b.bt_ask_px, b.bt_ask_qty)
        b.last_update_id = max(r.last_update_id, b.bt_update_id)
    elif kind == _K_STATUS:
        b.flags = (b.flags & ~_STALE) | (r.flags & _STALE)
    else:
        return -1
    _mark_crossed(b)
    b.updates += 1
    b.last_recv_mono_ns = r.recv_mono_ns
    b.last_recv_ts_ns = r.recv_ts_ns
    b.last_exch_ts_ns = r.exch_ts_ns
    return sid


@njit(cache=True)
def apply_all(books, recs, n):
    """Apply ``recs[:n]`` in order; returns how many touched a known symbol."""
    touched = 0
    for i in range(n):
        if apply_md(books, recs, i) >= 0:
            touched += 1
    return touched


@njit(cache=True)
def tradeable(books, sid, now_mono_ns, max_age_ns):
    """True when the book is fresh, uncrossed, two-sided and updated within ``max_age_ns``."""
    b = books[sid]
    if b.flags & (_STALE | _CROSSED):
        return False
    if b.n_bids == 0 or b.n_asks == 0:
        return False
    return now_mono_ns - b.last_recv_mono_ns <= max_age_ns


@njit(cache=True)
def mid(books, sid):
    b = books[sid]
    if b.n_bids == 0 or b.n_asks == 0:
        return np.nan
    return 0.5 * (b.bid_px[0] + b.ask_px[0])
