"""Several strategies in the strategy process, the first one never waiting for the others.

    engines = LeadFirst(StrategySet(cfg, universe, models, ...))    # [strategy] schedule = "lead_first"
    i, cands, intents = engines.on_md_until(md, i, n, emit=...)      # the lead, at once
    while engines.behind and md_in.lag == 0:                         # nothing new waiting
        cands, intents = engines.catch_up(16, emit=...)              # the others, on the same records

Why: in ``StrategySet`` every strategy decides on each record in turn, so the first strategy of
``[strategy] names`` waits behind the others' pass over each md batch. Beside the cross-rate
strategy the taker triangle's p99 tick-to-intent was 1.4-8.4x its figure alone, and 0.7-1.9x
lead first (``ctrader bench --suite layout``, bench/BENCHMARKS.md). Here the lead decides on a batch as soon as it is read, the
records are kept, and the others ("followers") decide on them when no md waits, a few records at
a time, so new md never waits long behind them. A follower more than ``max_lag_ms`` behind (its
next record received that long ago) catches up whatever waits: it must not trade on an old market.

Exactness (a replay decides as the session did): each strategy has its own books, keys and
state, so it decides the same on the same records whenever it sees them, as long as each
execution reaches it at the same record. An execution is noted at the lead's position
(``last_md_seq``, the exec arrival log); one of a follower's groups that arrives while the
follower is behind waits until the follower has decided on the record with that seq, then goes
to it. A replay (``StrategySet``, every strategy in step) delivers it at that record too.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ctrader.core.records import CANDIDATE, MD_EVENT, ORDER_INTENT
from ctrader.strategy.engine import StrategyEngine, _join
from ctrader.strategy.several import StrategySet

_NONE = np.zeros(0, ORDER_INTENT)


class LeadFirst:
    """The ``DecisionSource`` of a ``StrategySet`` for the live strategy loop: the first strategy
    (the lead) at once, the followers on the same records when the loop has time."""

    def __init__(self, strategies: StrategySet, max_lag_ms: float = 2.0, backlog_limit: int = 1 << 15) -> None:
        self.set = strategies
        self.lead: StrategyEngine = strategies.engines[0]
        self.followers: list[StrategyEngine] = strategies.engines[1:]
        # a follower whose next record was received longer ago than this, or this many records
        # behind, catches up before the loop reads more md: it must not trade on an old market
        self.max_lag_ns = int(max_lag_ms * 1e6)
        self.backlog_limit = backlog_limit
        self._kept = np.zeros(4096, MD_EVENT)
        self._n = 0                           # records [0, n) of _kept; some follower has yet to decide on them
        self._done = [0] * len(self.followers)            # index in _kept each follower reached
        self._waiting: list[list[tuple[int, np.ndarray]]] = [[] for _ in self.followers]   # (after seq, execs)
        self.execs_waited = 0                 # executions held for a follower behind (stats)
        self.max_behind = 0                   # the most records a follower was behind (stats)

    # --- DecisionSource ----------------------------------------------------------------------

    @property
    def members(self) -> list[StrategyEngine]:
        return self.set.engines

    @property
    def events(self) -> int:
        return self.lead.events

    @property
    def last_md_seq(self) -> int:
        return self.lead.last_md_seq

    @property
    def first_md_seq(self) -> int:
        return self.lead.first_md_seq

    @property
    def model_calls(self) -> int:
        return self.set.model_calls

    def rehearse(self) -> None:
        self.set.rehearse()

    def on_md_until(self, records: np.ndarray, start: int, end: int,
                    emit: Callable[[np.ndarray], None] | None = None,
                    announce: Callable[[], None] | None = None) -> tuple[int, np.ndarray, np.ndarray]:
        """The lead on ``records[start:end]`` up to its first intents (``StrategyEngine.on_md_until``);
        the records it decided on are kept for the followers."""
        i, cands, intents = self.lead.on_md_until(records, start, end, emit, announce)
        self._keep(records[start:i])
        return i, cands, intents

    def on_exec(self, records: np.ndarray) -> np.ndarray:
        """Each execution to the strategy whose group it is: at once to the lead or a follower
        that is not behind; a follower behind gets it once it decided on the lead's record."""
        if len(records) == 0:
            return _NONE
        owner = self.set.owner(records["group_id"])
        follow = []
        lead = owner == 0
        if lead.any():
            follow.append(self.lead.on_exec(records if lead.all() else np.ascontiguousarray(records[lead])))
        for k, engine in enumerate(self.followers):
            mine = owner == k + 1
            if not mine.any():
                continue
            execs = records if mine.all() else np.ascontiguousarray(records[mine])
            if self._done[k] < self._n or self._waiting[k]:
                self._waiting[k].append((self.lead.last_md_seq, execs.copy()))
                self.execs_waited += len(execs)
            else:
                follow.append(engine.on_exec(execs))
        return _join([f for f in follow if len(f)], ORDER_INTENT)

    # --- the followers --------------------------------------------------------------------------

    @property
    def behind(self) -> bool:
        """Some follower has records (or executions) still to decide on."""
        return any(d < self._n for d in self._done) or any(self._waiting)

    def too_far_behind(self, now_ns: int) -> bool:
        """A follower's next record was received over ``max_lag_ms`` before ``now_ns`` (the md
        clock, CLOCK_MONOTONIC), or the kept records reached ``backlog_limit``."""
        low = min(self._done) if self.followers else self._n
        if low >= self._n:
            return False
        return self._n >= self.backlog_limit or now_ns - int(self._kept["recv_mono_ns"][low]) > self.max_lag_ns

    def catch_up(self, max_records: int, emit: Callable[[np.ndarray], None] | None = None,
                 announce: Callable[[], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each follower behind decides on up to ``max_records`` more kept records (fewer when it
        produced intents or an execution falls due): (candidates, intents). Its intents were
        handed to ``emit`` as they were built, and so were the intents its executions called for."""
        cands, intents = [], []
        for k, engine in enumerate(self.followers):
            follow = self._deliver_due(k)
            if len(follow):
                if emit is not None:
                    emit(follow)
                intents.append(follow)
            start = self._done[k]
            if start >= self._n:
                continue
            end = min(self._n, start + max_records)
            if self._waiting[k]:                 # up to the record its next execution waits for
                due = int(np.searchsorted(self._kept["seq"][:self._n], self._waiting[k][0][0], "right"))
                if due > start:
                    end = min(end, due)
            i, c, o = engine.on_md_until(self._kept, start, end, emit, announce)
            self._done[k] = i
            if len(c):
                cands.append(c)
            if len(o):
                intents.append(o)
            follow = self._deliver_due(k)
            if len(follow):
                if emit is not None:
                    emit(follow)
                intents.append(follow)
        self._compact()
        return _join(cands, CANDIDATE), _join(intents, ORDER_INTENT)

    def _deliver_due(self, k: int) -> np.ndarray:
        """Follower ``k``'s executions whose record it has decided on (all of them once it is not
        behind): the intents they called for."""
        engine, waiting, follow = self.followers[k], self._waiting[k], []
        caught_up = self._done[k] >= self._n
        while waiting and (caught_up or waiting[0][0] <= engine.last_md_seq):
            _, execs = waiting.pop(0)
            follow.append(engine.on_exec(execs))
        return _join([f for f in follow if len(f)], ORDER_INTENT)

    def _keep(self, records: np.ndarray) -> None:
        if not self.followers or not len(records):
            return
        need = self._n + len(records)
        if need > len(self._kept):
            grown = np.zeros(max(need, 2 * len(self._kept)), MD_EVENT)
            grown[:self._n] = self._kept[:self._n]
            self._kept = grown
        self._kept[self._n:need] = records
        self._n = need
        self.max_behind = max(self.max_behind, need - min(self._done))

    def _compact(self) -> None:
        """Drop the records every follower has decided on."""
        low = min(self._done)
        if low == 0:
            return
        rest = self._n - low
        if rest:
            self._kept[:rest] = self._kept[low:self._n]
        self._n = rest
        self._done = [d - low for d in self._done]

    # --- stats ---------------------------------------------------------------------------------

    def stats(self) -> dict:
        out = self.set.stats()
        out.update(events=self.lead.events, first_md_seq=self.lead.first_md_seq, schedule="lead_first",
                   followers_behind=self._n - min(self._done) if self.followers else 0,
                   followers_max_behind=self.max_behind, execs_waited=self.execs_waited)
        return out


__all__ = ["LeadFirst"]
