"""Triangular-arbitrage kernels (numba): executable edge walking the visible depth, sizing, rounding.

One call evaluates one triangle ``start -> a -> b -> start`` against the current books:

1. skip it when any leg's book is stale, empty or older than ``max_age_ns``;
2. the top-of-book net edge ``prod(rate_k * (1 - fee)) - 1`` (rate of a BUY leg: 1/ask, base per
   quote; of a SELL leg: bid, quote per base; the taker fee comes off what each leg receives);
3. the largest start amount whose *marginal* edge stays at or above ``min_marginal_edge``: the
   three legs are walked together, level by level; between two level boundaries every leg's rate
   is constant, so the start amount maps linearly onto each leg's input and the step that empties
   the first level is exact. Capped by the start asset's ``max_start``;
4. each leg's base quantity floored to its LOT_SIZE step (all legs scaled by the smallest
   floor ratio first so the legs stay proportional, then floored again), the legs re-walked at
   those quantities for their exact average prices, and the net edge recomputed on them;
5. IOC limit prices: the worst level walked on each leg (BUY rounded up to the tick, SELL down:
   the order still reaches every level it needs), optionally padded by ``slippage`` so that a
   book that moved a little during the order's flight still fills; minQty, min notional (at the
   limit price) and
   PERCENT_PRICE_BY_SIDE (against the mid) checked on the rounded legs.

Results go into rows of two arrays (float64 ``F_*`` columns, int64 ``I_*`` columns) so that a
caller can evaluate many triangles with no allocation::

    n = evaluate_symbol(sym_id, now_ns, tri, sym, book, params, edge_since, outf, outi)
    # rows 0..n-1: the triangles of sym_id whose top-of-book net edge is positive

``tri``, ``sym``, ``book`` are tuples of arrays (see ``tri_arrays``, ``sym_arrays``,
``BookState.arrays``); ``params`` is a float64 vector (``P_*``).
Leg quantities are floored independently, so a few steps of an intermediate asset may remain:
triangular arbitrage trades from inventory held in every asset, and the dust stays there.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ctrader.core.records import MdFlag, Side

BUY = int(Side.BUY)
SELL = int(Side.SELL)
STALE_FLAG = int(MdFlag.STALE) | int(MdFlag.CROSSED)   # never trade on either

# Evaluation status (column I_STATUS).
ST_OK = 0
ST_STALE = 1        # a leg's book is stale, empty or too old
ST_NO_EDGE = 2      # top-of-book net edge <= 0: not a candidate
ST_FILTER = 3       # rounded legs fail minQty / min notional / price band, or round to zero
ST_RISK = 4         # no size allowed for this start asset (max_start 0)
ST_EDGE_LOW = 5     # positive edge, but the marginal edge of the first unit is below the threshold

# params vector
P_FEE = 0
P_MIN_MARGINAL = 1
P_MAX_AGE_NS = 2
P_SLIPPAGE = 3      # IOC limit padded beyond the worst level walked, fraction (0: exactly that level)
P_COUNT = 4

# float64 result columns
F_EDGE = 0          # net edge of the rounded legs (fraction of the start amount)
F_EDGE_TOP = 1      # top-of-book net edge
F_SIZE = 2          # start amount of the rounded legs (start asset)
F_PNL = 3           # F_EDGE * F_SIZE (start asset)
F_PX = 4            # 3 columns: average price of each rounded leg
F_QTY = 7           # 3 columns: base quantity of each leg (on its step)
F_LIMIT = 10        # 3 columns: IOC limit price of each leg (on its tick)
F_IN = 13           # 3 columns: input of each leg in its own input asset
F_DEPTH = 16        # 3 columns: visible capacity of the walked side, in the leg's input asset
F_SIZE_RAW = 19     # start amount before rounding
F_EDGE_RAW = 20     # net edge before rounding
F_SPREAD = 21       # 3 columns: (ask - bid) / mid of each leg's book
F_IMB = 24          # 3 columns: (bid_qty0 - ask_qty0) / (bid_qty0 + ask_qty0)
F_AGE = 27          # 3 columns: now - last update of the leg's book, ns
NF = 30

# int64 result columns
I_STATUS = 0
I_TRI = 1
I_TICKS = 2         # 3 columns: limit price / tick
I_STEPS = 5         # 3 columns: quantity / step
I_LEVELS = 8        # 3 columns: levels the rounded leg reaches
NI = 11

_REL_EPS = 1e-9     # float slack when comparing a float quantity with its step


def tri_arrays(table) -> tuple:
    return (table.legs_symbol, table.legs_side, table.start_asset, table.sym_ptr, table.sym_tri)


def sym_arrays(symbols, max_start: np.ndarray) -> tuple:
    """``max_start``: float64 per asset id, the largest start amount (0 = never start there)."""
    return (symbols.tick, symbols.step, symbols.min_qty, symbols.min_notional, symbols.pp,
            np.ascontiguousarray(max_start, dtype=np.float64))


def make_params(fee: float, min_marginal_edge: float, max_age_ns: float, slippage: float = 0.0) -> np.ndarray:
    p = np.zeros(P_COUNT, dtype=np.float64)
    p[P_FEE], p[P_MIN_MARGINAL], p[P_MAX_AGE_NS], p[P_SLIPPAGE] = fee, min_marginal_edge, max_age_ns, slippage
    return p


@njit(cache=True, inline="always")
def _level(book, s, side, lvl):
    """(price, input capacity, rate) of level ``lvl`` of the side a ``side`` leg takes, or
    (0, 0, 0) when the book has no such level."""
    bid_px, bid_qty, ask_px, ask_qty, n_bids, n_asks = book[0], book[1], book[2], book[3], book[4], book[5]
    if side == BUY:
        if lvl >= n_asks[s] or ask_px[s, lvl] <= 0.0:
            return 0.0, 0.0, 0.0
        px = ask_px[s, lvl]
        return px, ask_qty[s, lvl] * px, 1.0 / px
    if lvl >= n_bids[s] or bid_px[s, lvl] <= 0.0:
        return 0.0, 0.0, 0.0
    px = bid_px[s, lvl]
    return px, bid_qty[s, lvl], px


@njit(cache=True)
def fill_base(book, s, side, qty):
    """Walk ``qty`` base on the side a ``side`` leg takes: (quote amount, worst price, levels, filled)."""
    bid_px, bid_qty, ask_px, ask_qty, n_bids, n_asks = book[0], book[1], book[2], book[3], book[4], book[5]
    rem = qty
    quote = 0.0
    worst = 0.0
    levels = 0
    n = n_asks[s] if side == BUY else n_bids[s]
    for lvl in range(n):
        if rem <= qty * 1e-12:
            break
        if side == BUY:
            px, avail = ask_px[s, lvl], ask_qty[s, lvl]
        else:
            px, avail = bid_px[s, lvl], bid_qty[s, lvl]
        if px <= 0.0:
            break
        take = min(rem, avail)
        quote += take * px
        rem -= take
        worst = px
        levels += 1
    return quote, worst, levels, qty - max(rem, 0.0)


@njit(cache=True, inline="always")
def top_rate(t, tri, book, keep):
    """Product of the three legs' top-of-book rates after fees (0 when a side is empty)."""
    legs_symbol, legs_side = tri[0], tri[1]
    bid_px, ask_px, n_bids, n_asks = book[0], book[2], book[4], book[5]
    top = 1.0
    for k in range(3):
        s = legs_symbol[t, k]
        if legs_side[t, k] == BUY:
            if n_asks[s] == 0 or not ask_px[s, 0] > 0.0:
                return 0.0
            top = top * keep / ask_px[s, 0]
        else:
            if n_bids[s] == 0:
                return 0.0
            top = top * keep * bid_px[s, 0]
    return top


