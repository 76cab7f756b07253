"""``ctrader start`` stopped the ways a user stops it: Ctrl-C in a terminal, a second Ctrl-C,
SIGTERM, and the supervisor killed with SIGKILL; in paper mode and in live mode against a
simulator of its own (``ctrader sim``, itself stopped by Ctrl-C at the end).

Each session runs in a pseudo-terminal as a user runs it (Ctrl-C is the terminal's ^C: SIGINT
to the whole foreground process group). Each test asserts the exit code, the log lines, that no
process of the session is left, that nothing of it is left in /dev/shm and, in live mode, that
the venue holds no open order of the account afterwards. Every wait is on something the session
says or does, with a generous deadline; nothing asserts a duration.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request

import pytest

from ctrader.config import load_config
from ctrader.venue.signing import Signer
from tests.session_harness import Detached, Terminal, all_gone, env_for, free_port, no_shm_of, started

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

STOP_ORDER = ["feed", "strategy", "executor", "recorder", "sim"]
TRADING = {"sim.market.dislocations_per_min": "40", "rings.keep_warm_us": "0"}


def _sets(port: int, **more) -> list[str]:
    out = []
    for key, value in {"sim.port": str(port), **TRADING, **more}.items():
        out += ["--set", f"{key}={value}"]
    return out


def _stopped_in_order(text: str, names=STOP_ORDER) -> None:
    """Each component asked to stop only after the one before it in the stop order stopped."""
    at = 0
    for name in names:
        asked = re.compile(rf"ctrader\.supervisor: stopping {name}$", re.M).search(text, at)
        assert asked, f"no 'stopping {name}' after position {at}:\n{text[at:at + 4000]}"
        done = re.compile(rf"ctrader\.supervisor: {name} stopped \(exit code 0\)", re.M).search(text, asked.end())
        assert done, f"{name} did not stop cleanly:\n{text[asked.start():asked.start() + 4000]}"
        at = done.end()


def _wait_for_trading(term: Terminal) -> None:
    """A status line with at least one order sent."""
    term.expect(r"\| orders [1-9]\d* \|", timeout_s=180)


# --- paper ----------------------------------------------------------------------------------------

def test_ctrl_c_stops_a_paper_session_in_order(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(free_port()), "start", "--processes", "--status-every", "1"],
                    env_for(tmp_path))
    try:
        run_id, pids = started(term)
        _wait_for_trading(term)
        term.ctrl_c()
        assert term.wait() == 0
    finally:
        term.kill()
    text = term.text
    assert re.search(r"ctrader\.supervisor: stopping on SIGINT$", text, re.M)
    _stopped_in_order(text)
    assert "stopped (orderly stop) on SIGINT" in text
    assert all_gone(pids.values()) and no_shm_of(run_id)


def test_a_second_ctrl_c_stops_fast_with_exit_code_130(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(free_port()), "start", "--processes", "--status-every", "1"],
                    env_for(tmp_path))
    try:
        run_id, pids = started(term)
        _wait_for_trading(term)
        # Freeze the recorder so the orderly stop is still under way when the second ^C comes:
        # the fast stop then finds it there (signals in quick succession would merge into one).
        os.kill(pids["recorder"], signal.SIGSTOP)
        term.ctrl_c()
        term.expect(r"ctrader\.supervisor: stopping recorder$")
        term.ctrl_c()
        term.expect(r"SIGINT during the stop: stopping fast")
        os.kill(pids["recorder"], signal.SIGCONT)
        assert term.wait() == 130
    finally:
        term.kill()
    text = term.text
    assert re.search(r"ctrader\.supervisor: recorder stopped fast \(exit code 0\)", text)
    assert re.search(r"ctrader\.supervisor: sim stopped fast \(exit code 0\)", text)
    assert "stopped (fast stop) on SIGINT" in text
    assert all_gone(pids.values()) and no_shm_of(run_id)


def test_sigterm_to_the_supervisor_stops_in_order(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(free_port()), "start", "--processes", "--status-every", "1"],
                    env_for(tmp_path))
    try:
        run_id, pids = started(term)
        _wait_for_trading(term)
        os.kill(term.pid, signal.SIGTERM)
        assert term.wait() == 0
    finally:
        term.kill()
    assert re.search(r"ctrader\.supervisor: stopping on SIGTERM$", term.text, re.M)
    _stopped_in_order(term.text)
    assert all_gone(pids.values()) and no_shm_of(run_id)


def test_children_of_a_killed_supervisor_stop_on_their_own(tmp_path):
    term = Detached(["--log-level", "INFO", *_sets(free_port()), "start", "--processes", "--status-every", "1"],
                    env_for(tmp_path), tmp_path / "session.log")
    try:
        run_id, pids = started(term)
        _wait_for_trading(term)
        os.kill(term.pid, signal.SIGKILL)
        assert term.wait() == -signal.SIGKILL
        assert all_gone(pids.values())
    finally:
        term.kill()
    # Every child heard of it, stopped in the usual order on its own, and the last one out cleaned up.
    text = term.text
    for name in pids:
        assert re.search(rf"{name}\[{pids[name]}\] ctrader\.stop: supervisor \(pid {term.pid}\) is gone", text)
    finished = [text.index(line) for line in ("feed stopped:", "strategy stopped:", "executor stopped:",
                                               "recorder stopped:", "simulator stopped:")]
    assert finished == sorted(finished), text[-6000:]
    assert re.search(r"last component of a run whose supervisor died: removed its shared memory", text)
    assert no_shm_of(run_id)


def test_ctrl_c_stops_a_session_of_threads(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(free_port()), "start", "--threads", "--status-every", "1"],
                    env_for(tmp_path))
    try:
        _wait_for_trading(term)
        term.ctrl_c()
        assert term.wait() == 0
    finally:
        term.kill()
    assert re.search(r"stopping on SIGINT$", term.text, re.M)
    for name in STOP_ORDER:
        assert re.search(rf"{name} stopped in [\d.]+ s", term.text)


def test_ctrl_c_stops_a_recording(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(free_port()), "record", "--processes", "--status-every", "1"],
                    env_for(tmp_path))
    try:
        run_id, pids = started(term)
        term.expect(r"\| stored [1-9]")
        term.ctrl_c()
        assert term.wait() == 0
    finally:
        term.kill()
    _stopped_in_order(term.text, ["feed", "recorder", "sim"])
    assert all_gone(pids.values()) and no_shm_of(run_id)


# --- live, against a simulator of its own --------------------------------------------------------------

class Venue:
    """``ctrader sim`` in its own terminal, and signed REST queries to it as the demo account."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        # Orders are held 2.5 s before the venue takes them: legs priced for a dislocation
        # (1.5 s long) land after it and rest as GTC orders, so that there are open orders to cancel.
        self.term = Terminal(["--set", "sim.faults.order_delay_ms=2500", *_sets(self.port), "sim"], env_for(tmp_path))
        self.term.expect(r"ctrader\.sim\.server: market:")
        acct = load_config(env={}).sim.accounts[0]
        self.signer = Signer(acct.api_key, secret=acct.api_secret)

    def open_orders(self) -> list[dict]:
        query = self.signer.signed_query({"timestamp": int(time.time() * 1000)})
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v3/openOrders?{query}",
                                     headers={"X-MBX-APIKEY": self.signer.api_key})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> int:
        self.term.ctrl_c()
        return self.term.wait()


