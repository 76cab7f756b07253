"""The supervisor: real child processes, SIGKILL, restarts, clean shutdown, no shm left."""
from __future__ import annotations

import os
import signal
import time

import pytest

from ctrader.config import load_config
from ctrader.core import shm
from ctrader.runtime.supervisor import Component, Supervisor
from tests.runtime_workers import TOTAL

pytestmark = pytest.mark.timeout(120)


def _cfg(tmp_path):
    return load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides={"rings.intents_capacity": "256"})


def _wait_for(predicate, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _seen(tmp_path):
    path = tmp_path / "seen.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_killed_consumer_is_restarted_and_no_intent_is_lost(tmp_path):
    run_id = f"sup{os.getpid()}"
    components = [Component("executor", "tests.runtime_workers:intent_sink"),
                  Component("strategy", "tests.runtime_workers:intent_source")]
    sup = Supervisor(_cfg(tmp_path), components, run_id, heartbeat_timeout_s=30)
    sup.start()
    try:
        assert _wait_for(lambda: len(_seen(tmp_path)) > 2000)
        victim = sup.children["executor"].process.pid
        os.kill(victim, signal.SIGKILL)
        assert _wait_for(lambda: sup.check_children() or sup.children["executor"].process.pid != victim)
        assert _wait_for(lambda: len(set(_seen(tmp_path))) == TOTAL)
        assert sup.resources.health.snapshot()["executor"]["restarts"] == 1
    finally:
        codes = sup.stop()
    assert codes == {"executor": 0, "strategy": 0}
    seen = _seen(tmp_path)
    assert set(seen) == set(range(TOTAL))
    # At-least-once: a record may repeat only if the kill fell between fsync and commit.
    assert len(seen) - TOTAL <= 64
    assert not [n for n in shm.list_segments() if run_id in n]


def test_crashing_component_is_restarted_within_its_budget_then_given_up(tmp_path):
    run_id = f"sup{os.getpid()}b"
    sup = Supervisor(_cfg(tmp_path), [Component("feed", "tests.runtime_workers:crasher")], run_id,
                     max_restarts=2)
    sup.start()
    try:
        sup.run(duration_s=30)    # returns once nothing is left running
    finally:
        sup.stop()
    assert sup.failed == ["feed"]
    assert not [n for n in shm.list_segments() if run_id in n]
