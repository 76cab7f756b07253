"""One session per data directory, and the simulator's port free: a second ``ctrader start``
stops before starting anything, and says who holds what it needs."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.core import proclock
from ctrader.runtime.session import SESSION_LOCK, SessionInUse, claim, run_session

NAMES = ["sim", "feed", "strategy", "executor", "recorder"]


def _cfg(tmp_path, port: int):
    return load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides={"sim.port": str(port)})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HOLD = textwrap.dedent("""
    import sys, time
    from ctrader.core import proclock
    proclock.take(sys.argv[1])
    print("held", flush=True)
    time.sleep(60)
""")


def test_a_second_session_on_the_same_data_directory_names_the_first_and_starts_nothing(tmp_path):
    cfg = _cfg(tmp_path, _free_port())
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / SESSION_LOCK), "--first-session"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SessionInUse, match=f"pid {holder.pid} .*--first-session.*CTRADER_DATA_DIR"):
            run_session(cfg, NAMES, duration_s=1.0)
        assert not (tmp_path / "runs").exists()                   # nothing started
        result = CliRunner().invoke(app, ["start", "--duration", "1"], env={"CTRADER_DATA_DIR": str(tmp_path)})
        assert result.exit_code == 1 and "cannot start: another ctrader session" in result.output
    finally:
        holder.kill()
        holder.wait()
    fd = claim(cfg, NAMES)             # the kernel dropped the dead holder's lock
    proclock.give_back(fd)


def test_a_taken_simulator_port_stops_the_session_and_leaves_the_directory_free(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        cfg = _cfg(tmp_path, other.getsockname()[1])
        with pytest.raises(SessionInUse, match=f"sim.port {cfg.sim.port} .* in use"):
            claim(cfg, NAMES)
        proclock.give_back(claim(cfg, ["feed", "recorder"]))        # no simulator: its port is not ours to need
    proclock.give_back(claim(cfg, NAMES))
    assert proclock.read_holder(str(tmp_path / SESSION_LOCK)) == (None, "")
