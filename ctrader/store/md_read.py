"""Market data out of the store as MD_EVENT records in time order, at memory speed.

``Store.read_md`` is three steps, none of them per row in Python:

1. plan (``plan_windows``): a query counts events per second and run; consecutive seconds are
   grouped into windows of at most ``chunk_rows`` events. A busier second is counted again by
   millisecond, then microsecond, then nanosecond (only events sharing one nanosecond can make
   a window larger than ``chunk_rows``).
2. read (``window_sql``): one query per window, book and trade rows as fixed-width columns named
   after MD_EVENT's fields — times as Int64 ns, symbols as the caller's ids, levels as stored —
   in ClickHouse's Native format (``ctrader.store.native``), unsorted: the engine's ORDER BY
   moves whole 400-byte rows and cost 4x the read itself.
3. decode (``decode_window``): the columns are read in place, the time order (receive time,
   run, feed sequence) is a ``lexsort`` of three key columns, and one compiled pass writes each
   block's rows to their places in the MD_EVENT array.

Nothing here depends on where the Native bytes come from: the embedded engine lends its result
buffer, a server sends them over HTTP (``ctrader.store.client.native_query``); the SQL is the
same. ``Store.read_md`` runs these steps one window ahead of its caller on a thread.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctrader.core.records import MD_EVENT, MdKind
from ctrader.store.native import ArrayColumn, Block, NativeFormatError

NS_PER_S = 1_000_000_000
_REFINE = 1000            # a bucket with too many events is counted again 1000x finer

# MD_EVENT fields read as plain columns, and the book levels (Array(Float64) columns, as stored:
# the valid levels only; ``n_bids``/``n_asks`` are their lengths, capped at BOOK_DEPTH)
SCALAR_FIELDS = ("symbol_id", "kind", "flags", "seq", "exch_ts_ns", "recv_ts_ns", "recv_mono_ns",
                 "first_update_id", "last_update_id", "trade_px", "trade_qty")
LEVEL_FIELDS = ("bid_px", "bid_qty", "ask_px", "ask_qty")
RUN_RANK = "run_rank"      # position of the row's run id among the window's runs (sorted by name)
# A window comes out in a few large blocks (one per table and reading stream) rather than one
# per 8192-row granule: fewer, longer runs for the scatter, and 15-20% less engine time.
WINDOW_SETTINGS = "max_block_size = 4194304, preferred_block_size_bytes = 4294967296"


def quote(name: str) -> str:
    """A string literal for names the store itself wrote (symbols, run ids)."""
    return "'" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ts(ns: int) -> str:
    return f"fromUnixTimestamp64Nano(toInt64({int(ns)}), 'UTC')"


def _names(names) -> str:
    return "[" + ", ".join(quote(n) for n in names) + "]"


def _where(symbols: list[str], lo_ns: int, hi_ns: int) -> str:
    return (f"symbol IN ({', '.join(quote(s) for s in symbols)}) "
            f"AND recv_ts >= {_ts(lo_ns)} AND recv_ts < {_ts(hi_ns)}")


# --- plan ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    lo_ns: int
    hi_ns: int
    rows: int                    # as counted when planned
    runs: tuple[str, ...]        # run ids of its rows, sorted


def count_sql(db: str, symbols: list[str], lo_ns: int, hi_ns: int, width_ns: int) -> str:
    """Events per (bucket of ``width_ns`` from ``lo_ns``, run id) in [lo, hi)."""
    where = _where(symbols, lo_ns, hi_ns)
    inner = (f"SELECT recv_ts, run_id FROM {db}.md_book WHERE {where} "
             f"UNION ALL SELECT recv_ts, run_id FROM {db}.md_trade WHERE {where}")
    return (f"SELECT intDiv(toUnixTimestamp64Nano(recv_ts) - {int(lo_ns)}, {int(width_ns)}) AS bucket, "
            f"toString(run_id) AS run, count() FROM ({inner}) GROUP BY bucket, run ORDER BY bucket, run")


def plan_windows(count, lo_ns: int, hi_ns: int, chunk_rows: int, first_rows: int = 0) -> list[Window]:
    """Windows covering [lo, hi) in time order, each with at most ``chunk_rows`` events (unless
    more share one nanosecond); windows with no event are left out.

    ``first_rows`` (0: ``chunk_rows``) caps the first window, and each next one at twice the
    one before, up to ``chunk_rows``: a caller that overlaps its work with the reading waits
    only for a small first window.

    ``count(lo, hi, width)`` returns ``(bucket, run, events)`` rows (``count_sql``'s query).
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    pieces: list[tuple[int, int, int, set[str]]] = []     # (lo, hi, rows, runs), in time order

    def split(lo: int, hi: int, width: int, limit: int) -> None:
        buckets: dict[int, tuple[int, set[str]]] = {}
        for bucket, run, n in count(lo, hi, width):
            rows, runs = buckets.get(int(bucket), (0, set()))
            buckets[int(bucket)] = (rows + int(n), runs | {run})
        for bucket in sorted(buckets):
            rows, runs = buckets[bucket]
            a = lo + bucket * width
            b = min(a + width, hi)
            if rows > limit and width > 1:
                split(a, b, max(1, width // _REFINE), limit)
            else:
                pieces.append((a, b, rows, runs))

    first = min(first_rows or chunk_rows, chunk_rows)
    split(lo_ns, hi_ns, NS_PER_S, first)
    windows: list[Window] = []
    limit = first
    start, rows, runs = None, 0, set()
    for a, _b, n, r in pieces:
        if start is not None and rows + n > limit:
            windows.append(Window(start, a, rows, tuple(sorted(runs))))
            start, rows, runs = None, 0, set()
            limit = min(2 * limit, chunk_rows)
        if start is None:
            start = a if windows else lo_ns
        rows += n
        runs |= r
    if start is not None:
        windows.append(Window(start, hi_ns, rows, tuple(sorted(runs))))
    return windows


# --- read ----------------------------------------------------------------------------------------

def window_sql(db: str, symbols: list[str], symbol_ids: dict[str, int], window: Window) -> str:
    """One window's book and trade events as MD_EVENT-shaped fixed-width columns, unsorted."""
    where = _where(symbols, window.lo_ns, window.hi_ns)
    ids = ", ".join(str(int(symbol_ids.get(s, -1))) for s in symbols)
    sid = (f"CAST(transform(symbol, {_names(symbols)}, CAST([{ids}] AS Array(Int32)), toInt32(-1)) AS Int32) "
           f"AS symbol_id")
    times = ("seq, toUnixTimestamp64Nano(exch_ts) AS exch_ts_ns, "
             "toUnixTimestamp64Nano(recv_ts) AS recv_ts_ns, recv_mono_ns")
    rank = ""
    if len(window.runs) > 1:
        ranks = list(range(len(window.runs)))
        rank = (f", CAST(transform(toString(run_id), {_names(window.runs)}, CAST({ranks} AS Array(UInt32)), "
                f"toUInt32(0)) AS UInt32) AS {RUN_RANK}")
    empty = "CAST([] AS Array(Float64))"
    book = (f"SELECT {sid}, toUInt8(kind) AS kind, flags, {times}, first_update_id, last_update_id, "
            f"toFloat64(0) AS trade_px, toFloat64(0) AS trade_qty, {', '.join(LEVEL_FIELDS)}{rank} "
            f"FROM {db}.md_book WHERE {where}")
    trade = (f"SELECT {sid}, toUInt8({int(MdKind.TRADE)}) AS kind, flags, {times}, "
             f"trade_id AS first_update_id, trade_id AS last_update_id, px AS trade_px, qty AS trade_qty, "
             + ", ".join(f"{empty} AS {f}" for f in LEVEL_FIELDS)
             + f"{rank} FROM {db}.md_trade WHERE {where}")
    return f"SELECT * FROM ({book} UNION ALL {trade}) SETTINGS {WINDOW_SETTINGS}"


# --- decode --------------------------------------------------------------------------------------

TILE_RECORDS = 4096      # records the scatter fills at a time (1.8 MB: stays in cache while it does)


def _copy_levels(dst, offsets, values, i):
    """Row i of an Array column into ``dst`` (left as zeros beyond it); returns the levels copied."""
    start = np.int64(offsets[i - 1]) if i > 0 else np.int64(0)
    n = min(np.int64(offsets[i]) - start, dst.shape[0])
    for j in range(n):
        dst[j] = values[start + j]
    return n


def _scatter_rows(out, dest, run_start, run_end, tile, symbol_id, kind, flags, seq, exch_ts_ns, recv_ts_ns,
                  recv_mono_ns, first_update_id, last_update_id, trade_px, trade_qty, bid_px_off, bid_px,
                  bid_qty_off, bid_qty, ask_px_off, ask_px, ask_qty_off, ask_qty):
    """Row k of the block's columns into record ``out[dest[k]]``, every field.

    The block holds runs of rows already in time order (one per symbol, as the store sorts
    them), interleaved in ``out``. Writing the runs one after the other would jump across all of
    ``out`` at every row; instead ``out`` is filled one tile at a time, each run advancing to the
    tile's end: the writes stay within a tile that fits in cache (2x faster than row order).
    """
    cursor = run_start.copy()
    tile_end = 0
    while tile_end < out.shape[0]:
        tile_end += tile
        for run in range(run_start.shape[0]):
            k = cursor[run]
            while k < run_end[run] and dest[k] < tile_end:
                r = out[dest[k]]
                r.symbol_id = symbol_id[k]
                r.kind = kind[k]
                r.flags = flags[k]
                r.seq = seq[k]
                r.exch_ts_ns = exch_ts_ns[k]
                r.recv_ts_ns = recv_ts_ns[k]
                r.recv_mono_ns = recv_mono_ns[k]
                r.first_update_id = first_update_id[k]
                r.last_update_id = last_update_id[k]
                r.trade_px = trade_px[k]
                r.trade_qty = trade_qty[k]
                r.n_bids = _copy_levels_jit(r.bid_px, bid_px_off, bid_px, k)
                _copy_levels_jit(r.bid_qty, bid_qty_off, bid_qty, k)
                r.n_asks = _copy_levels_jit(r.ask_px, ask_px_off, ask_px, k)
                _copy_levels_jit(r.ask_qty, ask_qty_off, ask_qty, k)
                k += 1
            cursor[run] = k


_copy_levels_jit = None
_scatter = None


def _scatter_kernel():
    """``_scatter_rows`` compiled (or loaded from numba's cache) on first use.

    One explicit signature whose column arrays are read-only and possibly unaligned (Native
    columns sit at arbitrary byte offsets of the result): every block takes this one compiled
    version, never a recompile for a new combination of flags. ``nogil``: a reader thread
    decodes while the caller's thread runs.
    """
    global _copy_levels_jit, _scatter
    if _scatter is None:
        from numba import from_dtype, njit, types

        def col(dtype):
            return types.Array(dtype, 1, "C", readonly=True, aligned=False)

        index = types.Array(types.int64, 1, "C")
        levels = (col(types.uint64), col(types.float64))
        sig = types.void(types.Array(from_dtype(MD_EVENT), 1, "C"), index, index, index, types.int64,
                         col(types.int32), col(types.uint8), col(types.uint8), col(types.int64),
                         col(types.int64), col(types.int64), col(types.int64), col(types.int64),
                         col(types.int64), col(types.float64), col(types.float64),
                         *levels, *levels, *levels, *levels)
        _copy_levels_jit = njit(cache=True, nogil=True)(_copy_levels)
        _scatter = njit([sig], cache=True, nogil=True)(_scatter_rows)
    return _scatter


def _get(block: Block, name: str):
    try:
        return block[name]
    except KeyError:
        raise NativeFormatError(f"the md query returned no column {name!r}") from None


def _column(block: Block, name: str, dtype: np.dtype) -> np.ndarray:
    col = _get(block, name)
    if not isinstance(col, np.ndarray) or col.dtype != dtype:
        raise NativeFormatError(f"column {name!r} is {getattr(col, 'dtype', 'an array')}, expected {dtype}")
    return col


def _levels(block: Block, name: str) -> ArrayColumn:
    col = _get(block, name)
    if not isinstance(col, ArrayColumn) or col.values.dtype != np.float64:
        raise NativeFormatError(f"column {name!r} should be an Array(Float64) of levels")
    return col


def time_order(blocks: list[Block]) -> np.ndarray:
    """Row positions (over the blocks, concatenated) sorted by receive time, run, feed sequence."""
    recv = np.concatenate([_column(b, "recv_ts_ns", np.dtype(np.int64)) for b in blocks])
    seq = np.concatenate([_column(b, "seq", np.dtype(np.int64)) for b in blocks])
    if RUN_RANK in blocks[0].columns:
        rank = np.concatenate([_column(b, RUN_RANK, np.dtype(np.uint32)) for b in blocks])
        return np.lexsort((seq, rank, recv))
    return np.lexsort((seq, recv))


def decode_window(blocks: list[Block]) -> np.ndarray:
    """MD_EVENT records in time order from the Native blocks of a ``window_sql`` query."""
    blocks = [b for b in blocks if b.rows]
    n = sum(b.rows for b in blocks)
    out = np.zeros(n, MD_EVENT)
    if n == 0:
        return out
    order = time_order(blocks)
    dest = np.empty(n, np.int64)
    dest[order] = np.arange(n)          # row k of the concatenated blocks goes to out[dest[k]]
    scatter = _scatter_kernel()
    at = 0
    for b in blocks:
        scalars = [_column(b, f, MD_EVENT[f]) for f in SCALAR_FIELDS]
        levels = []
        for f in LEVEL_FIELDS:
            col = _levels(b, f)
            levels += [col.offsets, col.values]
        block_dest = dest[at:at + b.rows]
        breaks = np.flatnonzero(block_dest[1:] < block_dest[:-1]) + 1     # where a time-ordered run ends
        run_start = np.concatenate(([0], breaks)).astype(np.int64)
        run_end = np.concatenate((breaks, [b.rows])).astype(np.int64)
        # Tiles pay only while runs are long (a few per tile); many short runs (a window over
        # many small unmerged parts) are written run by run, which keeps the work linear.
        tile = TILE_RECORDS if len(run_start) * (n // TILE_RECORDS + 1) <= 4 * n else n
        scatter(out, block_dest, run_start, run_end, tile, *scalars, *levels)
        at += b.rows
    return out


__all__ = ["LEVEL_FIELDS", "SCALAR_FIELDS", "Window", "count_sql", "decode_window", "plan_windows",
           "quote", "time_order", "window_sql"]
