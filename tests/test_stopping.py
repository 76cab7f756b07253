"""How a run stops, with toy components in real child processes (``tests.runtime_workers``):
the order, a second request that turns the stop fast, a child that will not stop, a supervisor
killed with SIGKILL, what a dead run leaves in /dev/shm, and signal handlers that only set flags.
Whole ``ctrader start`` sessions stopped by Ctrl-C and signals: ``test_stop_session.py``.
"""
from __future__ import annotations

import mmap
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from ctrader.config import load_config
from ctrader.core import ring_layout, shm
from ctrader.execution.risk import KillSwitch
from ctrader.runtime import stopping
from ctrader.runtime.health import HealthTable
from ctrader.runtime.resources import health_name
from ctrader.runtime.supervisor import Component, Supervisor

pytestmark = pytest.mark.timeout(120)

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAMES = ["sim", "recorder", "executor", "strategy", "feed"]       # the start order of a session


def _cfg(tmp_path):
    return load_config(env={"CTRADER_DATA_DIR": str(tmp_path)})


def _wait_for(predicate, timeout_s=60.0, every_s=0.02):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False


def _stops(tmp_path) -> list[str]:
    path = tmp_path / "stops.txt"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def _running(sup: Supervisor) -> bool:
    return all(s["state"] == "running" for s in sup.resources.health.snapshot().values())


# --- StopRequest: the only thing a signal handler touches -----------------------------------------

def test_a_signal_only_sets_the_request_and_wakes_the_waiting_loop():
    request = stopping.StopRequest().install([signal.SIGUSR2])
    try:
        assert not request.wait(0.0)
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR2)).start()
        assert request.wait(30.0)                      # woken by the pipe, long before the timeout
        assert request.reason == "SIGUSR2" and request.count == 1
        assert request.new_since_last_call() == [signal.SIGUSR2]
        request.request("duration of 5 s reached")
        assert request.count == 2 and request.new_since_last_call() == ["duration of 5 s reached"]
        assert request.new_since_last_call() == []
    finally:
        request.close()
    assert signal.getsignal(signal.SIGUSR2) in (signal.SIG_DFL, None)


def test_a_wait_wakes_when_a_watched_child_exits():
    request = stopping.StopRequest()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    r, w = os.pipe()           # stands for a process sentinel: readable once the writer closes
    try:
        threading.Thread(target=lambda: (child.wait(), os.close(w))).start()
        request.sleep(30.0, fds=[r])
        assert child.poll() is not None and not request.is_set()
    finally:
        os.close(r)
        request.close()


def test_the_kill_switch_signal_handler_only_latches(tmp_path):
    kill = KillSwitch(tmp_path / "KILL")
    kill.install_signal_handler()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert _wait_for(lambda: kill.engaged, 10)
        assert kill.reason == "SIGUSR1"
    finally:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)


# --- stop order, fast stop, kill ----------------------------------------------------------------------

def test_components_stop_one_by_one_in_the_reverse_of_the_start_order(tmp_path):
    run_id = f"stp{os.getpid()}a"
    sup = Supervisor(_cfg(tmp_path), [Component(n, "tests.runtime_workers:idler") for n in NAMES], run_id)
    sup.start()
    try:
        assert _wait_for(lambda: _running(sup))
    finally:
        codes = sup.stop()
    assert _stops(tmp_path) == [f"{n} orderly" for n in reversed(NAMES)]
    assert codes == dict.fromkeys(NAMES, 0)
    assert sup.summary()["reason"] == "stop" and not sup.fast_stop and sup.killed == []
    assert not [n for n in shm.list_segments() if run_id in n]


def test_a_second_request_during_the_stop_makes_it_fast(tmp_path):
    run_id = f"stp{os.getpid()}b"
    components = [Component("sim", "tests.runtime_workers:idler"),
                  Component("recorder", "tests.runtime_workers:lingerer"),   # its orderly stop lasts
                  Component("feed", "tests.runtime_workers:idler")]
    sup = Supervisor(_cfg(tmp_path), components, run_id)
    sup.start()
    try:
        assert _wait_for(lambda: _running(sup))
        sup.request_stop("first")

        def second_request_once_the_recorder_is_stopping():
            _wait_for(lambda: _stops(tmp_path) == ["feed orderly"])
            sup.request_stop("second")

        threading.Thread(target=second_request_once_the_recorder_is_stopping, daemon=True).start()
    finally:
        codes = sup.stop()
    assert _stops(tmp_path) == ["feed orderly", "recorder fast", "sim fast"]
    assert sup.fast_stop and sup.summary()["requests"] == 2 and sup.killed == []
    assert codes == {"sim": 0, "recorder": 0, "feed": 0}
    assert not [n for n in shm.list_segments() if run_id in n]


