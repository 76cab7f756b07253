"""One process at a time on an embedded store directory.

chDB refuses a second process on the same directory with an opaque "Error initializing
EmbeddedServer". We take an ``fcntl`` lock on ``{store_dir}/.ctrader-store.lock`` first and write
our pid and command line into it, so a second opener gets an error that names the holder. The
kernel drops the lock when its holder dies, so the lock of a dead process is simply taken over
(the file still names it; we log that we took it over).

Inside one process the lock is shared: clickhouse-connect allows several clients on the same
engine path in a process, so acquiring twice only counts references.

    lock = StoreLock.acquire("/data/store")    # raises StoreLockedError naming the holder
    ...
    lock.release()
"""
from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

LOCK_NAME = ".ctrader-store.lock"


class StoreLockedError(RuntimeError):
    """Another process holds the embedded store."""

    def __init__(self, path: str, pid: int | None, cmdline: str) -> None:
        self.path, self.pid, self.cmdline = path, pid, cmdline
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"the embedded store {path} is in use by {who} ({cmdline or 'command line unknown'}); "
            f"the embedded engine admits one process at a time: stop that process, or point "
            f"[store] url at a ClickHouse server")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def read_holder(lock_path: str) -> tuple[int | None, str]:
    """(pid, command line) written by the last holder of ``lock_path``."""
    try:
        with open(lock_path) as f:
            first, _, rest = f.read().partition("\n")
        return int(first), rest.strip()
    except (OSError, ValueError):
        return None, ""


class StoreLock:
    _held: dict[str, StoreLock] = {}
    _guard = threading.Lock()

    def __init__(self, directory: str, fd: int) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self._fd = fd
        self._refs = 1

    @classmethod
    def acquire(cls, directory: str) -> StoreLock:
        directory = os.path.realpath(directory)
        with cls._guard:
            held = cls._held.get(directory)
            if held is not None:
                held._refs += 1
                return held
            os.makedirs(directory, exist_ok=True)
            path = os.path.join(directory, LOCK_NAME)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid, cmdline = read_holder(path)
                raise StoreLockedError(directory, pid, cmdline or (_cmdline(pid) if pid else "")) from None
            old_pid, old_cmd = read_holder(path)
            if old_pid and old_pid != os.getpid():
                log.info("took over the store lock of %s left by pid %d (%s), which is gone",
                         directory, old_pid, old_cmd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n{' '.join(sys.argv) or sys.executable}\n".encode(), 0)
            lock = cls(directory, fd)
            cls._held[directory] = lock
            return lock

    def release(self) -> None:
        with self._guard:
            if self._fd < 0:
                return
            self._refs -= 1
            if self._refs > 0:
                return
            self._held.pop(self.directory, None)
            try:
                os.ftruncate(self._fd, 0)   # nobody holds it now: the file names no one
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
                self._fd = -1
