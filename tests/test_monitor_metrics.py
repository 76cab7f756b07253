"""The monitor's Prometheus exposition: names and labels by Prometheus conventions, values taken
from the components' stats as they are, and the shipped Grafana dashboard asks only for series
the monitor exports."""
from __future__ import annotations

import collections
import json
import pathlib
import re

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ctrader.monitor.alerts import Alert, AlertManager
from ctrader.monitor.metrics import metrics_registry
from ctrader.monitor.status import LatencyHistogram, Snapshot, build_status

DASHBOARD = pathlib.Path(__file__).parent.parent / "docs" / "grafana" / "ctrader-dashboard.json"

STATS = {
    "feed": {"messages": 100, "records": 98, "bytes": 5000, "gaps": 1, "resyncs": 2, "disconnects": 0,
             "parse_errors": 0, "snapshots": 3, "snapshot_rate_limited": 0, "stale_symbols": 1,
             "recv_to_ring_us_p50": 20.0, "recv_to_ring_us_p99": 80.0},
    "strategy": {"events": 90, "model_calls": 4, "intents_written": 12, "md_lost": 0, "groups_in_flight": 1,
                 "taken": 4, "skipped": {"SKIP_EDGE": 30, "SKIP_RISK": 2}, "eval_p50_us": 2.0, "eval_p99_us": 9.0,
                 "tick_to_intent_p50_us": 150.0, "tick_to_intent_p99_us": 300.0},
    "executor": {"orders_sent": 12, "fills": 11, "cancels": 1, "unwinds": 0, "duplicates": 0, "open_orders": 0,
                 "daily_pnl": -1.5, "backoff_s": 0.0, "refusals": {"STALE_BOOK": 2}, "rejects": {"-2010": 1},
                 "venue": {"rate_limited": 0}, "valuation_asset": "USDT", "pnl": -1.5,
                 "pnl_by_asset": {"BTC": 1.0, "USDT": -2.5}, "positions": {"BTC": 0.0001, "USDT": -2.5},
                 "fees": {"USDT": 0.01}, "rate_budget": {"orders_10s": {"used": 3, "limit": 40}},
                 "kill_switch": "", "tick_to_order": {"p50_us": 300.0, "p99_us": 700.0, "n": 12}},
    "recorder": {"insert_errors": 0, "spilled_rows": 0, "queued_rows": 0, "spill_pending_batches": 0,
                 "store_up": True, "rows_md_book": 98, "rows_executions": 30},
}


class FakeCollector:
    """What ``SessionMetrics`` reads from the monitor's collector."""

    def __init__(self) -> None:
        self.snapshot = Snapshot(
            run_id="r", wall=1.0, stats=STATS,
            health={"feed": {"pid": 1, "state": "running", "restarts": 2, "beat_age_s": 0.1, "errors": 0}},
            books=[{"symbol": "BTCUSDT", "age_s": 0.2, "stale": False, "stale_for_s": 0.0}],
            venue={"clock_offset_ms": 12.0}, disk_free_mb=5000.0,
            rings={"exec": {"kind": "lossless", "capacity": 64, "head": 30, "producer_waits": 0,
                            "consumers": {"strategy": {"lag": 2, "fill": 0.03, "overruns": 0, "lost": 0}}}})
        self.histogram = LatencyHistogram()
        for ns in (80_000, 250_000, 250_000, 3_000_000):
            self.histogram.observe_ns(ns)
        self.alerts = AlertManager(None)
        self.alerts.raise_alert(Alert("books_stale", "books_stale", "1 book stale"))
        self.status = build_status(self.snapshot, histogram=self.histogram)


def exposition() -> dict[str, dict[tuple, float]]:
    registry = metrics_registry(FakeCollector(), collections.Counter({"/api/kill": 3}))
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_names_follow_prometheus_conventions_and_values_are_the_stats():
    m = exposition()
    ours = [n for n in m if n.startswith("ctrader_") and not n.startswith("ctrader_monitor_process")]
    assert all(re.fullmatch(r"ctrader_[a-z0-9_]+", n) for n in ours)
    assert not [n for n in ours if n.endswith(("_us", "_ms", "_microseconds"))]     # times in seconds
    assert m["ctrader_executor_orders_total"] == {(): 12} and m["ctrader_feed_gaps_total"] == {(): 1}
    assert m["ctrader_component_restarts_total"] == {(("component", "feed"),): 2}
    assert m["ctrader_feed_recv_to_ring_seconds"] == {(("quantile", "0.5"),): 20e-6, (("quantile", "0.99"),): 80e-6}
    assert m["ctrader_executor_refusals_total"][(("reason", "stale_book"),)] == 2
    assert m["ctrader_executor_refusals_total"][(("reason", "kill_switch"),)] == 0     # every reason, zero or not
    assert m["ctrader_strategy_candidates_total"][(("decision", "skip_risk"),)] == 2
    hist = m["ctrader_executor_tick_to_order_seconds_bucket"]
    assert hist[(("le", "0.0001"),)] == 1 and hist[(("le", "0.0003"),)] == 3 and hist[(("le", "+Inf"),)] == 4
    assert m["ctrader_executor_tick_to_order_seconds_count"] == {(): 4}
    assert m["ctrader_venue_clock_offset_seconds"] == {(): 0.012}
    assert m["ctrader_alerts_total"] == {(("event", "books_stale"), ("outcome", "logged")): 1}
    assert m["ctrader_monitor_auth_failures_total"] == {(("endpoint", "/api/kill"),): 3}
    assert m["ctrader_ring_fill_ratio"] == {(("consumer", "strategy"), ("ring", "exec")): 0.03}


def test_the_grafana_dashboard_uses_only_exported_series():
    doc = json.loads(DASHBOARD.read_text())
    exported = set(exposition())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 30
    used = {name for e in exprs for name in re.findall(r"ctrader_[a-z0-9_]+", e)}
    assert used <= exported, sorted(used - exported)
    assert all(p["datasource"]["uid"] == "${datasource}" for p in doc["panels"] if p["type"] != "row")
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
