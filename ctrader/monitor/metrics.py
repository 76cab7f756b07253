"""Prometheus metrics of a session, rendered at each scrape from the monitor's latest snapshot.

The counters live in the components that count (their stats files); this collector only maps
them to Prometheus names, so a scrape never asks a trading process for anything. A component
that restarts counts from zero again: Prometheus reads that as a counter reset.

    registry = metrics_registry(collector, auth_failures)
    prometheus_client.generate_latest(registry)

Names follow Prometheus conventions: ``ctrader_<component>_<what>_total`` for counters,
``_seconds`` for times, ``_bytes`` for sizes; quantiles the components compute themselves are
gauges with a ``quantile`` label; the tick-to-order histogram is measured by the monitor from
the exec ring (each order's send time minus the receive time of the tick that caused it).
"""
from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from ctrader.core.records import Decision

# (stats key, metric name without _total, help) of plain counters per component
COUNTERS = {
    "feed": [("messages", "ctrader_feed_messages", "market-data messages received"),
             ("records", "ctrader_feed_records", "records written to the md ring"),
             ("bytes", "ctrader_feed_received_bytes", "bytes of market data received"),
             ("gaps", "ctrader_feed_gaps", "sequence gaps detected in depth streams"),
             ("resyncs", "ctrader_feed_resyncs", "books rebuilt from a snapshot"),
             ("disconnects", "ctrader_feed_disconnects", "stream connections lost"),
             ("parse_errors", "ctrader_feed_parse_errors", "messages that could not be parsed"),
             ("snapshots", "ctrader_feed_snapshots", "REST book snapshots fetched"),
             ("snapshot_rate_limited", "ctrader_feed_snapshot_rate_limited", "snapshot requests answered 429/418")],
    "strategy": [("events", "ctrader_strategy_events", "md events evaluated"),
                 ("model_calls", "ctrader_strategy_model_calls", "batched ONNX model calls"),
                 ("intents_written", "ctrader_strategy_intents", "order intents written"),
                 ("md_lost", "ctrader_strategy_md_lost_records", "md records lost to ring overruns")],
    "executor": [("orders_sent", "ctrader_executor_orders", "orders sent to the venue"),
                 ("fills", "ctrader_executor_fills", "fills (partial and complete)"),
                 ("cancels", "ctrader_executor_cancels", "orders canceled or expired"),
                 ("unwinds", "ctrader_executor_unwinds", "broken groups unwound"),
                 ("duplicates", "ctrader_executor_duplicate_intents", "intents seen again after a restart")],
    "recorder": [("insert_errors", "ctrader_recorder_insert_errors", "failed inserts into the store"),
                 ("spilled_rows", "ctrader_recorder_spilled_rows", "rows written to spill files")],
}
GAUGES = {
    "feed": [("stale_symbols", "ctrader_feed_stale_symbols", "books marked stale now")],
    "executor": [("open_orders", "ctrader_executor_open_orders", "open orders"),
                 ("daily_pnl", "ctrader_executor_daily_pnl", "today's PnL (UTC) in the valuation asset"),
                 ("backoff_s", "ctrader_executor_backoff_seconds", "seconds before the venue's 429/418 back-off ends")],
    "recorder": [("queued_rows", "ctrader_recorder_queued_rows", "rows waiting for the store"),
                 ("spill_pending_batches", "ctrader_recorder_spill_pending_batches", "batches waiting in spill files")],
    "strategy": [("groups_in_flight", "ctrader_strategy_groups_in_flight", "groups with legs still open")],
}
# (component, stats keys of p50 / p99, metric, units per second, help)
QUANTILES = [
    ("feed", ("recv_to_ring_us_p50", "recv_to_ring_us_p99"), "ctrader_feed_recv_to_ring_seconds", 1e6,
     "frame received -> record on the md ring"),
    ("strategy", ("eval_p50_us", "eval_p99_us"), "ctrader_strategy_evaluation_seconds", 1e6,
     "strategy evaluation of one md event"),
    ("strategy", ("tick_to_intent_p50_us", "tick_to_intent_p99_us"), "ctrader_strategy_tick_to_intent_seconds",
     1e6, "tick received -> intent written"),
]
REFUSALS = ("KILL_SWITCH", "MAX_ORDER_NOTIONAL", "MAX_GROUP_NOTIONAL", "MAX_POSITION", "MAX_OPEN_ORDERS",
            "RATE_BUDGET", "DAILY_LOSS", "STALE_BOOK", "PRICE_BAND", "FILTER")


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


