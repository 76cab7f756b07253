"""Several strategies: one strategy process for all of them, or a process each? Measured.

Paper sessions of every component against the simulator (``run_e2e_session``), the same length
and market, in turn:

- ``alone``: ``[strategy] names = [triangular]``;
- ``one process, in step``: ``names = [triangular, cross_rate_reversion]`` in the one strategy
  process, every strategy on each record in turn (``[strategy] schedule = "in_step"``);
- ``one process, lead first``: the same, the taker triangle first on each batch and the other on
  the same records when no md waits (``schedule = "lead_first"``, the default: ``LeadFirst``);
- ``a process each``: triangular in the strategy process and cross_rate_reversion in a second
  strategy process (``run_second_strategy``: the same ``StrategyLoop`` and wait strategy, reading
  the same md ring), as a process per strategy would run it. Its intents and journal go to rings
  of its own that nothing reads, and no execution reaches it: the executor's second intents ring
  is left out, in this layout's favour.

Figures, each beside ``alone`` measured in the same run: the taker triangle's own tick-to-intent
(p50, p99), the executor's tick-to-order (every order: in one process the second strategy's
orders are in it, in a process each they never reach the executor) and the feed's recv->ring. Which layout is faster is what the ratios
say; the absolute times move with the machine's load. Not in the default suites (four sessions
take a while): ``ctrader bench --suite layout``.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time

from ctrader.benchmarks.e2e import BENCH_OVERRIDES, latency_figures, run_e2e_session

SECOND = "cross_rate_reversion"
FIGURES = ("triangular tick-to-intent p50", "triangular tick-to-intent p99", "tick-to-order p50", "tick-to-order p99",
           "feed recv->ring p50", "feed recv->ring p99")


def _figures(stats: dict) -> dict:
    """``latency_figures``, and the taker triangle's own tick-to-intent: in one process the
    strategy's figures mix both strategies' intents (``StrategySet.stats``' ``by_strategy``)."""
    out = latency_figures(stats)
    strategy = stats.get("strategy", {})
    own = strategy.get("by_strategy", {}).get("triangular", strategy)
    out["triangular tick-to-intent p50"] = own.get("tick_to_intent_p50_us")
    out["triangular tick-to-intent p99"] = own.get("tick_to_intent_p99_us")
    return out


def run_second_strategy(overrides: dict, run_id: str, ready, stop) -> None:
    """A second strategy process on the run's md ring (``SECOND`` alone, its output unread)."""
    import json

    from ctrader.config import load_config
    from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, ORDER_INTENT
    from ctrader.core.ring import Ring, RingError
    from ctrader.core.shm import SegmentError
    from ctrader.core.topology import ring_name
    from ctrader.core.wait import wait_strategy
    from ctrader.market.universe import load_universe
    from ctrader.runtime.supervisor import run_dir
    from ctrader.sim.testing import sim_universe
    from ctrader.strategy.process import StrategyLoop, build_engine

    # unscored: no model ships for it (the taker triangle's packaged model does not fit it)
    cfg = load_config(overrides={**overrides, "strategy.names": SECOND, "model.name": "none"}, env={})
    build_engine(cfg, universe=sim_universe(symbols=None))          # compiled before the session starts
    ready.set()
    info = run_dir(cfg, run_id) / "exchange_info.json"
    md = None
    while md is None and not stop.is_set():      # the session saves the sim's exchangeInfo, creates the ring
        try:
            doc = json.loads(info.read_text())
            md = Ring.attach(ring_name(run_id, "md"), MD_EVENT)
        except (OSError, ValueError, SegmentError, RingError):
            stop.wait(0.02)
    if md is None:
        return
    engine = build_engine(cfg, run_tag=run_id, universe=load_universe(cfg, doc))    # the session's symbol ids
    own = {key: Ring.create(f"{ring_name(run_id, key)}-second", dtype, 1 << 12, kind="broadcast")
           for key, dtype in (("intents", ORDER_INTENT), ("journal", CANDIDATE), ("exec", EXEC_EVENT))}
    wait = wait_strategy(cfg.rings.wait, owns_core=False)
    loop = StrategyLoop(engine, md.consumer(wait=wait), own["exec"].consumer(wait=wait),
                        own["intents"].producer(wait, timeout_s=0.0), own["journal"].producer(wait, timeout_s=0.0))
    try:
        while not stop.is_set():
            loop.step(0.05)
    finally:
        loop.md_in.release()
        md.close()
        for ring in own.values():
            ring.close()


def _session(duration_s: float, overrides: dict, warm: bool, second: bool) -> dict:
    run_id = f"layout-{os.getpid()}-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory(prefix="ctrader-layout-") as data_dir:
        if not second:
            return run_e2e_session(duration_s, data_dir, overrides, warm=warm, run_id=run_id)
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        child = ctx.Process(target=run_second_strategy, name="ctrader-strategy-2",
                            args=({"run.data_dir": data_dir, **BENCH_OVERRIDES, **overrides}, run_id, ready, stop))
        child.start()
        try:
            deadline = time.monotonic() + 300
            while not ready.wait(0.5):
                if not child.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the second strategy process did not get ready (exit code {child.exitcode})")
            return run_e2e_session(duration_s, data_dir, overrides, warm=warm, run_id=run_id)
        finally:
            stop.set()
            child.join(30)
            if child.is_alive():
                child.kill()


LAYOUTS = (("alone", {"strategy.names": "triangular"}, False),
           ("one process, in step", {"strategy.names": f"triangular,{SECOND}", "strategy.schedule": "in_step"}, False),
           ("one process, lead first", {"strategy.names": f"triangular,{SECOND}", "strategy.schedule": "lead_first"},
            False),
           ("a process each", {"strategy.names": "triangular"}, True))


def run(quick: bool = False) -> list[dict]:
    duration = 10.0 if quick else 40.0
    figures: dict[str, dict] = {}
    notes = {}
    for k, (name, overrides, second) in enumerate(LAYOUTS):
        load = os.getloadavg()[0]
        summary = _session(duration, {"run.mode": "paper", **overrides}, warm=k == 0, second=second)
        if summary["failed"]:
            raise RuntimeError(f"layout {name}: components {summary['failed']} failed")
        figures[name] = _figures(summary["stats"])
        notes[name] = f"{figures[name]['orders']} orders, {duration:.0f} s, load {load:.1f}"
    results = []
    for name, _, _ in LAYOUTS:
        for figure in FIGURES:
            value, base = figures[name].get(figure), figures["alone"].get(figure)
            if value is None:
                continue
            results.append({"name": f"{name}: {figure}", "value": float(value), "unit": "us",
                            "baseline_name": f"alone: {figure}", "baseline_value": base,
                            "ratio": float(value) / base if base else None,
                            "note": f"{name}: {notes[name]}; alone: {notes['alone']}"})
    return results


def check_regressions(results: list[dict]) -> list[str]:
    """A measurement, not a gate: which layout is faster is for the table to say."""
    return []
