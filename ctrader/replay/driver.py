"""The replay engine: recorded market data through the live strategy and the live executor.

History (MD_EVENT arrays, in time order, any chunk size) goes through the SAME strategy object
paper trading runs (``StrategyEngine.on_md``) and the SAME ``Executor`` (risk gate, duplicate
check, unwind policy, accounting, journal when asked) as live and paper sessions, in front of a
``ReplayVenue``: the paper fill model with its latency, queue and fee models, in the history's
own time. One order path: a backtest runs the code that trades.

    engine = ReplayEngine(universe, strategy, ReplayOptions(order_latency=SampledLatency.parse("2")))
    for chunk in store.read_md(symbols, start, end):
        engine.feed(chunk)
    result = engine.finish()          # ReplayResult: summary, fills, PnL series, digests

Timeline. The executor's clock is the recorded receive time of the market event at hand
(``recv_mono_ns``, the CLOCK_MONOTONIC the session's executor ran on; wall times for reports
come from the same event's ``recv_ts_ns``). The executor sees the market data as the paper
executor did (``Executor.on_md``: books, and matching of orders that fell due); an order reaches
the matching its latency after the event that caused it (the recorded session's own latency
for that order with ``session_timing``, a draw of the latency model otherwise) and, when no
market event comes by then, is matched at its due time on the books as they are (as the paper
executor's loop does in a quiet market). A session that logged where each order met the market
(``execution.match_points``) has each order matched when it got there, on the books as of the
md record its executor had applied last: the replay's executor applies no later record until
then (``ReplayVenue.md_cap``), while the strategy reads on; and has its risk gate judge each
intent on the books as of the md record the session's gate had (``_send_intents``: records
after it wait, records up to it are applied first). Executions reach the strategy
(``on_exec``) after the exec latency, or when the session's strategy learned of them; the
strategy runs until an event produces intents or an order falls due, never past it
(``stepping.step``).

Determinism. Latencies are drawn from seeded generators in intent order, and every stop of the
strategy is set by the data (an intent, a due time), not by the size of the chunks the store
returns: the same data, config and model give identical candidates, intents and fills.
``ReplayResult.digests`` fingerprints each (ignoring the strategy's own monotonic clock fields,
which measure compute time, not decisions).
"""
from __future__ import annotations

import hashlib
import heapq
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctrader.core.arrays import as_layout, concat
from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, ORDER_INTENT, IntentAction
from ctrader.execution.bookview import BookView
from ctrader.execution.engine import Executor
from ctrader.execution.fee_model import FlatFees
from ctrader.execution.journal import Journal
from ctrader.execution.latency import SampledLatency
from ctrader.execution.orders import Order, VenueUpdate
from ctrader.execution.paper import PaperFillModel, ReplayVenue
from ctrader.execution.paper_account import PaperAccount
from ctrader.execution.queue import QueueModel
from ctrader.execution.risk import KillSwitch, RiskLimits
from ctrader.market.books import BookCache
from ctrader.replay.stepping import step
from ctrader.replay.summary import FILL, ReplaySummary
from ctrader.strategy.protocol import DecisionSource
from ctrader.venue.decimals import ONE

log = logging.getLogger(__name__)

NO_LIMITS = RiskLimits(max_order_notional=1e18, max_group_notional=1e18, max_position=1e18, max_open_orders=10**9,
                       orders_per_10s=10**9, orders_per_day=10**12, weight_per_minute=10**12,
                       daily_loss_limit=1e18, max_book_age_ms=1e12, price_band_pct=0.0)


@dataclass
class ReplayOptions:
    feed_latency: SampledLatency = field(default_factory=lambda: SampledLatency.parse("0"))
    order_latency: SampledLatency = field(default_factory=lambda: SampledLatency.parse("0"))
    exec_latency: SampledLatency = field(default_factory=lambda: SampledLatency.parse("0"))   # match -> strategy
    session_timing: Any = None        # fidelity.SessionTiming: a recorded session's per-order timing
    batch_events: int = 1024          # strategy batch; exec feedback at batch ends (determinism unit)
    speed: float = 0.0                # 0: as fast as possible; 1: market time; 10: ten times faster
    taker_fee: float = 0.001
    maker_fee: float = 0.001
    valuation_asset: str = "USDT"
    pnl_interval_ns: int = 1_000_000_000
    keep_records: int = 2_000_000     # candidates/intents/exec records kept for the report and store
    limits: RiskLimits = field(default_factory=lambda: NO_LIMITS)   # the executor's risk gate
    unwind: str = "market"            # the executor's unwind policy
    balances: list[str] | None = None   # the paper account (ASSET=AMOUNT); None: balances not modelled
    queue: QueueModel | None = None     # resting orders' queue model (None: risk-averse)
    paper_latency_ns: int = 0           # the paper venue's own latency (sent -> matched), for unwinds
    journal_path: str | None = None     # journal the replay's orders (as a session's executor does)