class SessionMetrics:
    """A prometheus_client collector over the monitor's ``Collector`` (see the module doc)."""

    def __init__(self, collector: Any, auth_failures: collections.Counter) -> None:
        self.collector = collector
        self.auth_failures = auth_failures

    def describe(self) -> list:
        return []            # families vary with the session: do not let the registry call collect() early

    def collect(self) -> Iterator[Metric]:
        snap = self.collector.snapshot
        status = self.collector.status
        stats = snap.stats if snap is not None else {}
        yield from self._components(status)
        for comp, rows in COUNTERS.items():
            st = stats.get(comp, {})
            for key, name, help_text in rows:
                v = _num(st.get(key))
                if v is not None:
                    m = CounterMetricFamily(name, help_text)
                    m.add_metric([], v)
                    yield m
        for comp, rows in GAUGES.items():
            st = stats.get(comp, {})
            for key, name, help_text in rows:
                v = _num(st.get(key))
                if v is not None:
                    yield GaugeMetricFamily(name, help_text, value=v)
        for comp, (k50, k99), name, per_second, help_text in QUANTILES:
            st = stats.get(comp, {})
            if st.get(k50) is not None:
                m = GaugeMetricFamily(name, f"{help_text}, as the component measures it", labels=["quantile"])
                m.add_metric(["0.5"], st[k50] / per_second)
                if st.get(k99) is not None:
                    m.add_metric(["0.99"], st[k99] / per_second)
                yield m
        yield from self._strategy(stats.get("strategy", {}))
        yield from self._executor(stats.get("executor", {}))
        yield from self._recorder(stats.get("recorder", {}))
        yield from self._books(status)
        yield from self._rings(status)
        yield from self._monitor(status)

    def _components(self, status: dict) -> Iterator[Metric]:
        comps = status.get("components") or {}
        up = GaugeMetricFamily("ctrader_component_up", "1 while the component's process is alive and running",
                               labels=["component"])
        restarts = CounterMetricFamily("ctrader_component_restarts", "restarts by the supervisor",
                                       labels=["component"])
        beat = GaugeMetricFamily("ctrader_component_heartbeat_age_seconds", "time since the last heartbeat",
                                 labels=["component"])
        for name, c in comps.items():
            up.add_metric([name], 1.0 if c["alive"] and c["state"] == "running" else 0.0)
            if c.get("restarts") is not None:
                restarts.add_metric([name], c["restarts"])
            if c.get("beat_age_s") is not None:
                beat.add_metric([name], c["beat_age_s"])
        yield from (up, restarts, beat)

    def _strategy(self, st: dict) -> Iterator[Metric]:
        if not st:
            return
        m = CounterMetricFamily("ctrader_strategy_candidates", "candidates by decision", labels=["decision"])
        m.add_metric(["taken"], st.get("taken", 0))
        skipped = st.get("skipped") or {}
        for d in Decision:
            if d.name.startswith("SKIP_"):
                m.add_metric([d.name.lower()], skipped.get(d.name, 0))
        yield m

    def _executor(self, st: dict) -> Iterator[Metric]:
        if not st:
            return
        refusals = CounterMetricFamily("ctrader_executor_refusals", "orders the risk gate refused, by reason",
                                       labels=["reason"])
        got = st.get("refusals") or {}
        for reason in sorted(set(REFUSALS) | set(got)):
            refusals.add_metric([reason.lower()], got.get(reason, 0))
        yield refusals
        rejects = CounterMetricFamily("ctrader_executor_rejects", "orders the venue rejected, by Binance error code",
                                      labels=["code"])
        for code, n in sorted((st.get("rejects") or {}).items()):
            rejects.add_metric([str(code)], n)
        yield rejects
        venue = st.get("venue") or {}
        if venue.get("rate_limited") is not None:
            m = CounterMetricFamily("ctrader_executor_rate_limited", "order requests the venue answered 429/418")
            m.add_metric([], venue["rate_limited"])
            yield m
        asset = st.get("valuation_asset", "")
        if st.get("pnl") is not None:
            yield _labelled_gauge("ctrader_executor_pnl", "PnL since the session started (positions at mid), in "
                                  "the valuation asset", ["valuation_asset"], [([asset], st["pnl"])])
        yield _labelled_gauge("ctrader_executor_pnl_by_asset", "each asset's position change valued at mid",
                              ["asset", "valuation_asset"],
                              [([a, asset], v) for a, v in sorted((st.get("pnl_by_asset") or {}).items())])
        yield _labelled_gauge("ctrader_executor_position", "position change since the session started, in units "
                              "of the asset", ["asset"],
                              [([a], v) for a, v in sorted((st.get("positions") or {}).items())])
        fees = CounterMetricFamily("ctrader_executor_fees", "commissions paid, in units of the asset", labels=["asset"])
        for a, v in sorted((st.get("fees") or {}).items()):
            fees.add_metric([a], v)
        yield fees
        budget = GaugeMetricFamily("ctrader_executor_rate_budget_used_ratio", "share of each order-rate window used",
                                   labels=["window"])
        for window, b in sorted((st.get("rate_budget") or {}).items()):
            if b.get("limit"):
                budget.add_metric([window], b["used"] / b["limit"])
        yield budget
        kill = GaugeMetricFamily("ctrader_executor_kill_switch", "1 while the kill switch is engaged")
        kill.add_metric([], 1.0 if st.get("kill_switch") else 0.0)
        yield kill
        t2o = st.get("tick_to_order") or {}
        if t2o.get("p50_us") is not None:
            yield _labelled_gauge("ctrader_executor_tick_to_order_quantile_seconds",
                                  "tick received -> order sent, as the executor measures it", ["quantile"],
                                  [(["0.5"], t2o["p50_us"] / 1e6), (["0.99"], t2o["p99_us"] / 1e6)])

    def _recorder(self, st: dict) -> Iterator[Metric]:
        if not st:
            return
        rows = CounterMetricFamily("ctrader_recorder_rows", "rows stored, by table", labels=["table"])
        for key, value in sorted(st.items()):
            if key.startswith("rows_"):
                rows.add_metric([key[5:]], value)
        yield rows
        if st.get("store_up") is not None:
            yield GaugeMetricFamily("ctrader_recorder_store_up", "1 while the store takes inserts",
                                    value=1.0 if st["store_up"] else 0.0)

    def _books(self, status: dict) -> Iterator[Metric]:
        books = (status.get("feed") or {}).get("books")
        if not books:
            return
        age = GaugeMetricFamily("ctrader_feed_book_age_seconds", "time since the book last changed",
                                labels=["symbol"])
        stale = GaugeMetricFamily("ctrader_feed_book_stale", "1 while the feed marks the book stale",
                                  labels=["symbol"])
        for b in books:
            if b["age_s"] is not None:
                age.add_metric([b["symbol"]], b["age_s"])
            stale.add_metric([b["symbol"]], 1.0 if b["stale"] else 0.0)
        yield from (age, stale)

    def _rings(self, status: dict) -> Iterator[Metric]:
        rings = status.get("rings") or {}
        if not rings:
            return
        head = CounterMetricFamily("ctrader_ring_records", "records written to the ring", labels=["ring"])
        waits = CounterMetricFamily("ctrader_ring_producer_waits", "times a lossless ring's producer found it full",
                                    labels=["ring"])
        fill = GaugeMetricFamily("ctrader_ring_fill_ratio", "consumer lag as a share of the ring's capacity",
                                 labels=["ring", "consumer"])
        overruns = CounterMetricFamily("ctrader_ring_overruns", "times the producer lapped the consumer",
                                       labels=["ring", "consumer"])
        lost = CounterMetricFamily("ctrader_ring_lost_records", "records a lapped consumer never saw",
                                   labels=["ring", "consumer"])
        for name, r in rings.items():
            head.add_metric([name], r["head"])
            waits.add_metric([name], r["producer_waits"])
            for consumer, c in r["consumers"].items():
                if c.get("fill") is not None:
                    fill.add_metric([name, consumer], c["fill"])
                overruns.add_metric([name, consumer], c["overruns"])
                lost.add_metric([name, consumer], c["lost"])
        yield from (head, waits, fill, overruns, lost)

    def _monitor(self, status: dict) -> Iterator[Metric]:
        hist = self.collector.histogram
        m = HistogramMetricFamily("ctrader_executor_tick_to_order_seconds",
                                  "tick received -> order sent, per order, from the exec ring")
        m.add_metric([], hist.cumulative(), sum_value=hist.sum_s)
        yield m
        alerts = CounterMetricFamily("ctrader_alerts", "alerts by event and outcome (sent, failed, deduplicated, "
                                     "rate_limited, dropped, logged)", labels=["event", "outcome"])
        for (event, outcome), n in sorted(self.collector.alerts.counts.items()):
            alerts.add_metric([event, outcome], n)
        yield alerts
        auth = CounterMetricFamily("ctrader_monitor_auth_failures", "requests refused for a missing or wrong token",
                                   labels=["endpoint"])
        for endpoint, n in sorted(self.auth_failures.items()):
            auth.add_metric([endpoint], n)
        yield auth
        probe = status.get("venue_probe") or {}
        if probe.get("clock_offset_ms") is not None:
            yield GaugeMetricFamily("ctrader_venue_clock_offset_seconds", "the venue's clock minus ours",
                                    value=probe["clock_offset_ms"] / 1000.0)
        if status.get("disk_free_mb") is not None:
            yield GaugeMetricFamily("ctrader_disk_free_bytes", "free space under the data directory",
                                    value=status["disk_free_mb"] * 1e6)


def _labelled_gauge(name: str, help_text: str, labels: list[str], rows: list[tuple[list[str], float]]) -> Metric:
    m = GaugeMetricFamily(name, help_text, labels=labels)
    for values, v in rows:
        if v is not None:
            m.add_metric(values, v)
    return m


def metrics_registry(collector: Any, auth_failures: collections.Counter) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SessionMetrics(collector, auth_failures))
    ProcessCollector(namespace="ctrader_monitor", registry=registry)
    return registry