def _live(tmp_path, venue: Venue, detached: bool) -> Terminal:
    args = ["--log-level", "INFO", *_sets(venue.port, **{"run.mode": "live", "strategy.tif": "GTC"}),
            "start", "--processes", "--without", "sim", "--status-every", "1"]
    if detached:
        return Detached(args, env_for(tmp_path), tmp_path / "session.log")
    return Terminal(args, env_for(tmp_path))


def _wait_for_open_orders(venue: Venue, timeout_s: float = 180.0) -> int:
    """Polled once a second: openOrders for every symbol weighs 80 of the IP's 6000 a minute,
    which the session under test shares."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = len(venue.open_orders())
        if found:
            return found
        time.sleep(1.0)
    raise AssertionError("no order ever rested at the venue")


@pytest.mark.parametrize("how", ["ctrl_c", "sigkill_supervisor", "terminal_closed"])
def test_a_live_session_leaves_no_open_order_at_the_venue(tmp_path, how):
    """``terminal_closed``: the supervisor killed while the session runs in a terminal, which then
    hangs up: the children get SIGHUP as well and can no longer print, but still cancel."""
    venue = Venue(tmp_path)
    term = None
    try:
        term = _live(tmp_path, venue, detached=how == "sigkill_supervisor")
        run_id, pids = started(term)
        _wait_for_open_orders(venue)
        if how == "ctrl_c":
            term.ctrl_c()
            assert term.wait() == 0
            _stopped_in_order(term.text, STOP_ORDER[:-1])
        else:
            os.kill(term.pid, signal.SIGKILL)
            term.wait()
        assert all_gone(pids.values())
        if how != "terminal_closed":
            assert re.search(r"executor\[\d+\] ctrader\.execution\.engine: cancelling \d+ open orders", term.text)
        assert venue.open_orders() == []
        assert no_shm_of(run_id)
    finally:
        if term is not None:
            term.kill()
        code = venue.stop()
    assert code == 0 and re.search(r"stopping on SIGINT", venue.term.text)
