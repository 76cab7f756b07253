"""The risk gate of a batch of intents in one compiled call.

``RiskGate.check`` (risk.py) is the reference: Python, one order at a time, exact. This module
gives the same verdicts for a whole batch of intents (the three legs of a triangle) in one numba
call, so the first leg does not wait ~10-30 µs of interpreted checks per leg. Measured on the
executor's path: ``tools/ctrader bench --suite executor`` and ``bench/BENCHMARKS.md``.

What stays in Python, once per batch (``RiskGate.check_batch``): the kill switch, groups already
refused, the day's starting PnL, the rate budget's room, and snapshots of the open orders and
positions. The kernel then walks the intents in order, as the reference would: refused group,
daily loss, stale book, exchange filters, price band, order and group notional, position, open
orders, rate room; an intent that passes is counted as open (and in its group's notional) for
the ones after it.

Exactness. Filters compare integers of 1e-8 units (``venue.filters``), and price x quantity can
pass 2^63; the kernel compares such products in float64 and, when the two sides are within
1e-12 of each other (or an amount is too large for a float to hold exactly), answers UNSURE.
The caller then gates that batch with the reference instead. Every other comparison repeats the
reference's float arithmetic operation for operation, so its results are the same bits.

    tables = RiskTables.build(universe, valuer.routes)      # once
    status = gate_batch(intents, n, pre, group_before, daily_known, day_start, daily_limit, books,
                        tables.filters, tables.symbols, tables.routes, open_orders, n_open, held,
                        held_order, n_held, limits, max_open_orders, room, val_id, now_ns,
                        reasons_out, group_total_out)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from ctrader.core.records import MdFlag, OrderType, RefusalReason, Side
from ctrader.venue.decimals import ONE
from ctrader.venue.filters import LotSize, MaxNumOrders, Notional, PercentPriceBySide, PriceFilter

# filter kinds in RiskTables.filters[symbol, k, 0]; the other columns per kind:
F_NONE = 0
F_PRICE = 1          # min, max, tick
F_LOT = 2            # min, max, step
F_MARKET_LOT = 3     # min, max, step (MARKET orders only)
F_NOTIONAL = 4       # min, max, apply_min_to_market, apply_max_to_market
F_PERCENT = 5        # bid_up, bid_down, ask_up, ask_down
F_MAX_ORDERS = 6     # max (this symbol)
F_EXCHANGE_MAX_ORDERS = 7   # max (every symbol)
MAX_FILTERS = 16
FILTER_COLS = 5

SURE = 0
UNSURE = 1            # a comparison too close to call in float64: gate with the reference

# limits vector (float64) positions
L_ORDER_NOTIONAL, L_GROUP_NOTIONAL, L_POSITION, L_PRICE_BAND, L_BOOK_AGE_NS = range(5)

_EXACT = float(2 ** 53)     # integers below this convert to float64 exactly
_CLOSE = 1e-12              # relative distance under which a float comparison is not trusted
_ONE_F = float(ONE)
_STALE = int(MdFlag.STALE)
_MARKET = int(OrderType.MARKET)
_BUY = int(Side.BUY)
_R_STALE = int(RefusalReason.STALE_BOOK)
_R_FILTER = int(RefusalReason.FILTER)
_R_BAND = int(RefusalReason.PRICE_BAND)
_R_ORDER_NOTIONAL = int(RefusalReason.MAX_ORDER_NOTIONAL)
_R_GROUP_NOTIONAL = int(RefusalReason.MAX_GROUP_NOTIONAL)
_R_POSITION = int(RefusalReason.MAX_POSITION)
_R_OPEN = int(RefusalReason.MAX_OPEN_ORDERS)
_R_RATE = int(RefusalReason.RATE_BUDGET)
_R_DAILY = int(RefusalReason.DAILY_LOSS)

# open order rows (int64): symbol, side, is_market, price units, remaining units
O_SYMBOL, O_SIDE, O_MARKET, O_PRICE, O_REMAINING = range(5)
OPEN_COLS = 5


@dataclass(frozen=True)
class RiskTables:
    """A universe's rules and valuation routes as arrays the kernel reads."""
    filters: np.ndarray      # int64 [symbol, MAX_FILTERS, 1 + FILTER_COLS]: kind, then per kind
    symbols: np.ndarray      # int64 [symbol, 4]: base id, quote id, tick units, step units
    routes: np.ndarray       # int64 [asset, 2, 2]: (symbol, inverted) hops to the valuation asset
    compiled: np.ndarray     # bool [symbol]: False where a filter cannot be put in the table

    @classmethod
    def build(cls, universe: Any, routes: list[list[tuple[int, bool]]]) -> RiskTables:
        """``routes``: ``accounting.Valuer``'s per-asset hops (at most two, -1 = no route)."""
        n = len(universe.symbols)
        filters = np.zeros((n, MAX_FILTERS, 1 + FILTER_COLS), np.int64)
        symbols = np.zeros((n, 4), np.int64)
        compiled = np.ones(n, np.bool_)
        for info in universe.symbols:
            symbols[info.id] = (info.base_id, info.quote_id, info.tick_units, info.step_units)
            rows = [r for f in info.rules.filters + info.rules.exchange_filters if (r := _filter_row(f)) is not None]
            if len(rows) > MAX_FILTERS or any(v >= 2 ** 62 for r in rows for v in r):
                compiled[info.id] = False
                continue
            for k, row in enumerate(rows):
                filters[info.id, k, : len(row)] = row
        table = np.full((len(universe.assets), 2, 2), -2, np.int64)     # -2: no hop
        for a, hops in enumerate(routes):
            if len(hops) > 2:
                raise ValueError(f"asset {universe.assets[a]}: valuation route of {len(hops)} hops")
            for h, (symbol_id, inverted) in enumerate(hops):
                table[a, h] = (symbol_id, int(inverted))
        return cls(filters, symbols, table, compiled)


