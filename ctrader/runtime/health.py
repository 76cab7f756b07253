"""A shared-memory table where every child process reports that it is alive.

One 64-byte line per component: pid, last heartbeat (CLOCK_MONOTONIC ns), state, a few
counters the supervisor shows in its status line, and the stop level the supervisor asks of the
component (``ctrader.runtime.stopping``: run, orderly, fast). Children write their own line
except the stop word; the supervisor writes only stop words. Plain Python stores are fine here:
nobody spins on these words, they are polled (the stop word once per component loop). After the
lines, the components' names (NAME_BYTES each), so that a reader that was not told them (the
monitor, ``HealthTable.open``) can find its way.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ctrader.core import shm

HEALTH_MAGIC = 0x4354524448454C54   # "CTRDHELT"; shares the ring header's first-line layout
WORDS = 8                            # one cache line per component
HEADER_WORDS = 8
# Word offsets inside a component's line.
PID, BEAT_NS, STATE, RESTARTS, EVENTS, ERRORS, STOP = 0, 1, 2, 3, 4, 5, 6
STARTING, RUNNING, STOPPED, FAILED = 0, 1, 2, 3
STATE_NAMES = {STARTING: "starting", RUNNING: "running", STOPPED: "stopped", FAILED: "failed"}
NAME_BYTES = 32                      # a component's name, NUL-padded, after the lines


class HealthTable:
    """Owner side: ``HealthTable.create(name, components)``; children use ``HealthTable.attach``."""

    def __init__(self, segment: shm.Segment, components: list[str]) -> None:
        self.segment = segment
        self.components = components
        self.words = np.frombuffer(segment.buf, np.uint64, HEADER_WORDS + WORDS * len(components))

    @classmethod
    def create(cls, name: str, components: list[str]) -> "HealthTable":
        lines = 8 * (HEADER_WORDS + WORDS * len(components))
        seg = shm.create(name, lines + NAME_BYTES * len(components))
        for i, component in enumerate(components):
            raw = component.encode()[:NAME_BYTES]
            seg.buf[lines + i * NAME_BYTES: lines + i * NAME_BYTES + len(raw)] = raw
        table = cls(seg, components)
        table.words[7] = os.getpid()          # owner pid at byte 56, as in ring headers
        table.words[1] = len(components)
        table.words[0] = HEALTH_MAGIC
        return table

    @classmethod
    def attach(cls, name: str, components: list[str]) -> "HealthTable":
        return cls(shm.attach(name), components)

    @classmethod
    def open(cls, name: str) -> "HealthTable":
        """Attach, reading the components' names from the table itself (readers that were not
        told them: the monitor, ``ctrader status``)."""
        seg = shm.attach(name)
        header = np.frombuffer(seg.buf, np.uint64, HEADER_WORDS)
        if int(header[0]) != HEALTH_MAGIC:
            del header
            seg.close()
            raise shm.SegmentError(f"{name} is not a ctrader health table")
        count = int(header[1])
        del header
        lines = 8 * (HEADER_WORDS + WORDS * count)
        names = [bytes(seg.buf[lines + i * NAME_BYTES: lines + (i + 1) * NAME_BYTES]).rstrip(b"\0").decode()
                 for i in range(count)]
        return cls(seg, names)

    def slot(self, component: str) -> "HealthSlot":
        return HealthSlot(self.words, HEADER_WORDS + WORDS * self.components.index(component))

    def _base(self, component: str) -> int:
        return HEADER_WORDS + WORDS * self.components.index(component)

    def request_stop(self, component: str, level: int) -> None:
        """Ask ``component`` to stop (``stopping.ORDERLY`` or ``FAST``); never lowers a level."""
        base = self._base(component)
        if level > int(self.words[base + STOP]):
            self.words[base + STOP] = level

    def is_down(self, component: str) -> bool:
        """The component has stopped (or failed), or its process is gone, or it never started."""
        base = self._base(component)
        state = int(self.words[base + STATE])
        pid = int(self.words[base + PID])
        return state in (STOPPED, FAILED) or pid == 0 or not shm.pid_alive(pid)

    def snapshot(self) -> dict[str, dict]:
        now = time.monotonic_ns()
        out = {}
        for name in self.components:
            base = HEADER_WORDS + WORDS * self.components.index(name)
            beat = int(self.words[base + BEAT_NS])
            out[name] = {"pid": int(self.words[base + PID]),
                         "state": STATE_NAMES.get(int(self.words[base + STATE]), "?"),
                         "beat_age_s": (now - beat) / 1e9 if beat else None,
                         "restarts": int(self.words[base + RESTARTS]),
                         "events": int(self.words[base + EVENTS]), "errors": int(self.words[base + ERRORS])}
        return out

    def close(self) -> None:
        self.words = None
        self.segment.close()
        if self.segment.owner:
            self.segment.unlink()


class HealthSlot:
    """A child's own line: call ``beat()`` from its main loop (cheap: two stores)."""

    def __init__(self, words: np.ndarray, base: int) -> None:
        self._words = words
        self._base = base

    def started(self) -> None:
        """The process is up; it is "starting" (warming up JIT kernels, connecting) until its
        first ``beat()``, and the supervisor gives that phase a longer timeout."""
        self._words[self._base + PID] = os.getpid()
        self._words[self._base + STATE] = STARTING
        self._words[self._base + BEAT_NS] = time.monotonic_ns()

    def beat(self, events: int | None = None) -> None:
        self._words[self._base + BEAT_NS] = time.monotonic_ns()
        self._words[self._base + STATE] = RUNNING
        if events is not None:
            self._words[self._base + EVENTS] = events

    def stop_level(self) -> int:
        """The stop level the supervisor asks of this component (0: keep running)."""
        return int(self._words[self._base + STOP])

    def error(self) -> None:
        self._words[self._base + ERRORS] += 1

    def stopped(self, failed: bool = False) -> None:
        self._words[self._base + STATE] = FAILED if failed else STOPPED

    def add_restart(self) -> None:
        self._words[self._base + RESTARTS] += 1
        self._words[self._base + STOP] = 0
        self._words[self._base + STATE] = STARTING
        self._words[self._base + BEAT_NS] = 0
