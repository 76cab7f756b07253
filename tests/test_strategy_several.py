"""Several strategies side by side (``[strategy] names``, ``ctrader.strategy.several``) and each
one's budget inside the global limits (``[risk.per_strategy]``,
``ctrader.execution.strategy_budgets``)."""
import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.config.loader import ConfigError
from ctrader.core.records import STRATEGY_IDS, Decision, RefusalReason
from ctrader.execution.latency import SampledLatency
from ctrader.replay.driver import ReplayEngine
from ctrader.replay.history import simulated_md
from ctrader.replay.runner import make_strategy, options_from_config, resolve_universe
from ctrader.strategy.engine import StrategyEngine
from ctrader.strategy.registry import STRATEGIES, strategy_class
from ctrader.strategy.several import StrategySet, strategy_names
from tests.strategy_harness import paper_session, session_report

BOTH = "triangular,cross_rate_reversion"
OVERRIDES = {"model.name": "none", "strategy.min_edge_bps": "0", "sim.market.residual_bps": "25",
             "strategy.cross_rate_reversion.min_observations": "50", "strategy.cross_rate_reversion.entry_z": "2.5"}


def _cfg(**more):
    return load_config(None, overrides={**OVERRIDES, **more})


@pytest.fixture(scope="module")
def market():
    cfg = _cfg()
    uni = resolve_universe(cfg)
    return uni, simulated_md(cfg, uni, seconds=60, seed=3)


def _rows(cands, strategy_id):
    mine = cands[cands["strategy_id"] == strategy_id]
    return list(zip(mine["event_recv_mono_ns"].tolist(), mine["triangle_id"].tolist(), mine["decision"].tolist()))


def test_the_registry_and_the_records_name_the_same_strategies():
    assert set(STRATEGIES) == set(STRATEGY_IDS)
    assert all(strategy_class(name).strategy_id == sid for name, sid in STRATEGY_IDS.items())


def test_names_default_to_the_one_strategy_and_are_checked():
    assert strategy_names(_cfg()) == ["triangular"]
    assert strategy_names(_cfg(**{"strategy.names": BOTH})) == ["triangular", "cross_rate_reversion"]
    with pytest.raises(ConfigError, match="strategy.names"):
        _cfg(**{"strategy.names": "triangular,nope"})
    with pytest.raises(ConfigError, match="STRATEGY=AMOUNT"):
        _cfg(**{"risk.per_strategy.max_open_orders": "triangular:3"})


def test_each_strategy_of_a_set_decides_as_it_does_alone_however_the_md_is_batched(market):
    """Without executions in between, a set is exactly its strategies run one by one: the same
    candidates and intents, whichever of them stops a batch first."""
    uni, md = market
    cfg = _cfg(**{"strategy.names": BOTH})
    alone = {}
    for name in ("triangular", "cross_rate_reversion"):
        c, o = StrategyEngine(cfg, uni, None, name=name).on_md(md)
        alone[name] = (_rows(c, STRATEGY_IDS[name]), len(o))
    assert alone["triangular"][1] > 0 and alone["cross_rate_reversion"][1] > 0
    for batch in (1024, 61):
        engines = StrategySet(cfg, uni, None)
        parts = [engines.on_md(md[b:b + batch]) for b in range(0, len(md), batch)]
        cands = np.concatenate([c for c, _ in parts])
        intents = np.concatenate([o for _, o in parts])
        for name in alone:
            sid = STRATEGY_IDS[name]
            assert _rows(cands, sid) == alone[name][0], (batch, name)
            assert int((intents["strategy_id"] == sid).sum()) == alone[name][1]
        # the group ids interleave: an execution's group says whose it is
        owner = engines.owner(intents["group_id"])
        assert (owner == np.where(intents["strategy_id"] == STRATEGY_IDS["triangular"], 0, 1)).all()
        assert len(set(intents["client_order_id"].tolist())) == len(intents)


def test_an_intent_is_handed_over_right_after_the_record_that_caused_it(market):
    uni, md = market
    engines = StrategySet(_cfg(**{"strategy.names": "cross_rate_reversion,triangular"}), uni, None)
    i, n = 0, 20_000
    while i < n:
        j, _, intents = engines.on_md_until(md, i, n)
        if len(intents):
            assert (intents["cause_recv_mono_ns"] == md["recv_mono_ns"][j - 1]).all()
        i = j


