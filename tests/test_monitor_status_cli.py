"""``ctrader status`` from another terminal: from the monitor's API, from the run directory when
the monitor does not answer, ``--json``, ``--watch`` until the session ends, and no session."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.core import proclock
from ctrader.monitor.auth import TOKEN_ENV
from ctrader.runtime.session import SESSION_LOCK
from tests.monitor_harness import MonitorHarness

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def no_token_env(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def run_cli(tmp_path, *args):
    return CliRunner().invoke(app, list(args), env={"CTRADER_DATA_DIR": str(tmp_path)})


def test_no_session_running(tmp_path):
    result = run_cli(tmp_path, "status")
    assert result.exit_code == 1 and "no ctrader session runs" in result.output
    result = run_cli(tmp_path, "status", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout) == {"running": False}


@pytest.fixture
def session(tmp_path):
    """A monitor over a run whose components the test plays, and this process holding the
    session's lock, as ``ctrader start`` does."""
    with MonitorHarness(tmp_path) as mon:
        mon.write_stats("executor", {"mode": "paper", "orders_sent": 3, "fills": 1, "pnl": 0.42,
                                     "valuation_asset": "USDT", "positions": {"BTC": 0.001, "USDT": -60.0},
                                     "pnl_by_asset": {"BTC": 60.42, "USDT": -60.0}, "refusals": {},
                                     "open_order_list": [], "tick_to_order": {"p50_us": 310.0, "p99_us": 820.0, "n": 3}})
        mon.write_stats("feed", {"messages": 4321, "stale_symbols": 0, "gaps": 0})
        mon.publish_fill("ETHBTC", 0.05123, 0.25, "cli-fill")
        mon.wait_status(lambda s: s["executor"].get("fills") == 1 and s["fills"]["last"])
        mon.lock = proclock.take(str(tmp_path / SESSION_LOCK))
        try:
            yield mon
        finally:
            if mon.lock is not None:
                proclock.give_back(mon.lock)


def test_status_from_the_monitor_and_from_the_run_directory(tmp_path, session):
    result = run_cli(tmp_path, "status", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["run_id"] == session.run_id and doc["source"] == session.url
    assert doc["pnl"]["total"] == 0.42 and doc["fills"]["last"][0]["client_order_id"] == "cli-fill"

    shown = run_cli(tmp_path, "status")
    assert shown.exit_code == 0, shown.output
    text = shown.output
    for expected in ("components", "monitor", "running", "PnL", "+0.42 USDT", "ETHBTC", "0.05123", "BTC",
                     "tick->order 310/820"):
        assert expected in text, (expected, text)

    # the monitor does not answer there: the run directory's files, without the monitor's extras
    local = json.loads(run_cli(tmp_path, "status", "--json", "--url", "http://127.0.0.1:9").stdout)
    assert local["source"] == str(session.run_dir)
    assert local["pnl"]["total"] == 0.42 and local["feed"]["messages"] == 4321 and local["feed"]["books"] is None
    assert local["components"]["executor"]["state"] == "running"


def test_watch_prints_until_the_session_ends(tmp_path, session):
    env = {**os.environ, "CTRADER_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "ctrader.cli.main", "status", "--watch", "--json",
                             "--every", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        second = json.loads(proc.stdout.readline())
        assert first["run_id"] == second["run_id"] == session.run_id and second["time"] >= first["time"]
        # the session ends (its lock is let go): the watch ends by itself
        proclock.give_back(session.lock)
        session.lock = None
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
