"""The executor as a component of a run: ``Component("executor", "ctrader.execution.process:run_executor")``.

It reads intents from the lossless intents ring (``peek_batch`` -> risk gate -> journal (fsync)
-> send -> ``commit``: an intent is either journaled or still on the ring, so a SIGKILL loses
none and a restart sends none twice), keeps the books from the md ring (risk checks, valuation,
paper fills), and writes every order state change to the exec ring. It beats its health slot,
writes ``{run_dir}/executor.stats.json`` about once a second and, on stop, cancels open orders.

    run_executor(ctx)                          # a child process, or a thread of ``ctrader start``
    ex = build_executor(cfg, universe, sink)   # the same executor without rings (tests, tools)
    loop = ExecutorLoop(ex, md_consumer, intents_consumer); loop.step()
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from ctrader.config import Config, expand_path
from ctrader.core.idle_gc import IdleGC, own_process
from ctrader.core.records import EXEC_EVENT, MD_EVENT, ORDER_INTENT
from ctrader.core.ring import Consumer, Ring
from ctrader.core.stats import StatsFile
from ctrader.core.topology import consumer_id
from ctrader.core.wait import wait_strategy
from ctrader.execution.bookview import BookView
from ctrader.execution.engine import Executor
from ctrader.execution.journal import Journal
from ctrader.execution.match_points import MatchPoints
from ctrader.execution.paper import PaperFillModel, PaperVenue
from ctrader.execution.paper_account import PaperAccount
from ctrader.execution.risk import KillSwitch, RiskLimits
from ctrader.execution.signer import live_signer
from ctrader.market.books import BookCache

log = logging.getLogger(__name__)

# Counters that continue across a restart of the executor within a run (``runtime.stats``). Orders
# sent, fills, fees and positions need none of this: a restarted executor rebuilds them from the
# run's journal (exactly, where a stats file written every 0.5 s would lose a SIGKILL's last sends).
COUNTERS = ("cancels", "duplicates", "events", "refusals", "rejects", "unwinds", "journal_records",
            "journal_syncs", "rehearsals")


def journal_path(cfg: Config):
    """One journal per venue and mode, kept across runs: a restart finds what the last run left."""
    return expand_path(cfg, cfg.execution.journal_dir) / f"executor-{cfg.venue.kind}-{cfg.run.mode}.jsonl"


def paper_account(cfg: Config) -> PaperAccount:
    """The paper account's starting balances: ``execution.paper_balances``, else the simulator's
    account (venue sim), else the real account's, read with the API keys."""
    if cfg.execution.paper_balances:
        return PaperAccount.parse(cfg.execution.paper_balances)
    if cfg.venue.kind == "sim" and cfg.sim.accounts:
        return PaperAccount.parse(cfg.sim.accounts[0].balances)
    from ctrader.config.secrets import load_credentials

    creds = load_credentials(cfg.venue)
    if creds is None:
        raise RuntimeError("paper mode on Binance's market data needs starting balances: set "
                           "execution.paper_balances (e.g. [\"USDT=1000\"]) or API keys to read the account's")
    from ctrader.config.venues import endpoints
    from ctrader.execution.ws_api_client import WsApiClient

    client = WsApiClient(endpoints(cfg).ws_api, live_signer(cfg), cfg.venue.recv_window_ms, user_data=False).start()
    try:
        doc = client.call("account.status", {"omitZeroBalances": True})
    finally:
        client.close()
    if "error" in doc:
        raise RuntimeError(f"cannot read the account's balances for paper mode: {doc['error']}")
    return PaperAccount.parse(f"{b['asset']}={b['free']}" for b in doc["result"]["balances"])


class InsufficientBalances(RuntimeError):
    """The live account cannot pay for what the strategy may start a trade with."""


def check_balances_cover(cfg: Config, balances: dict[str, int]) -> None:
    """Refuse to trade live when a start asset's balance is below the strategy's ``max_start``
    for it: every trade of a triangle through that asset could be refused (-2010) half-way."""
    from ctrader.venue.decimals import ONE, parse_units

    short = []
    for item in cfg.strategy.max_start:
        asset, _, amount = item.partition("=")
        asset = asset.strip().upper()
        if asset not in cfg.market.start_assets:
            continue
        need, have = parse_units(amount.strip()), balances.get(asset, 0)
        if have < need:
            short.append(f"{asset}: strategy.max_start needs {need / ONE:g}, the account holds {have / ONE:g}")
    if short:
        raise InsufficientBalances("the account cannot cover the strategy's starts (" + "; ".join(short) +
                                   "): fund it, or lower strategy.max_start / market.start_assets")


