"""Sweeps, walk-forward ranking and retraining on the compute backends: local processes and a
local Ray instance (2 CPUs, a small object store, no dashboard, shut down by the module). The
proof: the same grid ranks identically on both, and a retrain decides the same."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.replay.compute import FileSlice, LocalBackend, StoreSlice, history_slices, open_backend
from ctrader.replay.history import simulated_md, write_md
from ctrader.replay.runner import data_range, resolve_universe
from ctrader.replay.sweep import ConfigSource, grid_variants, parse_grid, run_variants
from ctrader.store.store import Store


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("compute")
    sets = {"model.name": "none", "run.data_dir": str(d), "store.url": f"chdb://{d}/store",
            "replay.order_latency": "200", "replay.chunk_rows": "5000"}
    cfg = load_config(None, overrides=sets)
    uni = resolve_universe(cfg)
    md = simulated_md(cfg, uni, seconds=60, seed=7, dislocations_per_min=20)
    store = Store.from_config(cfg)
    write_md(store, md, uni)
    yield cfg, uni, md, store, sets
    store.close()


@pytest.fixture(scope="module")
def ray_backend():
    pytest.importorskip("ray", reason="Ray is not installed: the Ray backend tests need "
                                      "pip install 'ctrader[compute]' (tools/test installs it)")
    from ctrader.replay.compute import RayBackend

    backend = RayBackend(num_cpus=2, object_store_mb=128)
    yield backend
    backend.close()


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and len(got) == len(want)
    for f in want.dtype.names:
        assert np.array_equal(got[f], want[f]), f


def records(slice_, chunk_rows: int = 3000) -> np.ndarray:
    parts = list(slice_.chunks(chunk_rows))
    out = np.zeros(sum(len(p) for p in parts), parts[0].dtype)
    at = 0
    for p in parts:
        out[at:at + len(p)] = p
        at += len(p)
    return out


def test_every_slice_kind_reads_the_same_window(env):
    cfg, uni, md, store, _ = env
    names, ids = [s.name for s in uni.symbols], {s.name: s.id for s in uni.symbols}
    lo, hi = data_range(store)
    mid = (lo + hi) // 2
    want = md[(md["recv_ts_ns"] >= lo) & (md["recv_ts_ns"] < mid)]
    with LocalBackend(workers=1) as local:
        (shipped,) = history_slices(local, store, names, ids, [(lo, mid)], 4000)
        assert isinstance(shipped, FileSlice)
        got = records(shipped)
    # a server URL: the task opens the store itself (here in this process, which may share it)
    own = StoreSlice(store.url, store.db, tuple(names), tuple(sorted(ids.items())), lo, mid)
    for other in (got, records(own)):
        assert_same(other, want)


def test_ray_tasks_get_the_windows_the_driver_ships(env, ray_backend):
    _, uni, md, store, _ = env
    names, ids = [s.name for s in uni.symbols], {s.name: s.id for s in uni.symbols}
    lo, hi = data_range(store)
    (in_ray,) = history_slices(ray_backend, store, names, ids, [(lo, hi)], 4000)
    assert len(in_ray.refs) >= len(md) / 4000                # one object a chunk: bounded driver memory
    assert_same(records(in_ray), md)


def test_ray_and_local_sweeps_rank_identically(env, ray_backend):
    cfg, _, _, store, sets = env
    lo, hi = data_range(store)
    source = ConfigSource(None, tuple(sets.items()))
    variants = grid_variants(parse_grid(["strategy.min_edge_bps=1:41:40"]))     # two variants: a ranking
    with LocalBackend(workers=2) as local:
        a = run_variants(source, variants, store, lo, hi, windows=2, save=False, backend=local)
    b = run_variants(source, variants, store, lo, hi, windows=2, save=False, backend=ray_backend)
    assert not [r.error for r in a.results + b.results if r.error]
    assert a.ranking == b.ranking and a.walk_forward == b.walk_forward and a.oos_pnl == b.oos_pnl
    assert [r.summary["digests"] for r in a.results] == [r.summary["digests"] for r in b.results]
    assert sum(r.summary["intents"] for r in b.results) > 0


def test_ray_and_local_retrain_decide_the_same(env, ray_backend):
    from ctrader.replay.ml_loop import TrainSpec, retrain

    cfg, _, _, store, _ = env
    lo, hi = data_range(store)
    train_s, eval_s = (hi - lo) * 0.6 / 1e9, (hi - lo) * 0.4 / 1e9
    with LocalBackend(workers=1) as local:
        a = retrain(cfg, store, train_s, eval_s, end_ns=hi, spec=TrainSpec(name="rt-local", kind="logreg"),
                    promote_if_better=False, backend=local)
    b = retrain(cfg, store, train_s, eval_s, end_ns=hi, spec=TrainSpec(name="rt-ray", kind="logreg"),
                promote_if_better=False, backend=ray_backend)
    assert a.evaluation["classification"]["n"] > 0 and a.train_metrics["n_train"] > 0
    assert a.train_metrics == b.train_metrics
    assert a.evaluation["classification"] == b.evaluation["classification"]
    assert a.evaluation["replay"]["rt-local"]["pnl"] == b.evaluation["replay"]["rt-ray"]["pnl"]
    assert a.evaluation["replay"]["none"]["pnl"] == b.evaluation["replay"]["none"]["pnl"]
    assert a.reason.replace("rt-local", "rt-ray") == b.reason.replace("rt-local", "rt-ray")


def test_the_configuration_picks_the_backend(env):
    cfg = env[0]
    with open_backend(cfg, workers=3) as backend:
        assert backend.name == "local" and backend.workers == 3
    ray_cfg = dataclasses.replace(cfg, compute=dataclasses.replace(cfg.compute, backend="ray"))
    try:
        import ray  # noqa: F401
    except ImportError:
        from ctrader.replay.compute import ComputeError

        with pytest.raises(ComputeError, match="pip install"):
            open_backend(ray_cfg)


def test_cli_sweep_runs_on_ray_when_configured(env, ray_backend):
    """``[compute] backend = "ray"``: the command's tasks go to Ray (here the module's instance,
    which the command finds running, uses, and leaves running)."""
    import json

    from typer.testing import CliRunner

    from ctrader.cli.main import app

    _, _, _, _, sets = env
    argv = [a for k, v in dict(sets, **{"compute.backend": "ray"}).items() for a in ("--set", f"{k}={v}")]
    res = CliRunner().invoke(app, argv + ["strategies", "rank", "--variant", "base:", "--variant",
                                          "strict:strategy.min_edge_bps=41", "--windows", "2", "--no-save", "--json"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {e["variant"] for e in out["ranking"]} == {"base", "strict"} and not out["errors"]
    import ray

    assert ray.is_initialized()
