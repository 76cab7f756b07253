"""Several strategies side by side on one market-data stream (``[strategy] names``).

    names = strategy_names(cfg)                       # ["triangular", "cross_rate_reversion"]
    engines = StrategySet(cfg, universe, models, run_tag="r1", first_group=group_base())
    i, cands, intents = engines.on_md_until(md, i, len(md))     # a DecisionSource, as one engine is
    engines.on_exec(execs)                            # each execution to the strategy that owns it

Each strategy is a ``StrategyEngine`` of its own (its books, keys, cooldowns, group budget,
model), all in the strategy process, writing to the one intents ring. Group ids interleave:
engine ``k`` of ``n`` takes ``first_group + k``, then every ``n``-th id, so client order ids never
collide and an execution's group id says which strategy it belongs to.

Why one process for all and not one process each (``ctrader bench --suite layout``,
bench/BENCHMARKS.md): with every strategy in step, as here, the first strategy waits behind the
others' pass over each md batch (the taker triangle's p99 tick-to-intent 1.4-8.4x its figure
alone, beside the cross-rate strategy). A second process took that wait away (1.0-2.7x) but
slowed the feed (p99 2.3-2.8x). The live loop runs a set "lead first" (``strategy.lead_first``:
0.7-1.9x, the feed 1.1-1.2x); a replay runs it in step, which decides the same. The executor keeps
per-strategy budgets either way (``ctrader.execution.strategy_budgets``).

Exactness (replay decides as the session did): ``on_md_until`` returns at the first record
where any strategy produced intents. A strategy that ran past that record in the same call
("ahead") keeps what it produced until the returned index reaches it, so every intent is handed
over right after the record that caused it. Running ahead is exact: the only executions that
can arrive in between are those of the intents just returned, and they belong to the strategy
that stopped there, not to the one ahead.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ctrader.core.records import CANDIDATE, EXEC_EVENT, ORDER_INTENT
from ctrader.model.scoring import FeatureMismatch, check_features, load_model
from ctrader.strategy.engine import StrategyEngine, _join, _percentiles
from ctrader.strategy.registry import strategy_class, strategy_names


def models_for(names: list[str], model) -> dict[str, object]:
    """Which strategy ``model`` scores: the one whose features it was trained on (the model's
    metadata names them); the others run unscored. A model no strategy of the set can use is
    refused (``FeatureMismatch``), as a single strategy refuses the wrong model."""
    if model is None:
        return {n: None for n in names}
    if len(names) == 1:          # the engine checks it (and refuses the wrong model)
        return {names[0]: model}
    errors = []
    for name in names:
        try:
            check_features(model.meta, strategy_class(name).features)
        except FeatureMismatch as exc:
            errors.append(str(exc))
            continue
        return {n: (model if n == name else None) for n in names}
    raise FeatureMismatch(f"no strategy of {names} can use the model: " + " | ".join(errors))


def model_features(cfg, trained_on: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The features a model of this configuration must have: the strategy's; with several
    strategies, those of the one the model was trained on (``trained_on``: its metadata's
    features) if any has them, else the first one's (so the check refuses it, naming them)."""
    names = strategy_names(cfg)
    for name in names:
        features = tuple(strategy_class(name).features)
        if trained_on is not None and features == tuple(trained_on):
            return features
    return tuple(strategy_class(names[0]).features)


def load_model_for(cfg, name: str | None = None):
    """The configured model (``[model] name``, or ``name``) checked against the strategy's
    features; with several strategies, against each one's until one fits (refused if none).
    None for "none"."""
    names = strategy_names(cfg)
    errors = []
    for strategy in names:
        try:
            return load_model(cfg, strategy_class(strategy).features, name)
        except FeatureMismatch as exc:
            if len(names) == 1:
                raise
            errors.append(str(exc))
    raise FeatureMismatch(f"no strategy of {names} can use the model: " + " | ".join(errors))


