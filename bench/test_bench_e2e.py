"""End-to-end tick-to-order under pytest-benchmark (a real 5-process session against the simulator):

    .venv/bin/python -m pytest bench/test_bench_e2e.py -s
"""
from ctrader.benchmarks import e2e


def test_tick_to_order_processes_session(benchmark):
    """Feed frame received -> order handed to the paper venue, with the stage split, beside the
    cache-line ping-pong measured in the same run."""
    results = benchmark.pedantic(e2e.run, args=(True,), rounds=1, iterations=1)
    by_name = {r["name"]: r for r in results}
    benchmark.extra_info.update({r["name"]: r["value"] for r in results})
    for r in results:
        print(f"{r['name']:28s} {r['value']:10.1f} {r['unit']:7s} {r['note']}")
    assert by_name["orders sent"]["value"] > 0
    assert by_name["tick-to-order p50"]["value"] <= by_name["tick-to-order p99"]["value"]
    assert e2e.check_regressions(results) == []
