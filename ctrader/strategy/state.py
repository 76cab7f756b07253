"""The decision kernels' parameters and state, declared once as numpy structured dtypes.

The engine's decision rules (``ctrader.strategy.decide``) and every strategy's fused kernel
read and write these by field name (``p.min_edge``, ``st.n_in_flight``, ``keys[k].busy``,
``groups[g].key``), as ``ctrader.core.records`` declares the ring records::

    dec = DecisionState(cfg.strategy, n_keys=n_triangles, first_group=1, strategy_id=1, n_legs=3,
                        tif=int(TimeInForce.IOC), order_type=int(OrderType.LIMIT))
    dec.arrays          # what a kernel is handed (a plain tuple, see below)
    d = DecisionArrays(*dec_tuple)                  # first line of a strategy's entry kernel
    p, st = d.params[0], d.state[0]                 # numba records: writes go to the arrays

What lives where:

- ``DECISION_PARAMS`` (one record): the thresholds and limits of ``[strategy]``, in the units the
  kernels compare (edge as a fraction, times in ns), and the constants of this strategy's
  intents (id, legs, time in force, order type).
- ``DECISION_STATE`` (one record): the group id counter, the in-flight and fire-window counts,
  the counters the engine reports, the decision count per ``Decision`` and the two latency
  rings (fixed sizes, so they sit inside the record).
- ``KEY_STATE`` (one record per key, e.g. per triangle): the group in flight, when it last
  fired, whether a SKIP_RISK of the current run was journaled.
- ``IN_FLIGHT_GROUP`` (up to ``max_groups_in_flight`` records): the groups with legs open.
- ``fires``: start times of the groups fired in the window (a ring, ``max_groups_per_10s``).

The last three have sizes that come from the universe and the configuration, so they are
arrays of their own; ``DecisionArrays`` groups the five. Kernels are handed the *plain tuple*
(``DecisionState.arrays``) and make the named tuple inside: numba types a plain tuple of arrays
from Python in its C fast path, a named tuple through Python (~0.6 µs more per call measured
here, on the path from a price to an order). Inside numba the named tuple costs nothing.

``EventRows`` (per-row work of one market event) and ``EventOutput`` (the journal rows and
intents a kernel writes) are handed over the same way.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ctrader.core.records import Decision

NEVER = -(1 << 62)                 # "never fired": any cooldown has long passed
WINDOW_NS = 10_000_000_000         # the group budget's window (``max_groups_per_10s``)
LATENCY_WINDOW = 4096              # samples kept per latency ring
N_DECISIONS = max(Decision) + 1

DECISION_PARAMS = np.dtype([
    ("min_edge", np.float64),              # net edge a candidate needs (fraction, not bp)
    ("min_score", np.float64),             # model score a candidate needs
    ("cooldown_ns", np.int64),             # after a key fired, before it fires again
    ("inflight_timeout_ns", np.int64),     # a group with legs unreported this long is released
    ("max_groups_per_event", np.int64),
    ("max_groups_in_flight", np.int64),
    ("max_groups_per_window", np.int64),   # groups started within window_ns (event time)
    ("window_ns", np.int64),
    ("strategy_id", np.int64),             # written into every candidate and intent
    ("n_legs", np.int64),
    ("tif", np.int64),                     # TimeInForce of the leg orders
    ("order_type", np.int64),              # OrderType of the leg orders
    ("group_step", np.int64),              # group ids go next_group, +step, ...: strategies side by
                                           # side (``strategy.several``) take every n-th id each
], align=True)

DECISION_STATE = np.dtype([
    ("next_group", np.int64),              # the group id the next fire takes
    ("n_in_flight", np.int64),             # rows of the in-flight group table in use
    ("fire_head", np.int64),               # oldest entry of the ``fires`` ring
    ("fire_n", np.int64),                  # entries of the ``fires`` ring in use
    ("timed_out", np.int64),               # groups released by the in-flight timeout
    ("taken", np.int64),                   # candidates TAKEN (groups fired)
    ("candidates", np.int64),              # candidate rows decided
    ("unjournaled", np.int64),             # SKIP_RISK rows not journaled (the flood), still decided
    ("groups_done", np.int64),             # groups whose legs all reported done
    ("t0", np.int64),                      # clock when the current event's first candidate was evaluated
    ("lat_n", np.int64),                   # decision latency samples written (ring ``lat``)
    ("t2i_n", np.int64),                   # tick-to-intent samples written (ring ``t2i``)
    ("decisions", np.int64, (N_DECISIONS,)),   # rows decided, per Decision
    ("lat", np.int64, (LATENCY_WINDOW,)),      # decision latency per event with candidates, ns
    ("t2i", np.int64, (LATENCY_WINDOW,)),      # md receive -> intents built, ns
], align=True)

KEY_STATE = np.dtype([
    ("busy", np.int64),                    # group id in flight on this key (0: free)
    ("last_fired", np.int64),              # event time of its last fire (NEVER)
    ("skip_noted", np.uint8),              # a SKIP_RISK of the current run was journaled
], align=True)

IN_FLIGHT_GROUP = np.dtype([
    ("group_id", np.int64),
    ("key", np.int64),
    ("started_ns", np.int64),              # event time it fired
    ("legs_done", np.int64),               # bit per leg reported done
], align=True)


class DecisionArrays(NamedTuple):
    """Everything the decision kernels read and write (see the module doc)."""
    params: np.ndarray      # DECISION_PARAMS, 1 record
    state: np.ndarray       # DECISION_STATE, 1 record
    keys: np.ndarray        # KEY_STATE, one per key
    groups: np.ndarray      # IN_FLIGHT_GROUP, max_groups_in_flight
    fires: np.ndarray       # int64 ring of start times, max_groups_per_10s


class EventRows(NamedTuple):
    """Per-row work arrays of one market event's candidates (row j = candidate j)."""
    decision: np.ndarray    # uint8: 0 while open, then a Decision
    journal: np.ndarray     # uint8: 1 if the row goes to the journal
    group_ids: np.ndarray   # int64: the group a TAKEN row fired
    score: np.ndarray       # float64: the model's score (NaN: unscored)

    @classmethod
    def zeros(cls, rows: int) -> EventRows:
        return cls(np.zeros(rows, np.uint8), np.zeros(rows, np.uint8), np.zeros(rows, np.int64),
                   np.full(rows, np.nan))