def decision_source(cfg, universe, model=None, run_tag: str = "", first_group: int = 1) -> StrategyEngine | StrategySet:
    """The configured strategy's engine, or the set of them when ``[strategy] names`` lists
    several. ``model``: each strategy's model ({strategy: model or None}, as
    ``strategy.models.load_models`` gives it), or one model, which scores the strategy it was
    trained for (``models_for``), or None."""
    names = strategy_names(cfg)
    models = dict(model) if isinstance(model, Mapping) else models_for(names, model)
    if len(names) == 1:
        return StrategyEngine(cfg, universe, models.get(names[0]), run_tag=run_tag, first_group=first_group,
                              name=names[0])
    return StrategySet(cfg, universe, models, run_tag=run_tag, first_group=first_group, names=names)


class StrategySet:
    """The ``DecisionSource`` of several strategies (``ctrader.strategy.protocol``)."""

    def __init__(self, cfg, universe, models: dict[str, object] | None = None, run_tag: str = "",
                 first_group: int = 1, names: list[str] | None = None) -> None:
        names = names or strategy_names(cfg)
        models = models or {}
        self.cfg = cfg
        self.names = names
        n = len(names)
        self.first_group = first_group
        self.engines = [StrategyEngine(cfg, universe, models.get(name), run_tag=run_tag, first_group=first_group + k,
                                       group_step=n, name=name) for k, name in enumerate(names)]
        self._pos = [0] * n                  # next record index of each engine in the current batch
        self._held: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in names]   # ahead engines' output
        self._returned = -1                  # the index the last call returned (-1: between batches)
        self.events = 0
        # executions that reached a strategy already past the returned index (it decided those
        # records without them: a replay batched differently may journal other SKIP rows)
        self.execs_to_ahead = 0
        self.last_md_seq = 0
        self.first_md_seq = 0

    # --- DecisionSource ----------------------------------------------------------------------

    @property
    def members(self) -> list[StrategyEngine]:
        return self.engines

    def owner(self, group_ids: np.ndarray) -> np.ndarray:
        """Index of the engine each group id belongs to (-1: none, e.g. group 0)."""
        g = group_ids.astype(np.int64)
        k = (g - self.first_group) % len(self.engines)
        return np.where(g >= self.first_group, k, -1)

    def on_md(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(records)
        cands, intents = [], []
        i = 0
        while i < n:
            i, c, o = self.on_md_until(records, i, n)
            if len(c):
                cands.append(c)
            if len(o):
                intents.append(o)
        return _join(cands, CANDIDATE), _join(intents, ORDER_INTENT)

    def on_md_until(self, records: np.ndarray, start: int, end: int,
                    emit: Callable[[np.ndarray], None] | None = None,
                    announce: Callable[[], None] | None = None) -> tuple[int, np.ndarray, np.ndarray]:
        """Apply ``records[start:end]`` to every strategy, up to and including the first record
        where one of them produced intents: (next index, candidates, intents), as
        ``StrategyEngine.on_md_until``. ``emit`` gets each strategy's intents the moment they
        are built (a strategy ahead sends its orders before the returned index reaches them:
        the market does not wait)."""
        if start >= end:
            return start, np.zeros(0, CANDIDATE), np.zeros(0, ORDER_INTENT)
        pos, held = self._pos, self._held
        if self._returned < 0:               # a new batch: every engine starts here
            pos[:] = [start] * len(pos)
        elif start != self._returned:
            raise RuntimeError(f"StrategySet: the batch went on at {start}, not at {self._returned} where it "
                               f"stopped (strategies ahead would lose their intents)")
        if self.first_md_seq == 0:
            self.first_md_seq = int(records[start]["seq"])
        stop = min([end] + [pos[k] for k in range(len(pos)) if held[k]])
        for k, engine in enumerate(self.engines):
            if pos[k] >= stop:
                continue                     # ahead: it waits for the others
            i, c, o = engine.on_md_until(records, pos[k], stop, emit, announce)
            pos[k] = i
            if len(c) or len(o):
                held[k].append((c, o))
            if len(o):
                stop = i
        # what each strategy decided on the records up to ``stop``, in record order (a strategy
        # ahead keeps the rest, and its intents, until the returned index reaches them)
        t_stop = int(records[stop - 1]["recv_mono_ns"])
        cands, intents = [], []
        for k in range(len(pos)):
            kept = []
            for c, o in held[k]:
                if pos[k] == stop or not len(c):
                    due_c = c
                else:
                    now = c["event_recv_mono_ns"] <= t_stop
                    due_c, c = c[now], c[~now]
                if len(due_c):
                    cands.append(due_c)
                if pos[k] == stop:
                    if len(o):
                        intents.append(o)
                elif len(c) or len(o):
                    kept.append((c, o))
            held[k][:] = kept
        if len(cands) > 1:
            joined = np.concatenate(cands, dtype=CANDIDATE)
            cands = [joined[np.argsort(joined["event_recv_mono_ns"], kind="stable")]]
        # all at ``stop``: the next call may start a new batch; else it must go on from ``stop``
        self._returned = -1 if all(p == stop for p in pos) else stop
        self.events += stop - start
        self.last_md_seq = int(records[stop - 1]["seq"])
        return stop, _join(cands, CANDIDATE), _join(intents, ORDER_INTENT)

    def on_exec(self, records: np.ndarray) -> np.ndarray:
        """Each execution to the strategy whose group it is; the intents they called for."""
        if len(records) == 0:
            return np.zeros(0, ORDER_INTENT)
        owner = self.owner(records["group_id"])
        follow = []
        for k, engine in enumerate(self.engines):
            mine = owner == k
            if self._returned >= 0 and self._pos[k] > self._returned and mine.any():
                self.execs_to_ahead += int(mine.sum())
            if mine.all():
                follow.append(engine.on_exec(records))
            elif mine.any():
                follow.append(engine.on_exec(np.ascontiguousarray(records[mine])))
        follow = [f for f in follow if len(f)]
        if not follow:
            return np.zeros(0, ORDER_INTENT)
        return follow[0] if len(follow) == 1 else np.concatenate(follow, dtype=ORDER_INTENT)

    # --- lifecycle and stats -----------------------------------------------------------------

    def warmup(self) -> None:
        for engine in self.engines:
            engine.warmup()
        self.on_exec(np.zeros(1, EXEC_EVENT))

    def rehearse(self) -> None:
        for engine in self.engines:
            engine.rehearse()

    @property
    def model_calls(self) -> int:
        return sum(e.model_calls for e in self.engines)

    @property
    def candidates(self) -> int:
        return sum(e.candidates for e in self.engines)

    @property
    def taken(self) -> int:
        return sum(e.taken for e in self.engines)

    @property
    def n_keys(self) -> int:
        return sum(int(e.strategy.n_keys) for e in self.engines)

    def stats(self) -> dict:
        """The set's counters summed (their latency percentiles over every strategy's events),
        and each strategy's own under ``by_strategy``."""
        per = {e.strategy.name: e.stats() for e in self.engines}
        out: dict = {"strategy": "+".join(self.names), "events": self.events, "first_md_seq": self.first_md_seq}
        for key in ("candidates", "taken", "groups_done", "groups_timed_out", "model_calls", "rehearsals",
                    "candidate_rows", "skip_risk_unjournaled"):
            out[key] = sum(s[key] for s in per.values())
        out["groups_in_flight"] = sum(s["groups_in_flight"] for s in per.values())
        skipped: dict[str, int] = {}
        for s in per.values():
            for name, count in s["skipped"].items():
                skipped[name] = skipped.get(name, 0) + count
        out["skipped"] = skipped
        for label, field_n, field_w in (("eval", "lat_n", "lat"), ("tick_to_intent", "t2i_n", "t2i")):
            window = np.concatenate([e.dec.st[field_w][:min(int(e.dec.st[field_n]), len(e.dec.st[field_w]))]
                                     for e in self.engines])
            p = _percentiles(window, len(window))
            out[f"{label}_p50_us"], out[f"{label}_p99_us"] = p["p50"] / 1e3, p["p99"] / 1e3
        out["model"] = ", ".join(f"{name}: {s['model']}" for name, s in per.items())
        out["by_strategy"] = per
        return out


__all__ = ["StrategySet", "decision_source", "load_model_for", "model_features", "models_for", "strategy_names"]
