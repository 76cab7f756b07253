"""Executor benchmarks under pytest-benchmark:  .venv/bin/python -m pytest bench/test_bench_executor.py -s"""
from ctrader.benchmarks import executor


def _record(benchmark, results: dict) -> None:
    benchmark.extra_info.update(results)
    print({k: round(v / 1e3, 2) for k, v in results.items()}, "us/op")


def test_order_pipeline_gate_and_paper_fill(benchmark):
    """Per order: decode (baseline), whole paper pipeline, risk gate, paper fill."""
    results = benchmark.pedantic(executor.bench_pipeline, args=(20_000,), rounds=1, iterations=1)
    _record(benchmark, results)
    assert results["pipeline"] > results["decode"]


def test_journal_fsync_beside_no_sync(benchmark):
    results = benchmark.pedantic(executor.bench_journal, args=(2_000,), rounds=1, iterations=1)
    _record(benchmark, results)
    assert results["fsync"] > 0 and results["nosync"] > 0


def test_batch_gate_beside_the_reference_gate(benchmark):
    """A triangle's legs: one compiled ``check_batch`` against three Python ``check`` calls."""
    results = benchmark.pedantic(executor.bench_batch_gate, args=(5_000,), rounds=1, iterations=1)
    _record(benchmark, results)
    assert results["compiled"] > 0 and results["reference"] > 0
