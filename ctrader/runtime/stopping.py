"""How a run stops: signals, stop levels, and children that outlive their supervisor.

Three rules, because a trading process that cannot be stopped is the worst defect it can have:

1. **Signal handlers only set a flag.** ``StopRequest.on_signal`` appends the signal number to a
   list and writes one byte into a self-pipe; the main loop waits on that pipe with ``select``
   and does the logging and the stopping. No lock and no ``multiprocessing`` primitive is touched
   from a handler: a ``multiprocessing.Event.set`` from a handler that interrupted the same
   thread's ``Event.wait`` deadlocks (``Condition.notify_all`` waits for the sleeper it
   interrupted), which is how Ctrl-C once failed to stop ``ctrader start``.
2. **A stop has levels**, written by the supervisor into each component's line of the health
   table (shared memory, no semaphore): ``ORDERLY`` (finish the work in hand: the executor
   cancels open orders and waits for the answers, the recorder drains its rings) and ``FAST``
   (a second Ctrl-C: the executor still sends its cancels, nobody drains). A component reads it
   through ``ComponentStop.is_set()`` / ``.fast`` from any of its threads.
3. **A child never outlives its supervisor.** Each child asks the kernel for a signal when its
   parent dies (``PR_SET_PDEATHSIG``, ``PARENT_DEATH_SIGNAL``) whose handler only marks the stop.
   An orphaned component then stops in the documented order on its own: it reports "stop" only
   once the components that stop before it (the feed first ... the simulator last) have stopped,
   and the last one out removes the run's shared memory. Children ignore SIGINT and SIGHUP: a
   terminal's Ctrl-C or hang-up reaches the supervisor too, which stops them in order.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

log = logging.getLogger("ctrader.stop")

RUN, ORDERLY, FAST = 0, 1, 2
LEVEL_NAMES = {RUN: "run", ORDERLY: "orderly", FAST: "fast"}
# SIGHUP: the terminal went away (its window closed, an ssh session dropped). Its default action
# kills the process, and the kernel sends it to every process of the terminal's foreground group
# when the session leader dies: without a handler, a child would die without cancelling its orders.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CHILD_BLOCKED_SIGNALS = (*STOP_SIGNALS, signal.SIGUSR2)     # until the child's handlers are in place


class StopFlag(Protocol):
    """What a component's entry function polls: ``ctx.stop``."""

    def is_set(self) -> bool:
        """True once the component should finish (any level)."""
        ...

    @property
    def fast(self) -> bool:
        """True when the stop is a fast one: skip draining, keep only what protects money."""
        ...

    def wait(self, timeout_s: float) -> bool:
        """Sleep until the stop is set or ``timeout_s`` passes; returns ``is_set()``."""
        ...


