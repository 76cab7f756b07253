"""REQUEST_WEIGHT budget for the feed's REST calls (depth snapshots), kept below the venue's limit.

Three signals, the most cautious wins:

* a token bucket refilled at ``budget_per_min / 60`` per second (what we *plan* to use);
* the venue's own count, ``X-MBX-USED-WEIGHT-1M`` on every response: other users of the same IP
  count too, so when it passes our budget we wait for the minute to roll over;
* ``429`` / ``418`` with ``Retry-After``: nothing is sent until it has passed.

    budget = WeightBudget(limit_per_min=6000, fraction=0.5)
    await budget.acquire(depth_weight(limit))       # sleeps while the bucket is empty or paused
    budget.observe_headers(resp.headers)            # after each response
    budget.back_off(retry_after_s)                  # on 429/418
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def depth_weight(limit: int) -> int:
    """GET /api/v3/depth weight by ``limit`` (rest-api.md, Order book)."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class WeightBudget:
    def __init__(self, limit_per_min: int = 6000, fraction: float = 0.5, clock=time.monotonic) -> None:
        self.limit_per_min = limit_per_min
        self.budget_per_min = max(1.0, limit_per_min * fraction)
        self.rate = self.budget_per_min / 60.0
        # A cold start rebuilds many books at once: allow a burst of a tenth of the minute's
        # budget (at least one 5000-level snapshot, 250), never more than the whole budget.
        self.capacity = min(self.budget_per_min, max(self.budget_per_min / 10.0, 250.0))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.paused_until = 0.0
        self.used_reported = 0
        self.backoffs = 0
        self.spent = 0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def delay_for(self, weight: int) -> float:
        """Seconds to wait before ``weight`` may be spent (0: now)."""
        self._refill()
        now = self.clock()
        if now < self.paused_until:
            return self.paused_until - now
        need = min(weight, self.capacity)
        if self.tokens >= need:
            return 0.0
        return (need - self.tokens) / self.rate

    def try_spend(self, weight: int) -> bool:
        if self.delay_for(weight) > 0.0:
            return False
        self.tokens -= min(weight, self.capacity)
        self.spent += weight
        return True

    async def acquire(self, weight: int) -> None:
        while True:
            delay = self.delay_for(weight)
            if delay <= 0.0 and self.try_spend(weight):
                return
            await asyncio.sleep(max(delay, 0.001))

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Follow the venue's count: above our budget, pause until its minute window rolls over."""
        used = headers.get("X-MBX-USED-WEIGHT-1M") or headers.get("X-MBX-USED-WEIGHT")
        if used is None:
            return
        try:
            self.used_reported = int(used)
        except ValueError:
            return
        if self.used_reported >= self.budget_per_min:
            wall = time.time()
            wait = 60.0 - (wall % 60.0) + 0.5
            self.paused_until = max(self.paused_until, self.clock() + wait)
            self.tokens = 0.0
            log.warning("venue reports %d request weight used this minute (budget %d): pausing snapshots %.1fs",
                        self.used_reported, self.budget_per_min, wait)

    def back_off(self, retry_after_s: float) -> None:
        """A 429/418 came back: send nothing before ``retry_after_s`` has passed."""
        self.backoffs += 1
        self.tokens = 0.0
        self.paused_until = max(self.paused_until, self.clock() + max(retry_after_s, 1.0))
