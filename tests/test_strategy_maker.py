"""Maker-taker triangular arbitrage (``ctrader.strategy.maker_triangular``): its quote kernel
against a plain-Python reference on random books, its orders (placed, re-priced, canceled,
hedged for what filled) in a replay of the simulator's market through the live executor, and
the executor's rules for a group led by a resting order."""
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.config import load_config
from ctrader.core.records import Decision, IntentAction, OrderType, Side
from ctrader.execution.testing import depth_record
from ctrader.market.books import BookCache, apply_md
from ctrader.replay.runner import resolve_universe
from ctrader.strategy import maker_triangular as M
from ctrader.strategy.triangles import TriangleTable
from tests.strategy_harness import (
    RESIDUAL_BPS,
    paper_session,
    replay_through_executor,
    residual_market,
    session_report,
)

OVERRIDES = {"model.name": "none", "strategy.name": "maker_triangular", "strategy.min_edge_bps": "0"}


def _cfg(**more):
    return load_config(None, overrides={**OVERRIDES, **more})


# --- the quote against its definition ----------------------------------------------------------

def _reference_quote(touch, sides, m, tick, fm, ft, margin):
    """Leg ``m`` resting, in exact fractions: the post-only price (in ticks) closest to the touch
    at which the cycle, the other legs taken at the touch, earns ``margin`` after one maker and
    two taker fees; and that bound itself."""
    other = Fraction(1)
    for k in range(3):
        if k != m:
            bid, ask = touch[k]
            other *= 1 / Fraction(ask) if sides[k] == Side.BUY else Fraction(bid)
    keep = (1 - Fraction(fm)) * (1 - Fraction(ft)) ** 2
    bid, ask = (Fraction(x) for x in touch[m])
    tick = Fraction(tick)
    if sides[m] == Side.BUY:
        bound = other * keep / (1 + Fraction(margin))
        return min(math.floor(bound / tick), round(ask / tick) - 1), bound
    bound = (1 + Fraction(margin)) / (other * keep)
    return max(math.ceil(bound / tick), round(bid / tick) + 1), bound


_touch = st.tuples(st.floats(-0.004, 0.004), st.integers(1, 30))     # (log move off fair, spread in ticks)


@settings(max_examples=150, deadline=None)
@given(touches=st.tuples(_touch, _touch, _touch), sides=st.tuples(*[st.sampled_from([Side.BUY, Side.SELL])] * 3),
       m=st.integers(0, 2), margin_bps=st.floats(0, 20), fee_bps=st.sampled_from([0.0, 7.5, 10.0]))
def test_the_quote_is_the_price_its_definition_says(touches, sides, m, margin_bps, fee_bps):
    ticks_of = (0.01, 0.000001, 0.01)
    fair = (3000.0, 0.05, 60000.0)
    books = BookCache(3).books
    touch = []
    for k, (move, spread) in enumerate(touches):
        bid_t = round(fair[k] * math.exp(move) / ticks_of[k])
        bid, ask = bid_t * ticks_of[k], (bid_t + spread) * ticks_of[k]
        apply_md(books, depth_record(k, [(bid, 1.0)], [(ask, 1.0)], 1_000), 0)
        touch.append((float(books[k]["bid_px"][0]), float(books[k]["ask_px"][0])))
    syms = np.array([0, 1, 2], np.int32)
    sd = np.array([int(s) for s in sides], np.int8)
    fm, ft, margin = fee_bps * 1e-4 * 0.5, fee_bps * 1e-4, margin_bps * 1e-4
    ticks, edge, dist = M.maker_quote(books, syms, sd, m, ticks_of[m], fm, ft, margin)
    want, bound = _reference_quote(touch, sides, m, ticks_of[m], fm, ft, margin)
    if want <= 0:
        assert ticks == 0
        return
    # within float error of a tick boundary either rounding is right (random sides make prices up
    # to ~1e14 ticks, where float64 resolves a few hundredths of a tick)
    exact = bound / Fraction(ticks_of[m])
    on_boundary = abs(exact - round(exact)) < max(Fraction(1, 10**6), exact * Fraction(1, 10**12))
    assert ticks == want or (on_boundary and abs(ticks - want) == 1)
    px = ticks * ticks_of[m]
    bid, ask = touch[m]
    # post-only: a buy below the ask, a sell above the bid
    assert (px < ask - 1e-12) if sides[m] == Side.BUY else (px > bid + 1e-12)
    # the edge reported is the cycle's at that price, and meets the margin unless post-only bound it
    assert edge == pytest.approx(M.cycle_edge(books, syms, sd, m, px, fm, ft), abs=1e-12)
    if ticks == want and not on_boundary:
        assert edge >= margin - 1e-9
    assert dist == pytest.approx(((bid - px) if sides[m] == Side.BUY else (px - ask)) / ((bid + ask) / 2), abs=1e-12)


