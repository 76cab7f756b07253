"""What the strategy tests share: the simulator's market where every strategy finds something to
do, a replay of it through the live executor, and a processes-mode paper session.

    uni, md = residual_market(cfg)                        # 90 s, seed 3, residuals of 25 bp
    engine, replay, result = replay_through_executor(cfg, uni, md)
    live, argv = paper_session(tmp_path, {"strategy.name": "maker_triangular"}, seconds=45)
    report = session_report(argv, live["run_id"])         # ``ctrader report RUN --json``
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ctrader.execution.latency import SampledLatency
from ctrader.replay.driver import ReplayEngine, ReplayOptions
from ctrader.replay.history import simulated_md
from ctrader.replay.runner import make_strategy, resolve_universe
from tests.session_harness import free_port

RESIDUAL_BPS = "25"      # sim.market.residual_bps: cross rates off far enough to trade on


def residual_market(cfg, seconds: int = 90, seed: int = 3):
    """(universe, md) of ``cfg``'s simulated market (its ``sim.market`` as set)."""
    uni = resolve_universe(cfg)
    return uni, simulated_md(cfg, uni, seconds=seconds, seed=seed)


def replay_through_executor(cfg, uni, md, batch: int = 1024):
    """The configured strategy, unscored, over ``md`` with a 2 ms order latency: (the strategy
    engine, the replay engine with its executor, the result)."""
    engine = make_strategy(cfg, uni, None)
    replay = ReplayEngine(uni, engine, ReplayOptions(order_latency=SampledLatency.parse("2"), batch_events=batch))
    return engine, replay, replay.run([md])


def paper_session(tmp_path, sets: dict[str, str], seconds: int) -> tuple[dict, list[str]]:
    """``ctrader start --processes --duration SECONDS --json`` against the built-in simulator on
    a free port, its data in ``tmp_path``: (its JSON summary, the ``--set`` arguments used)."""
    sets = {"run.data_dir": str(tmp_path), "sim.port": str(free_port()), **sets}
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    ctrader = os.path.join(os.path.dirname(sys.executable), "ctrader")
    out = subprocess.run([ctrader, *argv, "start", "--processes", "--duration", str(seconds), "--json"],
                         capture_output=True, text=True, timeout=400, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout), argv


def session_report(argv: list[str], run_id: str) -> dict:
    """``ctrader report RUN --json`` of a session ``paper_session`` ran."""
    from typer.testing import CliRunner

    from ctrader.cli.main import app

    return json.loads(CliRunner().invoke(app, [*argv, "report", run_id, "--json"]).stdout)
