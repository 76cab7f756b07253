"""The strategy as a component of a run: ``Component("strategy", "ctrader.strategy.process:run_strategy")``.

    md ring (broadcast)  --> StrategyEngine.on_md --> intents ring (lossless, to the executor)
                                                  --> journal ring (every candidate, to the recorder)
    exec ring (lossless) --> StrategyEngine.on_exec  (legs done free their triangle)

Before consuming anything it loads the model (refusing one whose features do not match) and
warms up every numba kernel and the ONNX session on dummy data, so no JIT compile happens
mid-market. It beats its health slot at least every second and writes its counters to
``{run_dir}/strategy.stats.json``: events, candidates, taken, skipped by reason, evaluation
latency p50/p99 (per market event with candidates, scoring included), tick-to-intent, model
version, md overruns, journal drops, ``first_md_seq`` (where replay of the session starts), and
logs when each execution reached it (``strategy.exec_arrivals.csv``, see
``ctrader.strategy.exec_arrivals``). With ``[model] name = "current"`` a promoted model is
picked up without a restart (``PromotionWatcher``); one with other features is refused.

The journal is "lossless or counted": when the recorder falls a whole ring behind (or is not
running), journal records are dropped and counted rather than stalling trading. Intents are
never dropped: a stuck executor makes the write fail loudly.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time

import numpy as np

from ctrader.core.idle_gc import IdleGC, own_process
from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, ORDER_INTENT
from ctrader.core.ring import Ring, RingFullTimeout
from ctrader.core.stats import StatsFile
from ctrader.core.topology import consumer_id
from ctrader.core.wait import wait_strategy
from ctrader.market.universe import load_universe
from ctrader.model.registry import CURRENT, PromotionWatcher
from ctrader.strategy.engine import StrategyEngine, group_base
from ctrader.strategy.exec_arrivals import ExecArrivals
from ctrader.strategy.lead_first import LeadFirst
from ctrader.strategy.models import describe_models, load_models, per_strategy_names
from ctrader.strategy.several import StrategySet, decision_source, strategy_names

log = logging.getLogger(__name__)

# Counters that continue across a restart of the strategy within a run (``runtime.stats``).
COUNTERS = ("candidate_rows", "candidates", "events", "groups_done", "groups_timed_out", "intents_written",
            "journal_dropped", "md_lost", "md_overruns", "model_calls", "model_refused", "model_swaps", "rehearsals",
            "skip_risk_unjournaled", "skipped", "taken")
MD_BATCH = 1024
EXEC_BATCH = 256
# records each follower decides on per catch-up round (``LeadFirst``): at ~3-6 µs a record, the
# longest a new md record waits behind them
CATCH_UP_RECORDS = 16


def build_engine(cfg, run_tag: str = "", universe=None, first_group: int | None = None) -> StrategyEngine | StrategySet:
    """Universe, model and engine (or engines: ``[strategy] names``) as the configuration says,
    warmed up."""
    universe = universe or load_universe(cfg)
    names = strategy_names(cfg)
    models = load_models(cfg)
    engine = decision_source(cfg, universe, models, run_tag=run_tag,
                             first_group=group_base() if first_group is None else first_group)
    t0 = time.perf_counter()
    engine.warmup()
    log.info("strategy %s: %d symbols, %d keys, model %s, warm-up %.1f s", "+".join(names),
             len(universe.symbols), sum(int(m.strategy.n_keys) for m in engine.members),
             _scored_by(models), time.perf_counter() - t0)
    return engine


def _scored_by(models: dict) -> str:
    """Which model scores which strategy, for the log line."""
    if len(models) == 1:
        return describe_models(models)
    return ", ".join(f"{s}: {m.meta.name} v{m.version}" if m is not None else f"{s}: none"
                     for s, m in models.items())


def run_strategy(ctx) -> None:
    cfg = ctx.cfg
    # Compiling the kernels (first run, or after a source change) takes longer than the
    # supervisor's heartbeat timeout: a side thread beats until the warm-up is over.
    with _beating(ctx.health):
        engine = build_engine(cfg, run_tag=ctx.run_id)
    if isinstance(engine, StrategySet) and cfg.strategy.schedule == "lead_first":
        engine = LeadFirst(engine)
    md = Ring.attach(ctx.ring_names["md"], MD_EVENT)
    ex = Ring.attach(ctx.ring_names["exec"], EXEC_EVENT)
    intents = Ring.attach(ctx.ring_names["intents"], ORDER_INTENT)
    journal = Ring.attach(ctx.ring_names["journal"], CANDIDATE)
    wait = wait_strategy(cfg.rings.wait, owns_core=ctx.owns_core)
    md_in = md.consumer(wait=wait)
    loop = None
    try:
        watcher = None
        if cfg.model.name == CURRENT:
            watcher = PromotionWatcher(cfg)
        loop = StrategyLoop(engine, md_in, ex.consumer(consumer_id("exec", "strategy"), wait=wait),
                            intents.producer(wait, timeout_s=cfg.rings.lossless_timeout_s),
                            journal.producer(wait, timeout_s=0.0), StatsFile(ctx.run_dir, "strategy", counters=COUNTERS),
                            arrivals=ExecArrivals(ctx.run_dir), watcher=watcher, keep_warm_us=cfg.rings.keep_warm_us)
        if cfg.run.gc == "idle" and own_process():
            loop.gc_idle.start()
        loop.run(ctx.stop.is_set, ctx.health.beat)
    finally:
        if loop is not None:
            loop.gc_idle.stop()
        md_in.release()
        for ring in (md, ex, intents, journal):
            ring.close()


@contextlib.contextmanager
def _beating(health, every_s: float = 0.5):
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every_s):
            health.beat()

    thread = threading.Thread(target=beat, name="strategy-warmup-beat", daemon=True)
    health.beat()
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class StrategyLoop:
    """Rings around a StrategyEngine; ``run`` until ``should_stop()``.

    Latency: a md batch is processed up to the first record whose candidates produced intents,
    those intents are written at once (before its journal rows, before the rest of the batch),
    executions that arrived meanwhile are applied, and the batch carries on from there.
    """

    def __init__(self, engine: StrategyEngine, md_in, exec_in, intents_out, journal_out, stats_file=None,
                 arrivals: ExecArrivals | None = None, watcher=None, keep_warm_us: int = 0,
                 gc_idle: IdleGC | None = None) -> None:
        self.engine = engine
        self.md_in, self.exec_in = md_in, exec_in
        self.intents_out, self.journal_out = intents_out, journal_out
        self.stats_file = stats_file
        self.arrivals = arrivals          # when each execution reached the strategy (replay fidelity)
        self.watcher = watcher            # PromotionWatcher: [model] name = "current"
        self.md_buf = np.zeros(MD_BATCH, MD_EVENT)
        self.exec_buf = np.zeros(EXEC_BATCH, EXEC_EVENT)
        self.journal_dropped = 0
        self.intents_written = 0
        self.model_swaps = 0
        self.model_refused = 0
        self._r2i = np.zeros(4096, dtype=np.int64)
        self._r2i_n = 0
        # keep the order path warm: rehearse it when no model call happened for keep_warm_ns
        self.keep_warm_ns = keep_warm_us * 1000
        self._warm_at = 0
        self._calls_seen = -1
        self.gc_idle = gc_idle or IdleGC()    # inactive unless started: the process decides

    def step(self, timeout_s: float = 0.05) -> int:
        """One round: exec events first (they free triangles), then a batch of md, then (several
        strategies, ``LeadFirst``) the followers while no md waits. Returns md read."""
        self._poll_exec()
        lead_first = isinstance(self.engine, LeadFirst)
        if lead_first and self.engine.behind:
            timeout_s = 0.0
        elif self.keep_warm_ns:
            timeout_s = min(timeout_s, self.keep_warm_ns / 1e9)
        n = self.md_in.read_batch(self.md_buf, timeout_s)
        read_ns = time.monotonic_ns()
        i = 0
        while i < n:
            # the intents go to the ring from inside (``emit``): first, they are what the market
            # waits for; the executor is woken as candidates go to the model (``announce``)
            i, cands, intents = self.engine.on_md_until(self.md_buf, i, n, emit=self.intents_out.write,
                                                        announce=self.intents_out.announce)
            if len(intents):
                self.intents_written += len(intents)
                # the strategy's own share of tick-to-intent: md batch in hand -> intents built
                self._r2i[self._r2i_n % len(self._r2i)] = int(intents[0]["created_mono_ns"]) - read_ns
                self._r2i_n += 1
            if len(cands):
                self._journal(cands)
            if i < n:
                self._poll_exec()
        if lead_first:
            self._catch_up()
        # garbage is collected between batches with nothing waiting, never inside one
        if self.gc_idle.active:
            if self.md_in.lag == 0:
                self.gc_idle.idle()
            self.gc_idle.busy()
        if self.keep_warm_ns:
            self._keep_warm()
        return n

    def _catch_up(self) -> None:
        """The followers on the records the lead decided on, ``CATCH_UP_RECORDS`` at a time while
        no md waits, and whatever waits while one is too far behind (``LeadFirst.too_far_behind``)."""
        engine = self.engine
        while engine.behind and (self.md_in.lag == 0 or engine.too_far_behind(time.monotonic_ns())):
            cands, intents = engine.catch_up(CATCH_UP_RECORDS, emit=self.intents_out.write,
                                             announce=self.intents_out.announce)
            self.intents_written += len(intents)
            if len(cands):
                self._journal(cands)
            self._poll_exec()

    def _keep_warm(self) -> None:
        """Rehearse the order path when it sat idle ``keep_warm_ns`` (see ``StrategyEngine.rehearse``)."""
        now = time.monotonic_ns()
        calls = self.engine.model_calls + self.intents_written
        if calls != self._calls_seen:
            self._calls_seen, self._warm_at = calls, now
        elif now - self._warm_at >= self.keep_warm_ns:
            self.engine.rehearse()
            self._warm_at = now

    def _poll_exec(self) -> None:
        n = self.exec_in.read_batch(self.exec_buf, 0.0)
        if n:
            follow = self.engine.on_exec(self.exec_buf[:n])
            if len(follow):            # a resting order filled: its hedges go out first
                self.intents_out.write(follow)
                self.intents_written += len(follow)
            if self.arrivals is not None:
                self.arrivals.note(self.exec_buf[:n], self.engine.last_md_seq, time.monotonic_ns())

    def _journal(self, cands: np.ndarray) -> None:
        try:
            self.journal_out.write(cands)
        except RingFullTimeout as exc:
            if self.journal_dropped == 0:
                log.warning("journal ring full, dropping candidates (counted): %s", exc)
            # the records before the stuck one were written; the message says how many
            self.journal_dropped += len(cands)

    def check_promotion(self) -> None:
        """A new ``current`` model: load it and score with it from the next event; a model with
        other features is refused (logged, counted) and the running one stays."""
        if self.watcher is None or not self.watcher.poll():
            return
        try:
            self._promote()
        except Exception as exc:  # noqa: BLE001 - a bad promotion must not stop trading
            self.model_refused += 1
            log.error("promoted model %s refused, keeping %s: %s", self.watcher.target,
                      self.engine.stats()["model"], exc)
            return
        self.model_swaps += 1
        log.info("now scoring with promoted model %s", self.engine.stats()["model"])

    def _promote(self) -> None:
        """The promoted model to the strategy it was trained for (one of several: the first whose
        features it has, of those without a model of their own in ``[model] per_strategy``);
        refused (raises) when it fits none."""
        from ctrader.model.scoring import FeatureMismatch, load_model

        errors = []
        own = per_strategy_names(self.engine.members[0].cfg)
        for member in self.engine.members:
            if member.strategy.name in own:
                continue
            try:
                model = load_model(member.cfg, member.strategy.features, name="current")
            except FeatureMismatch as exc:
                errors.append(str(exc))
                continue
            member.set_model(model)
            return
        raise FeatureMismatch(" | ".join(errors))

    def stats(self) -> dict:
        out = self.engine.stats()
        out.update(md_overruns=self.md_in.overruns, md_lost=self.md_in.lost, journal_dropped=self.journal_dropped,
                   intents_written=self.intents_written, model_swaps=self.model_swaps,
                   model_refused=self.model_refused, gc=self.gc_idle.stats())
        k = min(self._r2i_n, len(self._r2i))
        p50, p99 = np.percentile(self._r2i[:k], [50, 99]) / 1e3 if k else (0.0, 0.0)
        out.update(read_to_intent_p50_us=float(p50), read_to_intent_p99_us=float(p99))
        return out

    def run(self, should_stop, beat=None) -> None:
        next_beat = 0.0
        try:
            while not should_stop():
                self.step()
                now = time.monotonic()
                if now >= next_beat:
                    if beat is not None:
                        beat(self.engine.events)
                    self.check_promotion()
                    if self.stats_file is not None and self.stats_file.maybe_write(self.stats()) \
                            and self.arrivals is not None:
                        self.arrivals.flush()
                    next_beat = now + 0.25
        finally:
            stats = self.stats()
            if self.arrivals is not None:
                self.arrivals.close()
            if self.stats_file is not None:
                self.stats_file.write(stats)
            log.info("strategy stopped: %d events, %d candidates, %d taken, eval p50 %.1f us p99 %.1f us",
                     stats["events"], stats["candidates"], stats["taken"], stats["eval_p50_us"],
                     stats["eval_p99_us"])