def _filter_row(f: Any) -> tuple[int, ...] | None:
    """One filter as a table row; None for a filter that never refuses (``UncheckedFilter``)."""
    if isinstance(f, PriceFilter):
        return (F_PRICE, f.min_price, f.max_price, f.tick_size)
    if isinstance(f, LotSize):
        return (F_MARKET_LOT if f.market_only else F_LOT, f.min_qty, f.max_qty, f.step_size)
    if isinstance(f, Notional):
        return (F_NOTIONAL, f.min_notional, f.max_notional, int(f.apply_min_to_market), int(f.apply_max_to_market))
    if isinstance(f, PercentPriceBySide):
        return (F_PERCENT, f.bid_up, f.bid_down, f.ask_up, f.ask_down)
    if isinstance(f, MaxNumOrders):
        return (F_EXCHANGE_MAX_ORDERS if f.exchange_wide else F_MAX_ORDERS, f.max_num_orders)
    return None


# --- the kernel ---------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def _cmp_product(a: int, b: int, c: int) -> int:
    """Sign of a * b - c * ONE for non-negative integers (exact in Python, overflowing here):
    -1 / 0 / 1, or 2 when float64 cannot tell."""
    lhs = float(a) * float(b)
    rhs = float(c) * _ONE_F
    if lhs == rhs:
        return 2 if lhs != 0.0 else 0
    if abs(lhs - rhs) <= _CLOSE * max(lhs, rhs):
        return 2
    return -1 if lhs < rhs else 1


@njit(cache=True)
def _filters_pass(filters, sid, side, is_market, price, qty, reference, open_here, open_all):
    """1 pass, 0 refuse, 2 unsure: ``SymbolRules.check`` plus the gate's own qty/price > 0 test."""
    for k in range(filters.shape[1]):
        kind = filters[sid, k, 0]
        a, b, c, d = filters[sid, k, 1], filters[sid, k, 2], filters[sid, k, 3], filters[sid, k, 4]
        if kind == F_NONE:
            break
        # (no else below: a filter that does not apply to this order falls through and passes)
        if kind == F_PRICE:
            if not is_market and ((a and price < a) or (b and price > b) or (c and price % c != 0)):
                return 0
        elif kind == F_LOT or kind == F_MARKET_LOT:
            applies = kind == F_LOT or is_market        # MARKET_LOT_SIZE: MARKET orders only
            if applies and (qty < a or (b and qty > b) or (c and qty % c != 0)):
                return 0
        elif kind == F_NOTIONAL:
            if is_market and not (c or d):
                continue
            px = reference if is_market else price
            if (not is_market or c):
                s = _cmp_product(px, qty, a)
                if s == 2:
                    return 2
                if s < 0:
                    return 0
            if b and (not is_market or d):
                s = _cmp_product(px, qty, b)
                if s == 2:
                    return 2
                if s > 0:
                    return 0
        elif kind == F_PERCENT:
            if not is_market:
                up, down = (a, b) if side == _BUY else (c, d)
                # reference * down <= price * ONE <= reference * up
                s = _cmp_product(reference, down, price)
                if s == 2:
                    return 2
                if s > 0:
                    return 0
                s = _cmp_product(reference, up, price)
                if s == 2:
                    return 2
                if s < 0:
                    return 0
        elif kind == F_MAX_ORDERS or kind == F_EXCHANGE_MAX_ORDERS:
            count = open_here if kind == F_MAX_ORDERS else open_all
            if count + 1 > a:
                return 0
    return 1 if qty > 0 and (is_market or price > 0) else 0