@njit(cache=True)
def evaluate_triangle(t, now_ns, tri, sym, book, params, outf, outi, row):
    """Evaluate triangle ``t`` into ``outf[row]``, ``outi[row]``; returns the status."""
    legs_symbol, legs_side, start_asset = tri[0], tri[1], tri[2]
    tick, step, min_qty, min_notional, pp, max_start = sym[0], sym[1], sym[2], sym[3], sym[4], sym[5]
    bid_px, bid_qty, ask_px, ask_qty = book[0], book[1], book[2], book[3]
    n_bids, n_asks, flags, last_mono = book[4], book[5], book[6], book[7]
    fee = params[P_FEE]
    keep = 1.0 - fee
    outi[row, I_TRI] = t

    # 0. fast path: most evaluations end here, with no edge at the top of the books (no
    # allocation, six loads); the rest of the row is only meaningful for candidates
    top = top_rate(t, tri, book, keep)
    outf[row, F_EDGE_TOP] = top - 1.0
    if top <= 1.0:
        outi[row, I_STATUS] = ST_NO_EDGE if top > 0.0 else ST_STALE
        return outi[row, I_STATUS]
    for c in range(NF):
        outf[row, c] = 0.0
    for c in range(NI):
        outi[row, c] = 0
    outi[row, I_TRI] = t

    # 1. staleness, and the per-leg book descriptors used by features
    stale = False
    for k in range(3):
        s = legs_symbol[t, k]
        if n_bids[s] == 0 or n_asks[s] == 0:
            stale = True
            continue
        if (flags[s] & STALE_FLAG) != 0 or now_ns - last_mono[s] > params[P_MAX_AGE_NS]:
            stale = True
        b, a = bid_px[s, 0], ask_px[s, 0]
        mid = 0.5 * (a + b)
        outf[row, F_SPREAD + k] = (a - b) / mid if mid > 0.0 else 0.0
        qb, qa = bid_qty[s, 0], ask_qty[s, 0]
        outf[row, F_IMB + k] = (qb - qa) / (qb + qa) if qb + qa > 0.0 else 0.0
        outf[row, F_AGE + k] = now_ns - last_mono[s]

    outf[row, F_EDGE_TOP] = top - 1.0
    if stale:
        outi[row, I_STATUS] = ST_STALE
        return ST_STALE

    # 2. the top level of each leg: price, capacity in the leg's input asset, rate
    # one allocation for every per-leg vector (this path runs for candidates only)
    w = np.zeros((10, 3))
    px, cap, rate, rem, used_in, used_out, depth, conv, qty = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]
    lvl = w[9]                   # level index of each leg (float storage)
    for k in range(3):
        px[k], cap[k], rate[k] = _level(book, legs_symbol[t, k], legs_side[t, k], 0)
    limit_start = max_start[start_asset[t]]
    if limit_start <= 0.0:
        outf[row, F_EDGE] = top - 1.0
        outi[row, I_STATUS] = ST_RISK
        return ST_RISK
    if top - 1.0 < params[P_MIN_MARGINAL]:
        outf[row, F_EDGE] = top - 1.0
        outi[row, I_STATUS] = ST_EDGE_LOW
        return ST_EDGE_LOW

    # 3. walk the three legs together while the marginal edge holds
    rem[:] = cap
    depth[:] = cap               # used_out: gross, before the fee
    x = 0.0
    while True:
        m = rate[0] * rate[1] * rate[2] * keep * keep * keep
        if m - 1.0 < params[P_MIN_MARGINAL]:
            break
        conv[0] = 1.0
        conv[1] = rate[0] * keep
        conv[2] = conv[1] * rate[1] * keep
        dx = limit_start - x
        bound = -1
        for k in range(3):
            c = rem[k] / conv[k]
            if c <= dx:
                dx = c
                bound = k
        if dx <= 0.0:
            break
        for k in range(3):
            use = dx * conv[k]
            used_in[k] += use
            used_out[k] += use * rate[k]
            rem[k] -= use
        x += dx
        if bound < 0:
            break                # the size cap binds
        exhausted = False
        for k in range(3):
            if k == bound or rem[k] <= cap[k] * 1e-12:
                lvl[k] += 1.0
                px[k], cap[k], rate[k] = _level(book, legs_symbol[t, k], legs_side[t, k], int(lvl[k]))
                rem[k] = cap[k]
                depth[k] += cap[k]
                if cap[k] <= 0.0:
                    exhausted = True
        if exhausted:
            break
    if x <= 0.0:
        outi[row, I_STATUS] = ST_EDGE_LOW
        outf[row, F_EDGE] = top - 1.0
        return ST_EDGE_LOW
    raw = 1.0
    for k in range(3):
        raw *= used_out[k] * keep / used_in[k]
    outf[row, F_SIZE_RAW] = x
    outf[row, F_EDGE_RAW] = raw - 1.0

    # 4. base quantities on their steps, legs kept proportional
    scale = 1.0
    for k in range(3):
        s = legs_symbol[t, k]
        q = used_out[k] if legs_side[t, k] == BUY else used_in[k]
        qty[k] = q
        floored = math.floor(q / step[s] + _REL_EPS) * step[s]
        if floored <= 0.0:
            scale = 0.0
        elif floored / q < scale:
            scale = floored / q
    status = ST_OK
    edge = 1.0
    for k in range(3):
        s = legs_symbol[t, k]
        side = legs_side[t, k]
        steps = math.floor(qty[k] * scale / step[s] + _REL_EPS)
        q = steps * step[s]
        outi[row, I_STEPS + k] = steps
        outf[row, F_QTY + k] = q
        outf[row, F_DEPTH + k] = depth[k]
        if steps <= 0:
            status = ST_FILTER
            edge = 0.0
            continue
        quote, worst, levels, filled = fill_base(book, s, side, q)
        outi[row, I_LEVELS + k] = levels
        outf[row, F_PX + k] = quote / filled if filled > 0.0 else 0.0
        if side == BUY:
            ticks = math.ceil(worst * (1.0 + params[P_SLIPPAGE]) / tick[s] - _REL_EPS)
            outf[row, F_IN + k] = quote
            edge *= filled * keep / quote if quote > 0.0 else 0.0
        else:
            ticks = math.floor(worst * (1.0 - params[P_SLIPPAGE]) / tick[s] + _REL_EPS)
            outf[row, F_IN + k] = filled
            edge *= quote * keep / filled if filled > 0.0 else 0.0
        limit = ticks * tick[s]
        outi[row, I_TICKS + k] = ticks
        outf[row, F_LIMIT + k] = limit
        # 5. the filters the venue will apply to this leg
        if q < min_qty[s] * (1.0 - 1e-12) or limit * q < min_notional[s] * (1.0 + 1e-9):
            status = ST_FILTER
        mid = 0.5 * (bid_px[s, 0] + ask_px[s, 0])
        j = 0 if side == BUY else 2
        up, down = pp[s, j], pp[s, j + 1]
        if up > 0.0 and (limit > mid * up * (1.0 - 1e-9) or limit < mid * down * (1.0 + 1e-9)):
            status = ST_FILTER
    outf[row, F_EDGE] = edge - 1.0
    outf[row, F_SIZE] = outf[row, F_IN + 0]
    outf[row, F_PNL] = (edge - 1.0) * outf[row, F_IN + 0]
    outi[row, I_STATUS] = status
    return status


