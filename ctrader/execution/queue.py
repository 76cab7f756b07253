"""Queue position of a resting order, for paper trading and replay.

A resting order joins the back of its price level: ahead of it is the quantity the book showed
there when it arrived. Only what trades at that price after it arrived can reach it once the
quantity ahead has traded. Level-2 data does not say where a cancellation came from, so how
much a shrinking level advances the order is a model (as in hftbacktest's queue models):

- ``RiskAverseQueue``: only trades advance it; a level that shrinks below the quantity thought
  to be ahead caps it there (what is no longer on the book cannot be ahead). It never fills
  sooner than the venue would.
- ``ProbQueue``: a decrease that trades do not explain is split between ahead and behind by the
  probability ``f(back) / (f(back) + f(front))`` with ``f(x) = x ** n``: near the front, most
  cancellations are behind us.

    queue = RiskAverseQueue()
    q = queue.join(ahead=level_qty)                     # the order rests
    queue.traded(q, qty)                                # a trade at our price, our side passive
    queue.level_changed(q, before=prev_qty, after=new_qty)
    done = queue.filled(q)                              # quantity that has reached us so far

Quantities are exact 1e-8 units (ints); the probabilistic model rounds its estimate down.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass
class QueuePos:
    ahead: int                   # quantity in front of the order (negative: that much reached it)
    traded_since_depth: int = 0  # traded at the level since the last depth change (counted once)


@runtime_checkable
class QueueModel(Protocol):
    name: str

    def join(self, ahead: int) -> QueuePos:
        """The order rests behind ``ahead`` units."""
        ...

    def traded(self, q: QueuePos, qty: int) -> None:
        """``qty`` traded at the order's price with the order's side passive."""
        ...

    def level_changed(self, q: QueuePos, before: int, after: int) -> None:
        """The visible quantity at the order's price went from ``before`` to ``after``."""
        ...

    def filled(self, q: QueuePos) -> int:
        """How much of the traded quantity has reached the order (>= 0)."""
        ...


class RiskAverseQueue:
    name = "risk_averse"

    def join(self, ahead: int) -> QueuePos:
        return QueuePos(max(ahead, 0))

    def traded(self, q: QueuePos, qty: int) -> None:
        q.ahead -= qty

    def level_changed(self, q: QueuePos, before: int, after: int) -> None:
        q.ahead = min(q.ahead, after)

    def filled(self, q: QueuePos) -> int:
        return max(-q.ahead, 0)


class ProbQueue:
    def __init__(self, power: float = 3.0) -> None:
        self.power = power
        self.name = f"prob:{power:g}"

    def join(self, ahead: int) -> QueuePos:
        return QueuePos(max(ahead, 0))

    def traded(self, q: QueuePos, qty: int) -> None:
        q.ahead -= qty
        q.traded_since_depth += qty

    def level_changed(self, q: QueuePos, before: int, after: int) -> None:
        change = before - after - q.traded_since_depth      # the trades were counted already
        q.traded_since_depth = 0
        if change <= 0:                                      # the level grew: new orders join behind
            q.ahead = min(q.ahead, after)
            return
        front = max(q.ahead, 0)
        back = max(before - front, 0)
        fb, ff = float(back) ** self.power, float(front) ** self.power
        p_behind = fb / (fb + ff) if fb + ff > 0 else 1.0
        estimate = front - (1.0 - p_behind) * change + min(back - p_behind * change, 0.0)
        if q.ahead >= 0:       # cancellations bring the order to the front at best: only trades fill it
            q.ahead = max(0, min(int(estimate), after))

    def filled(self, q: QueuePos) -> int:
        return max(-q.ahead, 0)


def queue_model(spec: str) -> QueueModel:
    """``risk_averse`` or ``prob`` / ``prob:N`` (the power, default 3)."""
    name, _, arg = spec.partition(":")
    if name == "risk_averse":
        return RiskAverseQueue()
    if name == "prob":
        return ProbQueue(float(arg) if arg else 3.0)
    raise ValueError(f"unknown queue model {spec!r}: risk_averse, prob or prob:N")


__all__ = ["ProbQueue", "QueueModel", "QueuePos", "RiskAverseQueue", "queue_model"]
