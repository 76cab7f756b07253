"""End-to-end tick-to-order benchmark: a real ``ctrader start --processes`` against the simulator.

The simulator, recorder, executor, strategy and feed run as five OS processes (the same
``run_session`` the CLI uses) with frequent dislocations, so the strategy fires often, once in
paper mode and once in live mode (orders over the WS API to the simulator). The run's stats files
give, per order, the latency from the feed receiving the market frame to the order leaving the
executor (``sent_mono_ns``: paper, handed to the paper venue; live, its WS frame written to the
socket), split into stages:

- feed recv -> md ring (feed stats),
- tick -> intent built (strategy stats, and per order in the executor's stage split),
- intent built -> read by the executor (the intents ring hop, including the executor's wait),
- executor path (read -> order handed to the venue: risk gate, journal, order object),

beside a baseline measured in the same run: the cross-process cache-line ping-pong of
``ctrader.benchmarks.rings`` (the floor for any hand-off between two processes).

    from ctrader.benchmarks import e2e
    for r in e2e.run(quick=True):          # about 20-25 s including warm-up and start-up
        print(r["name"], r["value"], r["unit"], r["ratio"])

Absolute figures depend on the machine and its load (two cores shared by five processes here);
``check_regressions`` flags only gross ratio regressions.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import time

from ctrader.benchmarks.rings import bench_pingpong

log = logging.getLogger(__name__)

COMPONENTS = ["sim", "recorder", "executor", "strategy", "feed"]
# More dislocations and a looser group budget than the defaults: more orders per second of run,
# so the percentiles rest on more samples. Risk limits widened to match (paper venue: no real orders).
BENCH_OVERRIDES = {
    "sim.market.dislocations_per_min": "30",
    "strategy.max_groups_per_10s": "40",
    "strategy.cooldown_ms": "200",
    "risk.orders_per_10s": "200",
    "risk.max_open_orders": "30",
    "sim.limits.orders_per_10s": "400",      # live mode: the venue's limit above the gate's
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _warm_caches(overrides: dict) -> None:
    """Compile (or load) the strategy's and the executor's numba kernels once, in a child
    process, before the timed session: after a source edit the compile takes 10+ s, which
    would eat a short run (and the executor's would hold the session's first intents)."""
    from ctrader.config import load_config
    from ctrader.execution.process import build_executor
    from ctrader.sim.testing import sim_universe
    from ctrader.strategy.process import build_engine

    cfg = load_config(overrides=overrides, env={})
    universe = sim_universe(symbols=None)
    build_engine(cfg, universe=universe)
    build_executor(cfg, universe, lambda rec: None, recover=False).close()      # warm_up compiles


def warm_up(data_dir: str) -> None:
    import multiprocessing as mp

    child = mp.get_context("spawn").Process(target=_warm_caches, args=({"run.data_dir": data_dir, **BENCH_OVERRIDES},))
    child.start()
    child.join(300)


def run_e2e_session(duration_s: float, data_dir: str | None = None, overrides: dict | None = None,
                    processes: bool = True, log_level: str = "WARNING", warm: bool = True,
                    run_id: str | None = None) -> dict:
    """One session of every component against the simulator; returns ``run_session``'s summary."""
    from ctrader.config import load_config
    from ctrader.runtime.session import run_session

    owned = data_dir is None
    tmp = tempfile.TemporaryDirectory(prefix="ctrader-e2e-") if owned else None
    try:
        merged = {"run.data_dir": data_dir or tmp.name, "sim.port": str(_free_port()), **BENCH_OVERRIDES,
                  **(overrides or {})}
        cfg = load_config(overrides=merged, env={})
        if warm:
            warm_up(merged["run.data_dir"])
        return run_session(cfg, COMPONENTS, duration_s=duration_s, processes=processes, log_level=log_level,
                           run_id=run_id)
    finally:
        if tmp is not None:
            tmp.cleanup()


def latency_figures(stats: dict) -> dict[str, float | None]:
    """The run's latency percentiles (us) out of ``read_stats``: name -> value (None when unseen)."""
    feed, strat, ex = stats.get("feed", {}), stats.get("strategy", {}), stats.get("executor", {})
    t2o = ex.get("tick_to_order", {})
    out = {
        "tick-to-order p50": t2o.get("p50_us"), "tick-to-order p99": t2o.get("p99_us"),
        "tick-to-intent p50": strat.get("tick_to_intent_p50_us"),
        "tick-to-intent p99": strat.get("tick_to_intent_p99_us"),
        "feed recv->ring p50": feed.get("recv_to_ring_us_p50"), "feed recv->ring p99": feed.get("recv_to_ring_us_p99"),
    }
    for stage, label in (("intent_hop", "intent ring hop"), ("executor_path", "executor path")):
        pct = ex.get("tick_to_order_stages", {}).get(stage, {})
        out[f"{label} p50"], out[f"{label} p99"] = pct.get("p50_us"), pct.get("p99_us")
    out["orders"] = t2o.get("n", 0)
    return out


MODES = ("paper", "live")


def run(quick: bool = False, modes: tuple[str, ...] = MODES) -> list[dict]:
    """One session per mode; figure names carry the mode (``live tick-to-order p50``)."""
    duration = 10.0 if quick else 60.0
    ping = bench_pingpong(100_000 if quick else 500_000)
    results = []
    for mode in modes:
        load_before = os.getloadavg()[0]
        t0 = time.monotonic()
        summary = run_e2e_session(duration, overrides={"run.mode": mode}, warm=mode == modes[0])
        wall = time.monotonic() - t0
        if summary["failed"]:
            raise RuntimeError(f"e2e {mode} session failed: components {summary['failed']}")
        figures = latency_figures(summary["stats"])
        orders = figures.pop("orders")
        note = (f"{mode}: {orders} orders, {duration:.0f} s run ({wall:.0f} s with start-up), 5 processes, "
                f"{os.cpu_count()} cores, load {load_before:.1f}")
        for name, value in figures.items():
            if value is None:
                continue
            base = ping["p99"] if name.endswith("p99") else ping["p50"]
            results.append({"name": f"{mode} {name}", "value": float(value), "unit": "us",
                            "baseline_name": f"cache-line ping-pong {name.rsplit(' ', 1)[1]}",
                            "baseline_value": base / 1e3, "ratio": float(value) * 1e3 / base, "note": note})
        results.append({"name": f"{mode} orders sent", "value": float(orders), "unit": "orders", "baseline_name": "",
                        "baseline_value": None, "ratio": None, "note": note})
    return results


def check_regressions(results: list[dict]) -> list[str]:
    """Only a gross regression: no orders at all in a mode, or its tick-to-order p50 above
    100 000x the ping-pong."""
    by_name = {r["name"]: r for r in results}
    problems = []
    for mode in MODES:
        if f"{mode} orders sent" not in by_name:
            continue
        if not by_name[f"{mode} orders sent"]["value"]:
            problems.append(f"the e2e {mode} session sent no orders: tick-to-order was not measured")
        t2o = by_name.get(f"{mode} tick-to-order p50")
        # the ping-pong is ~100-300 ns: 100 000x is 10-30 ms, far above any healthy run on a loaded machine
        if t2o is not None and t2o["ratio"] > 100_000:
            problems.append(f"{mode} tick-to-order p50 {t2o['value']:.0f} us is {t2o['ratio']:.0f}x the ping-pong "
                            f"(limit 100000x)")
    return problems
