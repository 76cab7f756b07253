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

import logging
import os
import threading

from ctrader.core import proclock

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
            path = os.path.join(directory, LOCK_NAME)
            old_pid, old_cmd = proclock.read_holder(path)
            try:
                fd = proclock.take(path)
            except proclock.Held as exc:
                raise StoreLockedError(directory, exc.pid, exc.cmdline) from None
            if old_pid and old_pid != os.getpid():
                log.info("took over the store lock of %s left by pid %d (%s), which is gone",
                         directory, old_pid, old_cmd)
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
            proclock.give_back(self._fd)
            self._fd = -1
