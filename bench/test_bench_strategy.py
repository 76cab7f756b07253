"""Strategy benchmarks under pytest-benchmark:  .venv/bin/python -m pytest bench/test_bench_strategy.py -s

The figures (percentiles timed inside numba, scoring p50s, engine rates) go to ``extra_info``;
``ctrader bench --suite strategy`` prints the same figures beside their baselines.
"""
import numpy as np

from ctrader.benchmarks import strategy


def _record(benchmark, results: dict) -> None:
    benchmark.extra_info.update(results)
    print({k: round(v, 1) if isinstance(v, float) else v for k, v in results.items()})


def test_triangle_evaluation_incremental_and_rescan(benchmark):
    results = benchmark.pedantic(strategy.bench_evaluation, kwargs={"updates": 200_000, "rescans": 500},
                                 rounds=1, iterations=1)
    _record(benchmark, results)
    assert results["triangles"] >= 2000
    assert results["incremental_p50_ns"] < results["rescan_p50_ns"]


def test_onnx_scoring_beside_bare_run_and_sklearn(benchmark):
    results = benchmark.pedantic(strategy.bench_scoring, kwargs={"rounds": 5000}, rounds=1, iterations=1)
    _record(benchmark, results)


def test_engine_on_offline_sim_md(benchmark):
    results = benchmark.pedantic(strategy.bench_engine, kwargs={"seconds": 30.0}, rounds=1, iterations=1)
    _record(benchmark, results)
    assert results["taken"] > 0


def test_top_rate_kernel_per_call(benchmark):
    """Python -> numba dispatch of one incremental evaluation (what a caller outside numba pays)."""
    from types import SimpleNamespace

    from ctrader.market.books import BookCache
    from ctrader.strategy import kernels as K
    from ctrader.strategy.triangular import TriangularArbitrage

    uni, prices = strategy.synthetic_universe(166)
    cfg = SimpleNamespace(strategy=SimpleNamespace(max_start=("USDT=1000",), min_marginal_edge_bps=0.5,
                                                   max_book_age_ms=1e12))
    strat = TriangularArbitrage(cfg, uni, BookCache(len(uni.symbols)))
    strategy.fill_books(uni, prices, strat.books, 10**12)
    sid = uni.symbol_id("A0001XETH")
    args = (sid, 10**12, strat.tri, strat.sym, strat.book, strat.params, strat.edge_since, strat.outf, strat.outi)
    assert benchmark(K.evaluate_symbol, *args) == 0
    assert np.all(strat.edge_since == 0)
