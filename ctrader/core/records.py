"""Every record that crosses a process boundary, defined once.

Each record is a numpy structured dtype whose size is a whole number of 64-byte cache lines, so
ring slots never share a line. numba reads these dtypes directly (``numba.from_dtype``); the
Cython extensions include ``ext/records.h``, which ``tools/gen_records_header.py`` generates from
this module at build time, with static asserts on every offset, so a C view can never drift from
the Python one.

Prices and quantities travel as float64 for the arbitrage math; anything that goes to the
exchange also carries integer ticks/steps (``price_ticks``, ``qty_steps``) so the wire string is
exact.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag

import numpy as np

CACHE_LINE = 64
BOOK_DEPTH = 10          # levels per side in a normalised market-data record
CLIENT_ID_LEN = 40       # Binance allows client order ids up to 36 chars: ^[\.A-Z\:/a-z0-9_-]{1,36}$
MAX_LEGS = 3
MAX_FEATURES = 32


def cache_aligned(name: str, fields: list[tuple]) -> np.dtype:
    """A C-aligned structured dtype padded to a whole number of cache lines.

    Fields keep their natural alignment (``align=True``); the tail is padded so that an array
    of records puts every record on its own cache line(s).
    """
    dt = np.dtype(fields, align=True)
    size = -(-dt.itemsize // CACHE_LINE) * CACHE_LINE
    padded = np.dtype({"names": dt.names, "formats": [dt.fields[n][0] for n in dt.names],
                       "offsets": [dt.fields[n][1] for n in dt.names], "itemsize": size},
                      align=True)
    # numpy keeps no name on a dtype; the registry below maps names for headers and messages.
    RECORDS[name] = padded
    return padded


RECORDS: dict[str, np.dtype] = {}


# --- market data -------------------------------------------------------------------------------

class MdKind(IntEnum):
    BOOK_TICKER = 1   # best bid/ask only (levels 0), from <symbol>@bookTicker
    DEPTH = 2         # top BOOK_DEPTH levels of the locally maintained book after a diff
    SNAPSHOT = 3      # top levels right after a (re)build from a REST snapshot
    TRADE = 4         # one trade from <symbol>@trade
    STATUS = 5        # book state change with no new levels (e.g. marked stale on a gap)


class MdFlag(IntFlag):
    NONE = 0
    STALE = 1         # the book is known to be wrong or out of date: never trade on it
    RESYNC = 2        # first record after the book was rebuilt
    GAP = 4           # a sequence gap was detected at this update
    CROSSED = 8       # best bid >= best ask
    BUYER_MAKER = 16  # trade: the buyer was the maker (the aggressor sold)


MD_EVENT = cache_aligned("md_event", [
    ("symbol_id", np.int32),
    ("kind", np.uint8),
    ("flags", np.uint8),
    ("n_bids", np.uint8),          # valid levels in bid_px/bid_qty
    ("n_asks", np.uint8),
    ("seq", np.int64),             # feed-assigned, per process, strictly increasing
    ("exch_ts_ns", np.int64),      # exchange event/transaction time (wall clock, ns)
    ("recv_ts_ns", np.int64),      # wall clock when the frame arrived (ns)
    ("recv_mono_ns", np.int64),    # CLOCK_MONOTONIC when the frame arrived: latency across processes
    ("first_update_id", np.int64),  # depth: U; bookTicker: u; trade: trade id
    ("last_update_id", np.int64),   # depth: u; bookTicker: u; trade: trade id
    ("trade_px", np.float64),
    ("trade_qty", np.float64),
    ("bid_px", np.float64, (BOOK_DEPTH,)),
    ("bid_qty", np.float64, (BOOK_DEPTH,)),
    ("ask_px", np.float64, (BOOK_DEPTH,)),
    ("ask_qty", np.float64, (BOOK_DEPTH,)),
])


# --- orders ------------------------------------------------------------------------------------

class Side(IntEnum):
    BUY = 1
    SELL = 2


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2
    LIMIT_MAKER = 3


class TimeInForce(IntEnum):
    NONE = 0          # MARKET and LIMIT_MAKER carry no timeInForce on the wire
    GTC = 1
    IOC = 2
    FOK = 3


class IntentAction(IntEnum):
    NEW = 0           # place the order the record describes
    CANCEL = 1        # cancel the open order named by target_client_order_id
    REPLACE = 2       # cancel that order and place this one (Binance cancelReplace)


ORDER_INTENT = cache_aligned("order_intent", [
    ("group_id", np.uint64),       # one id for all legs of a multi-leg trade
    ("symbol_id", np.int32),
    ("strategy_id", np.uint16),
    ("leg", np.uint8),             # 0-based leg index inside the group
    ("n_legs", np.uint8),
    ("side", np.uint8),            # Side
    ("order_type", np.uint8),      # OrderType
    ("tif", np.uint8),             # TimeInForce
    ("action", np.uint8),          # IntentAction: 0 = NEW, so zeroed intents place orders as before
    ("price_ticks", np.int64),     # price / tickSize, exact
    ("qty_steps", np.int64),       # quantity / stepSize, exact
    ("price", np.float64),         # the same values as floats, for risk math and reports
    ("qty", np.float64),
    ("cause_recv_ts_ns", np.int64),    # recv_ts_ns of the md event that caused this intent
    ("cause_recv_mono_ns", np.int64),  # recv_mono_ns of that event: tick-to-order latency
    ("created_mono_ns", np.int64),
    ("score", np.float64),         # model score (probability the trade pays), NaN if unscored
    ("expected_edge", np.float64),  # net edge of the group after fees, as a fraction
    ("client_order_id", f"S{CLIENT_ID_LEN}"),
    # CANCEL/REPLACE: the open order acted on (REPLACE: client_order_id names the new order)
    ("target_client_order_id", f"S{CLIENT_ID_LEN}"),
    # NEW/REPLACE of a resting order: the executor cancels it once CLOCK_MONOTONIC passes this
    # (0: no expiry)
    ("good_till_mono_ns", np.int64),
])


# --- executions --------------------------------------------------------------------------------

class ExecKind(IntEnum):
    ACK = 1           # accepted by the venue (NEW)
    PARTIAL_FILL = 2
    FILL = 3          # the order is completely filled
    CANCELED = 4      # canceled, or IOC/FOK remainder expired
    REJECTED = 5      # the venue refused it (reject_code = Binance error code)
    REFUSED = 6       # the risk gate refused it before sending (reject_code = RefusalReason)


class RefusalReason(IntEnum):
    NONE = 0
    KILL_SWITCH = 1
    MAX_ORDER_NOTIONAL = 2
    MAX_GROUP_NOTIONAL = 3
    MAX_POSITION = 4
    MAX_OPEN_ORDERS = 5
    RATE_BUDGET = 6
    DAILY_LOSS = 7
    STALE_BOOK = 8
    PRICE_BAND = 9
    FILTER = 10
    # a strategy's own budget ([risk.per_strategy], ``execution.strategy_budgets``)
    STRATEGY_NOTIONAL = 11
    STRATEGY_OPEN_ORDERS = 12
    STRATEGY_RATE = 13
    STRATEGY_DAILY_LOSS = 14


EXEC_EVENT = cache_aligned("exec_event", [
    ("group_id", np.uint64),
    ("symbol_id", np.int32),
    ("reject_code", np.int32),     # Binance error code for REJECTED, RefusalReason for REFUSED
    ("kind", np.uint8),            # ExecKind
    ("side", np.uint8),
    ("leg", np.uint8),
    ("is_maker", np.uint8),
    ("fee_asset_id", np.int32),
    ("exchange_order_id", np.int64),
    ("trade_id", np.int64),
    ("last_px", np.float64),       # price of this fill
    ("last_qty", np.float64),      # quantity of this fill
    ("cum_qty", np.float64),       # filled so far
    ("cum_quote", np.float64),     # quote quantity filled so far
    ("fee", np.float64),           # commission of this fill, in fee_asset_id
    ("exch_ts_ns", np.int64),      # venue event time
    ("recv_ts_ns", np.int64),      # wall clock when we learned it
    ("cause_recv_mono_ns", np.int64),  # copied from the intent
    ("sent_mono_ns", np.int64),    # when the order bytes were written (0 when never sent)
    ("gated_mono_ns", np.int64),   # when the risk gate passed or refused it (the rate budget charged it then)
    ("client_order_id", f"S{CLIENT_ID_LEN}"),
])


# --- strategies -----------------------------------------------------------------------------------

# The ``strategy_id`` of each registered strategy (``ctrader.strategy.registry``), written into
# its candidates and intents: the executor's per-strategy budgets and reports key on it without
# importing the strategies. A new strategy takes the next id here.
STRATEGY_IDS = {"triangular": 1, "cross_rate_reversion": 2, "maker_triangular": 3}


# --- candidates (strategy journal) -------------------------------------------------------------

class Decision(IntEnum):
    TAKEN = 1
    SKIP_EDGE = 2       # net edge below threshold
    SKIP_SCORE = 3      # model score below threshold
    SKIP_STALE = 4      # a leg's book is stale or too old
    SKIP_FILTER = 5     # a leg fails LOT_SIZE / MIN_NOTIONAL / price band after rounding
    SKIP_RISK = 6       # strategy-side limits (size caps, cooldown)


CANDIDATE = cache_aligned("candidate", [
    ("group_id", np.uint64),
    ("triangle_id", np.int32),
    ("strategy_id", np.uint16),
    ("decision", np.uint8),        # Decision
    ("n_features", np.uint8),
    ("event_recv_ts_ns", np.int64),
    ("event_recv_mono_ns", np.int64),
    ("eval_mono_ns", np.int64),
    ("edge", np.float64),          # net edge after fees, fraction of the start amount
    ("size_start", np.float64),    # size in the start asset
    ("expected_pnl", np.float64),  # in the start asset
    ("score", np.float64),
    ("leg_symbol_id", np.int32, (MAX_LEGS,)),
    ("leg_side", np.uint8, (MAX_LEGS,)),
    ("leg_px", np.float64, (MAX_LEGS,)),    # volume-weighted price walking the visible depth
    ("leg_qty", np.float64, (MAX_LEGS,)),
    ("features", np.float32, (MAX_FEATURES,)),
])


def fingerprint(dtype: np.dtype) -> int:
    """A stable 64-bit fingerprint of a record layout (names, formats, offsets, size).

    Rings store it in their header so that attaching with another layout fails loudly.
    """
    import hashlib

    text = repr([(n, dtype.fields[n][0].base.str, dtype.fields[n][0].shape, dtype.fields[n][1])
                 for n in dtype.names]) + f"/{dtype.itemsize}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1