class NullStrategy:
    """A ``DecisionSource`` that decides nothing: measures the replay machinery alone (books,
    batching, fill side)."""

    def on_md_until(self, records: np.ndarray, start: int, end: int) -> tuple[int, np.ndarray, np.ndarray]:
        return max(start, end), np.zeros(0, CANDIDATE), np.zeros(0, ORDER_INTENT)

    def on_exec(self, records: np.ndarray) -> np.ndarray:
        return np.zeros(0, ORDER_INTENT)


def _index_after(mono: np.ndarray, seq: np.ndarray, point: tuple[int, int]) -> int:
    """Index of the first record of a batch (in (receive time, seq) order) after ``point``."""
    recv_ns, point_seq = point
    lo = int(np.searchsorted(mono, recv_ns, "left"))
    hi = int(np.searchsorted(mono, recv_ns, "right"))
    at_or_before = np.flatnonzero(seq[lo:hi] <= point_seq)
    return lo + int(at_or_before[-1]) + 1 if len(at_or_before) else lo


def _runs_by_gate_point(batch: np.ndarray, gate_point: Callable[[int, int], tuple[int, int] | None]
                        ) -> list[tuple[int, int, tuple[int, int] | None]]:
    """(first, end, point) of the runs of ``batch`` sharing one recorded gate point (None: not
    recorded, or not a NEW intent: cancels and replacements are not logged)."""
    runs: list[tuple[int, int, tuple[int, int] | None]] = []
    for k in range(len(batch)):
        rec = batch[k]
        point = gate_point(int(rec["group_id"]), int(rec["leg"])) if rec["action"] == IntentAction.NEW else None
        if runs and runs[-1][2] == point:
            runs[-1] = (runs[-1][0], k + 1, point)
        else:
            runs.append((k, k + 1, point))
    return runs


