"""One process at a time: an exclusive ``flock`` on a lock file that names its holder.

The holder's pid and command line are written into the file, so that a second process gets an
error naming who holds it. The kernel drops the lock when its holder dies (even by SIGKILL):
the lock of a dead process is simply taken over, never left stale.

    fd = take(path)            # raises Held(path, pid, cmdline) while another process holds it
    ...
    give_back(fd)
"""
from __future__ import annotations

import fcntl
import os
import sys


class Held(RuntimeError):
    """Another process holds the lock file ``path``."""

    def __init__(self, path: str, pid: int | None, cmdline: str) -> None:
        self.path, self.pid, self.cmdline = path, pid, cmdline
        super().__init__(f"{path} is held by {self.holder}")

    @property
    def holder(self) -> str:
        who = f"pid {self.pid}" if self.pid else "another process"
        return f"{who} ({self.cmdline or 'command line unknown'})"


def take(path: str) -> int:
    """Lock ``path`` (created if missing) for this process and write our pid and command line
    into it; returns the descriptor that holds the lock. Raises ``Held`` naming the holder."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid, cmdline = read_holder(path)
        raise Held(path, pid, cmdline or (cmdline_of(pid) if pid else "")) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n{' '.join(sys.argv) or sys.executable}\n".encode(), 0)
    return fd


def give_back(fd: int) -> None:
    """Release a lock from ``take``; the file then names no one."""
    try:
        os.ftruncate(fd, 0)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_holder(path: str) -> tuple[int | None, str]:
    """(pid, command line) written by the last holder of ``path``."""
    try:
        with open(path) as f:
            first, _, rest = f.read().partition("\n")
        return int(first), rest.strip()
    except (OSError, ValueError):
        return None, ""


def cmdline_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
