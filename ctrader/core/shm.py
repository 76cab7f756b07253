"""Named POSIX shared-memory segments, without Python's resource tracker.

``multiprocessing.shared_memory`` registers every segment it opens with the resource tracker;
on Python 3.11 a process that merely *attaches* and exits gets the segment unlinked behind the
owner's back (ARCHITECTURE.md section 7). We map ``/dev/shm/<name>`` ourselves: the owner creates
and unlinks, everybody else only maps.

Every ctrader segment name starts with ``ctrader.`` and its first 64 bytes start with a magic
number and the owner's pid (see ``ring.py``), which is how ``cleanup_stale`` recognises segments
left behind by a crashed run.
"""
from __future__ import annotations

import mmap
import os
import struct

SHM_DIR = "/dev/shm"
PREFIX = "ctrader."


class SegmentError(RuntimeError):
    """A segment could not be created or attached."""


class Segment:
    """A mapped shared-memory segment. ``buf`` is a writable memoryview of the whole mapping."""

    def __init__(self, name: str, size: int, mm: mmap.mmap, owner: bool) -> None:
        self.name, self.size, self.owner = name, size, owner
        self._mmap = mm
        self.buf = memoryview(mm)

    @property
    def path(self) -> str:
        return os.path.join(SHM_DIR, self.name)

    def close(self) -> None:
        """Unmap now if nothing else refers to the mapping.

        A numpy view that still exists keeps the mapping alive (closing it under the view
        would turn the view into a wild pointer); it is unmapped when the last view goes.
        """
        if self._mmap is not None:
            try:
                self.buf.release()
                self._mmap.close()
            except BufferError:
                pass
            self._mmap = None

    def unlink(self) -> None:
        """Remove the name (owner only). Mapped views stay valid until closed."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "Segment":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self.owner:
            self.unlink()


def _check_name(name: str) -> None:
    if not name.startswith(PREFIX) or "/" in name:
        raise SegmentError(f"segment name {name!r} must start with {PREFIX!r} and contain no '/'")


def create(name: str, size: int) -> Segment:
    """Create a zero-filled segment; fails if the name exists (call ``cleanup_stale`` first)."""
    _check_name(name)
    path = os.path.join(SHM_DIR, name)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        raise SegmentError(f"shared memory {path} already exists: another run owns it, "
                           f"or a crashed run left it (ctrader cleans stale ones on start)") from None
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
    return Segment(name, size, mm, owner=True)


def attach(name: str) -> Segment:
    """Map an existing segment by name (never unlinks it)."""
    _check_name(name)
    path = os.path.join(SHM_DIR, name)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise SegmentError(f"no shared memory named {name!r} (is the owner running?)") from None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            raise SegmentError(f"shared memory {name!r} is empty (its owner is still creating it?)")
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return Segment(name, size, mm, owner=False)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_segments(prefix: str = PREFIX) -> list[str]:
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def owner_pid(name: str, magic: int) -> int | None:
    """The owner pid recorded in a ctrader segment header, or None if it is not ours."""
    try:
        with open(os.path.join(SHM_DIR, name), "rb") as fh:
            head = fh.read(64)
    except OSError:
        return None
    if len(head) < 64:
        return None
    found_magic, = struct.unpack_from("<Q", head, 0)
    pid, = struct.unpack_from("<Q", head, 56)
    return pid if found_magic == magic else None


def cleanup_stale(magics: int | tuple[int, ...], prefix: str = PREFIX) -> list[str]:
    """Remove segments under ``prefix`` whose header carries one of ``magics`` and whose owner
    process is gone (a crashed run). Returns the removed names."""
    magics = (magics,) if isinstance(magics, int) else magics
    removed = []
    for name in list_segments(prefix):
        pid = next((p for p in (owner_pid(name, m) for m in magics) if p is not None), None)
        if pid is not None and not pid_alive(pid):
            try:
                os.unlink(os.path.join(SHM_DIR, name))
                removed.append(name)
            except FileNotFoundError:
                pass
    return removed