class ReplayEngine:
    def __init__(self, universe, strategy: DecisionSource, options: ReplayOptions | None = None,
                 on_batch: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None) -> None:
        self.universe = universe
        self.strategy = strategy
        self.opt = opt = options or ReplayOptions()
        self.on_batch = on_batch          # (candidates, intents, execs) of each batch, e.g. a store sink
        self.cache = BookCache(len(universe.symbols))    # the executor's books: what the matching sees
        self.view = BookView(self.cache.books)
        val = opt.valuation_asset if opt.valuation_asset in universe.assets else universe.assets[0]
        account = PaperAccount.parse(opt.balances) if opt.balances is not None else None
        model = PaperFillModel(self.view, universe, account=account, queue=opt.queue,
                               fees=FlatFees(opt.taker_fee, opt.maker_fee))
        timing = opt.session_timing
        self.venue = ReplayVenue(model, opt.order_latency, opt.feed_latency,
                                 recorded=timing.order_latency if timing is not None else None,
                                 send_latency_ns=timing.paper_latency_ns if timing is not None else opt.paper_latency_ns,
                                 recorded_unwind_sent=timing.sent_at if timing is not None else None,
                                 recorded_match=timing.match_point if timing is not None else None)
        journal = Journal(opt.journal_path, sync=False) if opt.journal_path else None
        self._now_mono = 0                # the history's clocks at the event at hand
        self._now_wall = 0
        self.executor = Executor(universe, self.venue, journal, self._on_exec,
                                 opt.limits, KillSwitch(None), valuation_asset=val, unwind=opt.unwind,
                                 clock=lambda: self._now_mono, books=self.cache,
                                 wall_clock=lambda: self._now_wall, on_fill=self._on_fill,
                                 gated_at=timing.gated_at if timing is not None else None)
        self.acct = self.executor.accounting
        self.valuer = self.executor.valuer
        self.summary = ReplaySummary(universe, val, opt.keep_records, self.valuer)
        self._reports: list[tuple[int, int, np.ndarray]] = []    # (deliver at, seq, exec records)
        self._seq = 0
        self._carry = np.zeros(0, MD_EVENT)
        self._exec_out: list[np.ndarray] = []
        self._followups: list[np.ndarray] = []    # intents executions called for, not yet summed up
        self._followup_execs: list[np.ndarray] = []   # and the executions those published
        self._applied = 0                 # records of the batch at hand given to the executor
        self._held_back: list[np.ndarray] = []    # ... of which it may not apply yet (md_cap)
        self._gate_cap: tuple[int, int] | None = None   # while the intents at hand are judged
        self._last_clocks: tuple[int, int] | None = None    # (mono, wall) of the last batch's last record
        self._gates = timing.gate_schedule() if timing is not None else None   # ... and until then
        self._strategy_mono = 0           # the receive time of the last record the strategy applied
        self.gated_at_points = 0          # intents judged at the recorded session's gate points
        self._next_pnl_ns = 0
        self._wall0 = None
        self._mkt0 = None
        self.events = 0
        self.batches = 0
        self.first_ts_ns = 0
        self.last_ts_ns = 0
        self._md_hash = hashlib.blake2b(digest_size=16)
        for model_ in (opt.feed_latency, opt.order_latency, opt.exec_latency):
            model_.reset()

    # --- input ------------------------------------------------------------------------------------

    def feed(self, chunk: np.ndarray) -> None:
        """Replay a chunk of MD_EVENT records (any size; time order across calls)."""
        if len(chunk) == 0:
            return
        b = self.opt.batch_events
        chunk = as_layout(chunk, MD_EVENT)
        if len(self._carry):
            # complete the carried partial batch with the chunk's first records, without copying
            # the whole chunk behind it (a store chunk is 200k records: 90 MB a copy)
            need = b - len(self._carry)
            if len(chunk) < need:
                self._carry = concat([self._carry, chunk], MD_EVENT)
                return
            self._batch(concat([self._carry, chunk[:need]], MD_EVENT))
            self._carry = np.zeros(0, MD_EVENT)
            chunk = chunk[need:]
        whole = len(chunk) - len(chunk) % b
        for i in range(0, whole, b):
            self._batch(chunk[i:i + b])
        self._carry = chunk[whole:].copy()

    def run(self, chunks: Iterable[np.ndarray], progress: Callable[[int, int], None] | None = None) -> ReplayResult:
        for chunk in chunks:
            self.feed(chunk)
            if progress is not None:
                progress(self.events + len(self._carry), self.last_ts_ns)
        return self.finish()

    def finish(self) -> ReplayResult:
        """Replay what is left, settle orders still in flight against the last books, and sum up."""
        if len(self._carry):
            self._batch(self._carry)
            self._carry = np.zeros(0, MD_EVENT)
        self._gates = None                       # no intent comes any more: nothing to wait for
        for _ in range(100):      # until executions call for no more orders (hedges of a last fill)
            while True:                          # due after the last event: matched on the last books
                due = self._next_due()
                if due is None:
                    break
                self._at(max(due, self._now_mono), self._now_wall + max(0, due - self._now_mono))
                self.executor.poll()
                self._show_executor(np.zeros(0, MD_EVENT), 0)     # what it held back (md_cap)
            self._show_executor(np.zeros(0, MD_EVENT), 0)
            execs = self._flush_exec()
            self._deliver(1 << 62)
            follow = self._take_followups()
            execs = concat([execs, *self._take_followup_execs()], EXEC_EVENT)
            if follow:
                self.summary.on_intents(concat(follow, ORDER_INTENT))
            if self.on_batch is not None and (len(execs) or follow):
                self.on_batch(np.zeros(0, CANDIDATE), concat(follow, ORDER_INTENT) if follow
                              else np.zeros(0, ORDER_INTENT), execs)
            if not follow and self._next_due() is None:
                break
        self._sample_pnl(self.last_ts_ns, force=True)
        if self.executor.journal is not None:
            self.executor.journal.close()
        return ReplayResult.build(self)

    # --- one batch -------------------------------------------------------------------------------

    def _batch(self, recs: np.ndarray) -> None:
        """One batch, event-exactly: the strategy runs until an event produces intents or an order
        is due; the executor sees the same events (books, matching of what fell due) before the
        intents an event caused; an order due between two events is matched at its due time."""
        ts = recs["recv_ts_ns"]
        mono = recs["recv_mono_ns"]
        n = len(recs)
        if self.events == 0:
            self.first_ts_ns = int(ts[0])
            self._next_pnl_ns = self.first_ts_ns
            self._at(int(mono[0]), int(ts[0]))
        if self.opt.speed > 0:
            self._pace(int(ts[0]))
        # the data fingerprint: which events, in which order (16 bytes an event, not the levels),
        # row by row: the same whatever the batch size
        self._md_hash.update(np.stack([ts, recs["last_update_id"]], axis=1).tobytes())
        self._applied = 0
        all_c, all_i, all_e = [], [], []
        i = 0
        while i < n:
            end = n
            due = self._next_due()
            if due is not None:
                # the strategy sees the events up to the head order's due time, then the match
                # (or the expiry of a resting order)
                end = int(np.searchsorted(mono, due, "right"))
                if end <= i:
                    self._show_executor(recs, i)
                    # the wall clock at the due time, from the record before it (the previous
                    # batch's last one when the due time falls between two batches)
                    before_mono, before_wall = ((int(mono[i - 1]), int(ts[i - 1])) if i
                                                else self._last_clocks or (int(mono[0]), int(ts[0])))
                    self._at(due, before_wall + (due - before_mono))
                    self.executor.poll()
                    all_e.append(self._flush_exec())
                    self._collect_followups(all_i, all_e)
                    continue
            if self._reports:
                # ... and the executions once they reach it (exec latency after the match)
                at = self._reports[0][0]
                stop = int(np.searchsorted(ts, at, "right"))
                if stop <= i:
                    self._deliver(at)
                    self._collect_followups(all_i, all_e)
                    continue
                end = min(end, stop)
            if self.venue.has_resting():
                # any event may fill a resting order, and the strategy must learn of that fill
                # before the events after it, as live: in step with the executor, one at a time
                end = min(end, i + 1)
            i, cands, intents = step(self.strategy, recs, i, end)
            if i:
                self._strategy_mono = int(mono[i - 1])
            all_c += cands
            if intents:
                for c in cands:
                    self.summary.on_taken(c)          # before any fill: fills look up their candidate
                batch = concat(intents, ORDER_INTENT)
                all_i.append(batch)
                self._send_intents(recs, i, batch)
            else:
                self._show_executor(recs, i)
            all_e.append(self._flush_exec())
            self._collect_followups(all_i, all_e)
        self._show_executor(recs, n)
        all_e.append(self._flush_exec())
        self._collect_followups(all_i, all_e)
        cands = concat(all_c, CANDIDATE) if all_c else np.zeros(0, CANDIDATE)
        intents = concat(all_i, ORDER_INTENT) if all_i else np.zeros(0, ORDER_INTENT)
        all_e = [e for e in all_e if len(e)]
        execs = concat(all_e, EXEC_EVENT) if all_e else np.zeros(0, EXEC_EVENT)
        if len(cands):
            self.summary.on_candidates(cands)
        if len(intents):
            self.summary.on_intents(intents)
        self.events += n
        self.batches += 1
        self.last_ts_ns = int(ts[-1])
        self._last_clocks = (int(mono[-1]), int(ts[-1]))
        if self.on_batch is not None and (len(cands) or len(intents) or len(execs)):
            self.on_batch(cands, intents, execs)
        self._sample_pnl(self.last_ts_ns)

    def _send_intents(self, recs: np.ndarray, i: int, batch: np.ndarray) -> None:
        """The executor gets ``batch``, caused by ``recs[i - 1]``, once it has seen the events
        before ``i``; with a recorded session's gate points (``execution.match_points``), each
        run of intents its gate judged at one md position is judged on the books as of that
        record instead: records after it wait (the session's executor had not read them yet),
        records up to it past the cause are applied first (it had read on before the intents
        came), then the executor catches up."""
        timing = self.opt.session_timing
        if timing is None or not timing.gate_points:
            self._show_executor(recs, i)
            self.executor.on_intents(batch, len(batch))
            return
        mono, seq = recs["recv_mono_ns"], recs["seq"]
        for lo, hi, point in _runs_by_gate_point(batch, timing.gate_point):
            if point is None:
                self._show_executor(recs, i)
            else:
                self.gated_at_points += hi - lo
                self._gate_cap = point
                self._show_executor(recs, max(i, _index_after(mono, seq, point)))
            self.executor.on_intents(batch[lo:hi], hi - lo)
            self._gate_cap = None
            if self._gates is not None:
                self._gates.passed(int(batch["group_id"][lo:hi].max()))
        self._show_executor(recs, i)          # what the gate points held back

    def _md_cap(self) -> tuple[int, int] | None:
        """The last md record the executor may apply now: before the orders in flight reach the
        matching (``ReplayVenue.md_cap``), the intents at hand are judged, and the session's gate
        judged the next group (``fidelity.GateSchedule``)."""
        caps = [c for c in (self.venue.md_cap(), self._gate_cap,
                            self._gates.cap(self._strategy_mono) if self._gates is not None else None)
                if c is not None]
        return min(caps) if caps else None

    def _next_due(self) -> int | None:
        """The next time the executor must act between market events: a paper order reaching
        the matching (its latency), or a resting order's expiry."""
        due, expiry = self.venue.next_due(), self.executor.next_expiry()
        if expiry is None:
            return due
        return expiry if due is None else min(due, expiry)

    def _show_executor(self, recs: np.ndarray, upto: int) -> None:
        """The executor sees the batch's events before ``upto`` (as its md ring would show them):
        books, and matching of what fell due by then. Its clock is the last one's. Records after
        the venue's ``md_cap`` wait (in ``_held_back`` across batches) until the order in flight
        that caps them has reached the matching: the recorded session's executor had not read
        them by then."""
        if upto > self._applied:
            if not self._held_back and self._md_cap() is None:      # the usual case
                last = recs[upto - 1]
                self._at(int(last["recv_mono_ns"]), int(last["recv_ts_ns"]))
                self.executor.on_md(recs[self._applied:upto], upto - self._applied)
                self._applied = upto
                return
            self._held_back.append(recs[self._applied:upto].copy())    # may outlive the store's chunk
            self._applied = upto
        while self._held_back:
            recs = self._held_back[0]
            cap = self._md_cap()
            n = len(recs) if cap is None else _index_after(recs["recv_mono_ns"], recs["seq"], cap)
            if n == 0:
                return
            last = recs[n - 1]
            # never back in time: held-back records were received before the clock's due time
            self._at(max(self._now_mono, int(last["recv_mono_ns"])), max(self._now_wall, int(last["recv_ts_ns"])))
            self.executor.on_md(recs[:n], n)
            if n < len(recs):
                self._held_back[0] = recs[n:]
            else:
                self._held_back.pop(0)

    def _at(self, mono_ns: int, wall_ns: int) -> None:
        self._now_mono, self._now_wall = mono_ns, wall_ns

    # --- what the executor reports ---------------------------------------------------------------------

    def _on_exec(self, rec: np.ndarray) -> None:
        self._exec_out.append(rec.copy())

    def _on_fill(self, order: Order, fill: VenueUpdate) -> None:
        feed_ns, order_ns = self.venue.latencies.get(order.client_order_id, (0, 0))
        self.summary.on_fill(order, fill, self._now_wall, feed_ns, order_ns)

    def _flush_exec(self) -> np.ndarray:
        """Executions the executor published: to the summary now, to the strategy after the exec
        latency (the user-data stream / exec ring delay) or when the session's strategy learned
        of them, in publication order."""
        if not self._exec_out:
            return np.zeros(0, EXEC_EVENT)
        execs = concat(self._exec_out, EXEC_EVENT)
        self._exec_out = []
        self.summary.on_execs(execs)
        lat = self.opt.exec_latency.sample_ns()
        at = execs["recv_ts_ns"] + lat
        timing = self.opt.session_timing
        if timing is not None:
            for j, r in enumerate(execs):
                live = timing.report_at(int(r["group_id"]), int(r["leg"]), int(r["kind"]),
                                        r["client_order_id"].rstrip(b"\0").decode())
                if live is not None:
                    at[j] = max(live, int(r["recv_ts_ns"]))
        for t in np.unique(at):
            part = execs[at == t].copy()
            part["recv_ts_ns"] = int(t)
            self._seq += 1
            heapq.heappush(self._reports, (int(t), self._seq, part))
        self._deliver(int(execs["recv_ts_ns"].max()))     # whatever is due already (zero latency)
        return execs

    def _collect_followups(self, intents: list, execs: list) -> None:
        """The intents executions called for (and what those published), in the order they went
        out: the digests do not depend on where a batch ended."""
        intents += self._take_followups()
        execs += self._take_followup_execs()

    def _take_followups(self) -> list[np.ndarray]:
        out, self._followups = self._followups, []
        return out

    def _take_followup_execs(self) -> list[np.ndarray]:
        out, self._followup_execs = self._followup_execs, []
        return out

    def _deliver(self, until_ns: int) -> None:
        """Executions due by ``until_ns`` to the strategy; the intents they call for (a resting
        order's hedges) go to the executor at once, on the books it has now."""
        while self._reports and self._reports[0][0] <= until_ns:
            follow = self.strategy.on_exec(heapq.heappop(self._reports)[2])
            if follow is not None and len(follow):
                self._followups.append(follow)
                self.executor.on_intents(follow, len(follow))
                # what they caused is published now, not with whichever flush comes next (that
                # depends on the batching, and each flush draws an exec latency)
                self._followup_execs.append(self._flush_exec())

    # --- time ----------------------------------------------------------------------------------------

    def _pace(self, ts: int) -> None:
        if self._wall0 is None:
            self._wall0, self._mkt0 = time.perf_counter(), ts
            return
        wait = (ts - self._mkt0) / 1e9 / self.opt.speed - (time.perf_counter() - self._wall0)
        if wait > 0:
            time.sleep(wait)

    def _sample_pnl(self, ts: int, force: bool = False) -> None:
        if not force and ts < self._next_pnl_ns:
            return
        self.summary.on_pnl(ts, self.acct.pnl(self.valuer), self._inventory())
        self._next_pnl_ns = ts + self.opt.pnl_interval_ns

    def _inventory(self) -> dict[str, float]:
        """Each asset's position change valued in the valuation asset."""
        out = {}
        for asset, units in self.acct.positions.items():
            if units and asset in self.universe.assets:
                v = self.valuer.value(self.universe.asset_id(asset), units)
                out[asset] = 0.0 if math.isnan(v) else v
        return out


