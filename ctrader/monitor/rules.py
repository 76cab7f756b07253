"""When to alert: rules over successive snapshots of a session.

Each rule turns what the components already publish (stats files, the health table, the kill
file, the books' ages, the venue probe) into incidents: ``Alert`` when a condition starts (the
manager deduplicates while the incident stays open), ``Resolve`` when it ends. Nothing here
asks a trading process for anything, so no alert can slow one down.

    rules = AlertRules(cfg.alerts)
    for action in rules.check(snapshot):
        manager.raise_alert(action) if isinstance(action, Alert) else manager.resolve(action.key)

Counters that fall (a component restarted and counts from zero) are read as a reset.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from ctrader.monitor.alerts import Alert
from ctrader.monitor.status import Snapshot, components_of


@dataclass(frozen=True)
class Resolve:
    key: str


class _Increase:
    """Increases of a counter within a sliding window (resets read as starting from zero)."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.events: collections.deque[tuple[float, float]] = collections.deque()   # (time, increase)

    def update(self, now: float, value: float | None, window_s: float) -> float:
        """Feed the counter's current value; returns its increase over the last ``window_s``."""
        if value is not None:
            if self.last is not None:
                inc = value - self.last if value >= self.last else value
                if inc > 0:
                    self.events.append((now, inc))
            self.last = value
        while self.events and self.events[0][0] <= now - window_s:
            self.events.popleft()
        return sum(inc for _, inc in self.events)


