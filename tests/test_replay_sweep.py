"""Parameter grids, walk-forward ranking, and a real parallel sweep over the embedded store."""
import json

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.replay.history import simulated_md, write_md
from ctrader.replay.results import ReplayResults
from ctrader.replay.runner import data_range, resolve_universe
from ctrader.replay.sweep import (
    ConfigSource,
    SweepError,
    grid_variants,
    parse_grid,
    parse_range,
    parse_variant,
    rank,
    run_variants,
    split_windows,
)
from ctrader.store.store import Store


def test_ranges_and_grids():
    assert parse_range("strategy.min_edge_bps=0:4:1") == ("strategy.min_edge_bps", [0, 1, 2, 3, 4])
    assert parse_range("strategy.min_edge_bps=0.5:1.5:0.5")[1] == [0.5, 1.0, 1.5]
    assert parse_range("strategy.tif=IOC,FOK") == ("strategy.tif", ["IOC", "FOK"])
    grid = parse_grid(["strategy.min_edge_bps=1:2:1", "strategy.cooldown_ms=100,200,300"])
    assert len(grid) == 6 and grid[0] == {"strategy.min_edge_bps": 1, "strategy.cooldown_ms": "100"}
    assert grid_variants(grid)[0][0] == "min_edge_bps=1,cooldown_ms=100"
    for bad in ("min_edge=1:2", "strategy.x=3:1", "strategy.x=1:2:0", "strategy.x=a:b"):
        with pytest.raises(SweepError):
            parse_grid([bad])
    assert parse_variant("tight:strategy.min_edge_bps=3,strategy.cooldown_ms=100") == (
        "tight", {"strategy.min_edge_bps": "3", "strategy.cooldown_ms": "100"})
    assert parse_variant("base:") == ("base", {})


def test_windows_cover_the_range_exactly():
    w = split_windows(0, 100, 3)
    assert w[0][0] == 0 and w[-1][1] == 100 and all(a[1] == b[0] for a, b in zip(w, w[1:]))


def test_walk_forward_picks_in_sample_and_judges_out_of_sample():
    variants = [("a", {}), ("b", {}), ("c", {})]
    pnl = {"a": [5.0, -1.0, 0.0], "b": [1.0, 2.0, 3.0], "c": [0.0, 4.0, -2.0]}
    wf, ranking, oos = rank(variants, pnl)
    assert [w["chosen"] for w in wf] == ["a", "c"]          # best of window 0, then of window 1
    assert oos == pytest.approx(-1.0 + -2.0)                # judged on the next window
    assert [e["variant"] for e in ranking] == ["b", "c", "a"]   # mean over out-of-sample windows 1..2
    assert ranking[0]["rank"] == 1 and ranking[1]["times_chosen"] == 1


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("replay-sweep")
    sets = {"model.name": "none", "run.data_dir": str(d), "store.url": f"chdb://{d}/store"}
    cfg = load_config(None, overrides=sets)
    uni = resolve_universe(cfg)
    store = Store.from_config(cfg)
    write_md(store, simulated_md(cfg, uni, seconds=40, seed=11), uni)
    yield cfg, store, sets
    store.close()


def test_parallel_sweep_ranks_and_saves_every_run(env):
    cfg, store, sets = env
    lo, hi = data_range(store)
    source = ConfigSource(None, tuple(sets.items()))
    grid = parse_grid(["strategy.min_edge_bps=1:41:40"])          # 1 bp trades, 41 bp never does
    sw = run_variants(source, grid_variants(grid), store, lo, hi, windows=2, workers=2)
    assert not [r.error for r in sw.results if r.error]
    assert len(sw.results) == 4 and len(sw.walk_forward) == 1
    never = next(e for e in sw.ranking if e["params"]["strategy.min_edge_bps"] == 41)
    assert never["pnl_by_window"] == [0.0, 0.0]
    assert sum(r.summary["intents"] for r in sw.results if r.params["strategy.min_edge_bps"] == 1) > 0
    saved = {r["run_id"] for r in ReplayResults(store).list_runs(kind="sweep")}
    assert set(sw.run_ids.values()) <= saved and len(sw.run_ids) == 4