@dataclass
class ReplayResult:
    summary: dict[str, Any]
    candidates: np.ndarray           # CANDIDATE records (up to keep_records)
    intents: np.ndarray              # ORDER_INTENT records
    execs: np.ndarray                # EXEC_EVENT records
    fills: np.ndarray                # summary.FILL rows (expected price, slippage, latency)
    pnl: np.ndarray                  # (ts_ns, pnl) samples
    inventory: list[dict[str, float]]
    digests: dict[str, str]

    @classmethod
    def build(cls, eng: ReplayEngine) -> ReplayResult:
        s = eng.summary
        group_pnl = {g: eng.acct.group_pnl(g, eng.valuer) for g in eng.acct.group_flows}
        summary = s.finish(eng, group_pnl)
        summary["balances"] = eng.venue.balances()          # the paper account at the end (None: not modelled)
        # orders matched where the recorded session's venue matched them (execution.match_points)
        summary["matched_at_recorded_points"] = eng.venue.matched_at_points
        summary["gated_at_recorded_points"] = eng.gated_at_points
        summary["refusals"] = dict(eng.acct.refusals)
        # each strategy's orders, fills, refusals, fees and PnL (several side by side: strategy.names)
        summary["by_strategy"] = eng.acct.by_strategy(eng.valuer, eng.executor.strategy_names)
        summary["opposite_sides"] = dict(eng.executor.opposite_sides)
        if eng.executor.budgets:
            summary["strategy_budgets"] = {k: v["refusals"] for k, v in eng.executor.budgets.usage(
                [], eng.valuer, 0).items()}
        digests = dict(s.digests(), md=eng._md_hash.hexdigest())
        summary["digests"] = digests
        return cls(summary, s.candidates(), s.intents(), s.execs(), s.fills(), s.pnl_series(),
                   s.inventory, digests)


def replay_arrays(universe, strategy, chunks: Iterable[np.ndarray], options: ReplayOptions | None = None,
                  **kw) -> ReplayResult:
    """Replay in-memory MD_EVENT arrays (tests, benchmarks, the offline simulator)."""
    return ReplayEngine(universe, strategy, options, **kw).run(chunks)


__all__ = ["FILL", "ONE", "NullStrategy", "ReplayEngine", "ReplayOptions", "ReplayResult", "replay_arrays"]