class AlertRules:
    def __init__(self, alerts_cfg: Any) -> None:
        self.cfg = alerts_cfg
        self._dead_since: dict[str, tuple[float, int | None]] = {}
        self._disconnects = _Increase()
        self._rejects = _Increase()
        self._rate_limited = {"executor": _Increase(), "feed": _Increase()}
        self._daily_refusals = _Increase()
        self._stale_since: float | None = None
        self._store_down_since: float | None = None

    def check(self, snap: Snapshot) -> list[Alert | Resolve]:
        out: list[Alert | Resolve] = []
        for rule in (self._components, self._kill, self._daily_loss, self._rate_limits, self._books,
                     self._storms, self._store, self._disk, self._clock):
            out.extend(rule(snap))
        return out

    # --- rules ----------------------------------------------------------------------------------

    def _components(self, snap: Snapshot) -> list:
        """Dead (failed, or its process gone while it should run) and not restarted within the grace."""
        out: list = []
        for name, c in components_of(snap).items():
            if snap.health is None:
                continue          # from a run directory alone: no restarts to tell failure from a pause
            key = f"component_failed:{name}"
            if c["state"] in ("failed", "dead"):
                since, restarts = self._dead_since.setdefault(name, (snap.wall, c["restarts"]))
                if restarts != c["restarts"]:
                    self._dead_since[name] = (snap.wall, c["restarts"])
                elif snap.wall - since >= self.cfg.component_grace_s:
                    out.append(Alert("component_failed", key, f"{name} failed for good",
                                     f"{name} (pid {c['pid']}) is {c['state']} and was not restarted "
                                     f"({c['restarts']} restarts so far)", "critical", snap.wall))
            else:
                self._dead_since.pop(name, None)
                if c["state"] == "running":
                    out.append(Resolve(key))
        return out

    def _kill(self, snap: Snapshot) -> list:
        k = snap.kill
        if k.get("engaged"):
            by = k.get("note") or k.get("reason") or "unknown"
            return [Alert("kill_switch", "kill_switch", "kill switch engaged",
                          f"{by}: new orders are refused, open orders cancelled", "critical", snap.wall)]
        return [Resolve("kill_switch")]

    def _daily_loss(self, snap: Snapshot) -> list:
        ex = snap.stats.get("executor", {})
        daily, limit = ex.get("daily_pnl"), ex.get("daily_loss_limit")
        refused = self._daily_refusals.update(
            snap.wall, (ex.get("refusals") or {}).get("DAILY_LOSS", 0) if ex else None, 3600)
        if daily is None or limit is None:
            return []
        if daily < -limit or (refused and daily < 0):
            return [Alert("daily_loss", "daily_loss", "daily loss limit reached",
                          f"today's PnL {daily:.2f} {ex.get('valuation_asset', '')} is below -{limit:g}: "
                          f"new orders are refused until tomorrow (UTC)", "critical", snap.wall)]
        return [Resolve("daily_loss")]

    def _rate_limits(self, snap: Snapshot) -> list:
        out: list = []
        ex, feed = snap.stats.get("executor", {}), snap.stats.get("feed", {})
        window = self.cfg.storm_window_s
        venue_hits = self._rate_limited["executor"].update(snap.wall, (ex.get("venue") or {}).get("rate_limited"),
                                                          window)
        backoff = ex.get("backoff_s") or 0.0
        if venue_hits or backoff > 0:
            out.append(Alert("rate_limited", "rate_limited:executor", "venue rate limit hit (429/418)",
                             f"the venue answered 429/418 {venue_hits:g} times in {window:g}s; no new order "
                             f"for {backoff:.0f}s more", "critical", snap.wall))
        else:
            out.append(Resolve("rate_limited:executor"))
        feed_hits = self._rate_limited["feed"].update(snap.wall, feed.get("snapshot_rate_limited"), window)
        if feed_hits:
            out.append(Alert("rate_limited", "rate_limited:feed", "feed snapshots rate-limited (429/418)",
                             f"{feed_hits:g} book snapshot requests answered 429/418 in {window:g}s",
                             "warning", snap.wall))
        else:
            out.append(Resolve("rate_limited:feed"))
        return out

    def _books(self, snap: Snapshot) -> list:
        limit = self.cfg.stale_s
        if snap.books is not None:
            bad = [b for b in snap.books
                   if b["stale_for_s"] >= limit or (b["age_s"] is not None and b["age_s"] >= limit)]
            if bad:
                names = ", ".join(b["symbol"] for b in bad[:12]) + (f" and {len(bad) - 12} more" if len(bad) > 12 else "")
                return [Alert("books_stale", "books_stale", f"{len(bad)} books stale for over {limit:g}s", names,
                              "warning", snap.wall)]
            return [Resolve("books_stale")]
        stale = snap.stats.get("feed", {}).get("stale_symbols")
        if stale:
            if self._stale_since is None:
                self._stale_since = snap.wall
            if snap.wall - self._stale_since >= limit:
                return [Alert("books_stale", "books_stale", f"{stale} books stale for over {limit:g}s", "",
                              "warning", snap.wall)]
            return []
        self._stale_since = None
        return [Resolve("books_stale")]

    def _storms(self, snap: Snapshot) -> list:
        out: list = []
        window = self.cfg.storm_window_s
        disconnects = self._disconnects.update(snap.wall, snap.stats.get("feed", {}).get("disconnects"), window)
        if disconnects >= self.cfg.disconnect_storm:
            out.append(Alert("disconnect_storm", "disconnect_storm", "feed disconnect storm",
                             f"{disconnects:g} disconnects in {window:g}s", "warning", snap.wall))
        elif not disconnects:
            out.append(Resolve("disconnect_storm"))
        ex = snap.stats.get("executor")
        rejects = (ex or {}).get("rejects") or {}
        count = self._rejects.update(snap.wall, sum(rejects.values()) if ex else None, window)
        if count >= self.cfg.reject_storm:
            codes = ", ".join(f"{code}: {n}" for code, n in sorted(rejects.items()))
            out.append(Alert("reject_storm", "reject_storm", "order reject storm",
                             f"{count:g} orders rejected by the venue in {window:g}s (so far by code: {codes})",
                             "critical", snap.wall))
        elif not count:
            out.append(Resolve("reject_storm"))
        return out

    def _store(self, snap: Snapshot) -> list:
        rec = snap.stats.get("recorder")
        if not rec:
            return []
        out: list = []
        down = rec.get("store_up") is False
        if not down:
            self._store_down_since = None
        elif self._store_down_since is None:
            self._store_down_since = snap.wall
        # not up yet at start (opening, migrating) is not down: a failed insert, or too long, is
        if down and (rec.get("insert_errors") or snap.wall - self._store_down_since >= self.cfg.stale_s):
            out.append(Alert("store_down", "store_down", "store down",
                             f"the recorder cannot write to the store; {rec.get('queued_rows', 0)} rows queued, "
                             f"{rec.get('spill_pending_batches', 0)} batches spilled to disk", "critical", snap.wall))
        elif rec.get("store_up"):
            out.append(Resolve("store_down"))
        pending = rec.get("spill_pending_batches") or 0
        if pending >= self.cfg.spill_batches:
            out.append(Alert("spill_backlog", "spill_backlog", "spill backlog growing",
                             f"{pending} recorder batches wait in spill files", "warning", snap.wall))
        elif pending == 0:
            out.append(Resolve("spill_backlog"))
        return out

    def _disk(self, snap: Snapshot) -> list:
        free = snap.disk_free_mb
        if free is None:
            return []
        if free < self.cfg.min_free_disk_mb:
            return [Alert("disk_low", "disk_low", "disk space low",
                          f"{free:.0f} MB free under the data directory (alert below "
                          f"{self.cfg.min_free_disk_mb:g} MB)", "critical", snap.wall)]
        if free >= self.cfg.min_free_disk_mb * 1.05:     # a little hysteresis: no flapping at the line
            return [Resolve("disk_low")]
        return []

    def _clock(self, snap: Snapshot) -> list:
        offset = snap.venue.get("clock_offset_ms")
        if offset is None:
            return []
        if abs(offset) > self.cfg.max_clock_offset_ms:
            return [Alert("clock_offset", "clock_offset", "clock offset to the venue",
                          f"the venue's clock is {offset:+.0f} ms from ours (alert beyond "
                          f"{self.cfg.max_clock_offset_ms:g} ms): signed requests may be refused", "warning",
                          snap.wall)]
        return [Resolve("clock_offset")]
