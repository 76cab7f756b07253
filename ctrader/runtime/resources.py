"""The shared memory of one run: its rings and its health table, named and sized in one place.

    with RunResources.create(cfg, run_id) as res:   # the supervisor (or single-process mode)
        ...                                          # children: RunResources.names(run_id)
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ctrader.config import Config
from ctrader.core import ring_layout, shm
from ctrader.core.ring import Ring
from ctrader.core.topology import OBSERVERS, RING_SPECS, consumer_id, health_name, ring_name  # noqa: F401
from ctrader.runtime.health import HEALTH_MAGIC, HealthTable

COMPONENTS = ["monitor", "sim", "feed", "strategy", "executor", "recorder"]

def cleanup_stale() -> list[str]:
    """Remove the rings and health tables of runs whose owner died."""
    return shm.cleanup_stale((ring_layout.MAGIC, HEALTH_MAGIC))


def new_run_id() -> str:
    return f"r{os.getpid()}"


@dataclass
class RunResources:
    run_id: str
    rings: dict[str, Ring]
    health: HealthTable

    @classmethod
    def create(cls, cfg: Config, run_id: str, components: list[str] | None = None) -> "RunResources":
        rings: dict[str, Ring] = {}
        try:
            for key, (dtype, kind, capacity_key, consumers) in RING_SPECS.items():
                observers = OBSERVERS.get(key, ())
                count = consumers if isinstance(consumers, int) else len(consumers) + len(observers)
                rings[key] = Ring.create(ring_name(run_id, key), dtype, getattr(cfg.rings, capacity_key),
                                         kind, count)
                for name in observers:
                    rings[key].retire_consumer(consumer_id(key, name))
                if components is not None and not isinstance(consumers, int):
                    # A consumer that is not part of this run must not hold the producer back.
                    for index, name in enumerate(consumers):
                        if name not in components:
                            rings[key].retire_consumer(index)
            health = HealthTable.create(health_name(run_id), components or COMPONENTS)
        except BaseException:
            for ring in rings.values():
                ring.close()
            raise
        return cls(run_id, rings, health)

    def close(self) -> None:
        for ring in self.rings.values():
            ring.close()
        self.health.close()

    def __enter__(self) -> "RunResources":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
