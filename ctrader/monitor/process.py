"""The monitor as a component of a run: ``Component("monitor", "ctrader.monitor.process:run_monitor")``.

Its own process at nice +10 (``runtime.session.in_background``) on the shared cores, or a thread
of ``ctrader start --threads``. Three threads of work: uvicorn serving the API and dashboard
(``app``), a poll loop reading the session every ``monitor.poll_ms`` (``collector``) and
pushing status, fills and alerts to the event streams, and the alert sender (``alerts``); the
venue probe adds a fourth. It starts before the other components (it sees the session start)
and stops after them: its last poll reads their final stats, and the "session stopped" alert
carries them.

    run_monitor(ctx)              # until ctx.stop is set
    preflight(cfg)                # before a session starts: the port is free, the binding allowed
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import socket
import threading
import time

from ctrader.config import Config, expand_path
from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, ORDER_INTENT
from ctrader.core.ring import Ring
from ctrader.execution.killfile import clear_kill_file, engage_kill_file
from ctrader.monitor.alerts import Alert, AlertManager, AppriseNotifier
from ctrader.monitor.app import EventHub, create_app
from ctrader.monitor.auth import MonitorSetupError, TokenCheck, check_bind, is_loopback, load_token
from ctrader.monitor.collector import Collector
from ctrader.monitor.metrics import metrics_registry
from ctrader.runtime.health import HealthTable
from ctrader.runtime.resources import health_name
from ctrader.core.stats import StatsFile

log = logging.getLogger("ctrader.monitor")

RING_DTYPES = {"md": MD_EVENT, "intents": ORDER_INTENT, "exec": EXEC_EVENT, "journal": CANDIDATE}
STATUS_EVERY_S = 1.0
INFO_FILE = "monitor.json"       # in the run directory: where ``ctrader status`` finds the API


def alert_urls(cfg: Config) -> list[str]:
    """``alerts.urls`` plus the lines of ``alerts.urls_file`` (0600; # starts a comment)."""
    urls = [u for u in cfg.alerts.urls if u.strip()]
    if cfg.alerts.urls_file:
        from ctrader.config.loader import ConfigError
        from ctrader.config.secrets import read_private_file

        try:
            text = read_private_file(expand_path(cfg, cfg.alerts.urls_file)).decode()
        except ConfigError as exc:
            raise MonitorSetupError(f"alerts.urls_file: {exc}") from None
        urls += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return urls


def preflight(cfg: Config) -> None:
    """What would stop the monitor, said before the session starts anything."""
    check_bind(cfg.monitor.host, load_token(cfg, create=False) or _will_make_token(cfg))
    alert_urls(cfg)
    try:
        bind_socket(cfg.monitor.host, cfg.monitor.port).close()
    except OSError as exc:
        raise MonitorSetupError(f"monitor.port {cfg.monitor.port} on {cfg.monitor.host} is not available "
                                f"({exc.strerror or exc}): set another monitor.port, or --without monitor") from None


def _will_make_token(cfg: Config) -> str | None:
    return "to be generated" if cfg.monitor.token_file else None


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class MonitorService:
    """The state the API serves (``app.MonitorState``), over the collector."""

    def __init__(self, cfg: Config, collector: Collector, alerts: AlertManager) -> None:
        self.cfg = cfg
        self.collector = collector
        self.alerts = alerts
        self.hub = EventHub()
        self.auth_failures: collections.Counter = collections.Counter()
        self.registry = metrics_registry(collector, self.auth_failures)
        self.kill_path = expand_path(cfg, cfg.risk.kill_file)
        alerts.listeners.append(lambda alert: self.hub.publish("alert", alert.to_dict()))

    def status(self) -> dict:
        return self.collector.status

    def fills(self, since: int, since_ts: float | None, limit: int) -> list[dict]:
        return self.collector.fills_since(since, since_ts, limit)

    def history(self) -> dict:
        return {"valuation_asset": (self.collector.status.get("pnl") or {}).get("valuation_asset"),
                "pnl": list(self.collector.pnl_history)}

    def kill(self, by: str, reason: str) -> dict:
        engage_kill_file(self.kill_path, by + (f": {reason}" if reason else ""))
        log.warning("kill switch engaged by %s%s", by, f" ({reason})" if reason else "")
        return {"engaged": True, "file": str(self.kill_path),
                "note": "the executor refuses new orders and cancels open ones at its next check"}

    def resume(self, by: str) -> dict:
        removed = clear_kill_file(self.kill_path)
        latched = (self.collector.snapshot.stats.get("executor", {}).get("kill_switch", "")
                   if self.collector.snapshot is not None else "")
        still = latched if latched and not latched.startswith("file ") else ""
        if removed:
            log.warning("kill file removed by %s: trading may resume", by)
        return {"cleared": removed, "file": str(self.kill_path),
                "still_engaged_by": still or None,
                "note": (f"the executor's own switch ({still}) stays engaged until it restarts" if still else
                         "trading resumes at the executor's next check" if removed else "the kill file was not there")}

    def metrics(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def stats(self) -> dict:
        c = self.collector
        return {"polls": c.polls, "fills_seen": c.exec_watch.fills if c.exec_watch else 0,
                "exec_records": c.exec_watch.records if c.exec_watch else 0,
                "exec_lost": c.exec_watch.lost if c.exec_watch else 0,
                "md_records": c.md_watch.records if c.md_watch else 0, "md_lost": c.md_watch.lost if c.md_watch else 0,
                "event_clients": self.hub.clients, "auth_failures": dict(self.auth_failures),
                "alerts": {f"{e}:{o}": n for (e, o), n in sorted(self.alerts.counts.items())},
                "alerts_pending": self.alerts.pending()}


class _Server:
    """uvicorn on a socket we bound, stopped by us (never by signals: the supervisor owns those)."""

    def __init__(self, app, sock: socket.socket) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

        self.sock = sock
        self.server = Quiet(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=2, ws="none"))

    def run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def stop(self) -> None:
        self.server.should_exit = True


def run_monitor(ctx) -> None:
    from ctrader.runtime.session import in_background

    in_background()
    cfg: Config = ctx.cfg
    mc = cfg.monitor
    token = load_token(cfg)
    check_bind(mc.host, token)
    urls = alert_urls(cfg)
    alerts = AlertManager(AppriseNotifier(urls) if urls else None, cfg.alerts.max_per_minute,
                          cfg.alerts.queue_size).start()
    rings = {k: Ring.attach(name, RING_DTYPES[k]) for k, name in ctx.ring_names.items() if k in RING_DTYPES}
    health = HealthTable.open(health_name(ctx.run_id))
    probe = None
    if mc.venue_check_s > 0:
        from ctrader.monitor.venue_probe import VenueProbe

        probe = VenueProbe(cfg).start()
    collector = Collector(cfg, ctx.run_id, ctx.run_dir, health=health, rings=rings, alerts=alerts, probe=probe)
    service = MonitorService(cfg, collector, alerts)
    restarted = (ctx.run_dir / "monitor.stats.json").exists()    # the supervisor brought it back
    stats_file = StatsFile(ctx.run_dir, "monitor")
    server = web = None
    try:
        sock = bind_socket(mc.host, mc.port)
        url = f"http://{mc.host if ':' not in mc.host else f'[{mc.host}]'}:{sock.getsockname()[1]}"
        app = create_app(service, TokenCheck(token), open_reads=is_loopback(mc.host), cors_origins=mc.cors_origins)
        server = _Server(app, sock)
        web = threading.Thread(target=server.run, name="ctrader-monitor-http", daemon=True)
        web.start()
        (ctx.run_dir / INFO_FILE).write_text(json.dumps({"url": url, "pid": os.getpid(), "run_id": ctx.run_id}))
        log.info("monitor: dashboard and API on %s (metrics at %s/metrics)%s", url, url,
                 "" if token else "; control endpoints disabled: no token")
        if restarted:
            alerts.notify(Alert("monitor_restarted", f"restarted:{ctx.run_id}", f"monitor of session {ctx.run_id} "
                                f"restarted", f"dashboard {url}; alert incidents start afresh", "warning"))
        else:
            alerts.notify(Alert("session_started", f"started:{ctx.run_id}", f"session {ctx.run_id} started",
                                f"{cfg.run.mode} trading on {cfg.venue.kind}; dashboard {url}", "info"))
        _poll_loop(ctx, collector, service, stats_file, web)
    finally:
        if server is not None:
            service.hub.close()
            server.stop()
            web.join(5.0)
        try:
            collector.poll()                 # the components' final stats, for the last scrape and the summary
        except Exception:
            log.exception("monitor: final poll failed")
        alerts.notify(Alert("session_stopped", f"stopped:{ctx.run_id}", f"session {ctx.run_id} stopped",
                            session_summary(collector.status), "info"))
        alerts.close(cfg.alerts.flush_s)
        stats_file.write(service.stats())
        if probe is not None:
            probe.stop()
        collector.close()
        for ring in rings.values():
            ring.close()
        health.close()


def _poll_loop(ctx, collector: Collector, service: MonitorService, stats_file: StatsFile,
               web: threading.Thread) -> None:
    period = ctx.cfg.monitor.poll_ms / 1000.0
    next_status = 0.0
    failures = 0
    while not ctx.stop.is_set():
        started = time.monotonic()
        try:
            for fill in collector.poll():
                service.hub.publish("fill", fill.to_dict())
            failures = 0
        except Exception:
            failures += 1
            if failures in (1, 10) or failures % 100 == 0:
                log.exception("monitor: poll failed (%d in a row)", failures)
        ctx.health.beat(collector.polls)
        if started >= next_status:
            service.hub.publish("status", collector.status)
            next_status = started + STATUS_EVERY_S
            stats_file.maybe_write(service.stats())
        if not web.is_alive():
            raise RuntimeError("monitor: the HTTP server stopped")
        ctx.stop.wait(max(0.0, period - (time.monotonic() - started)))


def session_summary(status: dict) -> str:
    """A few lines for the "session stopped" alert: what the session did."""
    if not status:
        return "no status was read"
    pnl = status.get("pnl") or {}
    ex = status.get("executor") or {}
    lat = (status.get("latency_us") or {}).get("tick_to_order") or {}
    lines = [f"{status.get('mode')} on {status.get('venue')}, {status.get('uptime_s') or 0:.0f}s",
             (f"orders {ex.get('orders_sent', 0)}, fills {ex.get('fills', 0)}, "
              f"PnL {pnl.get('total') or 0:.6g} {pnl.get('valuation_asset') or ''}")]
    if ex.get("refusals"):
        lines.append("refusals " + ", ".join(f"{k} {v}" for k, v in sorted(ex["refusals"].items())))
    if lat.get("p50") is not None:
        lines.append(f"tick-to-order p50 {lat['p50']:.0f} us, p99 {lat['p99']:.0f} us")
    failed = [n for n, c in (status.get("components") or {}).items() if c["state"] in ("failed", "dead")]
    if failed:
        lines.append("FAILED: " + ", ".join(failed))
    if (status.get("kill") or {}).get("engaged"):
        lines.append(f"kill switch engaged ({status['kill'].get('note') or status['kill'].get('reason')})")
    return "\n".join(lines)
