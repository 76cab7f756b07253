"""Training from offline simulator data: labels, ONNX export within 1e-5, reproducibility, CLI."""
from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ctrader.config import load_config
from ctrader.model.registry import read_metadata
from ctrader.model.scoring import OnnxModel
from ctrader.replay.training import TrainOptions, collect_dataset, export_onnx, fit, onnx_max_diff, train_from_sim
from ctrader.strategy.features import FEATURES

SMALL = TrainOptions(seed=5, market_seconds=90, dislocations_per_min=40.0)


@pytest.fixture(scope="module")
def cfg():
    return load_config()


PROGRESS: list[tuple] = []


@pytest.fixture(scope="module")
def dataset(cfg):
    return collect_dataset(cfg, SMALL, progress=lambda *a: PROGRESS.append(a))


def test_collection_reports_progress_in_market_seconds(dataset):
    assert {p[0] for p in PROGRESS} == {"simulating market"}
    done = [p[1] for p in PROGRESS]
    assert done == sorted(done) and PROGRESS[-1][2] == SMALL.market_seconds
    assert done[-1] >= 0.95 * SMALL.market_seconds and PROGRESS[-1][3].endswith("candidates")


def test_dataset_has_both_labels_in_time_order(dataset):
    assert dataset.features == FEATURES
    assert dataset.X.shape == (len(dataset.y), len(FEATURES)) and dataset.X.dtype == np.float32
    assert set(np.unique(dataset.y).tolist()) == {0, 1}
    assert np.all(np.diff(dataset.t_ns) >= 0)
    assert np.all(np.isfinite(dataset.X))
    # every sampled candidate had a positive edge after fees when it was seen
    assert np.all(dataset.X[:, FEATURES.index("edge_bps")] > 0)


def test_onnx_reproduces_sklearn_within_1e_5(dataset):
    pipe, metrics = fit(dataset, SMALL)
    blob = export_onnx(pipe, len(FEATURES))
    assert onnx_max_diff(blob, pipe, dataset.X) <= 1e-5
    # the same check by hand on random inputs far outside the training range
    import onnxruntime as ort

    x = np.random.default_rng(1).normal(scale=50.0, size=(500, len(FEATURES))).astype(np.float32)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {"features": x})[0][:, 1]
    assert np.max(np.abs(got - pipe.predict_proba(x)[:, 1])) <= 1e-5
    assert metrics["n_train"] > metrics["n_test"] > 0


def test_training_is_reproducible_from_the_seed(cfg, tmp_path):
    a = train_from_sim(cfg, SMALL, tmp_path / "a")
    b = train_from_sim(cfg, SMALL, tmp_path / "b")
    assert (tmp_path / "a" / "model.onnx").read_bytes() == (tmp_path / "b" / "model.onnx").read_bytes()
    meta = read_metadata(tmp_path / "a")
    assert meta.features == FEATURES and meta.version == "sim-s5"
    assert meta.training["window"]["market_seconds"] == 90 and meta.metrics == a.meta.metrics
    model = OnnxModel.load(tmp_path / "a", FEATURES)
    assert model.score(b.dataset.X[:10]).shape == (10,)


def test_cli_model_train_and_list(tmp_path):
    from ctrader.cli.main import app

    runner = CliRunner()
    args = ["--set", f"run.data_dir={tmp_path}", "model", "train", "--from-sim", "--name", "mine",
            "--seconds", "60", "--seed", "3", "--dislocations-per-min", "40"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / "mine" / "model.onnx").is_file()
    listed = runner.invoke(app, ["--set", f"run.data_dir={tmp_path}", "model", "list"])
    assert listed.exit_code == 0
    assert "mine" in listed.output and "default" in listed.output
