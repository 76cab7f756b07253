"""Parameter sweeps and strategy ranking with walk-forward windows, in parallel (processes or Ray).

A sweep replays the same history once per parameter set and window. The history is cut into
``windows`` consecutive periods of equal length; walk-forward evaluation picks the best set on
period i (in sample) and judges that pick on period i + 1 (out of sample), so the figure that
ranks a choice is never the one it was chosen on:

    grid = parse_grid(["strategy.min_edge_bps=0:4:1", "strategy.cooldown_ms=100:500:200"])
    sw = run_variants(cfg_source, grid, store, start, end, windows=3, workers=2)
    sw.ranking          # parameter sets, best first, by mean out-of-sample PnL
    sw.walk_forward     # per step: chosen set, in-sample and out-of-sample PnL

Jobs run on the compute backend of ``[compute]`` (``ctrader.replay.compute``): local ``spawn``ed
processes by default, or Ray tasks. Each job reads its own window: from a ClickHouse server
itself, or, from the embedded store (one process only), as the driver shipped it (a flat file of
MD_EVENT records mapped read-only, or Ray's object store). Jobs get the loaded configuration of
their parameter set and the model as bytes: they read no file of the driver's.
"""
from __future__ import annotations

import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ctrader.replay.compute import ComputeBackend, MdSlice, history_slices, open_backend
from ctrader.replay.rank_metrics import ranks_by_window
from ctrader.strategy.registry import strategy_names

if TYPE_CHECKING:
    from ctrader.model.scoring import ModelFiles

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
    """``name:section.key=v,section.key=v`` (``name:`` alone = the configuration as it is). An
    item with no ``=`` goes on the previous value, as a list's next entry:
    ``both:strategy.names=triangular,cross_rate_reversion``."""
    name, sep, rest = text.partition(":")
    if not sep:
        name, rest = text, ""
    params: dict[str, str] = {}
    last = None
    for item in filter(None, (x.strip() for x in rest.split(","))):
        k, s, v = item.partition("=")
        if not s:
            if last is None:
                raise SweepError(f"--variant {text!r}: expected section.key=value items")
            params[last] += "," + item
            continue
        last = k.strip()
        params[last] = v.strip()
    return name.strip() or "base", params


