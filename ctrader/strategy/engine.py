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

Every candidate, taken or not, is returned for the journal. Times come from the md records
(``recv_mono_ns``), so a replay decides exactly as the live run did.
"""
from __future__ import annotations

import collections
import logging
import re
import time
from dataclasses import dataclass

import numpy as np

from ctrader.core.records import (
    CANDIDATE,
    MAX_FEATURES,
    ORDER_INTENT,
    Decision,
    ExecKind,
    OrderType,
    TimeInForce,
)
from ctrader.market.books import BookCache
from ctrader.model.scoring import check_features
from ctrader.strategy.registry import strategy_class

log = logging.getLogger(__name__)

TERMINAL = {int(ExecKind.FILL), int(ExecKind.CANCELED), int(ExecKind.REJECTED), int(ExecKind.REFUSED)}
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_LATENCY_WINDOW = 4096
_TAKEN, _SKIP_EDGE, _SKIP_SCORE, _SKIP_RISK = (int(Decision.TAKEN), int(Decision.SKIP_EDGE),
                                               int(Decision.SKIP_SCORE), int(Decision.SKIP_RISK))
_NEVER = -(1 << 62)
_WINDOW_NS = 10_000_000_000
_NO_INTENTS = np.zeros(0, ORDER_INTENT)


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


@dataclass
class _Group:
    key: int
    legs_done: int        # bit per leg
    started_ns: int


class StrategyEngine:
    def __init__(self, cfg, universe, model=None, run_tag: str = "", strategy=None, first_group: int = 1) -> None:
        sc = cfg.strategy
        self.cfg = cfg
        self.universe = universe
        if strategy is None:
            self.books = BookCache(len(universe.symbols))
            strategy = strategy_class(sc.name)(cfg, universe, self.books)
        else:                                   # a ready strategy brings its own book cache
            self.books = strategy.books
        self.strategy = strategy
        if model is not None:
            check_features(model.meta, self.strategy.features)
        self.model = model
        self.run_tag = run_tag_of(run_tag)
        self.min_edge = sc.min_edge_bps * 1e-4
        self.min_score = sc.min_score
        self.cooldown_ns = int(sc.cooldown_ms * 1e6)
        self.inflight_timeout_ns = int(sc.inflight_timeout_ms * 1e6)
        self.max_groups = sc.max_groups_per_event
        self.max_in_flight = sc.max_groups_in_flight
        self.max_per_window = sc.max_groups_per_10s
        self.recent_fires: collections.deque[int] = collections.deque()   # event times of recent fires
        self.tif = int(TimeInForce[sc.tif])
        self.next_group = first_group     # see group_base(): unique across restarts of a run
        self.in_flight: dict[int, _Group] = {}        # group id -> group
        self.busy_keys: dict[int, int] = {}           # key -> group id in flight
        self.last_fired: dict[int, int] = {}          # key -> recv_mono_ns of the last fire
        # counters for the stats file
        self.events = 0
        self.candidates = 0
        self.taken = 0
        self._decisions = np.zeros(max(Decision) + 1, dtype=np.int64)    # counts by Decision
        self.groups_done = 0
        self.groups_timed_out = 0
        self.model_calls = 0
        self._lat = np.zeros(_LATENCY_WINDOW, dtype=np.int64)
        self._lat_n = 0
        self._t2i = np.zeros(_LATENCY_WINDOW, dtype=np.int64)   # md receive -> intents built (live clock)
        self._t2i_n = 0

    # --- market data ---------------------------------------------------------------------------

    def on_md(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply md records; the candidates and intents they produced (possibly empty arrays)."""
        n = len(records)
        self.events += n
        cands, intents = [], []
        i = 0
        while i < n:
            t0 = time.perf_counter_ns()
            i, m = self.strategy.scan(records, i, n)
            if m == 0:
                break
            c, o = self._decide(records[i - 1], m, t0)
            cands.append(c)
            if len(o):
                intents.append(o)
        return _join(cands, CANDIDATE), _join(intents, ORDER_INTENT)

    def _decide(self, rec, m: int, t0: int) -> tuple[np.ndarray, np.ndarray]:
        ev = self.strategy.evaluation(m)
        now = int(rec["recv_mono_ns"])
        self._expire(now)
        decision = ev.verdict.copy()
        score = np.full(m, np.nan)
        # thresholds and risk first, so the model scores only what could still be traded
        edge, key = ev.edge, ev.key
        for j in np.flatnonzero(decision == 0).tolist():
            k = int(key[j])
            if edge[j] < self.min_edge:
                decision[j] = _SKIP_EDGE
            elif k in self.busy_keys or now - self.last_fired.get(k, _NEVER) <= self.cooldown_ns:
                decision[j] = _SKIP_RISK
        open_rows = np.flatnonzero(decision == 0)
        if len(open_rows) and not self._budget_allows(now):
            decision[open_rows] = _SKIP_RISK          # no room for a group: do not even score
            open_rows = open_rows[:0]
        if self.model is not None and len(open_rows):
            score[open_rows] = self.model.score(ev.features[open_rows])     # one batched call
            self.model_calls += 1
            decision[open_rows[~(score[open_rows] >= self.min_score)]] = _SKIP_SCORE
            open_rows = np.flatnonzero(decision == 0)
        fired = 0
        group_ids = np.zeros(m, dtype=np.uint64)
        if len(open_rows):
            for j in open_rows[np.argsort(-ev.pnl[open_rows], kind="stable")].tolist():
                if fired >= self.max_groups or not self._budget_allows(now):
                    decision[j] = _SKIP_RISK
                    continue
                decision[j] = _TAKEN
                group_ids[j] = self._fire(int(key[j]), now)
                fired += 1
        cands = self._candidates(ev, decision, score, group_ids, rec)
        intents = self._intents(ev, np.flatnonzero(decision == _TAKEN), score, group_ids, rec) if fired else _NO_INTENTS
        self.candidates += m
        self.taken += fired
        self._decisions += np.bincount(decision, minlength=len(self._decisions))
        self._lat[self._lat_n % _LATENCY_WINDOW] = time.perf_counter_ns() - t0
        self._lat_n += 1
        return cands, intents

    def _budget_allows(self, now: int) -> bool:
        """Room for one more group: in flight, and started within the last 10 s (event time)."""
        while self.recent_fires and now - self.recent_fires[0] >= _WINDOW_NS:
            self.recent_fires.popleft()
        return len(self.in_flight) < self.max_in_flight and len(self.recent_fires) < self.max_per_window

    def _fire(self, key: int, now: int) -> int:
        gid = self.next_group
        self.next_group += 1
        self.recent_fires.append(now)
        self.in_flight[gid] = _Group(key, 0, now)
        self.busy_keys[key] = gid
        self.last_fired[key] = now
        return gid

    def _expire(self, now: int) -> None:
        if not self.in_flight:
            return
        for gid in [g for g, grp in self.in_flight.items() if now - grp.started_ns > self.inflight_timeout_ns]:
            log.debug("group %d: legs unreported after %.0f ms, releasing its triangle", gid,
                        self.inflight_timeout_ns / 1e6)
            self._release(gid)
            self.groups_timed_out += 1

    def _release(self, gid: int) -> None:
        grp = self.in_flight.pop(gid)
        if self.busy_keys.get(grp.key) == gid:
            del self.busy_keys[grp.key]

    # --- records -------------------------------------------------------------------------------

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
        out["leg_symbol_id"] = ev.leg_symbol
        out["leg_side"] = ev.leg_side
        out["leg_px"] = ev.leg_px
        out["leg_qty"] = ev.leg_qty
        out["features"][:, :k] = ev.features[:, :k]
        return out

    def _intents(self, ev, rows, score, group_ids, rec) -> np.ndarray:
        legs = self.strategy.n_legs
        out = np.zeros(len(rows) * legs, ORDER_INTENT)
        created = time.monotonic_ns()
        self._t2i[self._t2i_n % _LATENCY_WINDOW] = created - int(rec["recv_mono_ns"])
        self._t2i_n += 1
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
        return out

    # --- executions ----------------------------------------------------------------------------

    def on_exec(self, records: np.ndarray) -> None:
        """Legs reported done (filled, canceled/expired, rejected, refused) free their triangle."""
        legs = self.strategy.n_legs
        full = (1 << legs) - 1
        for rec in records:
            gid = int(rec["group_id"])
            grp = self.in_flight.get(gid)
            leg = int(rec["leg"])
            # the executor's own orders for a group (unwinds) carry legs >= n_legs: not ours
            if grp is None or leg >= legs or int(rec["kind"]) not in TERMINAL:
                continue
            grp.legs_done |= 1 << leg
            if grp.legs_done == full:
                self._release(gid)
                self.groups_done += 1

    # --- lifecycle -----------------------------------------------------------------------------

    def warmup(self) -> None:
        """Compile every kernel now (numba caches on disk), and run the model once."""
        self.strategy.warmup()
        if self.model is not None:
            self.model.score(np.zeros((1, len(self.strategy.features)), dtype=np.float32))

    def skipped(self) -> dict[str, int]:
        return {d.name: int(self._decisions[d]) for d in Decision if d != Decision.TAKEN}

    def latency_ns(self) -> dict[str, float]:
        """Decision latency per market event with candidates (scan start -> records built)."""
        return _percentiles(self._lat, self._lat_n)

    def tick_to_intent_ns(self) -> dict[str, float]:
        """md receive (feed's CLOCK_MONOTONIC) -> intents built; meaningful on live md only."""
        return _percentiles(self._t2i, self._t2i_n)

    def stats(self) -> dict:
        lat = self.latency_ns()
        t2i = self.tick_to_intent_ns()
        return {
            "strategy": self.strategy.name, "events": self.events, "candidates": self.candidates,
            "taken": self.taken, "skipped": self.skipped(), "groups_in_flight": len(self.in_flight),
            "groups_done": self.groups_done, "groups_timed_out": self.groups_timed_out,
            "model_calls": self.model_calls, "eval_p50_us": lat["p50"] / 1e3, "eval_p99_us": lat["p99"] / 1e3,
            "tick_to_intent_p50_us": t2i["p50"] / 1e3, "tick_to_intent_p99_us": t2i["p99"] / 1e3,
            "model": f"{self.model.meta.name}@{self.model.version}" if self.model is not None else "none",
        }