@njit(cache=True, inline="always")
def evaluate_symbol(sym_id, now_ns, tri, sym, book, params, edge_since, outf, outi):
    """Evaluate every triangle through ``sym_id``; rows 0..n-1 get those whose top-of-book net
    edge is positive (candidates, any status). ``edge_since[t]`` keeps the time the edge
    appeared (0 while there is none). Returns n."""
    sym_ptr, sym_tri = tri[3], tri[4]
    n = 0
    keep = 1.0 - params[P_FEE]
    for j in range(sym_ptr[sym_id], sym_ptr[sym_id + 1]):
        t = sym_tri[j]
        if top_rate(t, tri, book, keep) <= 1.0:      # no edge: the common case, decided inline
            edge_since[t] = 0
            continue
        evaluate_triangle(t, now_ns, tri, sym, book, params, outf, outi, n)
        if outf[n, F_EDGE_TOP] > 0.0:
            if edge_since[t] == 0:
                edge_since[t] = now_ns
            n += 1
        else:
            edge_since[t] = 0
    return n


@njit(cache=True)
def evaluate_all(now_ns, tri, sym, book, params, edge_since, outf, outi):
    """Every triangle (a full rescan); same row convention as ``evaluate_symbol``."""
    n = 0
    keep = 1.0 - params[P_FEE]
    for t in range(tri[0].shape[0]):
        if top_rate(t, tri, book, keep) <= 1.0:
            edge_since[t] = 0
            continue
        evaluate_triangle(t, now_ns, tri, sym, book, params, outf, outi, n)
        if outf[n, F_EDGE_TOP] > 0.0:
            if edge_since[t] == 0:
                edge_since[t] = now_ns
            n += 1
        else:
            edge_since[t] = 0
    return n
