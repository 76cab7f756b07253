"""Benchmark suites behind ``ctrader bench`` and ``bench/`` (pytest-benchmark).

Each suite module exposes ``run(quick: bool) -> list[dict]`` and ``check_regressions(results)
-> list[str]``. A result dict: ``name, value, unit, baseline_name, baseline_value, ratio, note``;
every figure is measured beside a baseline taken in the same run, so ratios stay meaningful on
any machine. Regression checks look only at such ratios, never at absolute times. A suite may also take
``rounds`` / ``dislocations`` (``ctrader bench --rounds N --dislocations N``) and expose
``render(results) -> str``, a table of its own printed after the common one.
"""
SUITES = {
    "rings": "ctrader.benchmarks.rings",
    "feed": "ctrader.benchmarks.feed",
    "store": "ctrader.benchmarks.store",
    "executor": "ctrader.benchmarks.executor",
    "strategy": "ctrader.benchmarks.strategy",
    "replay": "ctrader.benchmarks.replay",
    "e2e": "ctrader.benchmarks.e2e",
    "compute": "ctrader.benchmarks.compute",
    "race": "ctrader.benchmarks.race.suite",
    "layout": "ctrader.benchmarks.layout",
}
# Suites that run only when named (``--suite layout``): long, and a measurement behind a design
# choice rather than a figure to watch.
ON_REQUEST = ("layout",)
