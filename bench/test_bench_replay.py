"""Replay benchmarks under pytest-benchmark:  .venv/bin/python -m pytest bench/test_bench_replay.py -s

Same events for every figure (the simulator's market model, seed 7); the peer figure is
hftbacktest with a do-nothing strategy on those events converted to its format.
``ctrader bench --suite replay`` prints the same figures beside their baselines.
"""
import pytest

from ctrader.benchmarks import replay


@pytest.fixture(scope="module")
def history():
    return replay._history(60)


def _record(benchmark, results: dict) -> None:
    benchmark.extra_info.update(results)
    print({k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()})


def test_replay_kernel_beside_hftbacktest(benchmark, history):
    _, uni, md = history
    ours = benchmark.pedantic(replay.bench_kernel, args=(uni, md), rounds=1, iterations=1)
    results = {"events": len(md), "kernel_events_per_s": ours}
    try:
        peer, rows = replay.bench_hftbacktest(uni, md)
        results.update(hftbacktest_events_per_s=peer, hftbacktest_rows=rows, ratio=ours / peer)
    except ImportError:
        pytest.skip("hftbacktest not installed")
    _record(benchmark, results)
    assert ours >= peer, "the replay kernel must match or beat hftbacktest on the same events"


def test_replay_triangular_in_memory(benchmark, history):
    cfg, uni, md = history
    rate = benchmark.pedantic(replay.bench_strategy, args=(cfg, uni, md), rounds=1, iterations=1)
    _record(benchmark, {"events": len(md), "events_per_s": rate})


def test_replay_end_to_end_from_store(benchmark, history):
    cfg, uni, md = history
    rates = benchmark.pedantic(replay.bench_store, args=(cfg, uni, md), rounds=1, iterations=1)
    _record(benchmark, {"events": len(md), **{f"{k}_events_per_s_median": float(sorted(v)[len(v) // 2])
                                               for k, v in rates.items()}})
