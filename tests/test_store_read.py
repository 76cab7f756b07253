"""Market data out of the store at memory speed: the Native decoder, the window planner, the
compiled decode into MD_EVENT records, the server path (clickhouse-connect's ``raw_query``, the
call an HTTP server answers) against the embedded engine's lent buffer, and the prefetch thread."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from ctrader.core.prefetch import prefetched
from ctrader.core.records import BOOK_DEPTH, MD_EVENT, MdKind
from ctrader.store.client import ClientNativeQuery, EmbeddedNativeQuery
from ctrader.store.columns import Names, md_to_arrow
from ctrader.store.md_read import plan_windows
from ctrader.store.native import ArrayColumn, NativeFormatError, read_native
from ctrader.store.store import Store
from tests.test_store_schema import SYMBOLS, T0, assert_same_records, join, md_records


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"chdb://{tmp_path}/store", "ctrader")
    yield s
    s.close()


def insert(store, recs: np.ndarray, run_id: str) -> None:
    for table, data in zip(("md_book", "md_trade"), md_to_arrow(recs, Names(SYMBOLS), run_id)):
        if data is not None:
            store.insert(table, data)


# --- Native format ---------------------------------------------------------------------------------

def test_native_columns_are_read_in_place_block_by_block(store):
    reader = EmbeddedNativeQuery(store.url[len("chdb://"):])
    try:
        sql = ("SELECT toInt32(number) AS i, toFloat64(number) / 4 AS x, toUInt8(number % 3) AS small, "
               "arrayMap(k -> toFloat64(k), range(number % 4)) AS levels FROM numbers(10) "
               "SETTINGS max_block_size = 4")
        with reader.native(sql) as data:
            blocks = read_native(data)
            assert [b.rows for b in blocks] == [4, 4, 2]
            i = np.concatenate([b["i"] for b in blocks])
            assert i.dtype == np.int32 and i.tolist() == list(range(10))
            assert np.concatenate([b["x"] for b in blocks]).tolist() == [n / 4 for n in range(10)]
            lv = blocks[1]["levels"]
            assert isinstance(lv, ArrayColumn)
            assert lv.offsets.tolist() == [0, 1, 3, 6]          # rows 4..7 hold 0, 1, 2, 3 values
            assert lv.values.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 2.0]
            assert not lv.values.flags.writeable               # a view of the engine's buffer
    finally:
        reader.close()


def test_native_refuses_what_it_cannot_read_exactly(store):
    data = store.client.raw_query("SELECT 'text' AS s", fmt="Native")
    with pytest.raises(NativeFormatError, match="type String"):
        read_native(data)
    good = store.client.raw_query("SELECT toInt64(1) AS a, toInt64(2) AS b", fmt="Native")
    with pytest.raises(NativeFormatError, match="truncated"):
        read_native(good[:-3])


# --- planning windows -------------------------------------------------------------------------------

def counter(times_ns: np.ndarray, runs: np.ndarray):
    """What ``count_sql`` returns, computed here: events per (bucket, run) in [lo, hi)."""
    def count(lo, hi, width):
        keep = (times_ns >= lo) & (times_ns < hi)
        buckets = (times_ns[keep] - lo) // width
        out: dict[tuple[int, str], int] = {}
        for b, r in zip(buckets.tolist(), runs[keep].tolist()):
            out[(b, r)] = out.get((b, r), 0) + 1
        return [(b, r, n) for (b, r), n in sorted(out.items())]
    return count


def test_windows_cover_the_range_in_time_order_within_the_row_limit():
    rng = np.random.default_rng(4)
    times = np.sort(T0 + rng.integers(0, 20 * 10**9, 5000))
    times[1000:1600] = T0 + 7 * 10**9 + 12_345            # 600 events in one nanosecond
    runs = np.where(times < T0 + 10_500_000_000, "r1", "r2")      # a second holding both runs
    lo, hi = T0, T0 + 20 * 10**9
    wins = plan_windows(counter(times, runs), lo, hi, chunk_rows=250)
    assert wins[0].lo_ns == lo and wins[-1].hi_ns == hi
    assert all(a.hi_ns == b.lo_ns for a, b in zip(wins, wins[1:]))     # contiguous
    inside = [(times >= w.lo_ns) & (times < w.hi_ns) for w in wins]
    got = [int(k.sum()) for k in inside]
    assert got == [w.rows for w in wins] and sum(got) == len(times)
    assert max(got) == 600 and sorted(got)[-2] <= 250                   # only the shared ns is larger
    assert [w.runs for w in wins] == [tuple(sorted(set(runs[k]))) for k in inside]
    assert ("r1", "r2") in [w.runs for w in wins]


def test_the_first_windows_ramp_up_to_the_row_limit():
    times = T0 + np.arange(10_000) * 1_000_000           # 1000 events a second
    wins = plan_windows(counter(times, np.full(len(times), "r")), T0, T0 + 10**10, 4000, first_rows=500)
    assert [w.rows for w in wins] == [500, 1000, 2000, 4000, 2500]


# --- reading md ---------------------------------------------------------------------------------------

def test_ties_in_receive_time_follow_run_then_feed_sequence(store):
    a = md_records(400, seed=5)
    b = md_records(400, seed=6)
    b["recv_ts_ns"] = a["recv_ts_ns"]                  # two sessions, the same receive times
    a["seq"] = np.arange(400) * 2 + 1                  # ... and interleaved sequences
    b["seq"] = np.arange(400) * 2
    insert(store, b, "run-b")
    insert(store, a, "run-a")
    got = join(list(store.read_md(SYMBOLS, T0, T0 + 10**12, chunk_rows=150)))
    want = np.zeros(800, MD_EVENT)
    want[0::2], want[1::2] = a, b                      # run-a < run-b at each receive time
    assert_same_records(got, want)


def test_levels_round_trip_whatever_their_count(store):
    recs = md_records(600, seed=8)
    recs["n_bids"][:50] = 0                            # books with no bid, a full side, one level
    recs["n_asks"][50:100] = BOOK_DEPTH
    recs["n_bids"][100:150] = 1
    book = recs["kind"] != MdKind.TRADE
    for side in ("bid", "ask"):
        valid = (np.arange(BOOK_DEPTH)[None, :] < recs[f"n_{side}s"][:, None]) & book[:, None]
        recs[f"{side}_px"] = np.where(valid, recs[f"{side}_px"] + 1, 0)
        recs[f"{side}_qty"] = np.where(valid, recs[f"{side}_qty"] + 1, 0)
    recs["n_bids"] = np.where(book, recs["n_bids"], 0)
    recs["n_asks"] = np.where(book, recs["n_asks"], 0)
    insert(store, recs, "run-a")
    assert_same_records(join(list(store.read_md(SYMBOLS, T0, T0 + 10**12))), recs)


def test_the_server_path_reads_the_same_records(store):
    """``ClientNativeQuery`` is what a ClickHouse server URL uses (``client.raw_query``, the HTTP
    body); run here against the embedded engine through clickhouse-connect, same SQL."""
    recs = md_records(3000, seed=9)
    insert(store, recs, "run-a")
    server_path = Store(store.client, "ctrader", store.url, native=ClientNativeQuery(store.client))
    via_client = join(list(server_path.read_md(SYMBOLS, T0, T0 + 10**12, chunk_rows=700)))
    in_place = join(list(store.read_md(SYMBOLS, T0, T0 + 10**12, chunk_rows=700)))
    assert_same_records(via_client, recs)
    assert_same_records(in_place, recs)


def test_reading_a_closed_store_says_so(store):
    chunks = store.read_md(SYMBOLS, T0, T0 + 10**12)
    store.close()
    with pytest.raises(Exception, match="closed"):
        next(chunks)


def test_leaving_a_read_early_stops_its_thread(store):
    insert(store, md_records(3000, seed=10), "run-a")
    before = {t.ident for t in threading.enumerate()}
    chunks = store.read_md(SYMBOLS, T0, T0 + 10**12, chunk_rows=200)
    assert len(next(chunks)) > 0
    chunks.close()
    assert {t.ident for t in threading.enumerate()} == before
    assert sum(len(c) for c in store.read_md(SYMBOLS, T0, T0 + 10**12, chunk_rows=200)) == 3000


# --- prefetch -----------------------------------------------------------------------------------------

def wait_until(condition, timeout_s: float = 10.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout_s / 0.005)):
        if condition():
            return True
        done.wait(0.005)
    return condition()


def test_prefetched_keeps_order_and_runs_at_most_depth_ahead():
    produced = []

    def items():
        for i in range(8):
            produced.append(i)
            yield i

    depth = 2
    got = []
    for item in prefetched(items(), depth=depth):
        got.append(item)
        # once the producer has gone as far as it may (the item taken, ``depth`` waiting, one
        # made and waiting for room), it has not gone further
        limit = min(len(got) + depth + 1, 8)
        assert wait_until(lambda limit=limit: len(produced) >= limit)
        assert len(produced) == limit
    assert got == list(range(8))


def test_prefetched_raises_the_producers_error_in_the_caller():
    def items():
        yield 1
        raise KeyError("no such window")

    it = prefetched(items())
    assert next(it) == 1
    with pytest.raises(KeyError, match="no such window"):
        next(it)


def test_prefetched_closes_the_source_when_the_caller_leaves():
    closed = threading.Event()

    def items():
        try:
            for i in range(1000):
                yield i
        finally:
            closed.set()

    it = prefetched(items())
    assert next(it) == 0
    it.close()
    assert closed.is_set()
