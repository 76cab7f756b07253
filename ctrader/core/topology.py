"""The run's rings, declared once: which ring carries which record, who produces and who reads.

Every component (feed, strategy, executor, recorder, monitor) finds its rings and its consumer
slot here, so none of them depends on the runtime that creates the shared memory
(``runtime.resources``).
"""
from __future__ import annotations

from ctrader.core import shm
from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, ORDER_INTENT

# ring -> (record, kind, capacity key in [rings], consumers). Lossless rings name their
# consumers: each keeps its cursor across restarts under the same id.
RING_SPECS = {
    "md": (MD_EVENT, "broadcast", "md_capacity", 8),
    "intents": (ORDER_INTENT, "lossless", "intents_capacity", ("executor", "recorder")),
    "exec": (EXEC_EVENT, "lossless", "exec_capacity", ("strategy", "recorder")),
    "journal": (CANDIDATE, "lossless", "journal_capacity", ("recorder",)),
}
# Readers of a lossless ring that its producer never waits for: their slots follow the
# consumers' and are retired from the start, so the producer's slowest-cursor scan skips them.
# Such a reader polls (never sleeps on the doorbell, which would make every publish a wake
# call) and, lapped by the producer, counts what it lost and skips ahead, as a broadcast
# consumer does. The monitor follows the executions this way: a dead or slow monitor can
# never hold up the executor.
OBSERVERS = {
    "exec": ("monitor",),
}


def consumer_id(ring: str, component: str) -> int:
    """The fixed consumer index of ``component`` on a lossless ring (observers after consumers)."""
    consumers = RING_SPECS[ring][3]
    if component in consumers:
        return consumers.index(component)
    return len(consumers) + OBSERVERS[ring].index(component)


def ring_name(run_id: str, ring: str) -> str:
    return f"{shm.PREFIX}{run_id}.{ring}"


def health_name(run_id: str) -> str:
    return f"{shm.PREFIX}{run_id}.health"


__all__ = ["OBSERVERS", "RING_SPECS", "consumer_id", "health_name", "ring_name"]
