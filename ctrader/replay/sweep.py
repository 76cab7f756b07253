"""Parameter sweeps and strategy ranking with walk-forward windows, in parallel processes.

A sweep replays the same history once per parameter set and window. The history is cut into
``windows`` consecutive periods of equal length; walk-forward evaluation picks the best set on
period i (in sample) and judges that pick on period i + 1 (out of sample), so the figure that
ranks a choice is never the one it was chosen on:

    grid = parse_grid(["strategy.min_edge_bps=0:4:1", "strategy.cooldown_ms=100:500:200"])
    sw = run_variants(cfg_source, grid, store, start, end, windows=3, workers=2)
    sw.ranking          # parameter sets, best first, by mean out-of-sample PnL
    sw.walk_forward     # per step: chosen set, in-sample and out-of-sample PnL

Workers are separate processes (``spawn``). The embedded store admits one process, so the parent
exports each window's market data once to a flat file of MD_EVENT records and the workers map it
read-only (``numpy.memmap``): no worker opens the store, memory stays bounded.
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import math
import multiprocessing
import os
import pathlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctrader.core.records import MD_EVENT

log = logging.getLogger(__name__)


class SweepError(ValueError):
    pass


@dataclass(frozen=True)
class ConfigSource:
    """How a worker rebuilds the configuration: the file and --set overrides of the command."""
    path: str | None = None
    overrides: tuple[tuple[str, str], ...] = ()

    def load(self, extra: dict[str, Any] | None = None):
        from ctrader.config import load_config

        over = dict(self.overrides)
        over.update({k: _fmt(v) for k, v in (extra or {}).items()})
        return load_config(self.path, overrides=over)


def _fmt(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v)) if abs(v) < 1e15 else repr(v)
    return str(v)


def parse_range(text: str) -> tuple[str, list]:
    """``key=a:b:step`` (inclusive of b), ``key=a:b`` (step 1) or ``key=v1,v2,v3`` -> (key, values)."""
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or "." not in key:
        raise SweepError(f"--sweep expects section.key=a:b:step or section.key=v1,v2; got {text!r}")
    if ":" in spec and "," not in spec:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise SweepError(f"--sweep {text!r}: expected a:b or a:b:step")
        try:
            a, b = float(parts[0]), float(parts[1])
            step = float(parts[2]) if len(parts) == 3 else 1.0
        except ValueError:
            raise SweepError(f"--sweep {text!r}: a, b and step must be numbers") from None
        if step <= 0 or b < a:
            raise SweepError(f"--sweep {text!r}: needs a <= b and step > 0")
        n = math.floor((b - a) / step + 1e-9) + 1
        values = [round(a + i * step, 10) for i in range(n)]
        if all(float(v).is_integer() for v in values) and all(float(x).is_integer() for x in (a, step)):
            values = [int(v) for v in values]
        return key, values
    values = [v.strip() for v in spec.split(",") if v.strip()]
    if not values:
        raise SweepError(f"--sweep {text!r}: no values")
    return key, values


def parse_grid(specs: list[str]) -> list[dict[str, Any]]:
    """Every combination of the ``--sweep`` ranges (keys in the order given)."""
    ranges = [parse_range(s) for s in specs]
    keys = [k for k, _ in ranges]
    if len(set(keys)) != len(keys):
        raise SweepError("a key is swept twice")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in ranges))]


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``name:section.key=v,section.key=v`` (``name:`` alone = the configuration as it is)."""
    name, sep, rest = text.partition(":")
    if not sep:
        name, rest = text, ""
    params = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        k, s, v = item.partition("=")
        if not s:
            raise SweepError(f"--variant {text!r}: expected section.key=value items")
        params[k.strip()] = v.strip()
    return name.strip() or "base", params


def split_windows(start_ns: int, end_ns: int, windows: int) -> list[tuple[int, int]]:
    if windows < 1:
        raise SweepError("windows must be >= 1")
    edges = [start_ns + (end_ns - start_ns) * i // windows for i in range(windows + 1)]
    return [(edges[i], edges[i + 1]) for i in range(windows)]


# --- data export ---------------------------------------------------------------------------------

def export_window(store, names: list[str], ids: dict[str, int], lo: int, hi: int, path: pathlib.Path,
                  chunk_rows: int) -> int:
    """Stream one window's md from the store into a flat file of MD_EVENT records."""
    n = 0
    with open(path, "wb") as fh:
        for chunk in store.read_md(names, lo, hi, chunk_rows=chunk_rows, symbol_ids=ids):
            fh.write(np.ascontiguousarray(chunk).tobytes())
            n += len(chunk)
    return n


def _map(path: str) -> np.ndarray:
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, MD_EVENT)
    return np.memmap(path, dtype=MD_EVENT, mode="r")


