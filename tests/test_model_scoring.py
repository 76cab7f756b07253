"""The model registry, the packaged default model, and the feature contract."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.model.registry import PACKAGED_DIR, ModelError, list_models, read_metadata, resolve_model_dir
from ctrader.model.scoring import FeatureMismatch, OnnxModel, load_model
from ctrader.strategy.features import FEATURES, N_FEATURES


@pytest.fixture
def cfg(tmp_path):
    return load_config(overrides={"run.data_dir": str(tmp_path / "data")})


def test_default_model_loads_and_scores():
    model = OnnxModel.load(PACKAGED_DIR / "default", FEATURES)
    meta = model.meta
    assert meta.features == FEATURES and meta.strategy == "triangular"
    assert meta.training["source"] == "sim-offline" and meta.training["n_samples"] > 1000
    assert meta.metrics["onnx_max_abs_diff"] <= 1e-5 and meta.metrics["auc"] > 0.6
    assert (PACKAGED_DIR / "default" / "model.onnx").stat().st_size < 1_000_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, len(FEATURES))).astype(np.float32)
    p = model.score(x)
    assert p.shape == (64,) and np.all((p >= 0) & (p <= 1))
    # one row scores the same alone as in a batch
    assert model.score(x[3:4])[0] == pytest.approx(p[3], abs=1e-6)


def test_feature_mismatch_is_refused(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(PACKAGED_DIR / "default", bad)
    meta = json.loads((bad / "metadata.json").read_text())
    meta["features"] = meta["features"][:-1] + ["something_else"]
    (bad / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(FeatureMismatch, match="missing \\['levels_used'\\]; unknown \\['something_else'\\]"):
        OnnxModel.load(bad, FEATURES)


def test_registry_resolves_names(cfg, tmp_path):
    # nothing in the registry: "default" falls back to the packaged model
    assert resolve_model_dir(cfg) == PACKAGED_DIR / "default"
    assert resolve_model_dir(cfg, "none") is None
    assert load_model(cfg, FEATURES, "none") is None
    with pytest.raises(ModelError, match="not found"):
        resolve_model_dir(cfg, "nope")
    # a model of the same name in the registry wins over the packaged one
    mine = tmp_path / "data" / "models" / "default"
    shutil.copytree(PACKAGED_DIR / "default", mine)
    meta = json.loads((mine / "metadata.json").read_text())
    meta["version"] = "mine"
    (mine / "metadata.json").write_text(json.dumps(meta))
    assert resolve_model_dir(cfg) == mine
    assert load_model(cfg, FEATURES).version == "mine"
    listed = [(m.name, m.version) for m in list_models(cfg)]
    assert ("default", "mine") in listed and ("default", read_metadata(PACKAGED_DIR / "default").version) in listed


def test_metadata_without_features_is_an_error(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({"name": "x", "version": "1", "strategy": "triangular"}))
    with pytest.raises(ModelError, match="features"):
        read_metadata(tmp_path)


def test_an_alias_resolves_and_is_listed_once(cfg, tmp_path):
    import os

    from ctrader.model.registry import aliases

    reg = tmp_path / "data" / "models"
    reg.mkdir(parents=True)
    shutil.copytree(PACKAGED_DIR / "default", reg / "m2")
    os.symlink("m2", reg / "current")
    assert resolve_model_dir(cfg, "current") == reg / "current"
    assert load_model(cfg, FEATURES, "current").meta.features == FEATURES
    assert aliases(cfg) == {"current": "m2"}
    assert [m.path for m in list_models(cfg)].count(str(reg / "m2")) == 1
    assert str(reg / "current") not in [m.path for m in list_models(cfg)]


# --- verify_model: what promote and the pre-flight check run -------------------------------------

def _copy_default(to):
    shutil.copytree(PACKAGED_DIR / "default", to)
    return to


def _write_onnx(model_dir, graph_nodes, initializers, n_inputs):
    """A hand-made ONNX graph features -> probabilities, under the packaged model's metadata."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        graph_nodes, "test", [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_inputs])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, None])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (model_dir / "model.onnx").write_bytes(model.SerializeToString())


def _slice_model(model_dir, n_inputs=N_FEATURES):
    """probabilities = features[:, 0:2]: loads and runs, but its 'probabilities' are the inputs."""
    from onnx import helper

    init = [helper.make_tensor(name, 7, [1], [value]) for name, value in
            (("starts", 0), ("ends", 2), ("axes", 1))]
    _write_onnx(model_dir, [helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["probabilities"])],
                init, n_inputs)


def test_verify_model_passes_the_packaged_model():
    from ctrader.model.scoring import verify_model

    assert verify_model(PACKAGED_DIR / "default", FEATURES).meta.features == FEATURES


def test_verify_model_refuses_a_truncated_onnx_file(tmp_path):
    from ctrader.model.scoring import verify_model

    bad = _copy_default(tmp_path / "bad")
    blob = (bad / "model.onnx").read_bytes()
    (bad / "model.onnx").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelError, match=r"model.onnx: onnxruntime cannot load it \(InvalidProtobuf"):
        verify_model(bad, FEATURES)


def test_verify_model_refuses_a_model_of_another_width(tmp_path):
    from ctrader.model.scoring import verify_model

    bad = _copy_default(tmp_path / "bad")
    _slice_model(bad, n_inputs=len(FEATURES) - 1)      # metadata lists 20 features, the graph takes 19
    with pytest.raises(ModelError, match=f"cannot score a test batch of {len(FEATURES)} features"):
        verify_model(bad, FEATURES)


def test_verify_model_refuses_scores_that_are_not_probabilities(tmp_path):
    from ctrader.model.scoring import verify_model

    bad = _copy_default(tmp_path / "bad")
    _slice_model(bad)
    with pytest.raises(ModelError, match=r"scored a test batch with .*expected one probability in \[0, 1\]"):
        verify_model(bad, FEATURES)


def test_verify_model_refuses_other_features(tmp_path):
    from ctrader.model.scoring import verify_model

    bad = _copy_default(tmp_path / "bad")
    meta = json.loads((bad / "metadata.json").read_text())
    meta["features"] = list(reversed(meta["features"]))
    (bad / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(FeatureMismatch, match="same names in another order"):
        verify_model(bad, FEATURES)
