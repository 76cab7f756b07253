"""Faults on demand: the state the streams, REST and WS API consult before doing the normal thing.

Counted faults (``count`` next occurrences) are consumed as they fire; a key of ``"*"`` matches
every symbol / stream / path. Rates (``diff_drop_rate``, ``error_rate``) draw from their own
seeded generator so that enabling them does not change the market model's stream.
Tests drive this through ``ctrader.sim.control.SimControl`` (thread-safe) or ``POST /sim/v1/control``.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

from ctrader.config.schema import SimFaultsConfig

ANY = "*"


@dataclass
class RequestFailure:
    """Answer the next ``remaining`` matching requests with ``status`` / ``code`` / ``msg``."""
    remaining: int
    status: int
    code: int
    msg: str
    match: str          # REST path prefix (/api/v3/order) or WS API method prefix (order.); "" = any
    execute: bool       # process the request first (the answer lies: execution status unknown)


class Faults:
    def __init__(self, cfg: SimFaultsConfig, seed: int) -> None:
        self._rng = random.Random(seed ^ 0xFA17)
        self.diff_drop_rate = cfg.diff_drop_rate
        self.error_rate = cfg.error_rate
        self.order_delay_ms = cfg.order_delay_ms
        self.clear()

    def clear(self) -> None:
        """Remove every scripted fault (the configured rates stay)."""
        self.drop_diffs: dict[str, int] = {}
        self.reorder_diffs: dict[str, int] = {}
        self.duplicates: dict[str, int] = {}
        self.stall_until = 0.0
        self.stall_drop = True
        self.stall_streams: frozenset[str] | None = None
        self.failures: list[RequestFailure] = []
        self.timeouts = 0
        self.timeout_delay_ms = 0
        self.rejects: list[list] = []               # [[remaining, msg], ...]
        self.delayed_orders = 0                     # next N order requests delayed by delay_ms
        self.delay_ms = 0

    @staticmethod
    def _take(counters: dict[str, int], key: str) -> bool:
        for k in (key, ANY):
            n = counters.get(k, 0)
            if n > 0:
                counters[k] = n - 1
                return True
        return False

    # --- market streams -----------------------------------------------------------------------

    def drop_diff(self, symbol: str) -> bool:
        if self._take(self.drop_diffs, symbol):
            return True
        return self.diff_drop_rate > 0 and self._rng.random() < self.diff_drop_rate

    def reorder_diff(self, symbol: str) -> bool:
        return self._take(self.reorder_diffs, symbol)

    def duplicate(self, stream: str) -> bool:
        return bool(self.duplicates) and self._take(self.duplicates, stream)

    def stalled(self, streams: set[str]) -> tuple[bool, bool]:
        """(stalled, drop): is output to a connection holding ``streams`` stopped right now?"""
        if not self.stall_until or time.monotonic() >= self.stall_until:
            return False, False
        if self.stall_streams is not None and not (streams & self.stall_streams):
            return False, False
        return True, self.stall_drop

    # --- requests -----------------------------------------------------------------------------

    def request_failure(self, name: str) -> RequestFailure | None:
        """The failure to answer request ``name`` (REST path or WS API method) with, if any."""
        for failure in self.failures:
            if failure.remaining > 0 and name.startswith(failure.match):
                failure.remaining -= 1
                return failure
        if self.error_rate > 0 and self._rng.random() < self.error_rate:
            return RequestFailure(1, 503, -1008, "Server is currently overloaded with other requests. "
                                  "Please try again in a few minutes.", "", False)
        return None

    def order_delay_s(self) -> float:
        if self.delayed_orders > 0:
            self.delayed_orders -= 1
            return (self.delay_ms + self.order_delay_ms) / 1000.0
        return self.order_delay_ms / 1000.0

    def order_timeout(self) -> float | None:
        """Seconds to wait before answering -1007 (the order is executed), or None."""
        if self.timeouts > 0:
            self.timeouts -= 1
            return self.timeout_delay_ms / 1000.0
        return None

    def order_reject(self) -> str | None:
        for entry in self.rejects:
            if entry[0] > 0:
                entry[0] -= 1
                return entry[1]
        return None
