"""The simulator's two clocks.

* The server clock (``server_ms``): wall-clock time plus an injectable skew. It stamps REST and
  WS API answers (``serverTime``, ``transactTime``, executionReport times) and decides whether a
  signed request's ``timestamp`` is inside its ``recvWindow`` -- so skewing it reproduces a venue
  whose clock disagrees with the client's.
* The market clock (``market_ms``): where the seeded model lives. It starts at ``epoch_ms`` (the
  wall clock at start when 0) and advances only by model steps, so the content of the market
  stream -- event times included when ``epoch_ms`` is fixed -- depends on the seed alone, not on
  how fast the event loop happens to run. At speed 1 it tracks the wall clock.
"""
from __future__ import annotations

import time


class SimClock:
    def __init__(self, epoch_ms: int = 0, skew_ms: int = 0) -> None:
        self.skew_ms = skew_ms
        self.epoch_ms = epoch_ms or int(time.time() * 1000)
        self.elapsed_ms = 0          # market time since the epoch, advanced by the model

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def server_us(self) -> int:
        return int(time.time() * 1_000_000) + self.skew_ms * 1000

    def market_ms(self) -> int:
        return self.epoch_ms + self.elapsed_ms + self.skew_ms