@njit(cache=True)
def _mid(books, sid):
    if books[sid]["n_bids"] == 0 or books[sid]["n_asks"] == 0:
        return math.nan
    return (books[sid]["bid_px"][0] + books[sid]["ask_px"][0]) / 2.0


@njit(cache=True)
def _asset_price(books, routes, asset):
    """``Valuer.price``: the product of the mids along the asset's route (nan: no route/book)."""
    value = 1.0
    for h in range(2):
        symbol = routes[asset, h, 0]
        if symbol == -2:
            break
        if symbol < 0:
            return math.nan
        m = _mid(books, symbol)
        value *= (1.0 / m) if routes[asset, h, 1] else m
    return value


@njit(cache=True)
def _pnl(books, routes, held, held_order, n_held):
    """``Accounting.pnl``: every position at its current value, summed in the same order."""
    total = 0.0
    for k in range(n_held):
        v = held[held_order[k]] * _asset_price(books, routes, held_order[k])
        if not math.isnan(v):
            total += v
    return total


@njit(cache=True)
def _pnl_if_valued(books, routes, held, held_order, n_held):
    """``_pnl``, or nan while a position has no price: no loss can be known from part of the
    books (``Accounting.daily_pnl``: right after a restart, before the books arrive)."""
    total = 0.0
    for k in range(n_held):
        v = held[held_order[k]] * _asset_price(books, routes, held_order[k])
        if math.isnan(v) and held[held_order[k]] != 0.0:
            return math.nan
        if not math.isnan(v):
            total += v
    return total


@njit(cache=True)
def gate_batch(intents, n, pre, group_before, daily_known, day_start, daily_limit, books, filters, symbols,
               routes, open_orders, n_open, held, held_order, n_held, limits, max_open_orders, room, val_id,
               now_ns, reasons, group_total):
    """Verdicts for ``intents[:n]`` into ``reasons`` (RefusalReason, -1 skipped) and each
    passing intent's group notional into ``group_total``; returns SURE or UNSURE.

    ``pre[i]``: -1 skip (a duplicate), > 0 a reason decided before (kill switch, refused group),
    0 gate it. ``open_orders[:n_open]`` are the open orders (``O_*`` columns), in the order the
    reference walks them; the kernel appends each intent that passes (capacity ``n_open + n``).
    ``held``: positions per asset in whole units, ``held_order[:n_held]`` the assets held in the
    order ``Accounting.positions`` lists them. Daily loss: ``daily_known`` 1 breached, 0 not,
    -1 work it out (PnL - ``day_start`` < -``daily_limit``) when the first intent needs it.
    ``room``: orders the rate budget still allows."""
    passed = 0
    breach = daily_known
    refused_gid = np.zeros(n, np.uint64)
    refused_why = np.zeros(n, np.int32)
    n_refused = 0
    for i in range(n):
        group_total[i] = 0.0
        reason = pre[i]
        if reason < 0:
            reasons[i] = -1
            continue
        gid = intents[i]["group_id"]
        if reason == 0:
            for r in range(n_refused):
                if refused_gid[r] == gid:
                    reason = refused_why[r]
                    break
        if reason == 0:
            if breach < 0:
                breach = 1 if _pnl_if_valued(books, routes, held, held_order, n_held) - day_start < -daily_limit else 0
            if breach:
                reason = _R_DAILY
        if reason == 0:
            sid = intents[i]["symbol_id"]
            side = intents[i]["side"]
            is_market = intents[i]["order_type"] == _MARKET
            ticks = intents[i]["price_ticks"]
            steps = intents[i]["qty_steps"]
            if (ticks < 0 or steps < 0 or float(ticks) * float(symbols[sid, 2]) >= _EXACT
                    or float(steps) * float(symbols[sid, 3]) >= _EXACT):
                return UNSURE
            price = ticks * symbols[sid, 2]
            qty = steps * symbols[sid, 3]
            reason = _gate_one(books, filters, symbols, routes, open_orders, n_open, held, limits,
                               max_open_orders, room, val_id, now_ns, sid, side, is_market, price, qty,
                               group_before[i], passed, i, group_total)
            if reason < 0:
                return UNSURE
            if reason == 0:
                o = n_open
                open_orders[o, O_SYMBOL], open_orders[o, O_SIDE] = sid, side
                open_orders[o, O_MARKET], open_orders[o, O_PRICE], open_orders[o, O_REMAINING] = is_market, price, qty
                n_open += 1
                passed += 1
                for j in range(i + 1, n):          # later legs of the group start from this total
                    if intents[j]["group_id"] == gid:
                        group_before[j] = group_total[i]
        if reason > 0 and intents[i]["leg"] == 0:
            refused_gid[n_refused], refused_why[n_refused] = gid, reason
            n_refused += 1
        reasons[i] = reason
    return SURE


