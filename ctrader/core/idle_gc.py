"""Python's garbage collector, run when a component has nothing to do instead of mid-order.

CPython's cyclic collector starts whenever allocations outnumber frees by 700, that is while a
process is busy, and stops the process for the whole collection. Measured in a 30 s e2e session
(five processes on two vCPUs), the executor made 162 young collections (56 µs on average, up to
0.9 ms), 15 middle ones (0.9 ms, up to 2.4 ms) and one full one (39 ms); the strategy made 135,
12 (up to 4.6 ms) and one (34 ms). Any of them that lands between a market frame and its order
adds to tick-to-order.

``IdleGC`` changes when, not whether, cycles are collected:

- ``start()`` (end of start-up) collects once and freezes what exists: the ~100,000 objects of
  imported modules, compiled kernels and warm-up live as long as the process, and no later
  collection traverses them;
- automatic collection is then off; the component's loop calls ``idle()`` when nothing is
  waiting, which runs the collection CPython would have run by then (its own thresholds and
  generation counts, one collection a call);
- ``busy()``, called once per loop round, collects anyway once the young generation passed
  ``hard_limit``: a process that never idles still collects, later;
- ``stop()`` gives the interpreter its automatic collection back.

Reference counting still frees every object that is not in a cycle at once: only cycles wait.

    gc_idle = IdleGC()
    gc_idle.start()                  # after warm-up
    while running:
        if not step():
            gc_idle.idle()
        gc_idle.busy()
    gc_idle.stop()
"""
from __future__ import annotations

import gc
import threading
import time

HARD_LIMIT = 20_000        # young objects (allocations - frees) before ``busy`` collects anyway


class IdleGC:
    def __init__(self, hard_limit: int = HARD_LIMIT) -> None:
        self.hard_limit = hard_limit
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]          # by generation
        self.forced = 0                       # collections ``busy`` had to make
        self.pause_ns_total = 0
        self.pause_ns_max = 0
        self.frozen = 0
        self.active = False        # in charge of the collector now
        self.started = False       # was in charge during this run (what the stats report)
        self._was_enabled = True

    def start(self) -> None:
        """Collect, freeze the survivors and take over: automatic collection off."""
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        self.frozen = gc.get_freeze_count()
        gc.disable()
        self.active = self.started = True

    def stop(self) -> None:
        """Automatic collection back on (as it was before ``start``); frozen objects stay frozen."""
        if self.active and self._was_enabled:
            gc.enable()
        self.active = False

    def due(self) -> int:
        """The generation CPython would collect now, or -1: the oldest whose count passed its threshold."""
        count = gc.get_count()
        if count[0] < self.thresholds[0]:
            return -1
        if count[2] >= self.thresholds[2]:
            return 2
        return 1 if count[1] >= self.thresholds[1] else 0

    def idle(self) -> bool:
        """Nothing is waiting: run the collection that is due, if any. True if one ran."""
        if not self.active:
            return False
        generation = self.due()
        if generation < 0:
            return False
        self._collect(generation)
        return True

    def busy(self) -> None:
        """Between rounds of work: collect only if the young generation passed ``hard_limit``."""
        if self.active and gc.get_count()[0] >= self.hard_limit:
            self.forced += 1
            self._collect(max(self.due(), 0))

    def _collect(self, generation: int) -> None:
        t0 = time.perf_counter_ns()
        gc.collect(generation)
        pause = time.perf_counter_ns() - t0
        self.collections[generation] += 1
        self.pause_ns_total += pause
        self.pause_ns_max = max(self.pause_ns_max, pause)

    def stats(self) -> dict:
        return {"mode": "idle" if self.started else "python", "frozen": self.frozen,
                "collections": list(self.collections), "forced": self.forced,
                "pause_ms_total": round(self.pause_ns_total / 1e6, 3),
                "pause_us_max": round(self.pause_ns_max / 1e3, 1)}


def own_process() -> bool:
    """True where a component has its process to itself (``--processes``: it runs on the main
    thread); false in a thread of single-process ``ctrader start``, which other components share."""
    return threading.current_thread() is threading.main_thread()
