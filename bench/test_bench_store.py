"""Store benchmarks under pytest-benchmark:
    .venv/bin/python -m pytest bench/test_bench_store.py --benchmark-only -s

Each figure is taken beside its same-run baseline (see ctrader/benchmarks/store.py).
"""
import shutil
import tempfile

import pytest

from ctrader.benchmarks import store


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ctrader-bench-store-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _record(benchmark, results: dict) -> None:
    benchmark.extra_info.update(results)
    print({k: round(v, 2) if isinstance(v, float) else v for k, v in results.items()})


def test_recorder_pipeline_vs_bare_insert(benchmark, workdir):
    records = store.synthetic_md(300_000)
    result = benchmark.pedantic(store.bench_pipeline, args=(records, 20_000, workdir), rounds=1, iterations=1)
    _record(benchmark, dict(result, ratio=result["pipeline"] / result["bare_insert"]))


def test_records_to_columns_vs_numpy_copy(benchmark):
    records = store.synthetic_md(300_000)
    result = benchmark.pedantic(store.bench_conversion, args=(records, 20_000), rounds=1, iterations=1)
    _record(benchmark, dict(result, ratio=result["convert"] / result["copy"]))


def test_recorder_end_to_end_through_a_ring(benchmark, workdir):
    records = store.synthetic_md(300_000)
    result = benchmark.pedantic(store.bench_end_to_end, args=(records, 20_000, workdir), rounds=1, iterations=1)
    assert result["lost"] == 0 and result["stored"] == len(records)
    _record(benchmark, result)
