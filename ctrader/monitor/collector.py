"""One poll of a running session for the monitor: rings, stats files, health, kill switch, venue.

    collector = Collector(cfg, run_id, run_dir, health=table, rings=rings, alerts=manager, probe=probe)
    new_fills = collector.poll()        # from the monitor's poll thread, every monitor.poll_ms
    collector.status                    # the latest status document (replaced whole, never mutated)
    collector.fills_since(fill_id)      # fills after that id, oldest first

Everything read here is published by the components for anyone to read (stats files written
with an atomic rename, the health table's words, ring cursors); the monitor writes nothing they
read, except the kill file when someone asks it to.
"""
from __future__ import annotations

import collections
import logging
import pathlib
import threading
import time
from typing import Any

import numpy as np

from ctrader.config import Config, data_dir, expand_path
from ctrader.core.ring import Ring
from ctrader.monitor.alerts import Alert, AlertManager
from ctrader.monitor.rules import AlertRules
from ctrader.monitor.status import LatencyHistogram, Snapshot, build_status, disk_free_mb, kill_state
from ctrader.monitor.watch import ExecWatcher, Fill, MdWatcher, SymbolTable
from ctrader.runtime.health import HealthTable
from ctrader.runtime.resources import RING_SPECS, consumer_id
from ctrader.core.stats import read_stats

log = logging.getLogger(__name__)

DISK_CHECK_S = 10.0
PNL_SAMPLE_S = 1.0


