"""The strategy engine: md records in, candidates (journal) and order intents out. No rings here.

The process (``ctrader.strategy.process``) feeds it from the md and exec rings; replay and tests
call it directly::

    engine = StrategyEngine(cfg, uni, model)           # model: OnnxModel or None (unscored)
    engine.warmup()
    candidates, intents = engine.on_md(md_records)     # CANDIDATE and ORDER_INTENT arrays
    engine.on_exec(exec_records)                       # legs done -> the triangle is free again

Per market event that yields candidates (see the strategy module for how they are found):

1. the strategy's own verdict (stale leg SKIP_STALE, filters SKIP_FILTER, no size SKIP_RISK,
   marginal edge SKIP_EDGE) stands;
2. net edge >= ``min_edge_bps`` else SKIP_EDGE; the key (triangle) not in flight and out of
   its cooldown, and room in the group budget (``max_groups_in_flight``, ``max_groups_per_10s``:
   the executor's risk gate would otherwise refuse legs and break groups) else SKIP_RISK;
3. what is left is scored in ONE batched model call (score NaN when unscored or no model);
   score >= ``min_score`` else SKIP_SCORE;
4. the best expected PnL first, at most ``max_groups_per_event`` groups (the rest SKIP_RISK);
   a TAKEN candidate gets a group id and one IOC LIMIT intent per leg, with the client order
   id ``ct{run_tag}{group_id:x}L{leg}`` (deterministic: a resent intent is the same order).

Every candidate, taken or not, is returned for the journal, except the SKIP_RISK flood: while a
triangle is in flight, in its cooldown or out of group budget, only the first SKIP_RISK of the
run is journaled, the rest are counted (``skip_risk_unjournaled``, and in ``skipped()``); see
``ctrader.strategy.decide``. Times come
from the md records (``recv_mono_ns``), so a replay decides exactly as the live run did.

The decision rules run in numba (``ctrader.strategy.decide``); a strategy with a fused
``scan_decide`` kernel (triangular) scans, decides and writes the records of a whole batch
without returning to Python, except to score with the model or to hand over intents.
``on_md_until`` stops right after the first record that produced intents, so the caller sends
them at once (the process) or matches them before the next record (replay)::

    i, cands, intents = engine.on_md_until(md, i, len(md))
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import numpy as np

from ctrader.core.arrays import as_layout
from ctrader.core.records import (
    CANDIDATE,
    EXEC_EVENT,
    MAX_FEATURES,
    ORDER_INTENT,
    Decision,
    OrderType,
    TimeInForce,
)
from ctrader.market.books import BookCache
from ctrader.model.scoring import check_features
from ctrader.strategy import decide as D
from ctrader.strategy.protocol import Strategy
from ctrader.strategy.registry import strategy_class
from ctrader.strategy.state import DecisionArrays, DecisionState, EventOutput, EventRows

log = logging.getLogger(__name__)

CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_TAKEN = int(Decision.TAKEN)
_CAND_BUFFER = 8192               # journal rows gathered in numba before Python takes them
_DONE, _INTENTS, _SCORE, _FULL = 0, 1, 2, 3          # scan_decide outcomes (ctrader.strategy.triangular)
_NO_INTENTS = np.zeros(0, ORDER_INTENT)
_COID_AT = ORDER_INTENT.fields["client_order_id"][1]          # byte offset in the record
_COID_WIDTH = ORDER_INTENT.fields["client_order_id"][0].itemsize


def _join(chunks: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """One array of ``chunks``. dtype= keeps the records' cache-line padding: numpy 2 concatenates
    padded structured dtypes into packed ones otherwise, which no ring accepts."""
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate(chunks, dtype=dtype) if chunks else np.zeros(0, dtype)


def _percentiles(window: np.ndarray, count: int) -> dict[str, float]:
    n = min(count, len(window))
    if n == 0:
        return {"p50": 0.0, "p99": 0.0}
    p50, p99 = np.percentile(window[:n], [50, 99])
    return {"p50": float(p50), "p99": float(p99)}


def group_base(wall_ns: int | None = None) -> int:
    """First group id of a live engine: milliseconds since 1970 << 20, so a strategy restarted
    within a run never reuses a group id (and so a client order id, which the executor would
    treat as a duplicate); about a million groups per millisecond of start time. Replay and
    tests start from 1 instead, deterministically."""
    wall_ns = time.time_ns() if wall_ns is None else wall_ns
    return (wall_ns // 1_000_000) << 20


def run_tag_of(run_id: str, limit: int = 12) -> str:
    """A client-id-safe tag of a run id (letters and digits only, at most ``limit`` chars)."""
    return re.sub(r"[^A-Za-z0-9]", "", run_id)[-limit:]


class StrategyEngine:
    """The ``DecisionSource`` of a live or paper session and of replay, over one ``Strategy``
    (``ctrader.strategy.protocol``)."""

    def __init__(self, cfg, universe, model=None, run_tag: str = "", strategy: Strategy | None = None,
                 first_group: int = 1, group_step: int = 1, name: str | None = None) -> None:
        sc = cfg.strategy
        self.cfg = cfg
        self.universe = universe
        if strategy is None:
            self.books = BookCache(len(universe.symbols))
            strategy = strategy_class(name or sc.name)(cfg, universe, self.books)
        else:                                   # a ready strategy brings its own book cache
            self.books = strategy.books
        self.strategy: Strategy = strategy
        if model is not None:
            check_features(model.meta, self.strategy.features)
        self.model = model
        self.run_tag = run_tag_of(run_tag)
        self.min_score = sc.min_score
        self.tif = int(TimeInForce[sc.tif])
        n_keys = int(strategy.n_keys)
        self.dec = DecisionState(sc, n_keys, first_group, strategy.strategy_id, strategy.n_legs, self.tif,
                                 int(OrderType.LIMIT), group_step)
        self._fused = bool(strategy.fused)
        rows = int(strategy.max_rows)
        # per-row work arrays of one market event: decision, journal flag, group id, score
        self._work = EventRows.zeros(rows)
        # journal rows accumulate here between returns to Python; intents of one event at a time
        self._cands = np.zeros(max(_CAND_BUFFER, 4 * rows), CANDIDATE)
        self._cand_n = np.zeros(1, np.int64)
        self._int_n = np.zeros(1, np.int64)
        self._intents = np.zeros(rows * strategy.n_legs, ORDER_INTENT)
        self._intents_raw = self._intents.view(np.uint8)
        self._out = tuple(EventOutput(self._cands, self._cand_n, self._intents, self._int_n))
        self._coid_prefix = np.frombuffer(f"ct{self.run_tag}".encode(), np.uint8).copy()
        # the model's input rows, gathered in numba (``_score``)
        self._score_x = np.zeros((rows, len(self.strategy.features)), np.float32)
        self._score_rows = np.zeros(rows, np.int64)
        self.events = 0
        self.model_calls = 0
        self.rehearsals = 0
        self._rehearsal_rows = np.zeros((3, len(self.strategy.features)), dtype=np.float32)
        self.first_md_seq = 0          # seq of the first md record this engine saw (0: none yet)
        self.last_md_seq = 0           # seq of the last md record applied
        # a strategy that manages its own orders after the first (re-prices, cancels, hedges:
        # ``maker_triangular``) names them with the engine's client order ids
        if hasattr(strategy, "bind_client_ids"):
            strategy.bind_client_ids(self.client_order_id)
        if hasattr(strategy, "bind_decisions"):      # its scan skips what the engine would refuse
            strategy.bind_decisions(self.dec)

    # --- state views (the arrays in self.dec are the truth) ------------------------------------

    @property
    def next_group(self) -> int:
        return int(self.dec.st["next_group"])

    @property
    def in_flight(self) -> dict[int, tuple[int, int, int]]:
        """group id -> (key, started_ns, legs done bits)."""
        return self.dec.in_flight()

    @property
    def busy_keys(self) -> dict[int, int]:
        """key (triangle) -> group id in flight."""
        busy = self.dec.keys["busy"]
        return {int(k): int(busy[k]) for k in np.flatnonzero(busy)}

    @property
    def candidates(self) -> int:
        """Candidate rows journaled (returned by on_md / on_md_until)."""
        return int(self.dec.st["candidates"] - self.dec.st["unjournaled"])

    @property
    def candidate_rows(self) -> int:
        """Every candidate row decided, the unjournaled SKIP_RISK flood included."""
        return int(self.dec.st["candidates"])

    @property
    def taken(self) -> int:
        return int(self.dec.st["taken"])

    @property
    def groups_done(self) -> int:
        return int(self.dec.st["groups_done"])

    @property
    def groups_timed_out(self) -> int:
        return int(self.dec.st["timed_out"])

    @property
    def skip_risk_unjournaled(self) -> int:
        return int(self.dec.st["unjournaled"])

    # --- market data ---------------------------------------------------------------------------

    def on_md(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply md records; the candidates and intents they produced (possibly empty arrays)."""
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
        """Apply ``records[start:end]`` up to and including the first record whose candidates
        produced intents: (next index, candidates, intents). The live loop sends those intents
        before anything else; replay matches them before the strategy sees the next record.

        ``emit`` (the live loop's ring write) is handed the intents the moment their client ids
        are written, before they are copied out and the candidates joined: ~16 µs went by
        between building an intent and writing it otherwise (first touch after a quiet spell).
        ``announce`` (the ring's ``Producer.announce``) is called when candidates go to the
        model, the ~20 µs before they may become intents: the executor wakes meanwhile."""
        if start >= end:
            return start, np.zeros(0, CANDIDATE), _NO_INTENTS
        if self.first_md_seq == 0:
            self.first_md_seq = int(records[start]["seq"])
        if not self._fused:
            i, cands, intents = self._on_md_until_generic(records, start, end)
            if emit is not None and len(intents):
                emit(intents)
            return i, cands, intents
        strat, dec, work, out = self.strategy, self.dec.arrays, tuple(self._work), self._out
        has_model = self.model is not None
        chunks = []
        intents = _NO_INTENTS
        self._cand_n[0] = 0
        i = start
        while i < end:
            self._int_n[0] = 0
            i, m, status = strat.scan_decide(records, i, end, dec, work, has_model, out)
            if status == _SCORE:
                if announce is not None:
                    announce()
                self._score(self._work.decision[:m], self._work.score[:m], strat.event_features(m))
                if strat.complete_event(records, i - 1, m, dec, work, out):
                    status = _INTENTS
            if status == _INTENTS:
                n_int = int(self._int_n[0])
                D.format_client_ids(self._intents, self._intents_raw, n_int, ORDER_INTENT.itemsize, _COID_AT,
                                    _COID_WIDTH, self._coid_prefix)
                if emit is not None:
                    emit(self._intents[:n_int])
                intents = self._intents[:n_int].copy()
                break
            if status == _FULL:
                chunks.append(self._cands[:self._cand_n[0]].copy())
                self._cand_n[0] = 0
        if self._cand_n[0]:
            chunks.append(self._cands[:self._cand_n[0]].copy())
        self.events += i - start
        self.last_md_seq = int(records[i - 1]["seq"])
        return i, _join(chunks, CANDIDATE), intents

    def _score(self, decision: np.ndarray, score: np.ndarray, features: np.ndarray) -> None:
        """One batched model call for the rows still open (decision 0)."""
        m = len(decision)
        if len(self._score_x) < m:
            self._score_x = np.zeros((m, self.model.n_features), np.float32)
            self._score_rows = np.zeros(m, np.int64)
        k = D.gather_open(decision, features, self.model.n_features, self._score_x, self._score_rows)
        if k:
            D.scatter_scores(score, self._score_rows, self.model.probabilities(self._score_x[:k]), k)
        self.model_calls += 1

    def _on_md_until_generic(self, records: np.ndarray, start: int, end: int):
        """For strategies with ``scan``/``evaluation`` only: the same decisions, rows built in Python."""
        cands = []
        intents = _NO_INTENTS
        actions = getattr(self.strategy, "take_actions", None)
        i = start
        while i < end:
            t0 = time.perf_counter_ns()
            i, m = self.strategy.scan(records, i, end)
            # orders the strategy already has working (re-price, cancel: ``take_actions``) go
            # out with the intents of the same record, before them
            acted = actions(records[i - 1]) if actions is not None and i > start else _NO_INTENTS
            if m == 0 and not len(acted):
                if i >= end:
                    break
                continue
            if m:
                c, intents = self._decide(records[i - 1], m, t0)
                cands.append(c)
            if len(acted):
                intents = _join([acted, intents], ORDER_INTENT) if len(intents) else acted
            if len(intents):
                break
        self.events += i - start
        self.last_md_seq = int(records[i - 1]["seq"])
        return i, _join(cands, CANDIDATE), intents

    def _decide(self, rec, m: int, t0: int) -> tuple[np.ndarray, np.ndarray]:
        ev = self.strategy.evaluation(m)
        now = int(rec["recv_mono_ns"])
        key = np.ascontiguousarray(ev.key, dtype=np.int64)
        self.dec.ensure_keys(int(key.max()) + 1)
        if m > len(self._work.decision):
            self._work = EventRows.zeros(m)
        decision, journal, group_ids, score = (w[:m] for w in self._work)
        decision[:] = ev.verdict
        score[:] = np.nan
        a = self.dec.named
        edge, pnl = np.ascontiguousarray(ev.edge), np.ascontiguousarray(ev.pnl)
        closing = ev.closing if ev.closing is not None and ev.closing.any() else None
        if closing is not None:
            # a row that closes a position the strategy holds is the end of an opportunity, not
            # one: no edge or score threshold, and before any new one (in-flight, cooldown and
            # the group budget still hold)
            edge, pnl = np.where(closing, np.inf, edge), np.where(closing, np.inf, pnl)
        n_open = D.pre_decide(m, decision, key, edge, now, a, decision, journal)
        has_score = self.model is not None and n_open > 0
        if has_score:
            self._score(decision, score, ev.features)
        scored = score
        if closing is not None and has_score:
            scored = np.where(closing, np.inf, score)
        fired = D.finish_decide(m, key, pnl, scored, has_score, now, a, decision, group_ids, journal)
        taken = np.flatnonzero(decision == _TAKEN)
        build = getattr(self.strategy, "intents_of", None) or self._intents_of
        intents = build(ev, taken, score, group_ids, rec) if fired else _NO_INTENTS
        if fired and build is not self._intents_of:
            D.note_tick_to_intent(self.dec.named.state[0], time.monotonic_ns() - int(rec["recv_mono_ns"]))
        if fired:
            self.strategy.on_taken(taken, group_ids[taken])
        keep = journal.astype(bool)
        cands = self._candidates(ev, decision, score, group_ids, rec)[keep]
        D.note_decision_latency(self.dec.named.state[0], time.perf_counter_ns() - t0)
        return cands, intents

    # --- records (generic path) ------------------------------------------------------------------

    def client_order_id(self, group_id: int, leg: int) -> str:
        return f"ct{self.run_tag}{group_id:x}L{leg}"

    def _candidates(self, ev, decision, score, group_ids, rec) -> np.ndarray:
        m = len(ev)
        out = np.zeros(m, CANDIDATE)
        out["group_id"] = group_ids
        out["triangle_id"] = ev.key
        out["strategy_id"] = self.strategy.strategy_id
        out["decision"] = decision
        k = min(ev.features.shape[1], MAX_FEATURES)
        out["n_features"] = k
        out["event_recv_ts_ns"] = rec["recv_ts_ns"]
        out["event_recv_mono_ns"] = rec["recv_mono_ns"]
        out["eval_mono_ns"] = time.monotonic_ns()
        out["edge"] = ev.edge
        out["size_start"] = ev.size
        out["expected_pnl"] = ev.pnl
        out["score"] = score
        legs = self.strategy.n_legs
        out["leg_symbol_id"][:, :legs] = ev.leg_symbol
        out["leg_side"][:, :legs] = ev.leg_side
        out["leg_px"][:, :legs] = ev.leg_px
        out["leg_qty"][:, :legs] = ev.leg_qty
        out["features"][:, :k] = ev.features[:, :k]
        return out

    def _intents_of(self, ev, rows, score, group_ids, rec) -> np.ndarray:
        legs = self.strategy.n_legs
        out = np.zeros(len(rows) * legs, ORDER_INTENT)
        rest_ns = getattr(ev, "rest_ns", None)      # > 0: a LIMIT_MAKER order resting that long
        created = time.monotonic_ns()
        D.note_tick_to_intent(self.dec.named.state[0], created - int(rec["recv_mono_ns"]))
        for r, j in enumerate(rows):
            gid = int(group_ids[j])
            for leg in range(legs):
                o = out[r * legs + leg]
                o["group_id"] = gid
                o["symbol_id"] = ev.leg_symbol[j, leg]
                o["strategy_id"] = self.strategy.strategy_id
                o["leg"] = leg
                o["n_legs"] = legs
                o["side"] = ev.leg_side[j, leg]
                o["order_type"] = OrderType.LIMIT
                o["tif"] = self.tif
                o["price_ticks"] = ev.leg_ticks[j, leg]
                o["qty_steps"] = ev.leg_steps[j, leg]
                o["price"] = ev.leg_limit[j, leg]
                o["qty"] = ev.leg_qty[j, leg]
                o["cause_recv_ts_ns"] = rec["recv_ts_ns"]
                o["cause_recv_mono_ns"] = rec["recv_mono_ns"]
                o["created_mono_ns"] = created
                o["score"] = score[j]
                o["expected_edge"] = ev.edge[j]
                o["client_order_id"] = self.client_order_id(gid, leg).encode()
                if rest_ns is not None and rest_ns[j] > 0:
                    o["order_type"], o["tif"] = OrderType.LIMIT_MAKER, TimeInForce.NONE
                    o["good_till_mono_ns"] = int(rec["recv_mono_ns"]) + int(rest_ns[j])
        return out

    @property
    def members(self) -> list[StrategyEngine]:
        """The engines behind this decision source: itself (``several.StrategySet`` has several)."""
        return [self]

    # --- executions ----------------------------------------------------------------------------

    def on_exec(self, records: np.ndarray) -> np.ndarray:
        """Legs reported done (filled, canceled/expired, rejected, refused) free their triangle.
        Returns the intents the executions call for at once (a resting order's fill: its
        hedges; empty for strategies whose orders all go out together), for the caller to send
        before anything else."""
        if len(records) == 0:
            return _NO_INTENTS
        if records.dtype != EXEC_EVENT:
            records = as_layout(records, EXEC_EVENT)
        D.apply_execs(records, len(records), self.dec.arrays)
        follow = self.strategy.on_exec(records)
        if follow is None:
            return _NO_INTENTS
        for gid in follow.ended:
            D.release_group(np.int64(gid), self.dec.arrays)
        return follow.intents

    # --- lifecycle -----------------------------------------------------------------------------

    def set_model(self, model) -> None:
        """Score with ``model`` from the next market event on (None: unscored); refuses a model
        trained on other features (``FeatureMismatch``), keeping the current one."""
        if model is not None:
            check_features(model.meta, self.strategy.features)
            model.score(np.zeros((1, len(self.strategy.features)), dtype=np.float32))   # warm its session
        self.model = model

    def rehearse(self) -> None:
        """The Python and ONNX part of the order path on dummy data, changing nothing: one model
        call on a batch shaped like a real event's and the client order ids of a 3-leg group
        formatted into a scratch copy.

        Why: here a model call after a quiet second took ~200 µs of CPU against ~5 µs warm (the
        onnxruntime path had left the caches); the strategy loop calls this when no model call
        happened for ``[rings] keep_warm_us``. Not counted in ``model_calls``."""
        if self.model is not None:
            self.model.probabilities(self._rehearsal_rows)      # the live path's call (``_score``)
        scratch = self._intents[:3].copy()
        D.format_client_ids(scratch, scratch.view(np.uint8), len(scratch), ORDER_INTENT.itemsize, _COID_AT,
                            _COID_WIDTH, self._coid_prefix)
        self.rehearsals += 1

    def warmup(self) -> None:
        """Compile every kernel now (numba caches on disk), and run the model once."""
        self.strategy.warmup()
        self.on_exec(np.zeros(1, EXEC_EVENT))                 # compiles apply_execs (group 0: no-op)
        if self.model is not None:
            self.model.score(np.zeros((1, len(self.strategy.features)), dtype=np.float32))
            calls = self.model_calls                           # compiles the gather/scatter kernels
            self._score(np.zeros(1, np.uint8), np.zeros(1), np.zeros((1, len(self.strategy.features)), np.float32))
            self.model_calls = calls
        if not getattr(self.strategy, "fused", False):
            self._warm_decide()
        self.rehearse()                                        # compiles format_client_ids
        self.rehearsals = 0

    def _warm_decide(self) -> None:
        """Compile the generic path's decision kernels (``_decide``) now, on a scratch copy of
        the decision state. numba compiles (or loads from its cache) a kernel at its first call,
        which was the first market event with a candidate: in a paper session of two strategies
        side by side that call took 11-400 ms and the taker triangle's p99 tick-to-intent was
        190-330 ms (``ctrader bench --suite layout``)."""
        scratch = DecisionArrays(*(a.copy() for a in self.dec.named))
        decision, journal, group_ids, score = EventRows.zeros(1)
        key, edge, pnl = np.zeros(1, np.int64), np.zeros(1), np.zeros(1)
        now = int(time.monotonic_ns())
        D.pre_decide(1, decision, key, edge, now, scratch, decision, journal)
        D.finish_decide(1, key, pnl, score, False, now, scratch, decision, group_ids, journal)
        D.note_tick_to_intent(scratch.state[0], 0)
        D.note_decision_latency(scratch.state[0], 0)

    def skipped(self) -> dict[str, int]:
        return {d.name: int(self.dec.st["decisions"][d]) for d in Decision if d != Decision.TAKEN}

    def latency_ns(self) -> dict[str, float]:
        """Decision latency per market event with candidates (scan start -> records built)."""
        return _percentiles(self.dec.st["lat"], int(self.dec.st["lat_n"]))

    def tick_to_intent_ns(self) -> dict[str, float]:
        """md receive (feed's CLOCK_MONOTONIC) -> intents built; meaningful on live md only."""
        return _percentiles(self.dec.st["t2i"], int(self.dec.st["t2i_n"]))

    def stats(self) -> dict:
        lat = self.latency_ns()
        t2i = self.tick_to_intent_ns()
        return {
            "strategy": self.strategy.name, "events": self.events, "candidates": self.candidates,
            "taken": self.taken, "skipped": self.skipped(), "groups_in_flight": len(self.in_flight),
            "groups_done": self.groups_done, "groups_timed_out": self.groups_timed_out,
            "model_calls": self.model_calls, "rehearsals": self.rehearsals, "eval_p50_us": lat["p50"] / 1e3, "eval_p99_us": lat["p99"] / 1e3,
            "tick_to_intent_p50_us": t2i["p50"] / 1e3, "tick_to_intent_p99_us": t2i["p99"] / 1e3,
            "model": f"{self.model.meta.name}@{self.model.version}" if self.model is not None else "none",
            "candidate_rows": self.candidate_rows, "skip_risk_unjournaled": self.skip_risk_unjournaled,
            "first_md_seq": self.first_md_seq,
            **({"orders": self.strategy.order_stats()} if hasattr(self.strategy, "order_stats") else {}),
        }