class EventOutput(NamedTuple):
    """Where kernels write records: journal rows ``cands[cand_n[0]:]``, intents ``intents[int_n[0]:]``
    (the counts are 1-element arrays so a kernel can advance them)."""
    cands: np.ndarray       # CANDIDATE
    cand_n: np.ndarray      # int64 (1,)
    intents: np.ndarray     # ORDER_INTENT
    int_n: np.ndarray       # int64 (1,)


class DecisionState:
    """The decision arrays of one engine, built from ``[strategy]``; ``arrays`` is the kernels'
    argument (a plain tuple in ``DecisionArrays`` order)."""

    def __init__(self, sc, n_keys: int, first_group: int, strategy_id: int, n_legs: int, tif: int,
                 order_type: int, group_step: int = 1) -> None:
        params = np.zeros(1, DECISION_PARAMS)
        p = params[0]
        p["min_edge"] = sc.min_edge_bps * 1e-4
        p["min_score"] = sc.min_score
        p["cooldown_ns"] = int(sc.cooldown_ms * 1e6)
        p["inflight_timeout_ns"] = int(sc.inflight_timeout_ms * 1e6)
        p["max_groups_per_event"] = sc.max_groups_per_event
        p["max_groups_in_flight"] = sc.max_groups_in_flight
        p["max_groups_per_window"] = sc.max_groups_per_10s
        p["window_ns"] = WINDOW_NS
        p["strategy_id"] = strategy_id
        p["n_legs"] = n_legs
        p["tif"] = tif
        p["order_type"] = order_type
        p["group_step"] = group_step
        state = np.zeros(1, DECISION_STATE)
        state[0]["next_group"] = first_group
        keys = np.zeros(max(1, n_keys), KEY_STATE)
        keys["last_fired"] = NEVER
        self.named = DecisionArrays(params=params, state=state, keys=keys,
                                    groups=np.zeros(max(1, sc.max_groups_in_flight), IN_FLIGHT_GROUP),
                                    fires=np.zeros(max(1, sc.max_groups_per_10s), np.int64))
        self.arrays = tuple(self.named)

    def ensure_keys(self, n_keys: int) -> None:
        """Room for keys 0..n_keys-1 (strategies whose keys are not known up front)."""
        keys = self.named.keys
        if n_keys <= len(keys):
            return
        grown = np.zeros(n_keys, KEY_STATE)
        grown["last_fired"] = NEVER
        grown[:len(keys)] = keys
        self.named = self.named._replace(keys=grown)
        self.arrays = tuple(self.named)

    @property
    def st(self) -> np.void:
        """The state record (fields by name: ``dec.st["taken"]``)."""
        return self.named.state[0]

    @property
    def keys(self) -> np.ndarray:
        return self.named.keys

    def in_flight(self) -> dict[int, tuple[int, int, int]]:
        """group id -> (key, started_ns, legs done bits)."""
        n = int(self.st["n_in_flight"])
        return {int(g["group_id"]): (int(g["key"]), int(g["started_ns"]), int(g["legs_done"]))
                for g in self.named.groups[:n]}