class StopRequest:
    """A stop asked for by signals (or by code), waited on by one main loop.

        request = StopRequest().install()        # SIGINT and SIGTERM now only set it
        while not request.wait(0.05): ...        # True once a stop was asked for
        request.count                            # 2 after a second Ctrl-C: stop fast
        request.uninstall()

    ``wait`` and ``sleep`` return early when a request arrives, so the loop reacts at once.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Signal numbers (from the handler) and reasons (from code), in arrival order. The
        # handler runs in the main thread between bytecodes: a list append is all it does.
        self.requests: list[int | str] = []
        self._previous: dict[int, object] = {}
        self._reported = 0

    # --- asking ------------------------------------------------------------------------------------

    def on_signal(self, signum: int, _frame=None) -> None:
        """The handler: a list append and a one-byte write, nothing that can block or lock."""
        self.requests.append(signum)
        self._poke()

    def request(self, reason: str) -> None:
        """A stop asked for by code (not a signal), e.g. ``"duration of 60 s reached"``."""
        self.requests.append(reason)
        self._poke()

    def _poke(self) -> None:
        if self._write_fd < 0:
            return              # closed: a late request is recorded, nobody waits any more
        try:
            os.write(self._write_fd, b"\0")
        except OSError:
            pass        # the pipe is full (poked many times already) or closed: the flag is set

    # --- reading -----------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """How many stops were asked for (signals and code alike)."""
        return len(self.requests)

    def is_set(self) -> bool:
        return bool(self.requests)

    @staticmethod
    def describe(request: int | str) -> str:
        return signal.Signals(request).name if isinstance(request, int) else request

    @property
    def reason(self) -> str:
        """What asked first: ``SIGINT``, ``SIGTERM``, or the reason given to ``request``."""
        return self.describe(self.requests[0]) if self.requests else ""

    def sleep(self, timeout_s: float, fds: Iterable[int] = ()) -> None:
        """Until a request arrives, one of ``fds`` is readable (a child's sentinel: it exited) or
        ``timeout_s`` passes. A request made just before the call wakes it too (its byte is
        still in the pipe)."""
        poller = select.poll()           # not select(): a long-lived process may hold fds >= 1024
        if self._read_fd >= 0:
            poller.register(self._read_fd, select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        try:
            poller.poll(max(0.0, timeout_s) * 1000.0)
        except InterruptedError:
            pass
        try:
            while self._read_fd >= 0 and os.read(self._read_fd, 512):
                pass
        except OSError:
            pass

    def wait(self, timeout_s: float, fds: Iterable[int] = ()) -> bool:
        """``sleep`` unless a stop was already asked for; returns whether one was."""
        if not self.requests:
            self.sleep(timeout_s, fds)
        return bool(self.requests)

    def new_since_last_call(self) -> list[int | str]:
        """The requests not reported yet, in order (the main loop logs each once)."""
        fresh = self.requests[self._reported:]
        self._reported += len(fresh)
        return fresh

    # --- handlers ----------------------------------------------------------------------------------

    def install(self, signals: Iterable[int] = STOP_SIGNALS) -> StopRequest:
        """Route ``signals`` to ``on_signal`` (main thread only, as Python requires)."""
        for sig in signals:
            self._previous[sig] = signal.signal(sig, self.on_signal)
        return self

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def close(self) -> None:
        """Handlers back and the pipe closed; what was asked stays readable (``requests``)."""
        self.uninstall()
        fds, self._read_fd, self._write_fd = (self._read_fd, self._write_fd), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)


class ThreadStop:
    """``ctx.stop`` of a component that runs as a thread of ``ctrader start`` (no --processes).
    Set by the main loop, never from a signal handler."""

    def __init__(self) -> None:
        self.level = RUN
        self._event = threading.Event()

    def set(self, level: int = ORDERLY) -> None:
        self.level = max(self.level, level)
        self._event.set()

    def is_set(self) -> bool:
        return self.level != RUN

    @property
    def fast(self) -> bool:
        return self.level >= FAST

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)


class ComponentStop:
    """``ctx.stop`` in a child process: the level the supervisor wrote into the health table, or
    the child's own stop (SIGTERM, its supervisor gone).

    When the supervisor is gone the child is on its own: ``is_set`` turns true only once every
    component that stops before this one has stopped (or ``orphan_wait_s`` passed), so that an
    orphaned run still winds down in order: the executor cancels while the simulator (or
    Binance) still answers, the recorder drains after the last record was written.
    """

    def __init__(self, read_level: Callable[[], int], supervisor_pid: int,
                 stops_before: Callable[[], bool] | None = None, orphan_wait_s: float = 20.0) -> None:
        self._read_level = read_level
        self.supervisor_pid = supervisor_pid
        self._stops_before = stops_before or (lambda: True)
        self._orphan_wait_s = orphan_wait_s
        self.own_level = RUN          # set by the signal handlers (plain attribute stores)
        self.parent_died = False
        self.orphaned_at = 0.0        # monotonic time we found the supervisor gone
        self._released = False

    def on_sigterm(self, _signum=None, _frame=None) -> None:
        """Handler: SIGTERM asks this component for an orderly stop, at once."""
        self.own_level = ORDERLY

    def on_parent_death(self, _signum=None, _frame=None) -> None:
        """Handler of ``PARENT_DEATH_SIGNAL``: the supervisor is gone (or going: the signal can
        come while ``getppid()`` still names it). Stop in order, on our own."""
        self.parent_died = True
        self.own_level = ORDERLY

    @property
    def orphaned(self) -> bool:
        return os.getppid() != self.supervisor_pid

    @property
    def level(self) -> int:
        return max(self._read_level(), self.own_level)

    def is_set(self) -> bool:
        level = self._read_level()
        if level != RUN:
            return True
        if self.own_level == RUN:
            return False
        return self._own_stop_due()

    @property
    def fast(self) -> bool:
        return self.level >= FAST

    def wait(self, timeout_s: float) -> bool:
        """Poll (every 10 ms: nothing here can be waited on across processes without a lock)."""
        deadline = time.monotonic() + timeout_s
        while not self.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.01, left))
        return True

    def _own_stop_due(self) -> bool:
        """A stop the child decided itself. For a SIGTERM with the supervisor alive it is due at
        once; orphaned, it waits for the components that stop before us."""
        if self._released or not (self.parent_died or self.orphaned):
            return True
        now = time.monotonic()
        if not self.orphaned_at:
            self.orphaned_at = now
            log.warning("supervisor (pid %d) is gone: stopping in order on our own", self.supervisor_pid)
        if self._stops_before() or now - self.orphaned_at > self._orphan_wait_s:
            self._released = True
        return self._released


# --- child process set-up ----------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1
# What the kernel sends a child when its supervisor dies: a signal of its own, not SIGTERM, so
# that a child can tell "my supervisor died" (stop in order, on our own) from "someone asked me
# to stop" even while ``getppid()`` still names the dying supervisor.
PARENT_DEATH_SIGNAL = signal.SIGUSR2


def die_with_parent(sig: int = PARENT_DEATH_SIGNAL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux). Returns
    whether the request was made."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class blocked_stop_signals:
    """``with blocked_stop_signals(): spawn()``: the child starts with the stop signals blocked
    (the mask survives exec) so that a Ctrl-C to the process group while it imports cannot kill
    it half-started; the child unblocks them once its own handlers are in place
    (``unblock_stop_signals``). Signals that arrive meanwhile for the parent are delivered to it
    when the block ends."""

    def __enter__(self) -> None:
        self._old = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_BLOCKED_SIGNALS)

    def __exit__(self, *exc) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self._old)


def unblock_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CHILD_BLOCKED_SIGNALS)


# --- the last one out ----------------------------------------------------------------------------

class RunLock:
    """A short exclusive ``flock`` on a file of the run, so that orphaned components decide
    one at a time who is the last one out."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> RunLock:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


# --- what a dead run left ---------------------------------------------------------------------------

SEM_PREFIX = "sem.mp-"


def mapped_shm_files() -> set[str]:
    """Names under /dev/shm that some process has mapped (from /proc/*/maps)."""
    names: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                for line in f:
                    at = line.find(b"/dev/shm/")
                    if at >= 0:
                        names.add(line[at + 9:].split(b" (deleted)")[0].strip().decode(errors="replace"))
        except OSError:
            continue
    return names


def cleanup_orphan_semaphores(shm_dir: str = "/dev/shm", min_age_s: float = 5.0) -> list[str]:
    """Remove the named semaphores ``multiprocessing`` left in ``shm_dir`` (``sem.mp-*``) that no
    live process has mapped: a semaphore in use is always mapped by its users, so one that
    nobody maps belongs to a process that died before it could unlink it. Younger files are
    left alone (their creator may be between creating and mapping)."""
    try:
        candidates = [n for n in os.listdir(shm_dir) if n.startswith(SEM_PREFIX)]
    except FileNotFoundError:
        return []
    if not candidates:
        return []
    in_use = mapped_shm_files()
    removed = []
    now = time.time()
    for name in candidates:
        path = os.path.join(shm_dir, name)
        try:
            if name in in_use or now - os.stat(path).st_mtime < min_age_s:
                continue
            os.unlink(path)
            removed.append(name)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                log.debug("cannot remove %s: %s", path, exc)
    return removed


__all__ = ["FAST", "ORDERLY", "RUN", "ComponentStop", "RunLock", "StopFlag", "StopRequest", "ThreadStop",
           "blocked_stop_signals", "cleanup_orphan_semaphores", "die_with_parent", "unblock_stop_signals"]