def test_each_cycle_is_quoted_once_whatever_asset_lists_it():
    uni = resolve_universe(_cfg())
    table = TriangleTable.from_universe(uni)
    keep = M.canonical_triangles(table)
    cycles = set()
    for t in np.flatnonzero(keep):
        legs = list(zip(table.legs_symbol[t].tolist(), table.legs_side[t].tolist(), strict=True))
        cycles.add(min(tuple(legs[(r + k) % 3] for k in range(3)) for r in range(3)))
    assert len(cycles) == keep.sum() < table.n_triangles      # USDT and BTC both list some cycles
    for t in range(table.n_triangles):
        legs = list(zip(table.legs_symbol[t].tolist(), table.legs_side[t].tolist(), strict=True))
        assert min(tuple(legs[(r + k) % 3] for k in range(3)) for r in range(3)) in cycles


# --- on the simulator's market, through the live executor ----------------------------------------

@pytest.fixture(scope="module")
def market():
    cfg = _cfg(**{"sim.market.residual_bps": RESIDUAL_BPS})
    return (cfg, *residual_market(cfg))


@pytest.fixture(scope="module")
def replayed(market):
    return replay_through_executor(*market)


def test_it_rests_reprices_cancels_and_hedges_what_filled(replayed, market):
    _, uni, _ = market
    engine, replay, result = replayed
    counts = engine.strategy.order_stats()
    assert counts["placed"] >= 10 and counts["repriced"] >= 5 and counts["canceled"] >= 3, counts
    assert counts["hedged"] >= 5 and counts["ended_unfilled"] >= 3, counts
    # what `strategies rank` reports as the fill rate of resting orders
    assert result.summary["resting_orders"] == {"placed": counts["placed"], "filled": counts["hedged"]}
    intents = result.intents
    new = intents[intents["action"] == IntentAction.NEW]
    lead = new[new["leg"] == 0]
    assert (lead["order_type"] == OrderType.LIMIT_MAKER).all() and (lead["good_till_mono_ns"] > 0).all()
    hedges = new[new["leg"] > 0]
    assert (hedges["order_type"] == OrderType.LIMIT).all() and len(hedges) == 2 * counts["hedged"]
    replaces = intents[intents["action"] == IntentAction.REPLACE]
    assert len(replaces) == counts["repriced"]
    assert all(r["client_order_id"].decode().startswith(r["target_client_order_id"].decode().split("r")[0])
               for r in replaces)
    # fills: the resting leg as a maker, the hedges as takers, sized on what the resting leg
    # brought in (less its fee), each on its symbol's step
    fills = result.fills
    by_group: dict[int, dict[int, list]] = {}
    for f in fills:
        by_group.setdefault(int(f["group_id"]), {}).setdefault(int(f["leg"]), []).append(f)
    hedged = 0
    fm = uni.maker_fee
    for gid, legs in by_group.items():
        assert all(int(f["is_maker"]) == 1 for f in legs.get(0, []))
        assert all(int(f["is_maker"]) == 0 for leg in (1, 2) for f in legs.get(leg, []))
        if 0 in legs and 1 in legs:
            hedged += 1
            first = new[(new["group_id"] == gid) & (new["leg"] == 1)][0]
            info0 = uni.symbols[int(legs[0][0]["symbol_id"])]
            info1 = uni.symbols[int(first["symbol_id"])]
            got = sum(f["qty"] for f in legs[0]) if int(legs[0][0]["side"]) == Side.BUY else \
                sum(f["quote"] for f in legs[0])
            received = got * (1 - fm)
            step = info1.step_units / 1e8
            need = first["qty"] if int(first["side"]) == Side.SELL else first["qty"] * first["price"]
            slack = step if int(first["side"]) == Side.SELL else step * first["price"]
            assert need <= received + 1e-9 and (need > received - slack - 1e-9
                                                 or info0.name == info1.name), (gid, need, received)
    assert hedged >= 5
    # every group the executor saw ended: settled, nothing left open but what still rests
    ex = replay.executor
    resting = {w.group_id for w in engine.strategy.working.values()}
    assert all(g.settled for gid, g in ex.groups.items() if gid not in resting)


