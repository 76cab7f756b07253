"""pytest-benchmark suites: the same code as `ctrader bench`, recorded by pytest-benchmark.

Cross-process figures (latency percentiles, throughput) are measured inside the benchmarked
call and attached to the benchmark's ``extra_info``; the timing pytest-benchmark itself records
is the wall time of that whole measurement.
"""
import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.timeout(600))
