"""Compute backend benchmarks: the same sweep on local processes and on a local Ray instance.

A grid of parameter sets replays walk-forward windows of the simulator's market (seed 7) from a
temporary embedded store, so the driver ships every window (a mapped file for local workers,
Ray's object store for Ray tasks). Figures: sweep jobs per second on each backend, both with as
many workers as cores, after a warm-up sweep (process start-up, compiled kernels loaded); Ray's
start-up is reported beside. The rankings must be identical, or the suite says so.

    .venv/bin/ctrader bench --suite compute
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time


def _sweep_rates(quick: bool) -> dict:
    from ctrader.config import load_config
    from ctrader.replay.compute import LocalBackend
    from ctrader.replay.history import simulated_md, write_md
    from ctrader.replay.runner import data_range, resolve_universe
    from ctrader.replay.sweep import ConfigSource, grid_variants, parse_grid, run_variants
    from ctrader.store.store import Store

    d = tempfile.mkdtemp(prefix="ctrader-bench-compute-")
    sets = {"model.name": "none", "run.data_dir": d, "store.url": f"chdb://{d}/store"}
    cores = os.cpu_count() or 1
    out: dict = {"cores": cores}
    try:
        cfg = load_config(None, overrides=sets)
        uni = resolve_universe(cfg)
        store = Store.from_config(cfg)
        try:
            md = simulated_md(cfg, uni, seconds=30 if quick else 120, seed=7)
            write_md(store, md, uni)
            lo, hi = data_range(store)
            source = ConfigSource(None, tuple(sets.items()))
            specs = ["strategy.min_edge_bps=1:3:1"] if quick else ["strategy.min_edge_bps=1:4:1",
                                                                   "strategy.cooldown_ms=100,1000"]
            variants = grid_variants(parse_grid(specs))
            windows = 2 if quick else 3
            jobs = len(variants) * windows
            out.update(events=len(md), jobs=jobs)

            def timed(backend) -> tuple[float, object]:
                run_variants(source, variants, store, lo, hi, windows=windows, save=False, backend=backend)
                t0 = time.perf_counter()
                sw = run_variants(source, variants, store, lo, hi, windows=windows, save=False, backend=backend)
                return jobs / (time.perf_counter() - t0), sw

            with LocalBackend(workers=cores) as local:
                out["local"], local_sw = timed(local)
            try:
                from ctrader.replay.compute import RayBackend

                t0 = time.perf_counter()
                ray = RayBackend(num_cpus=cores, object_store_mb=256)
                out["ray_start_s"] = time.perf_counter() - t0
                try:
                    out["ray"], ray_sw = timed(ray)
                finally:
                    ray.close()
                out["identical"] = local_sw.ranking == ray_sw.ranking
            except ImportError:
                out["ray"] = None
        finally:
            store.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def run(quick: bool = False) -> list[dict]:
    r = _sweep_rates(quick)
    load = os.getloadavg()[0]
    note = (f"{r['jobs']} jobs (parameter sets x walk-forward windows) over {r['events']:,} md events, "
            f"{r['cores']} workers, shipped from the embedded store; load avg {load:.1f}")
    if r["ray"] is None:
        return [{"name": "sweep jobs on Ray", "value": None, "unit": "jobs/s", "baseline_name": "local processes",
                 "baseline_value": r["local"], "ratio": None, "note": "Ray not installed: pip install 'ctrader[compute]'"}]
    return [{"name": "sweep jobs on Ray (local instance)", "value": r["ray"], "unit": "jobs/s",
             "baseline_name": "the same sweep on local processes", "baseline_value": r["local"],
             "ratio": r["ray"] / r["local"],
             "note": f"{note}; Ray started in {r['ray_start_s']:.1f} s (not in the rate); "
                     f"rankings identical: {r['identical']}"}]


def check_regressions(results: list[dict]) -> list[str]:
    problems = []
    for r in results:
        if "rankings identical: False" in r.get("note", ""):
            problems.append("Ray and local processes ranked the same sweep differently")
        if r.get("ratio") is not None and r["ratio"] < 0.2:
            problems.append(f"{r['name']}: {r['ratio']:.2f}x local processes (limit 0.2x)")
    return problems
