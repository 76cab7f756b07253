"""Which cores each component of ``ctrader start --processes`` may run on.

On a machine with too few cores for every busy process to own one (2-3 usable cores), the
strategy gets a core to itself and spins on the md ring there; every other component shares
the remaining cores and blocks on its rings' doorbells. Why the strategy: its hot path (numba
kernels, the book cache, the onnxruntime session) is the largest working set on the
tick-to-order path, and every other process that ran on its core in between evicted it.
Measured with the e2e benchmark (40 s sessions, 5 processes on 2 vCPUs): no pinning, tick-to-
order p50 729-816 µs; strategy alone on a core, blocking 409 µs; spinning there 409-418 µs with
tick-to-intent 131-137 µs (156 µs blocking); strategy and executor sharing the second core 550 µs.

The executor, which shares its core with the feed, recorder and simulator, asks the scheduler
for a short time slice (0.1 ms, ``sched_setattr``; Linux >= 6.12, EEVDF): a woken task with a
shorter slice gets an earlier deadline, so the executor preempts whichever process holds the
shared core sooner when an intent arrives. Measured in three pairs of 40 s sessions, tick-to-
order p50 without / with: 342 / 292, 356 / 311, 321 / 319 µs (intent hop 78 / 62 µs in the
first pair): a small gain, near the run-to-run noise. Where the call is missing it is skipped.

With 4 or more cores every busy process spins on a core the OS picks (``wait.default_wait_strategy``)
and nothing is pinned; with ``[run] cpu_layout = "none"`` nothing is pinned either.

    plan = cpu_plan(["sim", "recorder", "executor", "strategy", "feed"], cores=[0, 1])
    plan.cpus["strategy"] == {1}; plan.owns_core("strategy") is True
    apply(plan, "feed")            # in the component's own process
"""
from __future__ import annotations

import ctypes
import logging
import os
import platform
import struct
from dataclasses import dataclass, field

from ctrader.core.wait import BUSY_PROCESSES

log = logging.getLogger(__name__)

DEDICATED = ("strategy",)        # in order of priority for a core of their own
SHORT_SLICE = ("executor",)      # on the shared cores, first to run when woken
SLICE_NS = 100_000               # the shortest custom slice Linux accepts
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}.get(platform.machine())


@dataclass(frozen=True)
class CpuPlan:
    cpus: dict[str, frozenset[int]] = field(default_factory=dict)   # component -> allowed cores
    dedicated: frozenset[str] = frozenset()                            # components alone on their core
    short_slice: frozenset[str] = frozenset()                          # components asking for SLICE_NS

    def owns_core(self, name: str) -> bool:
        return name in self.dedicated

    def describe(self) -> str:
        if not self.cpus:
            return "cores: placed by the OS"
        by_cores: dict[frozenset[int], list[str]] = {}
        for name, cores in self.cpus.items():
            by_cores.setdefault(cores, []).append(name)
        parts = [f"{'+'.join(names)} on cpu {','.join(map(str, sorted(cores)))}"
                 + (" (own core, spins)" if any(n in self.dedicated for n in names) else "")
                 for cores, names in by_cores.items()]
        if self.short_slice:
            parts.append(f"{'+'.join(sorted(self.short_slice))} with a {SLICE_NS // 1000} µs slice")
        return "cores: " + "; ".join(parts)


def usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def cpu_plan(components: list[str], layout: str = "auto", cores: list[int] | None = None) -> CpuPlan:
    """The plan for ``components`` on ``cores`` (default: this process's usable cores)."""
    cores = usable_cores() if cores is None else sorted(cores)
    if layout == "none" or len(cores) < 2 or len(cores) > BUSY_PROCESSES:
        return CpuPlan()
    alone = [n for n in DEDICATED if n in components][: len(cores) - 1]
    if not alone:
        return CpuPlan()
    own = {name: frozenset({cores[-1 - i]}) for i, name in enumerate(alone)}
    shared = frozenset(cores[: len(cores) - len(alone)])
    cpus = {name: own.get(name, shared) for name in components}
    return CpuPlan(cpus, frozenset(alone), frozenset(n for n in SHORT_SLICE if n in components))


def apply(plan: CpuPlan, name: str) -> None:
    """Restrict the calling process to its cores (best effort: a platform without affinity
    keeps running where the OS puts it)."""
    cores = plan.cpus.get(name)
    if not cores:
        return
    try:
        os.sched_setaffinity(0, cores)
    except (AttributeError, OSError) as exc:
        log.warning("%s: cannot pin to cpu %s: %s", name, sorted(cores), exc)
    if name in plan.short_slice and not request_slice(SLICE_NS):
        log.debug("%s: no custom scheduler slice on this kernel", name)


def request_slice(ns: int) -> bool:
    """Ask for a ``ns`` time slice for the calling thread (SCHED_OTHER, nice unchanged). False
    where the kernel or platform has no ``sched_setattr`` with custom slices."""
    if _SYS_SCHED_SETATTR is None:
        return False
    try:
        nice = os.getpriority(os.PRIO_PROCESS, 0)
        # struct sched_attr, SCHED_ATTR_SIZE_VER1: size, policy, flags, nice, priority, runtime
        # (the slice for SCHED_OTHER), deadline, period, util_min, util_max
        attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQII", 56, 0, 0, nice, 0, ns, 0, 0, 0, 0), 56)
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.syscall(_SYS_SCHED_SETATTR, 0, attr, 0) == 0
    except (OSError, AttributeError):
        return False
