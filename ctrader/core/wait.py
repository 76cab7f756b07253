"""How a consumer (or a lossless producer) waits when there is nothing to do.

Three strategies, each an integer code plus one parameter so numba kernels and the Cython
extension can take them as plain arguments:

- ``SPIN``: busy-spin with the CPU's pause hint. Lowest latency, burns a whole core.
- ``SPIN_YIELD``: spin ``param`` times, then ``sched_yield`` on every further try. Close to
  spinning when a core is free, and gives the core away when another process needs it.
- ``SLEEP``: sleep with exponential back-off from 1 µs up to ``param`` µs. Nearly free in CPU,
  adds up to ``param`` µs of latency.
- ``BLOCK``: spin ``param`` times, then sleep in the kernel on the ring's doorbell (a futex the
  producer rings only when a consumer sleeps, see ``ring_layout.H_BELL``). Free in CPU while
  idle and woken within microseconds of a publish. Where there is no doorbell to sleep on (a
  lossless producer waiting for room), it waits like ``SLEEP``.

On this project's 2-core machines the feed, strategy and executor cannot each own a core, so the
default there is BLOCK; busy-spin is the default only when every busy process can have a core
of its own. Measured here (Firecracker VM, 2 vCPUs): a futex wake reaches the other process in
3 µs p50 / 10-40 µs p99, while even a 1 µs ``nanosleep`` lasts 16 µs (75 µs with the default
timer slack), so a polling sleeper adds tens of µs per hop and ~50k context switches/s; a
yielding spinner (SPIN_YIELD) gave p99 7-67 ms in five-process sessions, because it still holds
its core and the process that has work waits for a scheduler tick.

    wait = wait_strategy(cfg.rings.wait)     # in the thread that will wait
    consumer = ring.consumer(wait=wait)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from numba import njit

from ctrader.core.atomics import cpu_relax, sched_yield, sleep_us

SPIN, SPIN_YIELD, SLEEP, BLOCK = 0, 1, 2, 3
NAMES = {"spin": SPIN, "spin-yield": SPIN_YIELD, "sleep": SLEEP, "block": BLOCK}
BUSY_PROCESSES = 3  # feed, strategy, executor all wait on rings
SLEEP_MAX_US = 50           # a sleeping consumer's longest nap (back-off from 1 µs)
BLOCK_SPINS = 64            # empty polls (~2-4 µs) before a BLOCK consumer sleeps on the doorbell
TIMER_SLACK_NS = 1_000      # see precise_sleeps
_PR_SET_TIMERSLACK = 29


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
    """Busy-spin only when every busy process can have its own core (plus one for the OS);
    otherwise block on the ring's doorbell, giving the core to whichever process has work."""
    cores = usable_cores() if cores is None else cores
    if cores > BUSY_PROCESSES:
        return WaitStrategy(SPIN, 0)
    return WaitStrategy(BLOCK, BLOCK_SPINS)


def wait_strategy(name: str, owns_core: bool = False) -> WaitStrategy:
    """Parse a config value: auto, spin, spin-yield, sleep or block. ``auto`` spins in a process
    that has a core to itself (``owns_core``, see ``ctrader.runtime.cpus``).

    Called by a component in the thread that will wait; a sleeping strategy also shrinks that
    thread's timer slack (``precise_sleeps``), or every sleep would last at least 50 µs."""
    if name == "auto":
        chosen = WaitStrategy(SPIN, 0) if owns_core else default_wait_strategy()
    elif name == "spin":
        chosen = WaitStrategy(SPIN, 0)
    elif name == "spin-yield":
        chosen = WaitStrategy(SPIN_YIELD, 200)
    elif name == "sleep":
        chosen = WaitStrategy(SLEEP, SLEEP_MAX_US)
    elif name == "block":
        chosen = WaitStrategy(BLOCK, BLOCK_SPINS)
    else:
        raise ValueError(f"unknown wait strategy {name!r}; choose auto, spin, spin-yield, sleep or block")
    if chosen.kind in (SLEEP, BLOCK):
        precise_sleeps()
    return chosen


def precise_sleeps(slack_ns: int = TIMER_SLACK_NS) -> bool:
    """Let the calling thread's short sleeps end on time (Linux ``PR_SET_TIMERSLACK``).

    Linux may delay a sleeping thread's wake-up by its timer slack (50 µs by default) to batch
    wake-ups; a consumer sleeping 1-50 µs between polls would otherwise wait 50-100 µs each
    time. Returns False where the call is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(slack_ns), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


@njit(cache=True, nogil=True)
def wait_once(kind: int, param: int, attempt: int) -> None:
    """One step of waiting without a doorbell; ``attempt`` counts the consecutive empty tries
    (from 0). BLOCK spins ``param`` times, then sleeps like SLEEP."""
    if kind == SPIN:
        cpu_relax()
    elif kind == SPIN_YIELD:
        if attempt < param:
            cpu_relax()
        else:
            sched_yield()
    elif kind == BLOCK and attempt < param:
        cpu_relax()
    else:
        delay = 1 << min(max(attempt - (param if kind == BLOCK else 0), 0), 20)
        sleep_us(min(delay, SLEEP_MAX_US if kind == BLOCK else max(param, 1)))
