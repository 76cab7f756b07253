"""Ring records <-> columnar Arrow tables, vectorised (no per-row Python).

The recorder turns a batch of records (a numpy structured array) into one Arrow table per store
table and hands it to ``client.insert_arrow`` — the same bytes for the embedded engine and a
server. Symbol and asset ids become dictionary-encoded names (LowCardinality on the ClickHouse
side); book levels become ragged arrays holding only the valid levels (``n_bids``/``n_asks``).
Market data comes back as MD_EVENT records through ``md_read`` (Native format, not Arrow).

    names = Names(["BTCUSDT", "ETHBTC", "ETHUSDT"])
    book, trades = md_to_arrow(records, names, run_id="r1")     # either may be None
    client.insert_arrow("ctrader.md_book", book)
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ctrader.core.records import CANDIDATE, EXEC_EVENT, MAX_LEGS, MD_EVENT, ORDER_INTENT, MdKind

_TS_NS = pa.timestamp("ns", tz="UTC")


class Names:
    """Ids -> names for dictionary columns; an id with no known name is written as ``#<id>``."""

    def __init__(self, names: list[str] | None = None) -> None:
        self._names = list(names or [])
        self._dictionary = pa.array(self._names + [""], pa.string())   # last entry: "no name"

    def __len__(self) -> int:
        return len(self._names)

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def encode(self, ids: np.ndarray) -> pa.DictionaryArray:
        """Dictionary-encoded names; a negative id (none, e.g. no fee asset) becomes ''."""
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        if len(ids):
            top = int(ids.max())
            if top >= len(self._names):
                self._names += [f"#{i}" for i in range(len(self._names), top + 1)]
                self._dictionary = pa.array(self._names + [""], pa.string())
            if int(ids.min()) < 0:
                ids = np.where(ids < 0, len(self._names), ids).astype(np.int32)
        return pa.DictionaryArray.from_arrays(pa.array(ids), self._dictionary)


def ts_column(ns: np.ndarray) -> pa.Array:
    return pa.array(np.ascontiguousarray(ns, dtype=np.int64).view("datetime64[ns]"), _TS_NS)


def ragged(levels: np.ndarray, counts: np.ndarray) -> pa.ListArray:
    """Rows of a (n, depth) matrix cut to ``counts[i]`` leading values, as an Arrow list column."""
    depth = levels.shape[1]
    counts = np.minimum(counts.astype(np.int32), depth)
    mask = np.arange(depth)[None, :] < counts[:, None]
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(levels[mask]))


def fixed_list(matrix: np.ndarray, values_type=None) -> pa.ListArray:
    """Every row of a (n, k) matrix as a list of k values."""
    n, k = matrix.shape
    offsets = np.arange(0, (n + 1) * k, k, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.ascontiguousarray(matrix).reshape(-1),
                                                               values_type))


def _col(records: np.ndarray, name: str, dtype=None) -> pa.Array:
    values = records[name]
    return pa.array(np.ascontiguousarray(values if dtype is None else values.astype(dtype)))


# --- market data -------------------------------------------------------------------------------

def md_to_arrow(records: np.ndarray, symbols: Names, run_id: str) -> tuple[pa.Table | None, pa.Table | None]:
    """Split a batch of MD_EVENT records into (md_book, md_trade) tables; None where empty.

    Each field is gathered on its own (``records[field][rows]``): copying whole 448-byte records
    to split them was most of the conversion's time.
    """
    is_trade = records["kind"] == MdKind.TRADE
    n_trades = int(np.count_nonzero(is_trade))
    book_rows = slice(None) if n_trades == 0 else np.flatnonzero(~is_trade)
    trade_rows = np.flatnonzero(is_trade)
    book_tab = trade_tab = None
    if n_trades < len(records):
        def book(field: str) -> np.ndarray:
            return records[field][book_rows]

        n = len(records) - n_trades
        n_bids, n_asks = book("n_bids"), book("n_asks")
        book_tab = pa.table({
            "symbol": symbols.encode(book("symbol_id")),
            "recv_ts": ts_column(book("recv_ts_ns")),
            "exch_ts": ts_column(book("exch_ts_ns")),
            "recv_mono_ns": pa.array(np.ascontiguousarray(book("recv_mono_ns"))),
            "run_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([run_id])),
            "seq": pa.array(np.ascontiguousarray(book("seq"))),
            "kind": pa.array(book("kind").astype(np.int8)),
            "flags": pa.array(np.ascontiguousarray(book("flags"))),
            "first_update_id": pa.array(np.ascontiguousarray(book("first_update_id"))),
            "last_update_id": pa.array(np.ascontiguousarray(book("last_update_id"))),
            "bid_px": ragged(book("bid_px"), n_bids),
            "bid_qty": ragged(book("bid_qty"), n_bids),
            "ask_px": ragged(book("ask_px"), n_asks),
            "ask_qty": ragged(book("ask_qty"), n_asks),
        })
    if n_trades:
        trades = records[trade_rows]      # few rows: a plain copy is fine
        trade_tab = pa.table({
            "symbol": symbols.encode(trades["symbol_id"]),
            "recv_ts": ts_column(trades["recv_ts_ns"]),
            "exch_ts": ts_column(trades["exch_ts_ns"]),
            "recv_mono_ns": _col(trades, "recv_mono_ns"),
            "run_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n_trades, np.int32)), pa.array([run_id])),
            "seq": _col(trades, "seq"),
            "flags": _col(trades, "flags"),
            "trade_id": _col(trades, "last_update_id"),
            "px": _col(trades, "trade_px"),
            "qty": _col(trades, "trade_qty"),
        })
    return book_tab, trade_tab