def build_executor(cfg: Config, universe, sink: Callable[[np.ndarray], None], run_id: str = "",
                   recover: bool = True, match_points: MatchPoints | None = None) -> Executor:
    """The executor ``cfg`` describes (paper or live), recovered from its journal. In paper
    mode, ``match_points`` logs where in the market data each order was matched (a replay of
    the session matches it there)."""
    books = BookCache(len(universe.symbols))
    if cfg.run.mode == "paper":
        model = PaperFillModel(BookView(books.books), universe, taker_rate=universe.taker_fee,
                               maker_rate=universe.maker_fee,
                               latency_ns=int(cfg.execution.paper_latency_ms * 1_000_000),
                               account=paper_account(cfg))
        venue = PaperVenue(model, quiet_ns=int(cfg.execution.paper_quiet_match_ms * 1_000_000))
    else:
        from ctrader.config.venues import endpoints
        from ctrader.execution.live import LiveVenue
        from ctrader.execution.ws_api_client import WsApiClient

        urls = endpoints(cfg)
        client = WsApiClient(urls.ws_api, live_signer(cfg), cfg.venue.recv_window_ms, rest_url=urls.rest).start()
        venue = LiveVenue(client, universe, cfg.execution.use_ws_api)
        check_balances_cover(cfg, venue.load_balances())
    path = journal_path(cfg)
    if recover:
        archived = Journal.archive_if_finished(path, run_id)
        if archived:
            log.info("journal: the last session left no unfinished order; kept as %s, starting a fresh one", archived)
    # after_send: the syncs run on a thread of the journal's own, never on the executor's loop
    journal = Journal(path, sync=journal_sync(cfg), run_id=run_id, background=not sync_before_send(cfg))
    executor = Executor(universe, venue, journal, sink,
                        RiskLimits.from_config(cfg.risk), KillSwitch(expand_path(cfg, cfg.risk.kill_file)),
                        valuation_asset=cfg.risk.valuation_asset, unwind=cfg.execution.unwind, books=books,
                        sync_before_send=sync_before_send(cfg))
    if match_points is not None and cfg.run.mode == "paper":
        log_match_points(executor, model, match_points)
    if recover:
        executor.recover()
    executor.warm_up()
    return executor


def log_match_points(executor: Executor, model: PaperFillModel, points: MatchPoints) -> None:
    """Each order reaching ``model``, and each new intent ``executor``'s gate judged, is logged
    with the md record ``executor`` had applied last."""
    executor.track_md_position = True

    def arrived(order) -> None:
        recv_ns, seq = executor.md_position
        points.note(order.group_id, order.leg, order.client_order_id, seq, recv_ns, time.monotonic_ns())

    def gated(recs: np.ndarray, n: int, gated_ns: int) -> None:
        recv_ns, seq = executor.md_position
        for group_id, leg in zip(recs["group_id"][:n].tolist(), recs["leg"][:n].tolist(), strict=True):
            points.note_gate(group_id, leg, seq, recv_ns, gated_ns)

    model.on_arrive = arrived
    executor.on_gated = gated