def _replay(uni, md, **more):
    cfg = _cfg(**{"strategy.names": BOTH, **more})
    opts = options_from_config(cfg)
    opts.order_latency = SampledLatency.parse("2")
    return ReplayEngine(uni, make_strategy(cfg, uni, None), opts).run([md])


def test_a_replay_of_a_set_does_not_depend_on_the_batching(market):
    """Executions between the calls, a strategy running ahead of the other, orders falling due
    mid-batch: the same intents and fills whatever the batch size, and the same journal rows
    (their order between strategies within one market time may differ)."""
    uni, md = market
    cfg = _cfg(**{"strategy.names": BOTH})
    runs = []
    for batch in (1024, 97):
        opts = options_from_config(cfg)
        opts.order_latency, opts.batch_events = SampledLatency.parse("2"), batch
        runs.append(ReplayEngine(uni, make_strategy(cfg, uni, None), opts).run([md]))
    a, b = runs
    assert a.digests["intents"] == b.digests["intents"] and a.digests["fills"] == b.digests["fills"]
    assert a.summary["fills"] > 0
    key = ["event_recv_mono_ns", "strategy_id", "triangle_id", "decision", "group_id"]
    assert sorted(a.candidates[key].tolist()) == sorted(b.candidates[key].tolist())


def test_a_strategy_over_its_budget_is_refused_with_its_reason_while_the_other_trades(market):
    uni, md = market
    # triangular alone, then beside a cross-rate strategy allowed no open order at all
    alone_cfg = _cfg()
    opts = options_from_config(alone_cfg)
    opts.order_latency = SampledLatency.parse("2")
    alone = ReplayEngine(uni, make_strategy(alone_cfg, uni, None), opts).run([md]).summary
    both = _replay(uni, md, **{"risk.per_strategy.max_open_orders": "cross_rate_reversion=0"}).summary
    tri, xr = both["by_strategy"]["triangular"], both["by_strategy"]["cross_rate_reversion"]
    assert xr["orders_sent"] == 0 and xr["fills"] == 0 and xr["refusals"] > 0
    assert both["strategy_budgets"] == {"cross_rate_reversion": {"STRATEGY_OPEN_ORDERS": xr["refusals"]}}
    assert both["refusals"]["STRATEGY_OPEN_ORDERS"] == xr["refusals"]
    # triangular traded on, exactly as it did alone
    assert tri["fills"] == alone["fills"] > 0
    assert tri["pnl"] == pytest.approx(alone["pnl"])


def test_each_strategy_has_its_own_fills_fees_and_pnl_and_they_add_up(market):
    uni, md = market
    s = _replay(uni, md).summary
    per = s["by_strategy"]
    assert set(per) == {"triangular", "cross_rate_reversion"}
    assert all(p["fills"] > 0 and p["fees"] for p in per.values())
    assert sum(p["fills"] for p in per.values()) == s["fills"]
    assert sum(p["pnl"] for p in per.values()) == pytest.approx(s["pnl"], abs=1e-6)


def test_a_rate_share_refuses_groups_beyond_it(market):
    uni, md = market
    s = _replay(uni, md, **{"risk.per_strategy.order_share_pct": "triangular=10"}).summary
    tri = s["by_strategy"]["triangular"]
    assert s["strategy_budgets"]["triangular"].get("STRATEGY_RATE", 0) > 0
    assert tri["orders_sent"] > 0                                  # 4 orders per 10 s: one group
    assert s["by_strategy"]["cross_rate_reversion"]["orders_sent"] > 0


def test_a_refused_groups_legs_are_refused_together(market):
    """A budget judges the whole group: no leg of a refused group leaves."""
    uni, md = market
    r = _replay(uni, md, **{"risk.per_strategy.max_open_notional": "triangular=1"})
    refused = r.execs[r.execs["reject_code"] == int(RefusalReason.STRATEGY_NOTIONAL)]
    assert len(refused) > 0
    sent_groups = set(r.fills["group_id"].tolist()) if len(r.fills) else set()
    assert not (set(refused["group_id"].tolist()) & sent_groups)
    taken = r.candidates[(r.candidates["decision"] == Decision.TAKEN)
                         & (r.candidates["strategy_id"] == STRATEGY_IDS["triangular"])]
    assert len(taken) > 0