def test_a_resting_order_that_ended_unfilled_frees_its_triangle(replayed):
    engine, replay, _ = replayed
    ex = replay.executor
    unfilled = [g for g in ex.groups.values() if g.lead_ended_unfilled()]
    assert len(unfilled) >= 3
    assert all(g.settled and not g.broken and len(g.legs) == 1 for g in unfilled)
    # the engine no longer has them in flight: their triangles trade again
    in_flight = set(engine.in_flight)
    assert not in_flight & {g.group_id for g in unfilled}
    assert engine.groups_done >= len(unfilled)


def test_the_replay_does_not_depend_on_the_batching(market, replayed):
    cfg, uni, md = market
    _, _, first = replayed
    _, _, other = replay_through_executor(cfg, uni, md, 97)
    assert first.digests == other.digests
    assert first.summary["fills"] > 0


def test_candidates_name_the_resting_leg_and_a_full_book_places_nothing(market):
    cfg, uni, md = market
    full = _cfg(**{"sim.market.residual_bps": RESIDUAL_BPS, "strategy.maker_triangular.max_resting": "0"})
    engine, _, result = replay_through_executor(full, uni, md[:40_000])
    assert engine.strategy.order_stats()["placed"] == 0 and len(result.fills) == 0
    engine, _, result = replay_through_executor(cfg, uni, md[:40_000])
    taken = result.candidates[result.candidates["decision"] == Decision.TAKEN]
    assert len(taken) and (taken["strategy_id"] == M.STRATEGY_ID).all()
    assert (taken["leg_qty"][:, :3] > 0).all() and (taken["edge"] >= 2e-4 - 1e-12).all()
    assert taken["features"][:, 0].max() <= 5.0 + 1e-9          # distance within max_distance_bps


# --- a processes-mode paper session against the simulator ------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_paper_session_rests_reprices_and_hedges_against_the_simulator(tmp_path):
    live, argv = paper_session(tmp_path, {"sim.market.residual_bps": RESIDUAL_BPS, **OVERRIDES}, seconds=45)
    assert live["strategy"]["strategy"] == "maker_triangular"
    orders = live["strategy"]["orders"]
    assert orders["placed"] >= 3 and orders["repriced"] >= 1 and orders["hedged"] >= 1, orders
    ex = live["executor"]
    assert ex["fills"] >= 3 and ex["cancels"] >= 1, ex       # canceled: re-priced, moved away or expired
    assert orders["canceled"] + orders["ended_unfilled"] >= 1, orders
    # the executor's positions are its fills and fees as the store holds them
    rep = session_report(argv, live["run_id"])
    assert rep["executor"]["positions_match"], rep["executor"]


# --- its model: will a rest fill before its edge goes ------------------------------------------------

def test_its_model_learns_which_rests_fill_and_scores_it_alone(market, tmp_path):
    """``model train --from-store`` with ``strategy.name = maker_triangular``: each order it
    placed in a replay of the history, labelled by whether it filled as a maker; the model
    scores this strategy's candidates and no other strategy takes it."""
    from ctrader.model.registry import ModelMeta
    from ctrader.model.scoring import FeatureMismatch, OnnxModel
    from ctrader.replay.ml_loop import TrainSpec, collect_labelled, fit_and_export
    from ctrader.strategy.engine import StrategyEngine

    cfg, uni, md = market
    ds = collect_labelled(cfg, uni, [md], latency_ms=0)
    assert ds.features == M.FEATURES and len(ds.y) >= 20 and 0 < ds.y.mean() < 1
    assert (np.diff(ds.t_ns) >= 0).all()                 # in time: the last quarter validates
    trained = fit_and_export(ds, TrainSpec(name="rest-fills"))
    model = OnnxModel.from_bytes(ModelMeta("rest-fills", "t", "maker_triangular", trained.features), trained.onnx,
                                 M.FEATURES)
    cands, _ = StrategyEngine(cfg, uni, model).on_md(md[:40_000])
    taken = cands[cands["decision"] == Decision.TAKEN]
    assert len(taken) and np.isfinite(taken["score"]).all() and ((taken["score"] >= 0) & (taken["score"] <= 1)).all()
    with pytest.raises(FeatureMismatch):
        StrategyEngine(_cfg(**{"strategy.name": "triangular"}), uni, model)
    # the offline-simulator trainer labels taker triangles: it says so instead of mislabelling
    from ctrader.replay.training import TrainOptions, train_from_sim

    with pytest.raises(ValueError, match="--from-sim labels triangular candidates only"):
        train_from_sim(cfg, TrainOptions(), tmp_path)