class ExecutorLoop:
    """Moves records between the rings and an ``Executor``, one ``step`` at a time."""

    def __init__(self, executor: Executor, md: Consumer | None, intents: Consumer | None,
                 md_batch: int = 512, intent_batch: int = 64, keep_warm_us: int = 0,
                 gc_idle: IdleGC | None = None) -> None:
        self.executor = executor
        self.md = md
        self.intents = intents
        self.keep_warm_ns = keep_warm_us * 1000     # rehearse the order path after this long without one
        self._warm_at = 0
        self.gc_idle = gc_idle or IdleGC()    # inactive unless started: the process decides
        self.md_buf = np.empty(md_batch, MD_EVENT)
        self.intent_buf = np.empty(intent_batch, ORDER_INTENT)

    def step(self, idle_wait_s: float = 0.0005) -> int:
        """Handle what is waiting (intents first: they are the latency that matters); when
        nothing is, wait up to ``idle_wait_s`` for an intent. Returns the records handled."""
        done = self._intents(0.0)
        if self.md is not None:
            n = self.md.read_batch(self.md_buf, 0.0)
            if n:
                self.executor.on_md(self.md_buf, n)
                done += n
        done += self.executor.poll()
        if not done:
            # idle: collect garbage first, then rehearse (the collection walks memory the
            # order path then finds evicted)
            self.gc_idle.idle()
            self.executor.on_idle()
            self._keep_warm()
            done = self._intents(idle_wait_s)
        self.gc_idle.busy()
        return done

    def stats(self) -> dict:
        return {**self.executor.stats(), "gc": self.gc_idle.stats()}

    def _keep_warm(self) -> None:
        if self.keep_warm_ns > 0:
            now = time.monotonic_ns()
            if now - self._warm_at >= self.keep_warm_ns:
                self.executor.rehearse()
                self._warm_at = now

    def _intents(self, timeout_s: float) -> int:
        if self.intents is None:
            return 0
        n = self.intents.peek_batch(self.intent_buf, timeout_s)
        if n:
            self.executor.on_intents(self.intent_buf, n)   # journaled (fsync) before it returns
            self.intents.commit(n)
            self._warm_at = time.monotonic_ns()
        return n


def run_executor(ctx) -> None:
    cfg: Config = ctx.cfg
    from ctrader.market.universe import load_universe

    rings = {key: Ring.attach(ctx.ring_names[key], dtype)
             for key, dtype in (("md", MD_EVENT), ("intents", ORDER_INTENT), ("exec", EXEC_EVENT))}
    executor = None
    loop = None
    md = None
    points = None
    stats = StatsFile(ctx.run_dir, "executor", counters=COUNTERS)     # once: it reads what an earlier incarnation counted
    try:
        wait = wait_strategy(cfg.rings.wait, owns_core=ctx.owns_core)     # in this thread: it is the one that waits
        producer = rings["exec"].producer(wait, cfg.rings.lossless_timeout_s)
        universe = load_universe(cfg)
        if cfg.run.mode == "paper":
            points = MatchPoints(ctx.run_dir)
        executor = build_executor(cfg, universe, producer.write, run_id=ctx.run_id, match_points=points)
        if threading.current_thread() is threading.main_thread():
            executor.kill.install_signal_handler()
        md = rings["md"].consumer(wait=wait)
        loop = ExecutorLoop(executor, md, rings["intents"].consumer(consumer_id("intents", "executor"), wait=wait),
                            keep_warm_us=cfg.rings.keep_warm_us)
        log.info("executor: %s mode, %d symbols, journal %s", cfg.run.mode, len(universe.symbols),
                 executor.journal.path)
        if cfg.run.gc == "idle" and own_process():
            loop.gc_idle.start()
        ctx.health.beat(0)
        next_beat = time.monotonic() + 0.5
        while not ctx.stop.is_set():
            loop.step()
            if time.monotonic() >= next_beat:
                ctx.health.beat(executor.events)
                stats.maybe_write(loop.stats())
                if points is not None:
                    points.flush()
                next_beat = time.monotonic() + 0.5
    finally:
        if loop is not None:
            loop.gc_idle.stop()
        if executor is not None:
            # Open orders are cancelled on every stop, a fast one included (less wait for answers).
            executor.close(answer_wait_s=1.0 if ctx.stop.fast else 3.0)
            final = loop.stats() if loop is not None else executor.stats()
            stats.write(final)
            log.info("executor stopped: %d sent, %d fills, refusals %s, pnl %.6f %s, tick-to-order p50 %s us "
                     "p99 %s us", final["orders_sent"], final["fills"], final["refusals"] or "none", final["pnl"],
                     final["valuation_asset"], final["tick_to_order"]["p50_us"], final["tick_to_order"]["p99_us"])
        if points is not None:
            points.close()
        if md is not None:
            md.release()
        for ring in rings.values():
            ring.close()


def journal_sync(cfg) -> bool:
    """Whether the journal syncs at all: in live mode unless told never; in paper mode only when
    told (no venue holds real orders, and a crash of the process keeps the page cache)."""
    mode = cfg.execution.journal_fsync
    return mode in ("always", "after_send") or (mode == "auto" and cfg.run.mode == "live")


def sync_before_send(cfg) -> bool:
    """``always``: a batch's journal lines are synced before its first order leaves (a sync on
    the order path). Otherwise they are synced right after the batch's orders left."""
    return cfg.execution.journal_fsync == "always"
