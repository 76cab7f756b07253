"""Each strategy of a set scores with its own model (``ctrader.strategy.models``):
``[model] per_strategy`` gives a strategy a model of its own, ``[model] name`` scores the strategy
it was trained for, the others run unscored, and a model trained on other features is refused."""
import numpy as np
import pytest

from ctrader.config import ConfigError, load_config
from ctrader.core.records import Decision
from ctrader.model.scoring import FeatureMismatch
from ctrader.replay.ml_loop import TrainSpec, fit_and_export, write_model
from ctrader.replay.training import Dataset
from ctrader.strategy import maker_triangular as M
from ctrader.strategy.models import (
    assign_models,
    describe_models,
    load_model_files,
    load_models,
    read_model_files,
)
from ctrader.strategy.registry import strategy_class
from ctrader.strategy.several import decision_source
from tests.strategy_harness import residual_market

BOTH = "triangular,maker_triangular"


def _cfg(data_dir, **more):
    return load_config(None, overrides={"run.data_dir": str(data_dir), "strategy.min_edge_bps": "0", **more})


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A data directory whose registry holds ``maker``: a model trained on the maker triangle's
    features (random rows: what it learned does not matter here, only what it was trained on)."""
    data_dir = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, len(M.FEATURES))).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(np.int8)
    ds = Dataset(X, y, np.arange(200, dtype=np.int64), tuple(M.FEATURES), {})
    spec = TrainSpec(name="maker", version="1")
    write_model(_cfg(data_dir, **{"strategy.name": "maker_triangular"}), fit_and_export(ds, spec), spec,
                db="test", start_ns=0, end_ns=1, latency_ms=0)
    return data_dir


def test_each_strategy_gets_the_model_trained_for_it(registry):
    # [model] name (the packaged model, trained for the taker triangle) scores its strategy only
    cfg = _cfg(registry, **{"strategy.names": BOTH})
    assert assign_models(cfg) == {"triangular": "default", "maker_triangular": None}
    # ... and with a model of its own, the maker triangle scores too
    cfg = _cfg(registry, **{"strategy.names": BOTH, "model.per_strategy": "maker_triangular=maker"})
    assert assign_models(cfg) == {"triangular": "default", "maker_triangular": "maker"}
    models = load_models(cfg)
    assert models["maker_triangular"].meta.features == tuple(M.FEATURES)
    assert models["triangular"].meta.features == tuple(strategy_class("triangular").features)
    assert describe_models(models) == (f"triangular=default:{models['triangular'].meta.version} "
                                       "maker_triangular=maker:1")
    # [model] name goes to the strategy whose features it has, wherever it is in the list
    cfg = _cfg(registry, **{"strategy.names": BOTH, "model.name": "maker"})
    assert assign_models(cfg) == {"triangular": None, "maker_triangular": "maker"}
    # a command told to run unscored scores nothing, per-strategy models included
    cfg = _cfg(registry, **{"strategy.names": BOTH, "model.per_strategy": "maker_triangular=maker"})
    assert assign_models(cfg, "none") == {"triangular": None, "maker_triangular": None}
    assert describe_models(load_models(cfg, "none")) == "none"
    # NAME "none": that strategy unscored, though [model] name was trained for it
    cfg = _cfg(registry, **{"strategy.names": BOTH, "model.per_strategy": "triangular=none"})
    assert assign_models(cfg) == {"triangular": None, "maker_triangular": None}


def test_the_wrong_model_is_refused_naming_the_strategy(registry):
    cfg = _cfg(registry, **{"strategy.names": BOTH, "model.per_strategy": "triangular=maker"})
    assert assign_models(cfg) == {"triangular": "maker", "maker_triangular": None}   # names only
    with pytest.raises(FeatureMismatch, match="triangular's model 'maker' \\(\\[model\\] per_strategy\\)"):
        load_models(cfg)
    with pytest.raises(FeatureMismatch, match="triangular's model 'maker'"):
        read_model_files(cfg)
    # a general model that fits no strategy of the set is refused, not run on the wrong inputs
    cfg = _cfg(registry, **{"strategy.names": "cross_rate_reversion,maker_triangular", "model.name": "default"})
    with pytest.raises(FeatureMismatch, match="fits no strategy"):
        assign_models(cfg)


@pytest.mark.parametrize("item, why", [("nosuch=maker", "STRATEGY one of"), ("maker_triangular", "STRATEGY=NAME"),
                                       ("maker_triangular=", "STRATEGY=NAME")])
def test_a_malformed_per_strategy_entry_is_a_config_error(registry, item, why):
    with pytest.raises(ConfigError, match=why):
        _cfg(registry, **{"model.per_strategy": item})


def test_both_strategies_of_a_set_score_their_candidates(registry):
    cfg = _cfg(registry, **{"strategy.names": BOTH, "model.per_strategy": "maker_triangular=maker",
                            "sim.market.residual_bps": "25"})
    uni, md = residual_market(cfg, seconds=30)
    models = load_models(cfg)
    engines = decision_source(cfg, uni, models)
    assert [m.model for m in engines.members] == [models["triangular"], models["maker_triangular"]]
    cands, _ = engines.on_md(md)
    by_strategy = {name: cands[cands["strategy_id"] == member.strategy.strategy_id]
                   for name, member in zip(engines.names, engines.members)}
    for name, rows in by_strategy.items():
        scored = rows[rows["decision"] != Decision.SKIP_RISK]
        assert len(scored) and np.isfinite(scored["score"]).any(), name
    # a sweep worker gets the same models from their bytes
    shipped = load_model_files(read_model_files(cfg))
    assert {s: m.meta.features for s, m in shipped.items()} == {s: m.meta.features for s, m in models.items()}