# --- journal, orders, executions ---------------------------------------------------------------

def candidates_to_arrow(records: np.ndarray, symbols: Names, run_id: str) -> pa.Table:
    n = len(records)
    n_features = records["n_features"].astype(np.int32)
    legs_offsets = np.arange(0, (n + 1) * MAX_LEGS, MAX_LEGS, dtype=np.int32)
    return pa.table({
        "run_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([run_id])),
        "event_recv_ts": ts_column(records["event_recv_ts_ns"]),
        "event_recv_mono_ns": _col(records, "event_recv_mono_ns"),
        "eval_mono_ns": _col(records, "eval_mono_ns"),
        "group_id": _col(records, "group_id"),
        "triangle_id": _col(records, "triangle_id"),
        "strategy_id": _col(records, "strategy_id"),
        "decision": _col(records, "decision", np.int8),
        "edge": _col(records, "edge"),
        "size_start": _col(records, "size_start"),
        "expected_pnl": _col(records, "expected_pnl"),
        "score": _col(records, "score"),
        "leg_symbol": pa.ListArray.from_arrays(pa.array(legs_offsets),
                                               symbols.encode(records["leg_symbol_id"].reshape(-1))),
        "leg_side": fixed_list(records["leg_side"]),
        "leg_px": fixed_list(records["leg_px"]),
        "leg_qty": fixed_list(records["leg_qty"]),
        "features": ragged(records["features"], n_features),
    })


def intents_to_arrow(records: np.ndarray, symbols: Names, run_id: str, mono_to_wall_ns: int) -> pa.Table:
    """Order intents; ``created_ts`` is the monotonic creation time moved to the wall clock."""
    n = len(records)
    return pa.table({
        "symbol": symbols.encode(records["symbol_id"]),
        "created_ts": ts_column(records["created_mono_ns"] + mono_to_wall_ns),
        "run_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([run_id])),
        "group_id": _col(records, "group_id"),
        "client_order_id": pa.array(records["client_order_id"].astype("U")),
        "strategy_id": _col(records, "strategy_id"),
        "leg": _col(records, "leg"),
        "n_legs": _col(records, "n_legs"),
        "side": _col(records, "side", np.int8),
        "order_type": _col(records, "order_type", np.int8),
        "tif": _col(records, "tif", np.int8),
        "price_ticks": _col(records, "price_ticks"),
        "qty_steps": _col(records, "qty_steps"),
        "price": _col(records, "price"),
        "qty": _col(records, "qty"),
        "cause_recv_mono_ns": _col(records, "cause_recv_mono_ns"),
        "created_mono_ns": _col(records, "created_mono_ns"),
        "score": _col(records, "score"),
        "expected_edge": _col(records, "expected_edge"),
    })


def executions_to_arrow(records: np.ndarray, symbols: Names, assets: Names, run_id: str) -> pa.Table:
    n = len(records)
    return pa.table({
        "symbol": symbols.encode(records["symbol_id"]),
        "recv_ts": ts_column(records["recv_ts_ns"]),
        "exch_ts": ts_column(records["exch_ts_ns"]),
        "run_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([run_id])),
        "group_id": _col(records, "group_id"),
        "client_order_id": pa.array(records["client_order_id"].astype("U")),
        "kind": _col(records, "kind", np.int8),
        "side": _col(records, "side", np.int8),
        "leg": _col(records, "leg"),
        "is_maker": _col(records, "is_maker"),
        "reject_code": _col(records, "reject_code"),
        "exchange_order_id": _col(records, "exchange_order_id"),
        "trade_id": _col(records, "trade_id"),
        "last_px": _col(records, "last_px"),
        "last_qty": _col(records, "last_qty"),
        "cum_qty": _col(records, "cum_qty"),
        "cum_quote": _col(records, "cum_quote"),
        "fee": _col(records, "fee"),
        "fee_asset": assets.encode(records["fee_asset_id"]),
        "cause_recv_mono_ns": _col(records, "cause_recv_mono_ns"),
        "sent_mono_ns": _col(records, "sent_mono_ns"),
        "gated_mono_ns": _col(records, "gated_mono_ns"),
    })


# dtype of each ring's records, for the recorder's buffers
RING_RECORDS = {"md": MD_EVENT, "journal": CANDIDATE, "exec": EXEC_EVENT, "intents": ORDER_INTENT}