@njit(cache=True)
def _gate_one(books, filters, symbols, routes, open_orders, n_open, held, limits, max_open_orders, room,
              val_id, now_ns, sid, side, is_market, price, qty, group_before, passed, i, group_total):
    """``RiskGate._first_breach`` from the stale-book check on (non-unwind orders); -1 unsure."""
    b = books[sid]
    if b["flags"] & _STALE or b["n_bids"] == 0 or b["n_asks"] == 0:
        return _R_STALE
    if now_ns - b["last_recv_mono_ns"] > limits[L_BOOK_AGE_NS]:
        return _R_STALE
    mid = (b["bid_px"][0] + b["ask_px"][0]) / 2.0
    scaled_mid = mid * _ONE_F
    if not scaled_mid < _EXACT:
        return -1
    reference = int(np.rint(scaled_mid))
    open_here = 0
    for o in range(n_open):
        if open_orders[o, O_SYMBOL] == sid:
            open_here += 1
    verdict = _filters_pass(filters, sid, side, is_market, price, qty, reference, open_here, n_open)
    if verdict == 2:
        return -1
    if verdict == 0:
        return _R_FILTER
    band = limits[L_PRICE_BAND]
    if not is_market and band > 0 and abs(price / _ONE_F / mid - 1.0) * 100.0 > band:
        return _R_BAND
    base, quote = symbols[sid, 0], symbols[sid, 1]
    quote_value = _asset_price(books, routes, quote)
    if math.isnan(quote_value):
        return _R_STALE
    px = price / _ONE_F if not is_market else mid
    notional = px * qty / _ONE_F * quote_value
    if notional > limits[L_ORDER_NOTIONAL]:
        return _R_ORDER_NOTIONAL
    total = group_before + notional
    if total > limits[L_GROUP_NOTIONAL]:
        return _R_GROUP_NOTIONAL
    # position: base and quote holdings change, counting every open order and this one
    exp_base = 0.0
    exp_quote = 0.0
    for o in range(n_open + 1):
        if o < n_open:
            o_sid, o_side, o_market = open_orders[o, O_SYMBOL], open_orders[o, O_SIDE], open_orders[o, O_MARKET]
            o_price, o_rem = open_orders[o, O_PRICE], open_orders[o, O_REMAINING]
        else:
            o_sid, o_side, o_market, o_price, o_rem = sid, side, is_market, price, qty
        sign = 1.0 if o_side == _BUY else -1.0
        o_px = o_price / _ONE_F if not o_market else px
        remaining = o_rem / _ONE_F
        o_base, o_quote = symbols[o_sid, 0], symbols[o_sid, 1]
        if o_base == base:
            exp_base += sign * remaining
        elif o_base == quote:
            exp_quote += sign * remaining
        if o_quote == base:
            exp_base -= sign * remaining * o_px
        elif o_quote == quote:
            exp_quote -= sign * remaining * o_px
    for k in range(2):
        asset = base if k == 0 else quote
        if asset == val_id:
            continue
        pending = exp_base if k == 0 else exp_quote
        value = abs(held[asset] + pending) * _asset_price(books, routes, asset)
        if value > limits[L_POSITION]:
            return _R_POSITION
    if n_open >= max_open_orders:
        return _R_OPEN
    if passed >= room:
        return _R_RATE
    group_total[i] = total
    return 0
