"""The replay engine: recorded market data through the live strategy and the paper fill model.

History (MD_EVENT arrays, in time order, any chunk size) goes through the SAME strategy object
paper trading runs (``StrategyEngine.on_md``) and the SAME fill model (``PaperFillModel``), with
a latency model in between, as fast as the machine allows:

    engine = ReplayEngine(universe, strategy, ReplayOptions(order_latency=LatencyModel.parse("2")))
    for chunk in store.read_md(symbols, start, end):
        engine.feed(chunk)
    result = engine.finish()          # ReplayResult: summary, fills, PnL series, digests

Timeline. The market clock is the recorded receive time (``recv_ts_ns``). An order reaches the
matching ``feed latency + order latency`` after the event that caused it and is matched at that
time on the books as the market left them (the paper executor's timer does the same in a quiet
market), on a second ``BookCache`` that follows the market event by event. Its executions reach
the strategy (``on_exec``) before the strategy sees any event after the match: the strategy runs
until an event produces intents or an order falls due, never past it (``stepping.step``).

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

from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, ORDER_INTENT, ExecKind
from ctrader.execution.accounting import Accounting, Valuer
from ctrader.execution.bookview import BookView
from ctrader.execution.orders import Order, OrderBook, exec_record
from ctrader.execution.paper import PaperFillModel
from ctrader.market.books import BookCache, apply_all, apply_md
from ctrader.replay.arrays import as_layout, concat
from ctrader.execution.latency import SampledLatency as LatencyModel
from ctrader.replay.stepping import step
from ctrader.replay.summary import FILL, ReplaySummary
from ctrader.venue.decimals import ONE

log = logging.getLogger(__name__)


@dataclass
class ReplayOptions:
    feed_latency: LatencyModel = field(default_factory=lambda: LatencyModel.parse("0"))
    order_latency: LatencyModel = field(default_factory=lambda: LatencyModel.parse("0"))
    exec_latency: LatencyModel = field(default_factory=lambda: LatencyModel.parse("0"))   # match -> strategy
    session_timing: Any = None        # fidelity.SessionTiming: a recorded session's per-order timing
    batch_events: int = 1024          # strategy batch; exec feedback at batch ends (determinism unit)
    speed: float = 0.0                # 0: as fast as possible; 1: market time; 10: ten times faster
    taker_fee: float = 0.001
    maker_fee: float = 0.001
    valuation_asset: str = "USDT"
    pnl_interval_ns: int = 1_000_000_000
    keep_records: int = 2_000_000     # candidates/intents/exec records kept for the report and store


class NullStrategy:
    """Does nothing: measures the replay machinery alone (books, batching, fill side)."""

    def on_md(self, records: np.ndarray):
        return None, None

    def on_exec(self, records: np.ndarray) -> None:
        pass


def _as_records(value, dtype) -> np.ndarray:
    if value is None:
        return np.zeros(0, dtype)
    if isinstance(value, list):
        return concat(value, dtype)
    return as_layout(value, dtype)


@dataclass(order=True)
class _Pending:
    due_ns: int
    seq: int
    cause_ts_ns: int = field(compare=False)
    order: Order = field(compare=False)
    feed_ns: int = field(compare=False)
    order_ns: int = field(compare=False)


class ReplayEngine:
    def __init__(self, universe, strategy, options: ReplayOptions | None = None,
                 on_batch: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None) -> None:
        self.universe = universe
        self.strategy = strategy
        self.opt = options or ReplayOptions()
        self.on_batch = on_batch          # (candidates, intents, execs) of each batch, e.g. a store sink
        n = len(universe.symbols)
        self.cache = BookCache(n)         # the market as the matching sees it
        self.view = BookView(self.cache.books)
        self.fills = PaperFillModel(self.view, universe, taker_rate=self.opt.taker_fee,
                                    maker_rate=self.opt.maker_fee, latency_ns=0)
        self.orders = OrderBook()
        self.acct = Accounting(universe)
        val = self.opt.valuation_asset if self.opt.valuation_asset in universe.assets else universe.assets[0]
        self.valuer = Valuer(universe, self.view, val)
        self.summary = ReplaySummary(universe, val, self.opt.keep_records, self.valuer)
        self._pending: list[_Pending] = []
        self._reports: list[tuple[int, int, np.ndarray]] = []    # (deliver at, seq, exec records)
        self._seq = 0
        self._carry = np.zeros(0, MD_EVENT)
        self._exec_out: list[np.ndarray] = []
        self._next_pnl_ns = 0
        self._wall0 = None
        self._mkt0 = None
        self.events = 0
        self.batches = 0
        self.first_ts_ns = 0
        self.last_ts_ns = 0
        self._md_hash = hashlib.blake2b(digest_size=16)
        self.opt.feed_latency.reset()
        self.opt.order_latency.reset()
        self.opt.exec_latency.reset()

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
        while self._pending:                     # due after the last event: match the last books
            p = heapq.heappop(self._pending)
            self._handle(self.fills.submit(p.order, max(p.due_ns, self.last_ts_ns)), p,
                         max(p.due_ns, self.last_ts_ns))
        execs = self._flush_exec()
        if self.on_batch is not None and len(execs):
            self.on_batch(np.zeros(0, CANDIDATE), np.zeros(0, ORDER_INTENT), execs)
        self._deliver(1 << 62)
        self._sample_pnl(self.last_ts_ns, force=True)
        return ReplayResult.build(self)

    # --- one batch -------------------------------------------------------------------------------

    def _batch(self, recs: np.ndarray) -> None:
        """One batch, event-exactly: the strategy runs until an event produces intents or an order
        is due; due orders match on the market's books as of the first event at/after their due
        time, and their executions reach the strategy before it sees the next event."""
        ts = recs["recv_ts_ns"]
        n = len(recs)
        if self.events == 0:
            self.first_ts_ns = int(ts[0])
            self._next_pnl_ns = self.first_ts_ns
        if self.opt.speed > 0:
            self._pace(int(ts[0]))
        # the data fingerprint: which events, in which order (16 bytes an event, not the levels)
        self._md_hash.update(ts.tobytes())
        self._md_hash.update(recs["last_update_id"].tobytes())
        self._fill_pos = 0
        all_c, all_i, all_e = [], [], []
        i = 0
        while i < n:
            end = n
            if self._pending:
                # the strategy sees the events up to the head order's due time, then the match
                due = self._pending[0].due_ns
                end = int(np.searchsorted(ts, due, "right"))
                if end <= i:
                    self._advance_fills(recs, ts, i - 1, due)
                    execs = self._flush_exec()
                    if len(execs):
                        all_e.append(execs)
                    continue
            if self._reports:
                # ... and the executions once they reach it (exec latency after the match)
                at = self._reports[0][0]
                stop = int(np.searchsorted(ts, at, "right"))
                if stop <= i:
                    self._deliver(at)
                    continue
                end = min(end, stop)
            i, cands, intents = step(self.strategy, recs, i, end)
            all_c += cands
            if intents:
                self._advance_fills(recs, ts, i - 1, -1)   # the market as of the cause event (valuation)
                for c in cands:
                    self.summary.on_taken(c)          # before any fill: fills look up their candidate
                for o in intents:
                    all_i.append(o)
                    for rec in o:
                        self._submit(rec)
        self._advance_fills(recs, ts, n - 1, int(ts[-1]))
        execs = self._flush_exec()
        if len(execs):
            all_e.append(execs)
        cands = concat(all_c, CANDIDATE) if all_c else np.zeros(0, CANDIDATE)
        intents = concat(all_i, ORDER_INTENT) if all_i else np.zeros(0, ORDER_INTENT)
        execs = concat(all_e, EXEC_EVENT) if all_e else np.zeros(0, EXEC_EVENT)
        if len(cands):
            self.summary.on_candidates(cands)
        if len(intents):
            self.summary.on_intents(intents)
        self.events += n
        self.batches += 1
        self.last_ts_ns = int(ts[-1])
        if self.on_batch is not None and (len(cands) or len(intents) or len(execs)):
            self.on_batch(cands, intents, execs)
        self._sample_pnl(self.last_ts_ns)

    def _submit(self, rec) -> None:
        info = self.universe.symbols[int(rec["symbol_id"])]
        order = Order.from_intent(rec, info.name, info.tick_units, info.step_units)
        self.orders.add(order)
        feed_ns = self.opt.feed_latency.sample_ns()
        order_ns = self.opt.order_latency.sample_ns()
        if self.opt.session_timing is not None:
            live = self.opt.session_timing.order_latency(order.group_id, order.leg)
            if live is not None:
                feed_ns, order_ns = 0, live
        cause = int(rec["cause_recv_ts_ns"])
        order.sent_mono_ns = int(rec["cause_recv_mono_ns"]) + feed_ns
        self.acct.on_sent(order)
        self._seq += 1
        heapq.heappush(self._pending, _Pending(cause + feed_ns + order_ns, self._seq, cause, order,
                                               feed_ns, order_ns))

    def _advance_fills(self, recs: np.ndarray, ts: np.ndarray, upto: int, match_until_ns: int) -> None:
        """Bring the matching's books through event ``upto`` (inclusive), then match every order
        due by ``match_until_ns`` at its due time: on the books as the market left them at that
        time, as the paper executor's timer does in a quiet market. Resting orders (GTC) are
        checked against every event of their symbol on the way."""
        books = self.cache.books
        pos = self._fill_pos
        if upto >= pos:
            if self.fills.resting:
                for j in range(pos, upto + 1):
                    sid = apply_md(books, recs, j)
                    if sid >= 0:
                        self._handle_resting(self.fills.on_book(sid, int(ts[j])), int(ts[j]))
            else:
                apply_all(books, recs[pos:upto + 1], upto + 1 - pos)
            self._fill_pos = upto + 1
        while self._pending and self._pending[0].due_ns <= match_until_ns:
            p = heapq.heappop(self._pending)
            self._handle(self.fills.submit(p.order, p.due_ns), p, p.due_ns)

    # --- venue updates ------------------------------------------------------------------------------

    def _handle(self, updates, p: _Pending, now: int) -> None:
        for u in updates:
            self._apply_update(u, now, p)

    def _handle_resting(self, updates, now: int) -> None:
        for u in updates:
            self._apply_update(u, now, None)

    def _apply_update(self, u, now: int, p: _Pending | None) -> None:
        t = self.orders.apply(u)
        if t is None:
            return
        order = t.order
        for kind in t.kinds:
            fee_asset = -1
            if kind in (ExecKind.FILL, ExecKind.PARTIAL_FILL) and t.fill is not None and t.fill.fee_asset:
                fee_asset = self.universe.asset_id(t.fill.fee_asset)
            fill = t.fill if kind in (ExecKind.FILL, ExecKind.PARTIAL_FILL) else None
            self._exec_out.append(exec_record(order, kind, fill=fill, fee_asset_id=fee_asset, recv_ts_ns=now))
            if kind == ExecKind.REJECTED:
                self.acct.on_rejected(order.reject_code)
            elif kind == ExecKind.CANCELED:
                self.acct.cancels += 1
        if t.fill is not None:
            f = t.fill
            self.acct.on_fill(order, f)
            feed_ns = p.feed_ns if p else 0
            order_ns = p.order_ns if p else 0
            self.summary.on_fill(order, f, now, feed_ns, order_ns)

    def _flush_exec(self) -> np.ndarray:
        """Executions of the last match: to the summary now, to the strategy after the exec latency
        (the user-data stream / exec ring delay), in match order."""
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
                live = timing.report_at(int(r["group_id"]), int(r["leg"]), int(r["kind"]))
                if live is not None:
                    at[j] = max(live, int(r["recv_ts_ns"]))
        for t in np.unique(at):
            part = execs[at == t].copy()
            part["recv_ts_ns"] = int(t)
            self._seq += 1
            heapq.heappush(self._reports, (int(t), self._seq, part))
        self._deliver(int(execs["recv_ts_ns"].max()))     # whatever is due already (zero latency)
        return execs

    def _deliver(self, until_ns: int) -> None:
        while self._reports and self._reports[0][0] <= until_ns:
            self.strategy.on_exec(heapq.heappop(self._reports)[2])

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
        digests = dict(s.digests(), md=eng._md_hash.hexdigest())
        summary["digests"] = digests
        return cls(summary, s.candidates(), s.intents(), s.execs(), s.fills(), s.pnl_series(),
                   s.inventory, digests)


def replay_arrays(universe, strategy, chunks: Iterable[np.ndarray], options: ReplayOptions | None = None,
                  **kw) -> ReplayResult:
    """Replay in-memory MD_EVENT arrays (tests, benchmarks, the offline simulator)."""
    return ReplayEngine(universe, strategy, options, **kw).run(chunks)


__all__ = ["FILL", "ONE", "NullStrategy", "ReplayEngine", "ReplayOptions", "ReplayResult", "replay_arrays"]
