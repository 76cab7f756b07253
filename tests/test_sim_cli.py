"""``ctrader sim``: starts from the command line, logs what it serves, stops cleanly on Ctrl-C."""
from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from ctrader.cli.main import app
from typer.testing import CliRunner

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_sim_command_serves_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    user = tmp_path / "mine.toml"
    user.write_text("[sim]\nseed = 9\n\n[sim.market]\nspeed = 2.0\n")
    proc = subprocess.Popen([sys.executable, "-m", "ctrader.cli.main", "sim", "--port", str(port),
                             "--config", str(user)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1) as resp:
                    assert resp.read() == b"{}"
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "simulator did not come up"
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert f"Binance Spot simulator on 127.0.0.1:{port}" in output
    assert f"ws://127.0.0.1:{port}/ws-api/v3" in output and "seed 9, speed 2.0" in output
    assert "account demo: HMAC ctrader-sim-demo-hmac-key" in output and "ctrader-sim-demo-hmac-secret" not in output
    assert "stopping on SIGINT" in output and "simulator stopped" in output


def test_sim_command_refuses_a_non_loopback_host():
    result = CliRunner().invoke(app, ["--set", "sim.host=0.0.0.0", "sim", "--port", "0"])
    assert result.exit_code == 2 and "loopback" in result.output