def test_a_child_that_does_not_stop_in_its_time_is_killed_and_named(tmp_path):
    run_id = f"stp{os.getpid()}c"
    components = [Component("sim", "tests.runtime_workers:idler"),
                  Component("executor", "tests.runtime_workers:stubborn", stop_timeout_s=1.0)]
    sup = Supervisor(_cfg(tmp_path), components, run_id)
    sup.start()
    try:
        assert _wait_for(lambda: _running(sup))
    finally:
        codes = sup.stop()
    assert sup.killed == ["executor"] and codes["executor"] == -signal.SIGKILL
    assert codes["sim"] == 0 and _stops(tmp_path) == ["sim orderly"]      # the rest still stopped in order
    assert not [n for n in shm.list_segments() if run_id in n]


# --- a supervisor that dies -----------------------------------------------------------------------------

SUPERVISOR_SCRIPT = """
import sys
from ctrader.config import load_config
from ctrader.runtime.health import HealthTable
from ctrader.runtime.resources import health_name
from ctrader.runtime.supervisor import Component, Supervisor
cfg = load_config(env={"CTRADER_DATA_DIR": sys.argv[1]})
sup = Supervisor(cfg, [Component(n, "tests.runtime_workers:idler") for n in sys.argv[3:]], sys.argv[2])
sup.start()
print(" ".join(str(c.process.pid) for c in sup.children.values()), flush=True)
sup.run()
"""


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_children_of_a_killed_supervisor_stop_in_order_and_the_last_removes_the_shared_memory(tmp_path):
    run_id = f"stp{os.getpid()}d"
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISOR_SCRIPT, str(tmp_path), run_id, *NAMES],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == len(NAMES)
        table = HealthTable.attach(health_name(run_id), NAMES)
        try:
            assert _wait_for(lambda: all(s["state"] == "running" for s in table.snapshot().values()))
        finally:
            table.segment.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert _wait_for(lambda: all(_gone(p) for p in pids), 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _stops(tmp_path) == [f"{n} orderly" for n in reversed(NAMES)]
    assert not [n for n in shm.list_segments() if run_id in n]


# --- what a dead run left ---------------------------------------------------------------------------------

def test_a_new_start_removes_what_a_dead_run_left_and_says_so(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = f"ctrader.stp{os.getpid()}dead.md"
    seg = shm.create(stale, 4096)
    seg.buf[0:8] = ring_layout.MAGIC.to_bytes(8, "little")     # a ring header's magic ...
    seg.buf[56:64] = dead.pid.to_bytes(8, "little")           # ... and an owner that is gone
    seg.close()
    orphan_sem = pathlib.Path(shm.SHM_DIR) / f"{stopping.SEM_PREFIX}ctrtest{os.getpid()}"
    orphan_sem.write_bytes(b"\0" * 32)
    os.utime(orphan_sem, (time.time() - 60, time.time() - 60))
    run_id = f"stp{os.getpid()}e"
    sup = Supervisor(_cfg(tmp_path), [Component("sim", "tests.runtime_workers:idler")], run_id)
    with caplog.at_level("WARNING", logger="ctrader.supervisor"):
        sup.start()
        sup.stop()
    assert stale not in shm.list_segments() and not orphan_sem.exists()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "removed what a dead run left" in said and stale in said and orphan_sem.name in said


def test_a_semaphore_still_mapped_by_a_live_process_is_kept(tmp_path):
    in_use = pathlib.Path(shm.SHM_DIR) / f"{stopping.SEM_PREFIX}ctrkeep{os.getpid()}"
    in_use.write_bytes(b"\0" * 32)
    os.utime(in_use, (time.time() - 60, time.time() - 60))
    with open(in_use, "r+b") as f, mmap.mmap(f.fileno(), 32):
        removed = stopping.cleanup_orphan_semaphores()
        assert in_use.name not in removed and in_use.exists()
    in_use.unlink()


# --- a component that fails for good ------------------------------------------------------------------

def test_a_component_out_of_restarts_stops_the_session_in_order(tmp_path):
    run_id = f"stp{os.getpid()}f"
    components = [Component("sim", "tests.runtime_workers:idler"),
                  Component("executor", "tests.runtime_workers:idler"),
                  Component("feed", "tests.runtime_workers:crasher")]
    sup = Supervisor(_cfg(tmp_path), components, run_id, max_restarts=1)
    sup.start()
    try:
        sup.run(duration_s=60)           # returns on the failure, long before the duration
    finally:
        codes = sup.stop()
    assert sup.failed == ["feed"] and sup.summary()["reason"] == "feed failed"
    assert _stops(tmp_path) == ["executor orderly", "sim orderly"]
    assert codes["executor"] == 0 and codes["sim"] == 0


def test_with_on_failure_continue_the_session_goes_on_without_it(tmp_path):
    run_id = f"stp{os.getpid()}g"
    cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides={"run.on_failure": "continue"})
    components = [Component("sim", "tests.runtime_workers:idler"), Component("feed", "tests.runtime_workers:crasher")]
    sup = Supervisor(cfg, components, run_id, max_restarts=1)
    sup.start()
    try:
        assert _wait_for(lambda: sup.check_children() or sup.failed == ["feed"])
        assert not sup.stop_request.is_set() and sup.children["sim"].process.is_alive()
    finally:
        sup.stop()
    assert _stops(tmp_path) == ["sim orderly"]