def split_windows(start_ns: int, end_ns: int, windows: int) -> list[tuple[int, int]]:
    if windows < 1:
        raise SweepError("windows must be >= 1")
    edges = [start_ns + (end_ns - start_ns) * i // windows for i in range(windows + 1)]
    return [(edges[i], edges[i + 1]) for i in range(windows)]


# --- jobs ----------------------------------------------------------------------------------------

@dataclass
class Job:
    variant: str
    params: dict[str, Any]
    window: int
    md: MdSlice
    cfg: Any                       # the loaded configuration of this parameter set
    exchange_info: dict
    model: dict[str, ModelFiles | None] | None    # each strategy's model (None: no model at all)


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
    """Replay one window with one parameter set (in a worker process or a Ray task)."""
    from ctrader.market.universe import load_universe
    from ctrader.replay.runner import options_from_config, replay_chunks
    from ctrader.strategy.models import load_model_files

    t0 = time.perf_counter()
    try:
        cfg = job.cfg
        uni = load_universe(cfg, job.exchange_info)
        model = None
        if job.model is not None:
            model = load_model_files(job.model, cfg.model.threads)
        opts = options_from_config(cfg)
        opts.keep_records = 0
        res = replay_chunks(cfg, uni, job.md.chunks(cfg.replay.chunk_rows), model=model, options=opts)
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

    def metrics(self) -> dict[str, dict[str, list]]:
        """variant -> metric -> its value in each window (``rank_metrics.METRICS``; None where
        the job failed)."""
        from ctrader.replay.rank_metrics import METRICS, window_metrics

        out = {v: {m: [None] * len(self.windows) for m in METRICS} for v, _ in self.variants}
        for r in self.results:
            if not r.error:
                for m, value in window_metrics(r.summary, r.pnl, r.inventory, r.fills).items():
                    out[r.variant][m][r.window] = value
        return out

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
    by_window = ranks_by_window(pnl)
    ranking = []
    for v in names:
        vals = [_num(pnl[v][i]) for i in cols]
        ranks = by_window[v]
        ranking.append({"variant": v, "params": params[v], "oos_mean_pnl": float(np.mean(vals)) if vals else 0.0,
                        "pnl_by_window": pnl[v], "times_chosen": picks[v], "rank_by_window": ranks,
                        # how stable its place is: 0 = the same rank in every window
                        "rank_spread": (max(ranks) - min(ranks)) if ranks else 0})
    ranking.sort(key=lambda e: (-e["oos_mean_pnl"], names.index(e["variant"])))
    for i, e in enumerate(ranking):
        e["rank"] = i + 1
    return wf, ranking, oos


def _num(x) -> float:
    return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def run_variants(source: ConfigSource, variants: list[tuple[str, dict]], store, start_ns: int, end_ns: int, *,
                 windows: int = 3, workers: int = 0, model: str | None = None, save: bool = True,
                 kind: str = "sweep", progress=None, backend: ComputeBackend | None = None) -> SweepResult:
    """Replay every variant on every window in parallel; rank them walk-forward.

    ``backend``: where the jobs run (default: ``open_backend`` of the configuration, closed after).
    """
    from ctrader.replay.results import (
        ReplayResults,
        RunMeta,
        code_version,
        config_dict,
        config_hash,
        new_run_id,
    )
    from ctrader.replay.runner import resolve_universe
    from ctrader.strategy.models import read_model_files

    if not variants:
        raise SweepError("nothing to run: no parameter sets")
    cfg = source.load()
    uni = resolve_universe(cfg)
    names = [s.name for s in uni.symbols]
    ids = {s.name: s.id for s in uni.symbols}
    wins = split_windows(start_ns, end_ns, windows)
    sweep_id = new_run_id(kind)
    configs, models, refused = {}, {}, {}
    for v, params in variants:            # a parameter set that cannot load fails alone
        try:
            configs[v] = source.load(params)
            models[v] = read_model_files(configs[v], model)
        except Exception as exc:
            refused[v] = f"{type(exc).__name__}: {exc}"
    own_backend = backend is None
    backend = backend or open_backend(cfg, workers)
    try:
        slices = history_slices(backend, store, names, ids, wins, cfg.replay.chunk_rows)
        jobs = [Job(v, params, i, slices[i], configs[v], uni.exchange_info, models[v])
                for v, params in variants if v not in refused for i in range(len(wins))]
        log.info("sweep %s: %d jobs on %s (%d workers)", sweep_id, len(jobs), backend.name, backend.workers)
        done = {(r.variant, r.window): r for r in backend.map(run_job, jobs, progress)}
    finally:
        if own_backend:
            backend.close()
    results = [done.get((v, i)) or JobResult(v, params, i, {}, np.zeros(0), np.zeros(0), [], 0.0, refused[v])
               for v, params in variants for i in range(len(wins))]
    pnl = {v: [None] * len(wins) for v, _ in variants}
    for r in results:
        pnl[r.variant][r.window] = None if r.error else r.summary.get("pnl")
    wf, ranking, oos = rank(variants, pnl)
    sw = SweepResult(sweep_id, wins, variants, pnl, results, wf, ranking, oos)
    metrics = sw.metrics()
    for e in ranking:           # what else each variant did, window by window
        e["metrics_by_window"] = metrics[e["variant"]]
    if save:
        rs = ReplayResults(store)
        order = [v for v, _ in variants]
        for r in results:
            if r.error:
                continue
            run_cfg = configs[r.variant]
            run_id = f"{sweep_id}-v{order.index(r.variant)}-w{r.window}"
            meta = RunMeta(kind=kind, label=sweep_id, strategy="+".join(strategy_names(run_cfg)),
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