# --- a processes-mode paper session with two strategies ------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_paper_session_runs_two_strategies_each_in_its_budget(tmp_path):
    """Two strategies in one session, the taker triangle first (``schedule = lead_first``): the
    one over its budget is refused with its reason while the other trades, and a replay of the
    session (every strategy in step) decides as the session did."""
    import json

    from typer.testing import CliRunner

    from ctrader.cli.main import app

    sets = {"strategy.names": BOTH, "risk.per_strategy.max_open_orders": "cross_rate_reversion=0",
            **{k: v for k, v in OVERRIDES.items() if k != "strategy.cross_rate_reversion.entry_z"}}
    live, argv = paper_session(tmp_path, sets, seconds=30)
    st = live["strategy"]
    assert st["strategy"] == "triangular+cross_rate_reversion" and st["schedule"] == "lead_first"
    assert st["by_strategy"]["cross_rate_reversion"]["taken"] > 0 and st["by_strategy"]["triangular"]["taken"] > 0
    per = live["executor"]["by_strategy"]
    # the cross-rate strategy is over its budget: every group refused, with its reason
    assert per["cross_rate_reversion"]["orders_sent"] == 0 and per["cross_rate_reversion"]["refusals"] > 0
    assert live["executor"]["strategy_budgets"]["cross_rate_reversion"]["refusals"] == {
        "STRATEGY_OPEN_ORDERS": per["cross_rate_reversion"]["refusals"]}
    # the other trades on, and the executor's positions are its fills and fees as the store holds them
    assert per["triangular"]["orders_sent"] > 0 and per["triangular"]["fills"] > 0
    rep = session_report(argv, live["run_id"])
    assert rep["executor"]["positions_match"], rep["executor"]
    # and the store says per strategy what the executor said
    for name in ("triangular", "cross_rate_reversion"):
        for key in ("orders_sent", "fills", "refusals"):
            assert rep["by_strategy"].get(name, {}).get(key, 0) == per[name][key], (name, key)
    # the cross-rate strategy decided later than the triangle, on the same records: a replay of
    # the session, both in step, makes the same decisions
    res = CliRunner().invoke(app, [*argv, "replay", "--run", live["run_id"], "--json", "--no-save"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    c = json.loads(res.stdout)["session_comparison"]
    assert c["decisions_identical"], c["differences"][:10]


def test_warm_up_compiles_the_generic_decision_path_before_the_first_candidate():
    """numba compiles a kernel at its first call: the first market event with a candidate of a
    generic strategy (cross-rate, the maker triangle) once took 0.4 s of a live session. In a
    fresh interpreter, warm-up leaves nothing of the decision path to compile for a replay, and
    counts no decision of its own."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent('''
        from ctrader.config import load_config
        from ctrader.replay.history import simulated_md
        from ctrader.replay.runner import resolve_universe
        from ctrader.strategy import decide as D
        from ctrader.strategy.engine import StrategyEngine

        overrides = dict(OVERRIDES, **{"strategy.name": "cross_rate_reversion"})
        cfg = load_config(None, overrides=overrides)
        uni = resolve_universe(cfg)
        md = simulated_md(cfg, uni, seconds=30, seed=3)
        engine = StrategyEngine(cfg, uni, None)
        engine.warmup()
        assert int(engine.dec.named.state[0]["decisions"].sum()) == 0
        kernels = (D.pre_decide, D.finish_decide, D.note_tick_to_intent, D.note_decision_latency)
        compiled = [list(k.signatures) for k in kernels]
        assert all(compiled), compiled
        cands, intents = engine.on_md(md)
        assert len(cands) and len(intents)
        assert [list(k.signatures) for k in kernels] == compiled, "compiled after warm-up"
    ''')
    out = subprocess.run([sys.executable, "-c", f"OVERRIDES = {OVERRIDES!r}\n" + code], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
