"""The ML loop on recorded simulator history: labels, training from the store, ONNX parity,
evaluation in replay, promotion and retraining. The proof: a model trained on earlier history
beats the no-model baseline in replay on a later, held-out period."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.model.registry import read_metadata
from ctrader.replay.history import simulated_md, write_md
from ctrader.replay.ml_loop import (
    CURRENT,
    PromotionWatcher,
    TrainSpec,
    collect_from_md,
    current_target,
    evaluate_model,
    fit,
    promote,
    promotions,
    retrain,
    train_from_store,
)
from ctrader.replay.runner import data_range, load_strategy_model, resolve_universe
from ctrader.store.store import Store

# 200 ms from a candidate to its orders matching: long enough that a third of the dislocations
# the simulator opens are gone, so there is something for a model to learn.
LATENCY = "200"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("ml-loop")
    sets = {"model.name": "none", "run.data_dir": str(d), "store.url": f"chdb://{d}/store",
            "replay.order_latency": LATENCY}
    cfg = load_config(None, overrides=sets)
    uni = resolve_universe(cfg)
    md = simulated_md(cfg, uni, seconds=300, seed=7, dislocations_per_min=20)
    store = Store.from_config(cfg)
    write_md(store, md, uni)
    lo, hi = data_range(store)
    split = lo + int((hi - lo) * 0.7)
    yield cfg, uni, md, store, sets, (lo, split, hi)
    store.close()


def _assert_progress(calls, stage, total):
    """``stage`` reported forward in time, up to (about) ``total``, in the same unit."""
    done = [c[1] for c in calls if c[0] == stage]
    assert done, f"no progress for {stage!r}: {sorted({c[0] for c in calls})}"
    assert all(c[2] == pytest.approx(total) for c in calls if c[0] == stage)
    assert done == sorted(done) and done[-1] >= 0.9 * total


def test_labels_are_what_the_orders_would_have_done(env):
    cfg, uni, md, _, _, _ = env
    ds = collect_from_md(cfg, uni, [md[:100_000]], latency_ms=200)
    assert len(ds.y) > 500 and ds.X.shape == (len(ds.y), len(ds.features))
    assert 0.2 < ds.y.mean() < 0.95                       # both outcomes happen
    assert np.all(np.diff(ds.t_ns) >= 0)                  # time order (splits are in time)
    zero = collect_from_md(cfg, uni, [md[:100_000]], latency_ms=0)
    assert zero.y.mean() > ds.y.mean()                    # acting sooner fills more of the edge


def test_model_trained_on_earlier_history_beats_no_model_later(env):
    cfg, uni, _, store, _, (lo, split, hi) = env
    calls = []
    out = train_from_store(cfg, store, lo, split, TrainSpec(name="gbt1", kind="gbt"), universe=uni,
                           progress=lambda *a: calls.append(a))
    assert out.max_onnx_diff <= 1e-5 and out.metrics["auc"] > 0.6
    _assert_progress(calls, "labelling history", (split - lo) / 1e9)
    assert calls[-1][:3] == ("fitting", 1, 1)
    meta = read_metadata(out.path)
    assert meta.training["source"] == "store" and meta.training["end_ns"] == split
    assert meta.kind == "gradient_boosted_trees" and meta.features
    calls = []
    ev = evaluate_model(cfg, store, "gbt1", split, hi, against=("none",), universe=uni,
                        progress=lambda *a: calls.append(a))
    _assert_progress(calls, "labelling history", (hi - split) / 1e9)
    _assert_progress(calls, "replay 1/2 (model gbt1)", (hi - split) / 1e9)
    _assert_progress(calls, "replay 2/2 (model none)", (hi - split) / 1e9)
    assert ev["classification"]["auc"] > 0.6
    assert ev["replay"]["gbt1"]["pnl"] > ev["replay"]["none"]["pnl"], ev["replay"]
    assert ev["pnl_vs_none"] > 0


def test_logistic_regression_exports_within_tolerance(env):
    cfg, uni, md, _, _, _ = env
    ds = collect_from_md(cfg, uni, [md[:150_000]], latency_ms=200)
    from ctrader.replay.training import export_onnx, onnx_max_diff

    pipe, metrics = fit(ds, TrainSpec(kind="logreg"))
    assert onnx_max_diff(export_onnx(pipe, ds.X.shape[1]), pipe, ds.X) <= 1e-5
    assert metrics["n_train"] > metrics["n_test"] > 0


def test_promote_swaps_current_and_a_watcher_sees_it(env, tmp_path):
    cfg, uni, _, store, _, (lo, split, hi) = env
    for name in ("pa", "pb"):
        train_from_store(cfg, store, lo, split, TrainSpec(name=name, kind="logreg"), universe=uni)
    assert promote(cfg, "pa") is None
    watcher = PromotionWatcher(cfg, interval_s=0)
    assert current_target(cfg) == "pa" and not watcher.poll()
    assert load_strategy_model(cfg, CURRENT).meta.name == "pa"
    assert promote(cfg, "pb", reason="test") == "pa"
    assert watcher.poll() and watcher.target == "pb"
    assert load_strategy_model(cfg, CURRENT).meta.name == "pb"
    assert [p["model"] for p in promotions(cfg)][-2:] == ["pa", "pb"]
    with pytest.raises(FileNotFoundError):
        promote(cfg, "nope")


def test_retrain_promotes_only_when_it_beats_current(env):
    cfg, uni, _, store, _, (lo, split, hi) = env
    eval_s = (hi - split) / 1e9
    train_s = (split - lo) / 1e9
    r = retrain(cfg, store, train_s, eval_s, spec=TrainSpec(name="rt1", kind="gbt"))
    ref = next(k for k in r.evaluation["replay"] if k != "rt1")
    mine, theirs = r.evaluation["replay"]["rt1"]["pnl"], r.evaluation["replay"][ref]["pnl"]
    assert r.promoted == (mine > theirs)
    assert (current_target(cfg) == "rt1") == r.promoted
    # the same model again cannot beat itself: it is kept out
    again = retrain(cfg, store, train_s, eval_s, spec=TrainSpec(name="rt1b", kind="gbt"))
    if r.promoted:
        assert not again.promoted and current_target(cfg) == "rt1"


def test_cli_eval_and_promote(env):
    _, _, _, _, sets, (lo, split, hi) = env
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    run = CliRunner()
    res = run.invoke(app, argv + ["model", "train-history", "--name", "cli1", "--kind", "logreg", "--start", str(lo),
                                  "--end", str(split), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["samples"] > 0
    # the same through ``model train --from-store``
    res = run.invoke(app, argv + ["model", "train", "--from-store", "--name", "cli2", "--start", str(lo),
                                  "--end", str(split)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "model cli2" in res.stdout and "samples" in res.stdout
    res = run.invoke(app, argv + ["model", "list"], catch_exceptions=False)
    assert "cli2" in res.stdout
    res = run.invoke(app, argv + ["model", "eval", "cli1", "--start", str(split), "--end", str(hi), "--against",
                                  "none", "--json", "--no-save"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert {"cli1", "none"} <= set(ev["replay"]) and ev["classification"]["n"] > 0
    res = run.invoke(app, argv + ["model", "promote", "cli1"], catch_exceptions=False)
    assert res.exit_code == 0 and "current -> cli1" in res.stdout
