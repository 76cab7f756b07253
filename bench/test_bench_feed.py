"""Feed benchmarks under pytest-benchmark:  .venv/bin/python -m pytest bench/test_bench_feed.py --benchmark-only -s

The same frames and code as ``ctrader bench --suite feed``; each timed function is beside its
same-run baseline (bare ``orjson.loads`` of the same frames, a bare dict store per level).
"""
import orjson
import pytest

from ctrader.benchmarks import feed

N = 20_000


@pytest.fixture(scope="module")
def bt_frames():
    return feed.book_ticker_frames(N)


@pytest.fixture(scope="module")
def depth_frames():
    return feed.depth_frames(N // 4, 1_000_001)


def test_orjson_loads_book_ticker(benchmark, bt_frames):
    benchmark(feed.bare_orjson, bt_frames)


def test_book_ticker_frames_to_ring(benchmark, bt_frames):
    fut = feed._FeedUnderTest("bookTicker")
    try:
        def run():
            fut.engine.last_bt[:] = 0
            fut.feed(bt_frames)
        benchmark(run)
        assert fut.engine.batch.written >= N
    finally:
        fut.close()


def test_orjson_loads_depth(benchmark, depth_frames):
    benchmark(feed.bare_orjson, depth_frames)


def test_depth_frames_to_ring(benchmark, depth_frames):
    fut = feed._FeedUnderTest("depth@100ms")
    try:
        def setup():
            eng = fut.engine
            sid = eng.symbol_ids[feed.SYMBOL]
            eng.syncs[sid].synced = False
            eng.syncs[sid].buffer.clear()
            eng.syncs[sid].snapshot_wanted = False
            eng.process(orjson.dumps({"stream": "btcusdt@depth@100ms", "data": {
                "e": "depthUpdate", "E": 1, "s": feed.SYMBOL, "U": 1_000_000, "u": 1_000_000, "b": [], "a": []}}),
                1, 1)
            eng._on_snapshot(feed.SYMBOL, feed.snapshot(1_000_000))
            return (depth_frames,), {}
        benchmark.pedantic(fut.feed, setup=setup, rounds=5, iterations=1)
        sync = fut.engine.syncs[fut.engine.symbol_ids[feed.SYMBOL]]
        assert not sync.stale and sync.update_id == 1_000_000 + len(depth_frames)
    finally:
        fut.close()


def test_suite_figures(benchmark):
    results = benchmark.pedantic(feed.run, args=(True,), rounds=1, iterations=1)
    benchmark.extra_info.update({r["name"]: r["value"] for r in results})
    for r in results:
        print(r["name"], r["value"], r["unit"], "x", r["ratio"], "of", r["baseline_name"])
    assert not feed.check_regressions(results)
