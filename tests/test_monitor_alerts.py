"""Alerts: one per incident, never more than the rate limit, sent from a queue so that a slow
endpoint delays nothing but later alerts; real apprise against a loopback JSON webhook."""
from __future__ import annotations

import threading
import time

import pytest

from ctrader.monitor.alerts import Alert, AlertManager, AppriseNotifier
from tests.monitor_sinks import WebhookSink


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A notifier that keeps what it was given; ``gate`` (an Event) holds each send until set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.sent: list[Alert] = []
        self.gate = gate
        self.entered = threading.Event()

    def send(self, alert: Alert) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(30)
        self.sent.append(alert)


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_an_open_incident_is_alerted_once_and_again_after_it_resolves():
    notifier = Recorder()
    alerts = AlertManager(notifier, max_per_minute=100).start()
    kill = Alert("kill_switch", "kill_switch", "kill switch engaged", "by ctrader kill", "critical")
    assert alerts.raise_alert(kill) == "queued"
    for _ in range(20):
        assert alerts.raise_alert(kill) == "deduplicated"
    assert alerts.is_open("kill_switch")
    assert alerts.resolve("kill_switch") and not alerts.resolve("kill_switch")
    assert alerts.raise_alert(kill) == "queued"          # a new incident
    alerts.close(flush_s=5)
    assert [a.event for a in notifier.sent] == ["kill_switch", "kill_switch"]
    assert alerts.counts[("kill_switch", "sent")] == 2 and alerts.counts[("kill_switch", "deduplicated")] == 20
    assert all(r["outcome"] != "deduplicated" for r in alerts.recent)


def test_the_rate_limit_holds_alerts_back_and_sends_them_as_one_summary_later():
    clock = FakeClock()
    notifier = Recorder()
    alerts = AlertManager(notifier, max_per_minute=3, clock=clock).start()
    outcomes = [alerts.raise_alert(Alert("books_stale", f"k{i}", f"incident {i}")) for i in range(7)]
    assert outcomes == ["queued"] * 3 + ["rate_limited"] * 4
    alerts.tick()                                 # still within the minute: nothing more goes
    assert _wait(lambda: len(notifier.sent) == 3)
    clock.t += 61
    alerts.tick()
    alerts.close(flush_s=5)
    assert len(notifier.sent) == 4
    summary = notifier.sent[-1]
    assert summary.event == "held_alerts" and "4 alerts held back" in summary.title
    assert all(f"incident {i}" in summary.body for i in range(3, 7))
    assert alerts.counts[("books_stale", "rate_limited")] == 4


def test_a_hanging_endpoint_never_delays_the_caller_and_a_full_queue_drops_and_counts():
    gate = threading.Event()
    notifier = Recorder(gate)
    alerts = AlertManager(notifier, max_per_minute=1000, queue_size=2).start()
    alerts.raise_alert(Alert("store_down", "a", "first"))
    assert notifier.entered.wait(5)               # the sender is stuck in the endpoint now
    outcomes = [alerts.raise_alert(Alert("store_down", f"k{i}", f"more {i}")) for i in range(5)]
    # every call returned while the endpoint still holds the first alert
    assert not notifier.sent and not gate.is_set()
    assert outcomes == ["queued", "queued", "dropped", "dropped", "dropped"]
    assert alerts.counts[("store_down", "dropped")] == 3
    gate.set()
    alerts.close(flush_s=5)
    assert [a.title for a in notifier.sent] == ["first", "more 0", "more 1"]


def test_without_urls_alerts_are_logged_and_counted(caplog):
    alerts = AlertManager(None)
    with caplog.at_level("WARNING", logger="ctrader.alerts"):
        assert alerts.raise_alert(Alert("disk_low", "disk_low", "disk space low", "12 MB free")) == "logged"
    assert "disk space low" in caplog.text
    assert alerts.counts[("disk_low", "logged")] == 1


def test_apprise_delivers_to_a_json_webhook_and_reports_a_failed_endpoint():
    with WebhookSink() as sink:
        alerts = AlertManager(AppriseNotifier([sink.apprise_url]), max_per_minute=10).start()
        alerts.raise_alert(Alert("kill_switch", "kill_switch", "kill switch engaged", "by test", "critical"))
        alerts.notify(Alert("session_stopped", "s", "session stopped", "orders 3, fills 3", "info"))
        assert sink.wait_for(lambda m: len(m) == 2, 15)
        alerts.close(flush_s=5)
    first, second = sink.messages
    assert first["title"] == "[ctrader] kill switch engaged" and first["message"] == "by test"
    assert first["type"] == "failure" and second["type"] == "info"
    assert alerts.counts[("kill_switch", "sent")] == 1

    # nobody listens there any more: counted as failed, nothing raised
    dead = AlertManager(AppriseNotifier([sink.apprise_url]), max_per_minute=10).start()
    dead.raise_alert(Alert("store_down", "store_down", "store down"))
    dead.close(flush_s=15)
    assert dead.counts[("store_down", "failed")] == 1


def test_a_bad_url_is_refused_without_printing_it():
    with pytest.raises(ValueError) as err:
        AppriseNotifier(["nosuchscheme://secret-token@host/x"])
    assert "secret-token" not in str(err.value) and "nosuchscheme://" in str(err.value)
