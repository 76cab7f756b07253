r"""Running ``ctrader`` the way a user does, for tests: in a pseudo-terminal (``Terminal``: Ctrl-C
is the terminal's ^C) or detached with its output in a file (``Detached``: as a service runs it),
and reading what it says.

    term = Terminal(["--set", "sim.port=9999", "start", "--processes"], env_for(tmp_path))
    run_id, pids = started(term)              # from the supervisor's "started" line
    term.expect(r"\| orders [1-9]")            # wait for a line (a regex), with a deadline
    term.ctrl_c(); assert term.wait() == 0
"""
from __future__ import annotations

import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from ctrader.core import shm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(tmp_path, **extra) -> dict[str, str]:
    """The environment of a session under test: none of the caller's CTRADER_ settings, its own
    data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTRADER_")}
    env.update(CTRADER_DATA_DIR=str(tmp_path / "data"), CTRADER_MONITOR_PORT=str(free_port()), COLUMNS="250")
    env.update(extra)
    return env


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
    env.update(CTRADER_DATA_DIR=str(tmp_path / "data"), CTRADER_MONITOR_PORT=str(free_port()), COLUMNS="250")
    env.update(extra)
    return env


def started(term: Terminal) -> tuple[str, dict[str, int]]:
    """The run id and the pid of every component, from the supervisor's "started" line."""
    found = term.expect(r"run (\S+) started: (.*?); cores")
    pids = {name: int(pid) for name, pid in re.findall(r"(\w+)\[(\d+)\]", found.group(2))}
    return found.group(1), pids


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie nobody reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def all_gone(pids, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def no_shm_of(run_id: str) -> bool:
    return not [n for n in shm.list_segments() if run_id in n]
