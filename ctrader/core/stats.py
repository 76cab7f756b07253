"""Per-component counters of a run, as small JSON files in the run directory.

Each component writes its own file about once a second and once more when it stops; the
supervisor's status line, the exit summary and the recorder's Redis publisher read them. A file
is replaced atomically (write + rename), so a reader never sees half a document, and nothing on
the hot path waits for anyone.

    stats = StatsFile(ctx.run_dir, "feed", counters=("messages", "gaps"))
    stats.write({"messages": n, "gaps": g})           # or stats.maybe_write(dict) on every loop
    read_stats(run_dir)  ->  {"feed": {...,"pid": 123, "written_at": 1700000000.1}, ...}

A component restarted within a run (it crashed, or was killed) starts its counters from zero;
its ``counters`` (numbers, or dicts of numbers such as refusals by reason) continue from what
the last incarnation wrote, so the file and the run's summary always count the whole run.
``incarnations`` says how many processes the component took.
"""
from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Any

SUFFIX = ".stats.json"


class StatsFile:
    def __init__(self, run_dir: str | os.PathLike, component: str, interval_s: float = 1.0,
                 counters: tuple[str, ...] = ()) -> None:
        self.path = pathlib.Path(run_dir) / f"{component}{SUFFIX}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.interval_s = interval_s
        self._next = 0.0
        self.counters = counters
        self.base: dict[str, Any] = {}          # what earlier incarnations counted
        self.incarnations = 1
        self._carry_over()

    def _carry_over(self) -> None:
        """A file already here was written by an earlier incarnation in this run (the run
        directory is the run's own): keep its counts."""
        try:
            earlier = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        self.incarnations = int(earlier.get("incarnations", 1)) + 1
        self.base = {k: earlier[k] for k in self.counters if k in earlier}

    def write(self, stats: dict[str, Any]) -> None:
        stats = dict(stats)
        for key, before in self.base.items():
            stats[key] = _add(before, stats.get(key))
        doc = dict(stats, pid=os.getpid(), written_at=time.time(), incarnations=self.incarnations)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, default=_jsonable, sort_keys=True))
        os.replace(tmp, self.path)
        self._next = time.monotonic() + self.interval_s

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def maybe_write(self, stats: dict[str, Any]) -> bool:
        """Write if ``interval_s`` has passed since the last write."""
        if self.due():
            self.write(stats)
            return True
        return False


def read_stats(run_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(pathlib.Path(run_dir).glob(f"*{SUFFIX}")):
        try:
            out[path.name[: -len(SUFFIX)]] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue          # being replaced right now: the next read gets it
    return out


def _add(before: Any, now: Any) -> Any:
    """``before + now`` for counters: numbers, or dicts of numbers (by key)."""
    if now is None:
        return before
    if isinstance(before, dict) and isinstance(now, dict):
        return {k: _add(before.get(k, 0), now.get(k)) if k in before else now[k] for k in before.keys() | now.keys()}
    if isinstance(before, (int, float)) and isinstance(now, (int, float)) and not isinstance(now, bool):
        return before + now
    return now


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):           # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def percentiles(samples, qs=(50, 99)) -> dict[str, float | None]:
    """{"p50": .., "p99": ..} of a sequence (None when empty): for latency counters."""
    import numpy as np

    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        return {f"p{q:g}": None for q in qs}
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}
