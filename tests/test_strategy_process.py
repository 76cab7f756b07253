"""``run_strategy`` on real shared-memory rings: md in, intents and journal out, exec back in.

The test plays the other components: it writes offline simulator md into the md ring (the feed),
answers every intent with FILL exec events (an executor with a perfect venue) and reads the
journal (the recorder).
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time

import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.core.arrays import concat
from ctrader.core.records import CANDIDATE, EXEC_EVENT, ORDER_INTENT, Decision, ExecKind
from ctrader.core.ring import wait_until
from ctrader.core.stats import read_stats
from ctrader.execution.testing import exec_record
from ctrader.runtime.resources import RunResources, consumer_id
from ctrader.runtime.stopping import ThreadStop
from ctrader.runtime.supervisor import ChildContext, run_dir
from ctrader.sim.offline import OfflineMarket, offline_sim_config
from ctrader.strategy.process import run_strategy


@pytest.fixture
def setup(tmp_path):
    cfg = load_config(overrides={"run.data_dir": str(tmp_path / "data")})
    market = OfflineMarket(offline_sim_config(cfg.sim, dislocations_per_min=30.0), seed=21)
    info = tmp_path / "exchange_info.json"
    info.write_text(json.dumps(market.exchange_info))
    cfg = dataclasses.replace(cfg, market=dataclasses.replace(cfg.market, exchange_info_file=str(info)))
    from ctrader.market.universe import load_universe

    market.map_symbols(load_universe(cfg).by_name)
    return cfg, market


def _run_on_rings(cfg, market, seconds: float = 20.0):
    """``run_strategy`` in a thread on a run's rings; this test plays the feed (offline md), the
    executor (every intent FILLED) and the recorder (the journal). Returns the intents, the
    journal's candidates, the md records written, and the strategy's final stats."""
    run_id = f"tst{int(time.time() * 1000) % 10**8}"
    with RunResources.create(cfg, run_id, ["strategy"]) as res:
        rings = res.rings
        stop = ThreadStop()
        ctx = ChildContext("strategy", cfg, run_id, stop, res.health.slot("strategy"),
                           {k: r.name for k, r in rings.items()})
        errors = []

        def target():
            try:
                run_strategy(ctx)
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertions below
                errors.append(exc)

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        # the strategy attaches its md consumer only after its warm-up
        assert wait_until(lambda: rings["md"].stats()["consumers"] or errors, 120.0)
        assert not errors, errors
        md_out = rings["md"].producer()
        intents_in = rings["intents"].consumer(consumer_id("intents", "executor"))
        exec_out = rings["exec"].producer()
        journal_in = rings["journal"].consumer(consumer_id("journal", "recorder"))
        intents, cands = [], []
        ibuf, jbuf = np.zeros(256, ORDER_INTENT), np.zeros(4096, CANDIDATE)

        def drain():
            n = intents_in.read_batch(ibuf)
            if n:
                got = ibuf[:n].copy()
                intents.append(got)
                exec_out.write(concat([exec_record(it, ExecKind.FILL, float(it["qty"])) for it in got], EXEC_EVENT))
            n = journal_in.read_batch(jbuf)
            if n:
                cands.append(jbuf[:n].copy())

        md_out.write(market.snapshots())
        written = 0
        for batch in market.run(seconds):
            md_out.write(batch)
            written += len(batch)
            drain()
            if written % 2000 < len(batch):
                time.sleep(0.01)            # let the strategy keep up (a broadcast ring never waits)
        assert not errors, errors
        wait_until(lambda: (drain() or True) and rings["md"].stats()["consumers"][0]["lag"] == 0, 30.0)
        time.sleep(0.2)
        drain()
        stop.set()
        thread.join(30.0)
        assert not thread.is_alive() and not errors, errors
        drain()
    stats = read_stats(run_dir(cfg, run_id))["strategy"]
    return np.concatenate(intents), np.concatenate(cands), written, stats, run_dir(cfg, run_id)


def test_run_strategy_on_rings(setup):
    cfg, market = setup
    intents, cands, written, stats, rdir = _run_on_rings(cfg, market)
    taken = cands[cands["decision"] == Decision.TAKEN]
    assert len(taken) > 0 and len(intents) == 3 * len(taken)
    assert set(intents["group_id"].tolist()) == set(taken["group_id"].tolist())
    assert intents["group_id"].min() >= 1 << 20         # live group ids start from the wall clock
    assert stats["taken"] == len(taken) and stats["candidates"] == len(cands)
    assert stats["candidate_rows"] == len(cands) + stats["skip_risk_unjournaled"]
    assert stats["first_md_seq"] >= 1
    assert stats["events"] == written + len(market.universe.symbols)
    assert stats["groups_done"] == len(taken)          # our FILLs came back through the exec ring
    assert stats["md_overruns"] == 0 and stats["journal_dropped"] == 0
    assert stats["model"].startswith("default@") and stats["eval_p50_us"] > 0
    # every FILL we sent back is logged with the md position the strategy had reached
    from ctrader.strategy.exec_arrivals import read_exec_arrivals

    arrivals = read_exec_arrivals(rdir)
    assert {(int(g), int(leg), int(ExecKind.FILL)) for g, leg in zip(intents["group_id"], intents["leg"])} \
        == set(arrivals)
    assert all(stats["first_md_seq"] <= seq for seq in arrivals.values())


def test_two_strategies_on_rings_the_second_catches_up(setup):
    """``schedule = lead_first``: the cross-rate strategy decides after the taker triangle, on the
    same records; once the md stops it has decided on all of them, and its executions reached it."""
    cfg, market = setup
    cfg = load_config(overrides={"run.data_dir": cfg.run.data_dir, "market.exchange_info_file":
                                 cfg.market.exchange_info_file, "strategy.names": "triangular,cross_rate_reversion",
                                 "strategy.cross_rate_reversion.min_observations": "50",
                                 "strategy.cross_rate_reversion.entry_z": "2.0"})
    intents, cands, written, stats, _ = _run_on_rings(cfg, market)
    assert stats["schedule"] == "lead_first" and stats["followers_behind"] == 0 < stats["followers_max_behind"]
    assert stats["events"] == written + len(market.universe.symbols)
    per = stats["by_strategy"]
    for name, sid in (("triangular", 1), ("cross_rate_reversion", 2)):
        mine = cands[cands["strategy_id"] == sid]
        assert per[name]["events"] == stats["events"], name         # every record, the second one too
        assert per[name]["candidates"] == len(mine) > 0, name
        taken = mine[mine["decision"] == Decision.TAKEN]
        assert per[name]["groups_done"] == len(taken) > 0, name       # each execution reached its strategy
    assert stats["md_overruns"] == 0 and stats["journal_dropped"] == 0


def test_the_process_refuses_a_model_with_other_features(setup, tmp_path):
    import shutil

    from ctrader.model.registry import PACKAGED_DIR
    from ctrader.model.scoring import FeatureMismatch
    from ctrader.strategy.process import build_engine

    cfg, _ = setup
    bad = tmp_path / "data" / "models" / "older"
    shutil.copytree(PACKAGED_DIR / "default", bad)
    meta = json.loads((bad / "metadata.json").read_text())
    meta["features"] = meta["features"][:-2]            # trained before two features existed
    (bad / "metadata.json").write_text(json.dumps(meta))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="older"))
    with pytest.raises(FeatureMismatch, match="missing \\['edge_age_ms', 'levels_used'\\]"):
        build_engine(cfg)
    # "none" runs unscored
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="none"))
    assert build_engine(cfg).model is None


def test_a_promoted_model_is_picked_up_without_restart_and_a_mismatch_is_refused(setup, tmp_path):
    import shutil

    from ctrader.model.registry import PACKAGED_DIR, registry_dir
    from ctrader.model.scoring import FeatureMismatch
    from ctrader.replay.ml_loop import PromotionWatcher, promote
    from ctrader.strategy.process import StrategyLoop, build_engine

    cfg, _ = setup
    reg = registry_dir(cfg)
    for name, drop in (("good", 0), ("bad", 2)):
        shutil.copytree(PACKAGED_DIR / "default", reg / name)
        meta = json.loads((reg / name / "metadata.json").read_text())
        meta["version"] = f"v-{name}"
        meta["features"] = meta["features"][:len(meta["features"]) - drop]
        (reg / name / "metadata.json").write_text(json.dumps(meta))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="none"))
    engine = build_engine(cfg, first_group=1)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="current"))
    engine.cfg = cfg
    loop = StrategyLoop(engine, None, None, None, None, watcher=PromotionWatcher(cfg, interval_s=0.0))
    loop.check_promotion()
    assert engine.model is None and loop.model_swaps == 0      # nothing promoted yet
    promote(cfg, "good")
    loop.check_promotion()
    assert engine.model.version == "v-good" and loop.model_swaps == 1
    with pytest.raises(FeatureMismatch):                        # promote refuses a model trained on other
        promote(cfg, "bad")                                     # features, so point current at it by hand:
    os.symlink("bad", reg / ".current.tmp")                     # the strategy still guards itself
    os.replace(reg / ".current.tmp", reg / "current")
    loop.check_promotion()
    assert engine.model.version == "v-good" and loop.model_refused == 1
