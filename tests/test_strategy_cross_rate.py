"""Cross-rate statistical arbitrage (``ctrader.strategy.cross_rate``): its kernel against a
plain-Python reference on random books, its positions against its fills in a replay of the
simulator's market where the cross rates wander and revert, and the engine's rule that a close
is held to no edge threshold."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.config import load_config
from ctrader.core.records import CANDIDATE, Decision, OrderType, Side, TimeInForce
from ctrader.execution.testing import depth_record
from ctrader.market.books import BookCache
from ctrader.sim.testing import sim_universe
from ctrader.strategy import cross_rate as X
from ctrader.strategy.engine import StrategyEngine
from ctrader.strategy.state import DecisionState
from tests.strategy_harness import (
    RESIDUAL_BPS,
    paper_session,
    replay_through_executor,
    residual_market,
    session_report,
)

OVERRIDES = {"model.name": "none", "strategy.name": "cross_rate_reversion", "strategy.min_edge_bps": "0",
             "strategy.cross_rate_reversion.min_observations": "50", "strategy.cross_rate_reversion.entry_z": "2.5"}


def _cfg(**more):
    return load_config(None, overrides={**OVERRIDES, **more})


def test_each_pair_is_related_to_the_rate_its_assets_imply():
    uni = sim_universe(symbols=("BTCUSDT", "ETHBTC", "ETHUSDT", "BNBUSDT"))
    rel = X.relations(uni)
    names = [tuple(uni.symbols[int(s)].name for s in row) for row in rel]
    assert names == [("ETHBTC", "ETHUSDT", "BTCUSDT")]
    ptr, flat = X.symbol_index(rel, len(uni.symbols))
    assert [flat[ptr[s]:ptr[s + 1]].tolist() for s in range(len(uni.symbols))] == [
        [0] if uni.symbols[s].name != "BNBUSDT" else [] for s in range(len(uni.symbols))]


# --- the kernel against its definition ---------------------------------------------------------

def _reference(updates, params, pos):
    """Each book update of the relation's three symbols (sid, bid, ask, t) in plain Python: the
    rows the kernel should emit (resid, dev, sd, z, why, rests) and the final (mean, var, n)."""
    mids, mean, var, n, last, rows = {}, 0.0, 0.0, 0, 0.0, []
    for sid, bid, ask, t in updates:
        mids[sid] = (bid, ask)
        if len(mids) < 3:
            continue
        c, a, b = ((mids[s][0] + mids[s][1]) / 2 for s in (0, 1, 2))
        resid = math.log(c) - math.log(a) + math.log(b)
        dev, sd = resid - mean, math.sqrt(var)
        if n == 0:
            mean, var = resid, 0.0
        else:
            keep = math.exp(-max(t - last, 0) * math.log(2.0) / params[X.A_HALF_LIFE_NS])
            d = resid - mean
            mean += (1 - keep) * d
            var = keep * (var + (1 - keep) * d * d)
        seen, n, last = n, n + 1, t
        if seen < params[X.A_MIN_OBS] or sd <= 0:
            continue
        z = dev / sd
        spread = (mids[0][1] - mids[0][0]) / c
        side, qty, entry_resid, entry_ns = pos
        why, rests = -1, 0
        if side == 0 and abs(z) >= params[X.A_ENTRY_Z]:
            if abs(dev) > spread + params[X.A_FEES]:            # pays a taker
                why = X.WHY_ENTRY
            elif params[X.A_MAKER] and abs(dev) > params[X.A_MAKER_FEES]:     # pays a resting entry
                why, rests = X.WHY_ENTRY, 1
        elif qty > 0:
            if side * z >= -params[X.A_EXIT_Z]:
                why = X.WHY_REVERTED
            elif side * (entry_resid - resid) >= params[X.A_STOP]:
                why = X.WHY_STOPPED
            elif t - entry_ns >= params[X.A_MAX_HOLD_NS]:
                why = X.WHY_HELD_TOO_LONG
        if why >= 0:
            rows.append((resid, dev, sd, z, why, rests))
    return rows, (mean, var, n)


_update = st.tuples(st.integers(0, 2), st.floats(-0.003, 0.003), st.floats(0.00001, 0.002), st.integers(1, 400))


@settings(max_examples=60, deadline=None)
@given(updates=st.lists(_update, min_size=3, max_size=120), holding=st.sampled_from([-1.0, 0.0, 1.0]),
       entry_z=st.floats(0.5, 3.0), exit_z=st.floats(-1.0, 1.0), stop_bps=st.floats(1.0, 30.0),
       hold_ms=st.integers(50, 5000), rests=st.booleans())
def test_the_kernel_emits_what_its_definition_says(updates, holding, entry_z, exit_z, stop_bps, hold_ms, rests):
    uni = sim_universe()
    c, a, b = (uni.symbol_id(s) for s in ("ETHBTC", "ETHUSDT", "BTCUSDT"))
    rel = np.array([[c, a, b]], np.int64)
    ptr, flat = X.symbol_index(rel, len(uni.symbols))
    params = np.zeros(X.N_PARAMS)
    params[[X.A_HALF_LIFE_NS, X.A_MIN_OBS, X.A_ENTRY_Z, X.A_EXIT_Z, X.A_MAX_HOLD_NS, X.A_STOP, X.A_MAX_AGE_NS,
            X.A_FEES, X.A_MAKER_FEES, X.A_MAKER]] = (2e9, 5, entry_z, exit_z, hold_ms * 1e6, stop_bps * 1e-4, 1e12,
                                                      0.0002, 0.00015, float(rests))
    fair = {0: 0.05, 1: 3000.0, 2: 60000.0}
    recs, plain, t = [], [], 1_000_000_000
    for k, move, half_spread, dt_ms in updates:
        t += dt_ms * 1_000_000
        mid = fair[k] * math.exp(move)
        bid, ask = mid * (1 - half_spread), mid * (1 + half_spread)
        recs.append(depth_record((c, a, b)[k], [(bid, 1.0)], [(ask, 1.0)], t))
        plain.append((k, bid, ask, t))
    recs = np.concatenate(recs)
    pos = np.array([[holding, 1.0 if holding else 0.0, 0.0, 1e9]])
    expected, final = _reference(plain, params, pos[0])
    books, stats, out = BookCache(len(uni.symbols)).books, np.zeros((1, X.N_STATS)), np.zeros((1, X.N_OUT))
    idle = DecisionState(_cfg().strategy, 1, 1, X.STRATEGY_ID, 1, 0, 0).arrays     # the engine refuses nothing
    got, i = [], 0
    while i < len(recs):
        i, m = X.scan_residuals(recs, i, len(recs), books, rel, ptr, flat, stats, pos, params, out, idle)
        got += [tuple(out[j, [X.O_RESID, X.O_DEV, X.O_SD, X.O_Z]]) + (int(out[j, X.O_WHY]), int(out[j, X.O_REST]))
                for j in range(m)]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[4:] == e[4:]
        assert g[:4] == pytest.approx(e[:4], rel=1e-9, abs=1e-15)
    assert (stats[0, X.S_MEAN], stats[0, X.S_VAR], stats[0, X.S_N]) == pytest.approx(final, rel=1e-9, abs=1e-18)
    # with the relation's group in flight the engine would refuse every signal: none is
    # proposed, and the statistics learn the same
    busy = DecisionState(_cfg().strategy, 1, 1, X.STRATEGY_ID, 1, 0, 0)
    busy.keys[0]["busy"] = 7
    books, learned, i = BookCache(len(uni.symbols)).books, np.zeros((1, X.N_STATS)), 0
    pos[0] = (holding, 1.0 if holding else 0.0, 0.0, 1e9)
    while i < len(recs):
        i, m = X.scan_residuals(recs, i, len(recs), books, rel, ptr, flat, learned, pos, params, out, busy.arrays)
        assert m == 0
    assert (learned == stats).all()


# --- on the simulator's market -----------------------------------------------------------------

@pytest.fixture(scope="module")
def market():
    cfg = _cfg(**{"sim.market.residual_bps": RESIDUAL_BPS})
    return (cfg, *residual_market(cfg))


def _replay(cfg, uni, md, batch=1024):
    engine, _, result = replay_through_executor(cfg, uni, md, batch)
    return engine.strategy, result


def test_it_enters_and_closes_and_holds_what_it_was_filled(market):
    cfg, uni, md = market
    strategy, result = _replay(cfg, uni, md)
    assert strategy.taken["entry"] >= 5 and strategy.taken["reverted"] + strategy.taken["stopped"] >= 5, strategy.taken
    fills = result.fills
    assert len(fills) > 0 and set(fills["leg"].tolist()) == {0}       # one order a group: nothing unwound
    # the strategy's positions, per pair, are what its fills add up to
    held = {}
    for name, qty in strategy.positions().items():
        pair = name.split("~")[0]
        held[pair] = held.get(pair, 0.0) + qty
    filled = {}
    for f in fills:
        pair = uni.symbols[int(f["symbol_id"])].name
        filled[pair] = filled.get(pair, 0.0) + (f["qty"] if int(f["side"]) == Side.BUY else -f["qty"])
    for pair in set(held) | set(filled):
        assert held.get(pair, 0.0) == pytest.approx(filled.get(pair, 0.0), abs=1e-9), pair
    # maker first: an entry that does not pay a taker rests at its touch for maker_rest_ms (the
    # executor cancels it then), and what it filled there is the position like any fill
    rests = result.intents[result.intents["order_type"] == OrderType.LIMIT_MAKER]
    assert len(rests) >= 3 and (rests["tif"] == TimeInForce.NONE).all()
    assert (rests["good_till_mono_ns"] - rests["cause_recv_mono_ns"] == 2_000_000_000).all()
    made = fills[fills["is_maker"] != 0]
    assert len(made) and set(made["group_id"].tolist()) <= set(rests["group_id"].tolist())
    assert result.summary["resting_orders"] == {"placed": len(rests), "filled": len(np.unique(made["group_id"]))}
    # ... and nothing fills after its time: the expiry is a due time of the replay, not left to
    # the next order that happens to fall due
    until = {int(r["group_id"]): int(r["cause_recv_ts_ns"]) + 2_000_000_000 for r in rests}
    assert all(int(f["ts_ns"]) <= until[int(f["group_id"])] for f in made)
    # the journal: one-leg candidates, entries toward the implied rate
    taken = result.candidates[result.candidates["decision"] == Decision.TAKEN]
    assert len(taken) and (taken["strategy_id"] == X.STRATEGY_ID).all()
    assert (taken["leg_symbol_id"][:, 1:] == 0).all()


def test_the_replay_does_not_depend_on_the_batching(market):
    cfg, uni, md = market
    runs = [_replay(cfg, uni, md, batch)[1] for batch in (1024, 97)]
    assert runs[0].digests == runs[1].digests
    assert runs[0].summary["fills"] > 0


def test_a_close_is_held_to_no_edge_threshold(market):
    _, uni, md = market
    strict = _cfg(**{"sim.market.residual_bps": "25", "strategy.min_edge_bps": "5000"})
    engine = StrategyEngine(strict, uni, None)
    strategy = engine.strategy
    # hold every relation long from far below; the first observation past min_observations
    # that finds a relation reverted closes it, whatever min_edge_bps says
    strategy.pos[:, X.P_SIDE], strategy.pos[:, X.P_QTY] = 1.0, 1.0
    strategy.pos[:, X.P_ENTRY_RESID], strategy.pos[:, X.P_ENTRY_NS] = -1.0, md["recv_mono_ns"][0]
    cands, intents = engine.on_md(md[:60_000])
    decided = cands[cands["strategy_id"] == X.STRATEGY_ID]
    assert len(intents) > 0 and (decided["decision"] == Decision.TAKEN).any()
    assert strategy.taken["entry"] == 0 and strategy.taken["reverted"] > 0
    # an entry is a candidate only when a full reversion pays the round trip; 5000 bp it never is
    assert not ((decided["decision"] == Decision.TAKEN) & (decided["features"][:, 4] == 0)).any()
    assert cands.dtype == CANDIDATE


# --- a processes-mode paper session against the simulator, and its replay -----------------------

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_paper_session_trades_it_and_its_replay_reproduces_it(tmp_path):
    import json

    from typer.testing import CliRunner

    from ctrader.cli.main import app

    sets = {k: v for k, v in OVERRIDES.items() if k != "strategy.cross_rate_reversion.entry_z"}
    live, argv = paper_session(tmp_path, {"sim.market.residual_bps": RESIDUAL_BPS, **sets}, seconds=45)
    assert live["strategy"]["strategy"] == "cross_rate_reversion"
    ex = live["executor"]
    assert ex["orders_sent"] >= 5 and ex["fills"] >= 5, ex
    assert ex["unwinds"] == 0                      # one order a group: nothing to unwind
    # the executor's positions are its fills and fees as the store holds them
    rep = session_report(argv, live["run_id"])
    assert rep["executor"]["positions_match"], rep["executor"]
    # and the replay of the session runs the same decisions to the same fills
    res = CliRunner().invoke(app, [*argv, "replay", "--run", live["run_id"], "--json", "--no-save"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    replayed = json.loads(res.stdout)
    c = replayed["session_comparison"]
    assert c["decisions_identical"], c["differences"][:10]
    # resting entries included: each expired when it did in the session (a due time of the replay)
    assert replayed["resting_orders"]["placed"] >= 1, replayed["resting_orders"]
    assert c["fills_matched"] >= 0.99 * c["recorded_fills"], c["differences"][:10]


def test_a_position_below_the_pairs_filters_is_let_go(market):
    """A close that no order could send (what is held is below the pair's minimum quantity or
    notional) makes the relation flat instead of asking again on every update."""
    _, uni, md = market
    engine = StrategyEngine(_cfg(**{"sim.market.residual_bps": "25"}), uni, None)
    strategy = engine.strategy
    strategy.pos[:, X.P_SIDE], strategy.pos[:, X.P_QTY] = 1.0, 1e-9        # far below any step
    strategy.pos[:, X.P_ENTRY_RESID], strategy.pos[:, X.P_ENTRY_NS] = -1.0, md["recv_mono_ns"][0]
    cands, intents = engine.on_md(md[:60_000])
    closes = cands[(cands["strategy_id"] == X.STRATEGY_ID) & (cands["features"][:, 4] == 1)]
    assert len(closes) and (closes["decision"] == Decision.SKIP_FILTER).all()
    # no close was sent; a relation let go may enter again
    assert sum(strategy.taken[why] for why in ("reverted", "held_too_long", "stopped")) == 0
    assert len(intents) == strategy.taken["entry"]
    let_go = np.unique(closes["triangle_id"])
    assert strategy.dust_left == len(closes) == len(let_go)       # one close each, then nothing held
    assert (strategy.pos[let_go, X.P_QTY] == 0).all()


# --- its model: will this entry's round trip earn --------------------------------------------------

def test_a_round_trip_is_valued_in_the_pairs_quote_asset_fees_out():
    from ctrader.replay.ml_loop import round_trip_value
    from ctrader.replay.summary import FILL

    fills = np.zeros(2, FILL)
    BASE, QUOTE = 1, 2
    # bought 1 at 100, the fee out of the base received; sold 0.999 at 110, the fee out of the quote
    fills[0] = (0, 0, 1, 0, 0, 0, int(Side.BUY), 0, 100.0, 1.0, 100.0, 0.001, BASE, 100.0, 0, 0, 0, 0)
    fills[1] = (0, 0, 2, 0, 0, 0, int(Side.SELL), 0, 110.0, 0.999, 109.89, 0.10989, QUOTE, 110.0, 0, 0, 0, 0)
    assert round_trip_value(fills, BASE, QUOTE) == pytest.approx(-100.0 + 109.89 - 0.10989)
    # a close that filled part of the position: what is left is valued at its last price
    fills[1]["qty"], fills[1]["quote"], fills[1]["fee"] = 0.5, 55.0, 0.055
    assert round_trip_value(fills, BASE, QUOTE) == pytest.approx(-100.0 + 55.0 - 0.055 + 0.499 * 110.0)
    assert round_trip_value(fills[:0], BASE, QUOTE) == 0.0


def test_its_model_learns_which_entries_earn_and_scores_it_alone(market):
    """``model train --from-store`` with ``strategy.name = cross_rate_reversion``: each entry it
    took in a replay of the history, labelled by whether its round trip (the entry and the
    relation's next close) earned after fees; the model scores this strategy only."""
    from ctrader.model.registry import ModelMeta
    from ctrader.model.scoring import FeatureMismatch, OnnxModel
    from ctrader.replay.ml_loop import TrainSpec, collect_labelled, fit_and_export, round_trip_value

    cfg, uni, md = market
    ds = collect_labelled(cfg, uni, [md], latency_ms=0)
    assert ds.features == X.FEATURES and len(ds.y) >= 20 and 0 < ds.y.mean() < 1
    assert (ds.X[:, X.FEATURES.index("closing")] == 0).all()          # entries only: closes are not scored
    assert (np.diff(ds.t_ns) >= 0).all()
    # the labels are the round trips' values as the replay (as configured) filled them
    from ctrader.replay.runner import options_from_config, replay_chunks

    result = replay_chunks(cfg, uni, [md], options=options_from_config(cfg))
    c = result.candidates
    taken = c[(c["decision"] == Decision.TAKEN)]
    taken = taken[np.argsort(taken["group_id"])]
    closing = taken["features"][:, X.FEATURES.index("closing")] > 0
    earned = []
    for j in np.flatnonzero(~closing):
        entry = result.fills[result.fills["group_id"] == taken["group_id"][j]]
        nxt = np.flatnonzero(closing & (taken["triangle_id"] == taken["triangle_id"][j])
                             & (taken["group_id"] > taken["group_id"][j]))
        if len(entry) and not len(nxt):
            continue
        close = result.fills[result.fills["group_id"] == taken["group_id"][nxt[0]]] if len(nxt) else entry[:0]
        info = uni.symbols[int(taken["leg_symbol_id"][j][0])]
        earned.append(int(round_trip_value(np.concatenate([entry, close]), info.base_id, info.quote_id) > 0))
    assert earned == ds.y.tolist()
    trained = fit_and_export(ds, TrainSpec(name="round-trips", test_fraction=0.2))
    model = OnnxModel.from_bytes(ModelMeta("round-trips", "t", "cross_rate_reversion", trained.features),
                                 trained.onnx, X.FEATURES)
    # its entries are scored, and min_score holds back those it does not expect to earn (few
    # earn on this market); its closes are held to no score
    cands, _ = StrategyEngine(cfg, uni, model).on_md(md)
    closes = cands["features"][:, X.FEATURES.index("closing")] > 0
    scored = cands[~closes & np.isfinite(cands["score"])]
    assert len(scored) and ((scored["score"] >= 0) & (scored["score"] <= 1)).all()
    held = scored["score"] < cfg.strategy.min_score
    assert (scored["decision"][held] == Decision.SKIP_SCORE).all() and held.any()
    assert not (cands["decision"][closes] == Decision.SKIP_SCORE).any()
    with pytest.raises(FeatureMismatch):
        StrategyEngine(_cfg(**{"strategy.name": "triangular"}), uni, model)
