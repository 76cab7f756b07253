"""``ctrader model promote`` loads and checks a model before ``current`` points at it (issue item 8):
a corrupt or feature-mismatched model is refused with the reason, and ``current`` stays."""
from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.model.registry import PACKAGED_DIR, ModelError
from ctrader.replay.ml_loop import current_target, promote, promotions


@pytest.fixture
def registry(tmp_path):
    """A data directory whose registry holds a good model, a truncated one and one trained on
    other features."""
    reg = tmp_path / "models"
    shutil.copytree(PACKAGED_DIR / "default", reg / "good")
    shutil.copytree(PACKAGED_DIR / "default", reg / "truncated")
    blob = (reg / "truncated" / "model.onnx").read_bytes()
    (reg / "truncated" / "model.onnx").write_bytes(blob[: len(blob) // 3])
    shutil.copytree(PACKAGED_DIR / "default", reg / "other")
    meta = json.loads((reg / "other" / "metadata.json").read_text())
    meta["features"] = meta["features"][:-1] + ["queue_position"]
    (reg / "other" / "metadata.json").write_text(json.dumps(meta))
    return tmp_path


def promote_cli(data_dir, name):
    return CliRunner().invoke(app, ["--set", f"run.data_dir={data_dir}", "model", "promote", name])


def test_promote_refuses_a_truncated_model_and_current_stays(registry):
    assert promote_cli(registry, "good").exit_code == 0
    result = promote_cli(registry, "truncated")
    assert result.exit_code == 1
    assert "cannot promote truncated" in result.output and "onnxruntime cannot load it" in result.output
    assert "current stays good" in result.output
    cfg = load_config(overrides={"run.data_dir": str(registry)}, env={})
    assert current_target(cfg) == "good"
    assert [p["model"] for p in promotions(cfg)] == ["good"]


def test_promote_refuses_a_model_trained_on_other_features(registry):
    result = promote_cli(registry, "other")
    assert result.exit_code == 1
    assert "does not match the strategy's features: missing ['levels_used']; unknown ['queue_position']" \
        in result.output
    assert "current stays unset" in result.output
    assert not (registry / "models" / "current").exists()


def test_promote_checks_before_it_touches_the_link(registry):
    cfg = load_config(overrides={"run.data_dir": str(registry)}, env={})
    assert promote(cfg, "good") is None
    with pytest.raises(ModelError, match="onnxruntime cannot load it"):
        promote(cfg, "truncated")
    assert current_target(cfg) == "good"
    assert promote(cfg, "good") == "good"