# --- workers -------------------------------------------------------------------------------------

@dataclass
class Job:
    variant: str
    params: dict[str, Any]
    window: int
    md_path: str
    source: ConfigSource
    exchange_info: dict
    model: str | None              # None: the configuration's [model] name


@dataclass
class JobResult:
    variant: str
    params: dict[str, Any]
    window: int
    summary: dict
    fills: np.ndarray
    pnl: np.ndarray
    inventory: list
    wall_s: float
    error: str = ""


def run_job(job: Job) -> JobResult:
    """Replay one window with one parameter set (runs in a worker process)."""
    from ctrader.market.universe import load_universe
    from ctrader.replay.runner import load_strategy_model, options_from_config, replay_chunks

    t0 = time.perf_counter()
    try:
        cfg = job.source.load(job.params)
        uni = load_universe(cfg, job.exchange_info)
        model = load_strategy_model(cfg, job.model)
        opts = options_from_config(cfg)
        opts.keep_records = 0
        md = _map(job.md_path)
        step = cfg.replay.chunk_rows
        chunks = (np.array(md[i:i + step]) for i in range(0, len(md), step))
        res = replay_chunks(cfg, uni, chunks, model=model, options=opts)
        wall = time.perf_counter() - t0
        res.summary["wall_s"] = wall
        return JobResult(job.variant, job.params, job.window, res.summary, res.fills, res.pnl, res.inventory, wall)
    except Exception as exc:          # a bad parameter set must not sink the whole sweep
        log.exception("sweep job %s window %d failed", job.variant, job.window)
        return JobResult(job.variant, job.params, job.window, {}, np.zeros(0), np.zeros(0), [],
                         time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")


# --- ranking -------------------------------------------------------------------------------------

@dataclass
class SweepResult:
    sweep_id: str
    windows: list[tuple[int, int]]
    variants: list[tuple[str, dict]]
    pnl: dict[str, list[float]]                 # variant -> PnL per window
    results: list[JobResult]
    walk_forward: list[dict] = field(default_factory=list)
    ranking: list[dict] = field(default_factory=list)
    oos_pnl: float = 0.0
    run_ids: dict[tuple[str, int], str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"sweep_id": self.sweep_id, "windows": self.windows,
                "walk_forward": self.walk_forward, "oos_pnl": self.oos_pnl, "ranking": self.ranking,
                "errors": [{"variant": r.variant, "window": r.window, "error": r.error}
                           for r in self.results if r.error]}


def rank(variants: list[tuple[str, dict]], pnl: dict[str, list[float]]) -> tuple[list[dict], list[dict], float]:
    """Walk-forward picks and the ranking (mean PnL over the out-of-sample windows 1..W-1; with a
    single window, its PnL). Ties keep the order of ``variants`` (deterministic)."""
    names = [v for v, _ in variants]
    params = dict(variants)
    n_win = len(next(iter(pnl.values()))) if pnl else 0
    wf, oos = [], 0.0
    for i in range(n_win - 1):
        best = max(names, key=lambda v: (_num(pnl[v][i]), -names.index(v)))
        wf.append({"train_window": i, "test_window": i + 1, "chosen": best, "params": params[best],
                   "in_sample_pnl": pnl[best][i], "out_of_sample_pnl": pnl[best][i + 1]})
        oos += _num(pnl[best][i + 1])
    cols = range(1, n_win) if n_win > 1 else range(n_win)
    picks = {v: sum(1 for w in wf if w["chosen"] == v) for v in names}
    ranking = []
    for v in names:
        vals = [_num(pnl[v][i]) for i in cols]
        ranking.append({"variant": v, "params": params[v], "oos_mean_pnl": float(np.mean(vals)) if vals else 0.0,
                        "pnl_by_window": pnl[v], "times_chosen": picks[v]})
    ranking.sort(key=lambda e: (-e["oos_mean_pnl"], names.index(e["variant"])))
    for i, e in enumerate(ranking):
        e["rank"] = i + 1
    return wf, ranking, oos


def _num(x) -> float:
    return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def run_variants(source: ConfigSource, variants: list[tuple[str, dict]], store, start_ns: int, end_ns: int, *,
                 windows: int = 3, workers: int = 0, model: str | None = None, save: bool = True,
                 kind: str = "sweep", progress=None) -> SweepResult:
    """Replay every variant on every window in parallel; rank them walk-forward."""
    from ctrader.replay.results import (
        ReplayResults,
        RunMeta,
        code_version,
        config_dict,
        config_hash,
        new_run_id,
    )
    from ctrader.replay.runner import resolve_universe

    if not variants:
        raise SweepError("nothing to run: no parameter sets")
    cfg = source.load()
    uni = resolve_universe(cfg)
    names = [s.name for s in uni.symbols]
    ids = {s.name: s.id for s in uni.symbols}
    wins = split_windows(start_ns, end_ns, windows)
    sweep_id = new_run_id(kind)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="ctrader-sweep-"))
    try:
        paths = []
        for i, (lo, hi) in enumerate(wins):
            p = tmp / f"window{i}.md"
            n = export_window(store, names, ids, lo, hi, p, cfg.replay.chunk_rows)
            log.info("sweep %s: window %d has %d md events", sweep_id, i, n)
            paths.append(str(p))
        jobs = [Job(v, params, i, paths[i], source, uni.exchange_info, model)
                for v, params in variants for i in range(len(wins))]
        n_workers = workers or cfg.replay.workers or os.cpu_count() or 1
        n_workers = max(1, min(n_workers, len(jobs)))
        results: list[JobResult] = []
        if n_workers == 1:
            for j in jobs:
                results.append(run_job(j))
                if progress:
                    progress(len(results), len(jobs))
        else:
            ctx = multiprocessing.get_context("spawn")
            with cf.ProcessPoolExecutor(n_workers, mp_context=ctx) as pool:
                futs = [pool.submit(run_job, j) for j in jobs]
                for f in cf.as_completed(futs):
                    results.append(f.result())
                    if progress:
                        progress(len(results), len(jobs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results.sort(key=lambda r: ([v for v, _ in variants].index(r.variant), r.window))
    pnl = {v: [None] * len(wins) for v, _ in variants}
    for r in results:
        pnl[r.variant][r.window] = None if r.error else r.summary.get("pnl")
    wf, ranking, oos = rank(variants, pnl)
    sw = SweepResult(sweep_id, wins, variants, pnl, results, wf, ranking, oos)
    if save:
        rs = ReplayResults(store)
        order = [v for v, _ in variants]
        for r in results:
            if r.error:
                continue
            run_cfg = source.load(r.params)
            run_id = f"{sweep_id}-v{order.index(r.variant)}-w{r.window}"
            meta = RunMeta(kind=kind, label=sweep_id, strategy=run_cfg.strategy.name,
                           config_hash=config_hash(run_cfg), code_version=code_version(),
                           model_version=str(model or run_cfg.model.name),
                           data_start_ns=wins[r.window][0], data_end_ns=wins[r.window][1], symbols=names,
                           params=dict(r.params, variant=r.variant, window=r.window),
                           config=config_dict(run_cfg), wall_s=r.wall_s)
            r.summary["run_id"] = run_id
            rs.save_run(run_id, meta, _AsResult(r), uni)
            sw.run_ids[(r.variant, r.window)] = run_id
    return sw


@dataclass
class _AsResult:
    """A JobResult seen as a ReplayResult by ``ReplayResults.save_run``."""
    job: JobResult

    @property
    def summary(self):
        return self.job.summary

    @property
    def fills(self):
        return self.job.fills

    @property
    def pnl(self):
        return self.job.pnl

    @property
    def inventory(self):
        return self.job.inventory


def _slug(text: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in text)
    return out[:40] or "v"


def grid_variants(grid: list[dict[str, Any]]) -> list[tuple[str, dict]]:
    return [(",".join(f"{k.split('.')[-1]}={v}" for k, v in params.items()) or "base", params) for params in grid]
