"""Alerts: one message per incident, never more than the rate limit, sent by a thread of their own.

    alerts = AlertManager(AppriseNotifier(urls), max_per_minute=10, queue_size=100).start()
    alerts.raise_alert(Alert("kill_switch", "kill_switch", "kill switch engaged", "by ctrader kill"))
    alerts.raise_alert(...same key...)      # "deduplicated": the incident is still open
    alerts.resolve("kill_switch")           # closed: the next one is a new incident
    alerts.notify(Alert("session_stopped", ...))   # a one-off message, not an incident
    alerts.tick()                            # from the poll loop: sends what the rate limit held back
    alerts.close(flush_s=5)

An incident (``key``) is alerted once while it stays open. Alerts beyond ``max_per_minute`` are
held and go out later as one summary message, so a flapping condition cannot flood a phone.
Messages wait in a bounded queue for the sender thread: a slow or dead endpoint (apprise's own
timeouts apply per request) delays only later alerts, never the monitor's loop nor anything on
the trading path; when the queue is full, new alerts are dropped and counted. Every alert is
logged and counted by event and outcome (``counts``, exported to ``/metrics``).
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Protocol

log = logging.getLogger("ctrader.alerts")

SEVERITIES = ("info", "warning", "critical")
# what happened to an alert, the ``outcome`` label of ctrader_alerts_total
OUTCOMES = ("sent", "failed", "deduplicated", "rate_limited", "dropped", "logged")


@dataclass(frozen=True)
class Alert:
    event: str             # kind of alert: "kill_switch", "component_failed", ...
    key: str               # the incident: alerted once while open (e.g. "component_failed:feed")
    title: str
    body: str = ""
    severity: str = "warning"
    at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity must be one of {SEVERITIES}, not {self.severity!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class Notifier(Protocol):
    """Delivers one alert; raises when it could not."""

    def send(self, alert: Alert) -> None: ...


class AlertSendError(RuntimeError):
    """No endpoint took the alert."""


class AppriseNotifier:
    """Sends through apprise to every configured URL (Telegram, Discord, Slack, ntfy, e-mail,
    json:// webhooks, ...). URLs carry tokens: they are never logged."""

    _TYPES: ClassVar[dict[str, str]] = {"info": "info", "warning": "warning", "critical": "failure"}

    def __init__(self, urls: Iterable[str], prefix: str = "ctrader") -> None:
        import apprise

        logging.getLogger("apprise").setLevel(logging.WARNING)   # its debug lines may quote URLs
        self.prefix = prefix
        self.apprise = apprise.Apprise()
        self.count = 0
        for i, url in enumerate(urls):
            if not self.apprise.add(url):
                scheme = url.split("://", 1)[0] if "://" in url else "?"
                raise ValueError(f"alert URL #{i + 1} ({scheme}://...) is not a URL apprise understands")
            self.count += 1

    def send(self, alert: Alert) -> None:
        ok = self.apprise.notify(title=f"[{self.prefix}] {alert.title}", body=alert.body or alert.title,
                                 notify_type=self._TYPES[alert.severity])
        if not ok:
            raise AlertSendError("no alert endpoint accepted the message")


class AlertManager:
    def __init__(self, notifier: Notifier | None, max_per_minute: int = 10, queue_size: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.notifier = notifier            # None: alerts are logged and counted only
        self.max_per_minute = max_per_minute
        self.clock = clock
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()   # (event, outcome)
        self.recent: collections.deque[dict] = collections.deque(maxlen=100)
        self.listeners: list[Callable[[Alert], None]] = []     # e.g. the dashboard's event stream
        self._open: dict[str, Alert] = {}
        self._window: collections.deque[float] = collections.deque()   # times messages were queued
        self._held: list[Alert] = []
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # --- raising ------------------------------------------------------------------------------

    def raise_alert(self, alert: Alert) -> str:
        """Alert an incident unless it is open already; returns what became of it."""
        with self._lock:
            if alert.key in self._open:
                return self._count(alert, "deduplicated")
            self._open[alert.key] = alert
        return self._dispatch(alert)

    def notify(self, alert: Alert) -> str:
        """A one-off message (session started, stopped): not deduplicated, still rate-limited."""
        return self._dispatch(alert)

    def resolve(self, key: str) -> bool:
        """Close the incident ``key``; False if it was not open."""
        with self._lock:
            alert = self._open.pop(key, None)
        if alert is not None:
            log.info("alert %s resolved: %s", alert.event, alert.title)
        return alert is not None

    def is_open(self, key: str) -> bool:
        return key in self._open

    def open_incidents(self) -> list[dict]:
        with self._lock:
            return [a.to_dict() for a in self._open.values()]

    def _dispatch(self, alert: Alert) -> str:
        level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        if alert.severity == "info":
            level = logging.INFO
        log.log(level, "alert %s: %s%s", alert.event, alert.title, f" ({alert.body})" if alert.body else "")
        for listener in self.listeners:
            try:
                listener(alert)
            except Exception:
                log.exception("alert listener failed")
        if self.notifier is None:
            return self._count(alert, "logged")
        with self._lock:
            self._expire()
            if len(self._window) >= self.max_per_minute:
                self._held.append(alert)
                return self._count(alert, "rate_limited")
            return self._enqueue(alert)

    def _enqueue(self, alert: Alert) -> str:
        """Hand ``alert`` to the sender (caller holds the lock); it counts against the rate."""
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            log.error("alert %s dropped: %d alerts already wait for a slow endpoint", alert.event,
                      self._queue.qsize())
            return self._count(alert, "dropped")
        self._window.append(self.clock())
        return "queued"

    def _expire(self) -> None:
        horizon = self.clock() - 60.0
        while self._window and self._window[0] <= horizon:
            self._window.popleft()

    def _count(self, alert: Alert, outcome: str) -> str:
        self.counts[(alert.event, outcome)] += 1
        if outcome != "deduplicated":      # a repeat of an open incident is counted, not listed
            self.recent.append({**alert.to_dict(), "outcome": outcome})
        return outcome

    def tick(self) -> None:
        """Send the alerts the rate limit held back, as one summary, once the window has room."""
        with self._lock:
            if not self._held:
                return
            self._expire()
            if len(self._window) >= self.max_per_minute:
                return
            held, self._held = self._held, []
            worst = max(held, key=lambda a: SEVERITIES.index(a.severity)).severity
            lines = [f"{time.strftime('%H:%M:%S', time.gmtime(a.at))}Z {a.title}" for a in held]
            summary = Alert("held_alerts", f"held:{self.clock()}", f"{len(held)} alerts held back by the rate limit "
                            f"({self.max_per_minute}/min)", "\n".join(lines), worst)
            self._enqueue(summary)

    # --- sending ------------------------------------------------------------------------------

    def start(self) -> AlertManager:
        if self.notifier is not None and self._thread is None:
            self._thread = threading.Thread(target=self._send_loop, name="ctrader-alerts", daemon=True)
            self._thread.start()
        return self

    def _send_loop(self) -> None:
        while True:
            alert = self._queue.get()
            try:
                if alert is None:
                    return
                try:
                    self.notifier.send(alert)
                except Exception as exc:        # noqa: BLE001  an endpoint's failure is counted, not fatal
                    log.warning("alert %s not delivered: %s", alert.event, type(exc).__name__)
                    self._count(alert, "failed")
                else:
                    self._count(alert, "sent")
            finally:
                self._queue.task_done()

    def pending(self) -> int:
        """Alerts queued or being sent."""
        return self._queue.unfinished_tasks

    def close(self, flush_s: float = 5.0) -> None:
        """Send what the rate limit allows of the held alerts, wait up to ``flush_s`` for the
        queue to drain, then stop the sender (an endpoint still hanging is left to its timeout)."""
        self.tick()
        deadline = time.monotonic() + flush_s
        while self._thread is not None and self.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.pending():
            log.warning("%d alerts not delivered at stop (endpoint too slow)", self.pending())
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
            self._thread = None


__all__ = ["OUTCOMES", "Alert", "AlertManager", "AppriseNotifier", "Notifier"]
