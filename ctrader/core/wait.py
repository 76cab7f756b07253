"""How a consumer (or a lossless producer) waits when there is nothing to do.

Three strategies, each an integer code plus one parameter so numba kernels and the Cython
extension can take them as plain arguments:

- ``SPIN``: busy-spin with the CPU's pause hint. Lowest latency, burns a whole core.
- ``SPIN_YIELD``: spin ``param`` times, then ``sched_yield`` on every further try. Close to
  spinning when a core is free, and gives the core away when another process needs it.
- ``SLEEP``: sleep with exponential back-off from 1 µs up to ``param`` µs. Nearly free in CPU,
  adds up to ``param`` µs of latency.

On this project's 2-core machines the feed, strategy and executor cannot each own a core, so the
default there is spin-then-yield; busy-spin is the default only when every busy process can
have a core of its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from numba import njit

from ctrader.core.atomics import cpu_relax, sched_yield, sleep_us

SPIN, SPIN_YIELD, SLEEP = 0, 1, 2
NAMES = {"spin": SPIN, "spin-yield": SPIN_YIELD, "sleep": SLEEP}
BUSY_PROCESSES = 3  # feed, strategy, executor all wait on rings


@dataclass(frozen=True)
class WaitStrategy:
    kind: int
    param: int

    @property
    def name(self) -> str:
        return next(n for n, k in NAMES.items() if k == self.kind)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_wait_strategy(cores: int | None = None) -> WaitStrategy:
    """Busy-spin only when every busy process can have its own core (plus one for the OS)."""
    cores = usable_cores() if cores is None else cores
    if cores > BUSY_PROCESSES:
        return WaitStrategy(SPIN, 0)
    return WaitStrategy(SPIN_YIELD, 200)


def wait_strategy(name: str) -> WaitStrategy:
    """Parse a config value: auto, spin, spin-yield or sleep."""
    if name == "auto":
        return default_wait_strategy()
    if name == "spin":
        return WaitStrategy(SPIN, 0)
    if name == "spin-yield":
        return WaitStrategy(SPIN_YIELD, 200)
    if name == "sleep":
        return WaitStrategy(SLEEP, 200)
    raise ValueError(f"unknown wait strategy {name!r}; choose auto, spin, spin-yield or sleep")


@njit(cache=True, nogil=True)
def wait_once(kind: int, param: int, attempt: int) -> None:
    """One step of waiting; ``attempt`` counts the consecutive empty tries (from 0)."""
    if kind == SPIN:
        cpu_relax()
    elif kind == SPIN_YIELD:
        if attempt < param:
            cpu_relax()
        else:
            sched_yield()
    else:
        delay = 1 << min(attempt, 20)
        sleep_us(min(delay, max(param, 1)))
