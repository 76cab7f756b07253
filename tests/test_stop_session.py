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
import pty
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

from ctrader.config import load_config
from ctrader.core import shm
from ctrader.venue.signing import Signer

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

STOP_ORDER = ["feed", "strategy", "executor", "recorder", "sim"]
TRADING = {"sim.market.dislocations_per_min": "40", "rings.keep_warm_us": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Terminal:
    """``python -m ctrader ARGS`` in a pseudo-terminal: ``ctrl_c()`` types ^C, ``expect()`` waits
    for a pattern in what the program printed, ``wait()`` returns its exit code."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:                     # the child: a new session with the pty as its terminal
            try:
                os.execvpe(sys.executable, [sys.executable, "-m", "ctrader", *args], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self._out = bytearray()
        self._changed = threading.Condition()
        self._code: int | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:              # EIO: every holder of the terminal has exited
                chunk = b""
            with self._changed:
                if chunk:
                    self._out += chunk
                self._changed.notify_all()
            if not chunk:
                break
        _, status = os.waitpid(self.pid, 0)
        with self._changed:
            self._code = os.waitstatus_to_exitcode(status)
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return self._out.decode(errors="replace").replace("\r\n", "\n")

    def expect(self, pattern: str, timeout_s: float = 120.0, after: int = 0) -> re.Match:
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = regex.search(self._out.decode(errors="replace").replace("\r\n", "\n"), after)
                if found:
                    return found
                if self._code is not None or time.monotonic() > deadline:
                    raise AssertionError(f"no /{pattern}/ in the output:\n{self.text[-6000:]}")
                self._changed.wait(0.5)

    def ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")

    def wait(self, timeout_s: float = 180.0) -> int:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._code is None:
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    raise AssertionError(f"still running after {timeout_s:g} s:\n{self.text[-6000:]}")
                self._changed.wait(0.5)
            return self._code

    def kill(self) -> None:
        if self._code is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Detached(Terminal):
    """The same program with no terminal (as a service runs it): output to a file, its own
    session, so that killing it hangs up no terminal."""

    def __init__(self, args: list[str], env: dict[str, str], log_path) -> None:
        import subprocess

        self._log_path = log_path
        self._out = bytearray()
        self._changed = threading.Condition()
        self._code = None
        with open(log_path, "wb") as log:
            self._proc = subprocess.Popen([sys.executable, "-m", "ctrader", *args], env=env, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid = self._proc.pid
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        with open(self._log_path, "rb") as log:
            while True:
                chunk = log.read()
                code = self._proc.poll()
                with self._changed:
                    self._out += chunk
                    self._changed.notify_all()
                if not chunk:
                    if code is not None and self._writers_gone():
                        break
                    time.sleep(0.05)
        with self._changed:
            self._code = self._proc.returncode
            self._changed.notify_all()

    def _writers_gone(self) -> bool:
        """Nobody else (the children) still has the log open."""
        target = os.path.realpath(self._log_path)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if int(pid) == os.getpid():
                continue
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    if os.path.realpath(f"/proc/{pid}/fd/{fd}") == target:
                        return False
            except OSError:
                continue
        return True

    def ctrl_c(self) -> None:
        os.kill(self.pid, signal.SIGINT)


def _env(tmp_path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTRADER_")}
    env.update(CTRADER_DATA_DIR=str(tmp_path / "data"), COLUMNS="250", **extra)
    return env


def _sets(port: int, **more) -> list[str]:
    out = []
    for key, value in {"sim.port": str(port), **TRADING, **more}.items():
        out += ["--set", f"{key}={value}"]
    return out


def _started(term: Terminal) -> tuple[str, dict[str, int]]:
    """The run id and the pid of every component, from the supervisor's "started" line."""
    found = term.expect(r"run (\S+) started: (.*?); cores")
    pids = {name: int(pid) for name, pid in re.findall(r"(\w+)\[(\d+)\]", found.group(2))}
    return found.group(1), pids


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _all_gone(pids, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(_gone(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def _no_shm_of(run_id: str) -> bool:
    return not [n for n in shm.list_segments() if run_id in n]


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
    term = Terminal(["--log-level", "INFO", *_sets(_free_port()), "start", "--processes", "--status-every", "1"],
                    _env(tmp_path))
    try:
        run_id, pids = _started(term)
        _wait_for_trading(term)
        term.ctrl_c()
        assert term.wait() == 0
    finally:
        term.kill()
    text = term.text
    assert re.search(r"ctrader\.supervisor: stopping on SIGINT$", text, re.M)
    _stopped_in_order(text)
    assert "stopped (orderly stop) on SIGINT" in text
    assert _all_gone(pids.values()) and _no_shm_of(run_id)


def test_a_second_ctrl_c_stops_fast_with_exit_code_130(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(_free_port()), "start", "--processes", "--status-every", "1"],
                    _env(tmp_path))
    try:
        run_id, pids = _started(term)
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
    assert _all_gone(pids.values()) and _no_shm_of(run_id)


def test_sigterm_to_the_supervisor_stops_in_order(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(_free_port()), "start", "--processes", "--status-every", "1"],
                    _env(tmp_path))
    try:
        run_id, pids = _started(term)
        _wait_for_trading(term)
        os.kill(term.pid, signal.SIGTERM)
        assert term.wait() == 0
    finally:
        term.kill()
    assert re.search(r"ctrader\.supervisor: stopping on SIGTERM$", term.text, re.M)
    _stopped_in_order(term.text)
    assert _all_gone(pids.values()) and _no_shm_of(run_id)


def test_children_of_a_killed_supervisor_stop_on_their_own(tmp_path):
    term = Detached(["--log-level", "INFO", *_sets(_free_port()), "start", "--processes", "--status-every", "1"],
                    _env(tmp_path), tmp_path / "session.log")
    try:
        run_id, pids = _started(term)
        _wait_for_trading(term)
        os.kill(term.pid, signal.SIGKILL)
        assert term.wait() == -signal.SIGKILL
        assert _all_gone(pids.values())
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
    assert _no_shm_of(run_id)


def test_ctrl_c_stops_a_session_of_threads(tmp_path):
    term = Terminal(["--log-level", "INFO", *_sets(_free_port()), "start", "--threads", "--status-every", "1"],
                    _env(tmp_path))
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
    term = Terminal(["--log-level", "INFO", *_sets(_free_port()), "record", "--processes", "--status-every", "1"],
                    _env(tmp_path))
    try:
        run_id, pids = _started(term)
        term.expect(r"\| stored [1-9]")
        term.ctrl_c()
        assert term.wait() == 0
    finally:
        term.kill()
    _stopped_in_order(term.text, ["feed", "recorder", "sim"])
    assert _all_gone(pids.values()) and _no_shm_of(run_id)


# --- live, against a simulator of its own --------------------------------------------------------------

class Venue:
    """``ctrader sim`` in its own terminal, and signed REST queries to it as the demo account."""

    def __init__(self, tmp_path) -> None:
        self.port = _free_port()
        # Orders are held 2.5 s before the venue takes them: legs priced for a dislocation
        # (1.5 s long) land after it and rest as GTC orders, so that there are open orders to cancel.
        self.term = Terminal(["--set", "sim.faults.order_delay_ms=2500", *_sets(self.port), "sim"], _env(tmp_path))
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
        return Detached(args, _env(tmp_path), tmp_path / "session.log")
    return Terminal(args, _env(tmp_path))


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
        run_id, pids = _started(term)
        _wait_for_open_orders(venue)
        if how == "ctrl_c":
            term.ctrl_c()
            assert term.wait() == 0
            _stopped_in_order(term.text, STOP_ORDER[:-1])
        else:
            os.kill(term.pid, signal.SIGKILL)
            term.wait()
        assert _all_gone(pids.values())
        if how != "terminal_closed":
            assert re.search(r"executor\[\d+\] ctrader\.execution\.engine: cancelling \d+ open orders", term.text)
        assert venue.open_orders() == []
        assert _no_shm_of(run_id)
    finally:
        if term is not None:
            term.kill()
        code = venue.stop()
    assert code == 0 and re.search(r"stopping on SIGINT", venue.term.text)
