"""The strategy seams: what the engine calls on a strategy, and what replay and the strategy
process call on the engine.

Who implements what:

| protocol | implementations | called by |
| --- | --- | --- |
| ``Strategy`` | ``triangular.TriangularArbitrage``, ``cross_rate.CrossRateReversion``, ``maker_triangular.MakerTriangular`` | ``engine.StrategyEngine``, training (``replay.training``), the ML loop |
| ``DecisionSource`` | ``engine.StrategyEngine``, ``replay.driver.NullStrategy`` | ``replay.driver.ReplayEngine``, ``strategy.process`` |

A ``Strategy`` owns the market side of one kind of arbitrage: its books (a ``BookCache``), its
keys (what cooldown and in-flight tracking are per: triangle ids for triangular arbitrage), its
features (the model's inputs, by name: a model trained on other features is refused) and its
kernels. The decision rules (edge and score thresholds, cooldowns, group budget, group ids, the
intents) are the engine's, shared by every strategy (``ctrader.strategy.decide``).

Two ways to plug in, declared by ``fused``:

- ``fused = False``: ``scan`` applies records until one yields candidate rows and
  ``evaluation(rows)`` describes them (``triangular.Evaluation``); the engine decides in
  Python. Enough to start a new strategy, and what training uses.
- ``fused = True``: also ``scan_decide`` / ``complete_event`` / ``event_features``: the scan and
  the decisions of a whole batch run in one compiled call, returning to Python only to score
  with the model or to hand over intents (the live hot path of triangular arbitrage). The
  state arguments are the structured records of ``ctrader.strategy.state`` (``DecisionState``,
  ``EventRows``, ``EventOutput``), declared once.

A strategy is registered by name in ``ctrader.strategy.registry`` (``[strategy] name``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ctrader.market.books import BookCache


class Strategy(Protocol):
    name: str                      # the registry name ([strategy] name)
    strategy_id: int               # written into every candidate and intent
    features: tuple[str, ...]      # the model's inputs, in order
    n_legs: int                    # orders per taken candidate (a group)
    fused: bool                    # True: scan_decide / complete_event / event_features exist
    books: BookCache               # the books its kernels read (the engine applies md through scan)

    @property
    def n_keys(self) -> int:
        """How many keys (cooldown / in-flight units) the strategy has."""
        ...

    @property
    def max_rows(self) -> int:
        """Most candidate rows one market event can produce."""
        ...

    def warmup(self, full: bool = False) -> None:
        """Compile every kernel the live path uses before the market opens."""
        ...

    def scan(self, records: np.ndarray, start: int, n: int) -> tuple[int, int]:
        """Apply ``records[start:n]`` until one yields candidates: (next index, rows)."""
        ...

    def evaluation(self, n: int) -> Any:
        """The last scan's rows 0..n-1 (key, verdict, edge, size, pnl, features, legs, and
        ``closing``: None, or per row True when it closes a position the strategy holds; an
        optional ``rest_ns``: per row > 0 for orders that rest as LIMIT_MAKER that long, 0 for
        the engine's IOC orders)."""
        ...

    def on_taken(self, rows: np.ndarray, group_ids: np.ndarray) -> None:
        """The engine took ``rows`` of the last ``evaluation`` as groups ``group_ids``
        (generic path: a strategy that holds positions between groups notes their terms)."""
        ...

    def on_exec(self, records: np.ndarray) -> FollowUp | None:
        """EXEC_EVENT records of the executor (the engine has freed the keys of groups done):
        a strategy that holds positions between groups keeps them from the fills; one whose
        orders follow executions (a resting order's hedges) returns them (``FollowUp``)."""
        ...

    # --- optional: strategies that keep orders working (``maker_triangular``) -----------------
    #
    # ``bind_client_ids(fn)``: the engine's ``client_order_id(group_id, leg)``, to name orders
    # sent after the first; ``intents_of(ev, rows, score, group_ids, rec)``: the intents of the
    # taken rows instead of one IOC LIMIT order per leg; ``take_actions(rec)``: after each
    # ``scan``, the REPLACE / CANCEL intents of orders already working (sent with that record's).

    # --- fused strategies only (``fused = True``) --------------------------------------------

    def scan_decide(self, records: np.ndarray, start: int, end: int, dec: tuple, rows: tuple, has_model: bool,
                    out: tuple) -> tuple[int, int, int]:
        """Scan and decide from ``start``: (next index, rows, status: batch done, rows to score,
        intents written, candidate buffer full)."""
        ...

    def complete_event(self, records: np.ndarray, i: int, m: int, dec: tuple, rows: tuple, out: tuple) -> int:
        """Finish deciding record ``i``'s ``m`` rows once scored; nonzero when intents were written."""
        ...

    def event_features(self, m: int) -> np.ndarray:
        """The model inputs of the current event's ``m`` rows (float32, one row each)."""
        ...


@dataclass
class FollowUp:
    """What executions called for: intents to send at once (hedges of a resting order that
    filled, cancels of its rest) and groups that will send no more legs (their keys are free)."""
    intents: np.ndarray
    ended: list[int] = field(default_factory=list)


class DecisionSource(Protocol):
    """Market data in, candidates and intents out, executions back: what replay and the strategy
    process drive, one market event at a time."""

    def on_md_until(self, records: np.ndarray, start: int, end: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Apply ``records[start:end]``, stopping right after the first record that produced
        intents: (next index, CANDIDATE rows, ORDER_INTENT rows)."""
        ...

    def on_exec(self, records: np.ndarray) -> np.ndarray:
        """EXEC_EVENT records from the executor (legs done free their key): the ORDER_INTENT
        records they called for, to be sent before anything else (usually none)."""
        ...


__all__ = ["DecisionSource", "FollowUp", "Strategy"]