class Collector:
    def __init__(self, cfg: Config, run_id: str, run_dir: pathlib.Path, *, health: HealthTable | None,
                 rings: dict[str, Ring], alerts: AlertManager, probe: Any = None,
                 started_at: float | None = None) -> None:
        self.cfg = cfg
        self.run_id = run_id
        self.run_dir = run_dir
        self.health = health
        self.rings = rings
        self.alerts = alerts
        self.rules = AlertRules(cfg.alerts)
        self.probe = probe
        self.started_at = started_at or time.time()
        self.kill_path = expand_path(cfg, cfg.risk.kill_file)
        self.histogram = LatencyHistogram()
        self.names: SymbolTable | None = None
        self.exec_watch: ExecWatcher | None = None
        self.md_watch: MdWatcher | None = None
        self.fills: collections.deque[Fill] = collections.deque(maxlen=cfg.monitor.fills_kept)
        self.pnl_history: collections.deque[tuple[float, float]] = collections.deque(
            maxlen=int(cfg.monitor.history_s / PNL_SAMPLE_S))
        self.snapshot: Snapshot | None = None
        self.status: dict = {}
        self.polls = 0
        self._lock = threading.Lock()
        self._disk = (0.0, None)
        self._pnl_at = 0.0
        # Ring readers are claimed now, before the first heartbeat: claiming a broadcast slot
        # loads a compiled kernel (seconds on a cold cache). Created before the feed starts,
        # they miss nothing; the watchers around them wait for the run's symbol table.
        self._exec_consumer = rings["exec"].consumer(consumer_id("exec", "monitor")) if "exec" in rings else None
        self._md_consumer = rings["md"].consumer() if "md" in rings else None

    # --- set-up -------------------------------------------------------------------------------

    def _symbols(self) -> SymbolTable | None:
        """The run's symbol ids, once the session has saved its exchangeInfo (the monitor starts first)."""
        if self.names is not None:
            return self.names
        path = pathlib.Path(self.cfg.market.exchange_info_file).expanduser() if self.cfg.market.exchange_info_file \
            else self.run_dir / "exchange_info.json"
        if not path.exists():
            return None
        import json

        from ctrader.market.universe import load_universe

        try:
            universe = load_universe(self.cfg, json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            log.debug("exchangeInfo not readable yet: %s", exc)
            return None
        self.names = SymbolTable.from_universe(universe)
        if self._exec_consumer is not None:
            self.exec_watch = ExecWatcher(self._exec_consumer, self.names)
        if self._md_consumer is not None:
            self.md_watch = MdWatcher(self._md_consumer, len(self.names.symbols))
        return self.names

    # --- a poll -------------------------------------------------------------------------------

    def poll(self) -> list[Fill]:
        """Read everything once, update the status document and the alerts; returns the new fills."""
        new_fills: list[Fill] = []
        self._symbols()
        if self.exec_watch is not None:
            new_fills, latencies = self.exec_watch.poll()
            for ns in latencies:
                self.histogram.observe_ns(ns)
            if new_fills:
                with self._lock:
                    self.fills.extend(new_fills)
        if self.md_watch is not None:
            self.md_watch.poll()
        snap = self._snapshot()
        self.snapshot = snap
        ex = snap.stats.get("executor", {})
        if ex.get("pnl") is not None and snap.wall - self._pnl_at >= PNL_SAMPLE_S:
            self._pnl_at = snap.wall
            self.pnl_history.append((round(snap.wall, 3), ex["pnl"]))
        for action in self.rules.check(snap):
            if isinstance(action, Alert):
                self.alerts.raise_alert(action)
            else:
                self.alerts.resolve(action.key)
        self.alerts.tick()
        self.status = build_status(snap, [f.to_dict() for f in list(self.fills)[-20:]], self.histogram,
                                   self.alert_summary())
        self.polls += 1
        return new_fills

    def _snapshot(self) -> Snapshot:
        now = time.time()
        stats = read_stats(self.run_dir)
        stats.pop("monitor", None)
        if now - self._disk[0] >= DISK_CHECK_S:
            self._disk = (now, disk_free_mb(data_dir(self.cfg)))
        return Snapshot(run_id=self.run_id, wall=now, stats=stats,
                        health=self.health.snapshot() if self.health is not None else None,
                        kill=kill_state(self.kill_path, stats.get("executor", {})), books=self._books(),
                        venue=dict(self.probe.result) if self.probe is not None else {},
                        disk_free_mb=self._disk[1], rings=self.ring_stats(), mode=self.cfg.run.mode,
                        venue_kind=self.cfg.venue.kind, started_at=self.started_at)

    def _books(self) -> list[dict] | None:
        if self.md_watch is None or self.names is None:
            return None
        age, stale_for = self.md_watch.ages(time.monotonic_ns())
        return [{"symbol": name, "age_s": None if np.isnan(age[i]) else round(float(age[i]), 3),
                 "stale": bool(self.md_watch.stale[i]), "stale_for_s": round(float(stale_for[i]), 3)}
                for i, name in enumerate(self.names.symbols)]

    def ring_stats(self) -> dict[str, dict]:
        """Per ring: records written, producer waits, and per consumer its lag, fill ratio and
        losses (the monitor's own readers included)."""
        pids: dict[int, str] = {}
        if self.health is not None:      # broadcast consumers are known by pid (threads mode shares one)
            owners = collections.Counter(h["pid"] for h in self.health.snapshot().values())
            pids = {h["pid"]: name for name, h in self.health.snapshot().items()
                    if h["pid"] and owners[h["pid"]] == 1}
        out = {}
        for key, ring in self.rings.items():
            st = ring.stats()
            named = RING_SPECS.get(key, (None, None, None, ()))[3]
            watcher = {"exec": self.exec_watch, "md": self.md_watch}.get(key)
            consumers = {}
            for c in st["consumers"]:
                if watcher is not None and c["id"] == watcher.consumer.index:
                    continue         # the monitor's own reader: reported below
                if isinstance(named, tuple) and c["id"] < len(named):
                    name = named[c["id"]]
                else:
                    name = pids.get(c["pid"], f"consumer {c['id']}")
                consumers[name] = {"lag": c["lag"], "fill": round(c["lag"] / st["capacity"], 4),
                                   "overruns": c["overruns"], "lost": c["lost"]}
            if watcher is not None:
                lag = watcher.consumer.lag      # never waited for: it may fall a whole ring behind
                consumers["monitor"] = {"lag": lag, "fill": round(min(lag / st["capacity"], 1.0), 4),
                                        "overruns": watcher.consumer.overruns, "lost": watcher.lost}
            out[key] = {"kind": st["kind"], "capacity": st["capacity"], "head": st["head"],
                        "producer_waits": st["producer_waits"], "consumers": consumers}
        return out

    # --- readers (API threads) ----------------------------------------------------------------

    def fills_since(self, since: int = 0, since_ts: float | None = None, limit: int = 1000) -> list[dict]:
        with self._lock:
            fills = list(self.fills)
        out = [f.to_dict() for f in fills if f.id > since and (since_ts is None or f.time > since_ts)]
        return out[:limit]

    def alert_summary(self) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for (event, outcome), n in self.alerts.counts.items():
            counts.setdefault(event, {})[outcome] = n
        return {"open": self.alerts.open_incidents(), "recent": list(self.alerts.recent)[-20:], "counts": counts,
                "pending": self.alerts.pending()}

    def close(self) -> None:
        if self._md_consumer is not None:
            self._md_consumer.release()