def test_strategies_rank_cli(env):
    _, _, sets = env
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    res = CliRunner().invoke(app, argv + ["strategies", "rank", "--variant", "base:", "--variant",
                                          "strict:strategy.min_edge_bps=41", "--windows", "2", "--workers", "1",
                                          "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {e["variant"] for e in out["ranking"]} == {"base", "strict"} and not out["errors"]
    res = CliRunner().invoke(app, argv + ["replay", "--sweep", "strategy.cooldown_ms=100,1000", "--windows", "2",
                                          "--workers", "1", "--no-save"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "walk-forward out-of-sample PnL" in res.output and "cooldown_ms=1000" in res.output


def test_strategies_rank_selects_the_best_variant_into_a_config_that_start_reads(env, tmp_path):
    """``--select FILE`` writes the best-ranked variant (and the command's --set overrides) as
    what differs from the defaults; ``load_config(FILE)`` is that variant's configuration."""
    from ctrader.config import config_to_dict

    _, _, sets = env
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    from ctrader.replay.rank_metrics import METRICS

    chosen, page = tmp_path / "chosen.toml", tmp_path / "rank.html"
    res = CliRunner().invoke(app, argv + ["strategies", "rank", "--variant", "never:strategy.min_edge_bps=41",
                                          "--variant", "eager:strategy.min_edge_bps=1,strategy.cooldown_ms=250",
                                          "--windows", "2", "--workers", "1", "--no-save", "--json",
                                          "--select", str(chosen), "--report", str(page)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    best = out["ranking"][0]
    # every variant's metrics in every window, its rank in each, and one page comparing them
    for e in out["ranking"]:
        assert set(e["metrics_by_window"]) == set(METRICS)
        assert all(len(v) == 2 for v in e["metrics_by_window"].values()) and len(e["rank_by_window"]) == 2
    never = next(e for e in out["ranking"] if e["variant"] == "never")
    assert never["metrics_by_window"]["fills"] == [0, 0] and never["metrics_by_window"]["max_drawdown"] == [0.0, 0.0]
    text = page.read_text()
    assert "PnL after fees" in text and "max drawdown" in text and "<script src=" not in text
    assert out["selected"]["variant"] == best["variant"] and out["selected"]["path"] == str(chosen)
    want = load_config(None, overrides={**sets, **{k: str(v) for k, v in best["params"].items()}})
    assert config_to_dict(load_config(chosen)) == config_to_dict(want)
    text = chosen.read_text()
    assert text.startswith("# written by ctrader strategies rank --select") and "[strategy]" in text
    # an existing file is kept unless --force
    again = CliRunner().invoke(app, argv + ["strategies", "rank", "--variant", "never:strategy.min_edge_bps=41",
                                            "--windows", "2", "--workers", "1", "--no-save", "--select", str(chosen)])
    assert again.exit_code != 0 and "--force" in again.output and chosen.read_text() == text


def test_a_variant_can_be_several_strategies_side_by_side_and_select_writes_the_set(env, tmp_path):
    """A list value goes on over commas (``strategy.names=a,b``); ranked alone, the set is the
    best variant and ``--select`` writes it for ``ctrader start --config``."""
    assert parse_variant("both:strategy.names=triangular,cross_rate_reversion,strategy.min_edge_bps=2") == (
        "both", {"strategy.names": "triangular,cross_rate_reversion", "strategy.min_edge_bps": "2"})
    with pytest.raises(SweepError):
        parse_variant("bad:triangular")
    _, _, sets = env
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    chosen = tmp_path / "set.toml"
    res = CliRunner().invoke(app, argv + ["strategies", "rank", "--variant",
                                          "both:strategy.names=triangular,cross_rate_reversion",
                                          "--windows", "2", "--workers", "1", "--no-save", "--json",
                                          "--select", str(chosen)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["selected"]["variant"] == "both"
    assert load_config(chosen).strategy.names == ("triangular", "cross_rate_reversion")


def test_all_strategies_rank_each_with_the_model_trained_for_it(env):
    """``--all-strategies`` with the packaged model (trained for the taker triangle): the taker
    triangle is scored by it, a strategy it was not trained for runs unscored rather than being
    refused, and the set side by side scores the one strategy it fits."""
    _, _, sets = env
    argv = [a for k, v in {**sets, "model.name": "default"}.items() for a in ("--set", f"{k}={v}")]
    res = CliRunner().invoke(app, argv + ["strategies", "rank", "--all-strategies", "--windows", "2",
                                          "--workers", "1", "--no-save", "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert not out["errors"], out["errors"]
    params = {e["variant"]: e["params"] for e in out["ranking"]}
    assert set(params) == {"triangular", "maker_triangular", "cross_rate_reversion", "side_by_side"}
    assert "model.name" not in params["triangular"] and "model.name" not in params["side_by_side"]
    assert params["maker_triangular"]["model.name"] == params["cross_rate_reversion"]["model.name"] == "none"
