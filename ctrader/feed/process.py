"""The feed as a component of a run: ``Component("feed", "ctrader.feed.process:run_feed")``.

It attaches the md ring, builds the universe (from the run's saved exchangeInfo, so ids match
every other process), streams until ``ctx.stop`` is set, beats its health slot every second and
writes its counters to ``{run_dir}/feed.stats.json`` (``ctrader.core.stats``):

    run_feed(ctx)                      # in a child process or a thread of ``ctrader start``
    read_stats(run_dir)["feed"]        # messages, gaps, resyncs, stale_s, recv_to_ring_us_p50/p99...
"""
from __future__ import annotations

import asyncio
import logging
import time

from ctrader.core.records import MD_EVENT
from ctrader.core.ring import Ring
from ctrader.feed.engine import FeedEngine
from ctrader.market.universe import load_universe
from ctrader.core.stats import StatsFile

log = logging.getLogger(__name__)

# Counters that continue across a restart of the feed within a run (``runtime.stats``).
COUNTERS = ("bytes", "connect_failures", "connects", "crossed", "disconnects", "duplicates", "gaps", "handovers",
            "messages", "outdated_book_tickers", "parse_errors", "pongs", "quiet_snapshots", "records", "resyncs",
            "server_shutdowns", "shutdowns_absorbed", "snapshot_failures", "snapshot_rate_limited", "snapshots",
            "stale_records", "unknown_streams")


def run_feed(ctx) -> None:
    ring = Ring.attach(ctx.ring_names["md"], MD_EVENT)
    try:
        producer = ring.producer()
        universe = load_universe(ctx.cfg)
        engine = FeedEngine(ctx.cfg, universe, producer.write)
        stats_file = StatsFile(ctx.run_dir, "feed", counters=COUNTERS)
        log.info("feed: %d symbols, streams %s, %d connection(s)", len(engine.symbol_ids),
                 ",".join(ctx.cfg.feed.streams), len(engine.links))

        next_log = [time.monotonic() + SUMMARY_EVERY_S]

        def tick() -> None:
            stats = engine.stats()
            ctx.health.beat(stats["records"])
            stats_file.maybe_write(stats)
            if time.monotonic() >= next_log[0]:
                next_log[0] = time.monotonic() + SUMMARY_EVERY_S
                log.info("feed: %s", summary(stats))

        ctx.health.beat(0)
        try:
            asyncio.run(engine.run(ctx.stop, on_tick=tick, tick_s=0.5))
        finally:
            stats = engine.stats()
            stats_file.write(stats)
            log.info("feed stopped: %s", summary(stats))
    finally:
        ring.close()


SUMMARY_EVERY_S = 60.0


def summary(stats: dict) -> str:
    """One log line of the counters that matter."""
    def us(v):
        return "-" if v is None else f"{v:.0f}"
    return (f"{stats['messages']} messages, {stats['records']} records, {stats['gaps']} gaps, "
            f"{stats['resyncs']} resyncs, {stats['stale_symbols']} stale books, {stats['parse_errors']} parse errors, "
            f"{stats['disconnects']} disconnects, {stats['handovers']} handovers, "
            f"recv->ring p50 {us(stats['recv_to_ring_us_p50'])} us p99 {us(stats['recv_to_ring_us_p99'])} us")
