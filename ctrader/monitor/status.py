"""The status document of a running session: ``GET /api/status``, the dashboard, ``ctrader status``.

Built from a ``Snapshot`` (what one poll read: the components' stats files, the health table,
the books' ages, the kill switch, the venue probe) plus, in the monitor, the fills and the
tick-to-order histogram it follows on the exec ring. ``ctrader status`` builds the same document
from the run directory alone when no monitor runs (no per-book ages, no fills list then).

    snap = snapshot_from_run_dir(cfg, run_dir)          # or the monitor's Collector.snapshot
    doc = build_status(snap)
"""
from __future__ import annotations

import math
import os
import pathlib
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

from ctrader.core.shm import pid_alive
from ctrader.core.stats import read_stats

# Tick-to-order buckets (upper bounds, seconds): the Prometheus histogram's and the dashboard's.
LATENCY_BUCKETS_S = (50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3,
                     100e-3, 250e-3, 1.0)
STATS_STALE_S = 10.0      # a component whose stats file is older than this is not reporting


class LatencyHistogram:
    """Counts per bucket of ``LATENCY_BUCKETS_S`` (the last bucket is +Inf), sum and count."""

    def __init__(self, bounds_s: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds_s = bounds_s
        self.counts = [0] * (len(bounds_s) + 1)
        self.sum_s = 0.0
        self.count = 0

    def observe_ns(self, ns: int) -> None:
        s = ns / 1e9
        i = 0
        while i < len(self.bounds_s) and s > self.bounds_s[i]:
            i += 1
        self.counts[i] += 1
        self.sum_s += s
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """[(le, cumulative count)], Prometheus style, ending with +Inf."""
        out, total = [], 0
        for bound, n in zip(list(self.bounds_s) + [math.inf], self.counts):
            total += n
            out.append(("+Inf" if bound == math.inf else repr(bound), total))
        return out

    def to_dict(self) -> dict:
        return {"bounds_us": [round(b * 1e6, 1) for b in self.bounds_s], "counts": list(self.counts),
                "count": self.count, "mean_us": round(self.sum_s / self.count * 1e6, 1) if self.count else None}


@dataclass
class Snapshot:
    """What one poll read. ``health`` is None when read from a run directory alone."""
    run_id: str
    wall: float
    stats: dict[str, dict]
    health: dict[str, dict] | None = None
    kill: dict = field(default_factory=dict)            # engaged, reason, note, file
    books: list[dict] | None = None                     # per symbol: symbol, age_s, stale, stale_for_s
    venue: dict = field(default_factory=dict)           # clock_offset_ms, balances, checked_at, error
    disk_free_mb: float | None = None
    rings: dict[str, dict] = field(default_factory=dict)
    mode: str = ""
    venue_kind: str = ""
    started_at: float | None = None
    source: str = "monitor"


def components_of(snap: Snapshot) -> dict[str, dict]:
    """Each component's state: from the health table when there is one, else from its stats file
    (a live pid and a fresh file)."""
    out: dict[str, dict] = {}
    if snap.health is not None:
        for name, h in snap.health.items():
            pid = h.get("pid", 0)
            alive = bool(pid) and pid_alive(pid)
            state = h.get("state", "?")
            if not alive and state in ("running", "starting") and pid:
                state = "dead"
            out[name] = {"state": state, "pid": pid or None, "alive": alive, "restarts": h.get("restarts", 0),
                         "beat_age_s": _round(h.get("beat_age_s"), 2), "errors": h.get("errors", 0)}
        return out
    for name, st in snap.stats.items():
        pid = st.get("pid")
        alive = bool(pid) and pid_alive(pid)
        age = snap.wall - st.get("written_at", 0)
        state = "running" if alive and age < STATS_STALE_S else ("silent" if alive else "stopped")
        out[name] = {"state": state, "pid": pid, "alive": alive, "restarts": None,
                     "beat_age_s": _round(age, 2), "errors": None}
    return out


def _round(x: Any, nd: int) -> Any:
    return round(x, nd) if isinstance(x, float) and math.isfinite(x) else (None if isinstance(x, float) else x)


def _p(d: dict, *keys: str) -> dict:
    return {k: d.get(k) for k in keys if k in d}


def build_status(snap: Snapshot, fills: list[dict] | None = None, histogram: LatencyHistogram | None = None,
                 alerts: dict | None = None, pnl_history: list[tuple[float, float]] | None = None) -> dict:
    st = snap.stats
    feed, strat, ex, rec = (st.get(k, {}) for k in ("feed", "strategy", "executor", "recorder"))
    t2o = ex.get("tick_to_order") or {}
    doc: dict[str, Any] = {
        "run_id": snap.run_id, "source": snap.source, "time": snap.wall, "mode": snap.mode or ex.get("mode"),
        "venue": snap.venue_kind, "started_at": snap.started_at,
        "uptime_s": round(snap.wall - snap.started_at, 1) if snap.started_at else None,
        "components": components_of(snap),
        "kill": snap.kill,
        "pnl": {"valuation_asset": ex.get("valuation_asset"), "total": ex.get("pnl"),
                "by_asset": ex.get("pnl_by_asset", {}), "in_start_assets": ex.get("pnl_in_start_assets", {}),
                "daily": ex.get("daily_pnl"), "daily_loss_limit": ex.get("daily_loss_limit"),
                "unwind": ex.get("unwind_pnl"), "fees": ex.get("fees", {})},
        "positions": ex.get("positions", {}),
        "balances": snap.venue.get("balances"),
        "open_orders": ex.get("open_order_list", []),
        "fills": {"count": ex.get("fills"), "last": list(fills or [])},
        "feed": {**_p(feed, "messages", "records", "gaps", "resyncs", "disconnects", "connects", "parse_errors",
                      "stale_symbols", "snapshot_rate_limited"), "books": snap.books},
        "strategy": {**_p(strat, "strategy", "model", "events", "candidates", "taken", "skipped", "model_calls",
                          "groups_in_flight", "md_lost")},
        "executor": {**_p(ex, "mode", "orders_sent", "fills", "cancels", "refusals", "rejects", "open_orders",
                          "unwinds", "rate_budget", "backoff_s", "duplicates"),
                     "rate_limited": (ex.get("venue") or {}).get("rate_limited")},
        "recorder": _p(rec, "store_up", "queued_rows", "spill_pending_batches", "spilled_rows", "insert_errors",
                       "rows_md_book", "rows_executions", "rows_candidates", "rows_orders"),
        "latency_us": {
            "tick_to_order": {"p50": t2o.get("p50_us"), "p99": t2o.get("p99_us"), "n": t2o.get("n")},
            "tick_to_intent": {"p50": _round(strat.get("tick_to_intent_p50_us"), 1),
                               "p99": _round(strat.get("tick_to_intent_p99_us"), 1)},
            "strategy_eval": {"p50": _round(strat.get("eval_p50_us"), 2), "p99": _round(strat.get("eval_p99_us"), 2)},
            "recv_to_ring": {"p50": _round(feed.get("recv_to_ring_us_p50"), 1),
                             "p99": _round(feed.get("recv_to_ring_us_p99"), 1)},
            "stages": ex.get("tick_to_order_stages", {}),
        },
        "tick_to_order_histogram": histogram.to_dict() if histogram is not None else None,
        "rings": snap.rings,
        "venue_probe": {k: v for k, v in snap.venue.items() if k != "balances"},
        "disk_free_mb": _round(snap.disk_free_mb, 1),
        "alerts": alerts,
    }
    if pnl_history is not None:
        doc["pnl_history"] = pnl_history
    return doc


def disk_free_mb(path: str | os.PathLike) -> float | None:
    try:
        return shutil.disk_usage(path).free / 1e6
    except OSError:
        return None


def kill_state(kill_path: pathlib.Path, executor_stats: dict) -> dict:
    """The kill switch as an operator sees it: the file (who engaged it), or the executor's own
    latch (SIGUSR1, which only a restart clears)."""
    from ctrader.execution.killfile import kill_file_note

    note = kill_file_note(kill_path)
    reason = executor_stats.get("kill_switch") or ""
    file_on = bool(note) or kill_path.exists()
    return {"engaged": file_on or bool(reason), "reason": reason or (f"file {kill_path}" if file_on else ""),
            "note": note, "file": str(kill_path), "file_engaged": file_on,
            "executor_engaged": bool(reason)}     # the executor has seen it (its stats say so)


def snapshot_from_run_dir(cfg, run_dir: pathlib.Path) -> Snapshot:
    """A snapshot from the files of a run alone (``ctrader status`` with no monitor)."""
    from ctrader.config import data_dir, expand_path

    stats = read_stats(run_dir)
    started = None
    try:
        started = (run_dir / "exchange_info.json").stat().st_mtime
    except OSError:
        pass
    return Snapshot(run_id=run_dir.name, wall=time.time(), stats=stats, health=None,
                    kill=kill_state(expand_path(cfg, cfg.risk.kill_file), stats.get("executor", {})),
                    disk_free_mb=disk_free_mb(data_dir(cfg)), mode=cfg.run.mode, venue_kind=cfg.venue.kind,
                    started_at=started, source="run_dir")
