"""StrategyEngine on md from the simulator's market model run offline (no network, seeded).

With dislocations on, the engine must find arbitrage, take some of it and emit three-leg intents
whose integer ticks/steps pass the venue's filters; with dislocations off it must emit nothing.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.config import load_config
from ctrader.core.records import (
    CANDIDATE,
    EXEC_EVENT,
    MD_EVENT,
    ORDER_INTENT,
    Decision,
    ExecKind,
    MdFlag,
    MdKind,
    OrderType,
    Side,
    TimeInForce,
)
from ctrader.market.books import BookCache
from ctrader.market.universe import Universe
from ctrader.model.registry import PACKAGED_DIR
from ctrader.model.scoring import FeatureMismatch, OnnxModel
from ctrader.core.arrays import concat
from ctrader.sim.offline import OfflineMarket, offline_sim_config
from ctrader.strategy.engine import CLIENT_ID_RE, StrategyEngine
from ctrader.strategy.features import FEATURES
from ctrader.venue.filters import OrderCheck

SECONDS = 40


def make_market(cfg, dislocations_per_min: float, seed: int = 11):
    market = OfflineMarket(offline_sim_config(cfg.sim, dislocations_per_min=dislocations_per_min), seed=seed)
    uni = Universe.from_exchange_info(market.exchange_info, start_assets=cfg.market.start_assets)
    market.map_symbols(uni.by_name)
    return market, uni


def md_stream(cfg, dislocations_per_min: float, seconds: float = SECONDS, seed: int = 11):
    market, uni = make_market(cfg, dislocations_per_min, seed)
    batches = [market.snapshots()] + list(market.run(seconds))
    return uni, batches


@pytest.fixture(scope="module")
def cfg():
    return load_config()


@pytest.fixture(scope="module")
def dislocated(cfg):
    return md_stream(cfg, dislocations_per_min=30.0)


def drive(engine: StrategyEngine, batches, exec_done: bool = True):
    """Feed every batch; when ``exec_done``, report every leg filled right away (a perfect venue)."""
    cands, intents = [], []
    for batch in batches:
        c, o = engine.on_md(batch)
        assert c.dtype == CANDIDATE and o.dtype == ORDER_INTENT     # ring layouts, padding included
        cands.append(c)
        intents.append(o)
        if exec_done and len(o):
            ex = np.zeros(len(o), EXEC_EVENT)
            ex["group_id"], ex["leg"], ex["symbol_id"] = o["group_id"], o["leg"], o["symbol_id"]
            ex["kind"] = ExecKind.FILL
            engine.on_exec(ex)
    return np.concatenate(cands), np.concatenate(intents)


def test_dislocations_produce_taken_candidates_and_valid_intents(cfg, dislocated):
    uni, batches = dislocated
    model = OnnxModel.load(PACKAGED_DIR / "default", FEATURES)
    engine = StrategyEngine(cfg, uni, model, run_tag="t1")
    engine.warmup()
    cands, intents = drive(engine, batches)
    md = np.concatenate(batches)
    taken = cands[cands["decision"] == Decision.TAKEN]
    assert len(taken) > 0
    assert len(intents) == 3 * len(taken)
    assert set(np.unique(cands["decision"]).tolist()) <= {int(d) for d in Decision}
    assert np.all(np.isfinite(taken["score"])) and np.all(taken["score"] >= cfg.strategy.min_score)
    assert np.all(taken["edge"] >= cfg.strategy.min_edge_bps * 1e-4)
    assert np.all(taken["n_features"] == len(FEATURES))
    # every leg: integer ticks/steps that pass the symbol's filters, as the venue checks them
    ids = set()
    for o in intents:
        info = uni.symbols[int(o["symbol_id"])]
        price, qty = int(o["price_ticks"]) * info.tick_units, int(o["qty_steps"]) * info.step_units
        assert o["order_type"] == OrderType.LIMIT and o["tif"] == TimeInForce.IOC
        info.rules.check(OrderCheck("BUY" if o["side"] == Side.BUY else "SELL", "LIMIT", price=price,
                                    quantity=qty, reference_price=price))
        assert o["price"] == pytest.approx(price / 1e8) and o["qty"] == pytest.approx(qty / 1e8)
        cid = o["client_order_id"].decode()
        assert CLIENT_ID_RE.match(cid) and cid == f"ctt1{int(o['group_id']):x}L{int(o['leg'])}"
        ids.add(cid)
    assert len(ids) == len(intents)
    # the legs of a group chain the triangle's assets, start to start
    for gid in np.unique(intents["group_id"]):
        sent = intents[intents["group_id"] == gid]
        # in ring order the legs are a rotation of 0, 1, 2: the leg on the symbol that moved first
        first = int(sent["leg"][0])
        assert sent["leg"].tolist() == [first, (first + 1) % 3, (first + 2) % 3] and np.all(sent["n_legs"] == 3)
        legs = np.sort(sent, order="leg")
        cand = taken[taken["group_id"] == gid][0]
        assert legs["symbol_id"].tolist() == cand["leg_symbol_id"].tolist()
        # (records read together share a receive time: the event was one of them)
        moved = set(md[md["recv_mono_ns"] == cand["event_recv_mono_ns"]]["symbol_id"].tolist())
        if moved & set(legs["symbol_id"].tolist()):
            assert int(sent["symbol_id"][0]) in moved
        assert np.all(legs["cause_recv_mono_ns"] == cand["event_recv_mono_ns"])
    stats = engine.stats()
    assert stats["taken"] == len(taken) and stats["model"] == "default@sim-s7" and stats["model_calls"] > 0
    assert stats["groups_done"] == len(taken)


def test_no_dislocations_no_intents(cfg):
    uni, batches = md_stream(cfg, dislocations_per_min=0.0, seconds=20)
    engine = StrategyEngine(cfg, uni, OnnxModel.load(PACKAGED_DIR / "default", FEATURES))
    cands, intents = drive(engine, batches)
    assert len(intents) == 0
    assert not np.any(cands["decision"] == Decision.TAKEN)
    assert engine.stats()["events"] == sum(len(b) for b in batches)


def test_replay_is_deterministic(cfg, dislocated):
    uni, batches = dislocated
    runs = []
    for _ in range(2):
        engine = StrategyEngine(cfg, uni, None, run_tag="r")
        cands, intents = drive(engine, batches)
        runs.append((cands, intents))
    for field in ("triangle_id", "decision", "edge", "size_start", "group_id", "features"):
        assert np.array_equal(runs[0][0][field], runs[1][0][field])
    for field in ("client_order_id", "price_ticks", "qty_steps", "side", "symbol_id"):
        assert np.array_equal(runs[0][1][field], runs[1][1][field])


def test_in_flight_triangle_is_not_fired_again_until_its_legs_are_done(cfg, dislocated):
    uni, batches = dislocated
    cfg_long = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, cooldown_ms=0,
                                                                      inflight_timeout_ms=1e9))
    engine = StrategyEngine(cfg_long, uni, None)
    cands, _ = drive(engine, batches, exec_done=False)
    # nothing ever reports back: each triangle fires once and then stays busy
    taken = cands[cands["decision"] == Decision.TAKEN]
    assert len(taken) > 0
    assert len(np.unique(taken["triangle_id"])) == len(taken)
    assert np.any(cands["decision"] == Decision.SKIP_RISK)
    # the legs come back: the triangle is free again
    gid = int(taken[0]["group_id"])
    tri = int(taken[0]["triangle_id"])
    assert tri in engine.busy_keys
    ex = np.zeros(3, EXEC_EVENT)
    ex["group_id"] = gid
    ex["leg"] = [0, 1, 2]
    ex["kind"] = [ExecKind.FILL, ExecKind.CANCELED, ExecKind.PARTIAL_FILL]
    engine.on_exec(ex)
    assert tri in engine.busy_keys                     # a partial fill is not the end of leg 2
    ex["kind"][2] = ExecKind.CANCELED
    engine.on_exec(ex[2:])
    assert tri not in engine.busy_keys and engine.groups_done == 1


def test_skip_risk_flood_journals_one_skip_per_triangle_per_in_flight_period(cfg, dislocated):
    uni, batches = dislocated
    sc = dataclasses.replace(cfg.strategy, cooldown_ms=0, inflight_timeout_ms=1e9)
    engine = StrategyEngine(dataclasses.replace(cfg, strategy=sc), uni, None)
    cands, _ = drive(engine, batches, exec_done=False)          # every taken triangle stays in flight
    taken = cands[cands["decision"] == Decision.TAKEN]
    assert len(taken) > 0 and engine.skip_risk_unjournaled > 0
    for tri in np.unique(taken["triangle_id"]):
        rows = cands[cands["triangle_id"] == tri]              # in journal order
        after = rows[int(np.flatnonzero(rows["decision"] == Decision.TAKEN)[0]) + 1:]
        assert np.all(after["decision"] == Decision.SKIP_RISK)
    journaled_risk = int((cands["decision"] == Decision.SKIP_RISK).sum())
    assert journaled_risk < engine.skip_risk_unjournaled       # most of the flood is counted only
    # the counters still see every decision
    assert engine.skipped()["SKIP_RISK"] == journaled_risk + engine.skip_risk_unjournaled
    assert engine.candidate_rows == len(cands) + engine.skip_risk_unjournaled == engine.candidates + \
        engine.skip_risk_unjournaled


def test_decision_rules_journal_the_first_skip_risk_of_a_run():
    """The numba rules on their own: one key fired, then re-evaluated while in flight."""
    from types import SimpleNamespace

    from ctrader.strategy import decide as D

    sc = SimpleNamespace(min_edge_bps=1.0, min_score=0.5, cooldown_ms=0.0, inflight_timeout_ms=1e3,
                         max_groups_per_event=1, max_groups_in_flight=1, max_groups_per_10s=5)
    from ctrader.strategy.state import DecisionState

    dec = DecisionState(sc, n_keys=2, first_group=100, strategy_id=1, n_legs=3, tif=2, order_type=1)
    key, edge, pnl = np.array([0, 1]), np.array([1e-3, 1e-3]), np.array([2.0, 1.0])
    decision, journal, gids, score = np.zeros(2, np.uint8), np.zeros(2, np.uint8), np.zeros(2, np.int64), \
        np.full(2, np.nan)

    def event(now, verdict=(0, 0)):
        decision[:] = verdict
        D.pre_decide(2, decision, key, edge, now, dec.named, decision, journal)
        D.finish_decide(2, key, pnl, score, False, now, dec.named, decision, gids, journal)
        return decision.tolist(), journal.tolist()

    # the better key fires; the other is out of budget (one group in flight at most)
    assert event(1) == ([Decision.TAKEN, Decision.SKIP_RISK], [1, 1]) and gids[0] == 100
    assert event(2) == ([Decision.SKIP_RISK] * 2, [1, 0])       # key 0 busy: its first skip; key 1 again
    assert event(3) == ([Decision.SKIP_RISK] * 2, [0, 0])       # the flood: counted only
    assert dec.st["unjournaled"] == 3 and dec.st["decisions"][Decision.SKIP_RISK] == 5
    assert event(4, verdict=(0, Decision.SKIP_FILTER)) == ([Decision.SKIP_RISK, Decision.SKIP_FILTER], [0, 1])
    assert event(5) == ([Decision.SKIP_RISK] * 2, [0, 1])       # another decision ended key 1's run
    ex = np.zeros(3, EXEC_EVENT)
    ex["group_id"], ex["leg"], ex["kind"] = 100, [0, 1, 2], ExecKind.FILL
    D.apply_execs(ex, 3, dec.arrays)
    assert dec.st["groups_done"] == 1 and dec.keys[0]["busy"] == 0
    assert event(6) == ([Decision.TAKEN, Decision.SKIP_RISK], [1, 0]) and gids[0] == 101


def test_on_md_until_stops_right_after_the_event_that_produced_intents(cfg, dislocated):
    uni, batches = dislocated
    md = concat(batches, MD_EVENT)
    whole = StrategyEngine(cfg, uni, None)
    all_c, all_o = whole.on_md(md)
    stepped = StrategyEngine(cfg, uni, None)
    cs, os_, i, stops = [], [], 0, 0
    while i < len(md):
        i, c, o = stepped.on_md_until(md, i, len(md))
        assert c.dtype == CANDIDATE and o.dtype == ORDER_INTENT
        cs.append(c)
        os_.append(o)
        if len(o):
            stops += 1
            # the cause of the intents is the last record applied
            assert np.all(o["cause_recv_mono_ns"] == md[i - 1]["recv_mono_ns"])
            assert len(np.unique(o["cause_recv_mono_ns"])) == 1
    assert stops == whole.taken == stepped.taken > 0 and stepped.events == whole.events == len(md)
    c, o = concat(cs, CANDIDATE), concat(os_, ORDER_INTENT)
    for field in ("triangle_id", "decision", "edge", "group_id", "features", "score"):
        assert np.array_equal(c[field], all_c[field], equal_nan=field == "score"), field
    for field in ("client_order_id", "price_ticks", "qty_steps", "group_id", "cause_recv_ts_ns"):
        assert np.array_equal(o[field], all_o[field]), field
    assert stepped.first_md_seq == int(md[0]["seq"]) and stepped.last_md_seq == int(md[-1]["seq"])


def test_cooldown_spaces_fires_of_one_triangle(cfg, dislocated):
    uni, batches = dislocated
    cooldown_ms = 400.0
    cfg_cd = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, cooldown_ms=cooldown_ms))
    engine = StrategyEngine(cfg_cd, uni, None)
    cands, _ = drive(engine, batches)
    taken = cands[cands["decision"] == Decision.TAKEN]
    for tri in np.unique(taken["triangle_id"]):
        times = np.sort(taken[taken["triangle_id"] == tri]["event_recv_mono_ns"])
        assert np.all(np.diff(times) > cooldown_ms * 1e6)


def test_stale_books_block_trading(cfg, dislocated):
    uni, batches = dislocated
    engine = StrategyEngine(cfg, uni, None)
    # every book is marked stale right after its snapshot, and every later record says so too
    marked = []
    for batch in batches:
        b = batch.copy()
        b["flags"] |= np.where(b["kind"] != MdKind.TRADE, int(MdFlag.STALE), 0).astype(np.uint8)
        marked.append(b)
    cands, intents = drive(engine, marked)
    assert len(intents) == 0
    assert len(cands) > 0 and np.all(cands["decision"] == Decision.SKIP_STALE)


def test_engine_refuses_a_model_with_other_features(cfg, dislocated, tmp_path):
    import json
    import shutil

    uni, _ = dislocated
    bad = tmp_path / "bad"
    shutil.copytree(PACKAGED_DIR / "default", bad)
    meta = json.loads((bad / "metadata.json").read_text())
    meta["features"] = list(reversed(meta["features"]))
    (bad / "metadata.json").write_text(json.dumps(meta))
    model = OnnxModel.load(bad)                       # loading without a contract works ...
    with pytest.raises(FeatureMismatch, match="another order"):
        StrategyEngine(cfg, uni, model)               # ... but the strategy refuses it


def test_live_client_ids_fit_binance_rules_and_survive_restarts(cfg, dislocated):
    from ctrader.strategy.engine import group_base, run_tag_of

    uni, _ = dislocated
    wall = 1_764_093_600_000_000_000                      # 2025-11-25 18:00 UTC
    tag = run_tag_of("20251125-180000-123456")
    first = StrategyEngine(cfg, uni, None, run_tag=tag, first_group=group_base(wall))
    restarted = StrategyEngine(cfg, uni, None, run_tag=tag, first_group=group_base(wall + 1_000_000))
    a = first.client_order_id(first.next_group + 999, 2)
    b = restarted.client_order_id(restarted.next_group, 0)
    for cid in (a, b):
        assert CLIENT_ID_RE.match(cid) and len(cid) <= 36
    assert tag == "180000123456" and a.startswith("ct180000123456")
    assert restarted.next_group > first.next_group + 999   # a restart never reuses ids


def test_group_budget_keeps_the_risk_gate_happy(cfg, dislocated):
    uni, batches = dislocated
    # nothing reports back: at most max_groups_in_flight groups ever start
    sc = dataclasses.replace(cfg.strategy, cooldown_ms=0, inflight_timeout_ms=1e9, max_groups_in_flight=2)
    engine = StrategyEngine(dataclasses.replace(cfg, strategy=sc), uni, None)
    cands, _ = drive(engine, batches, exec_done=False)
    assert (cands["decision"] == Decision.TAKEN).sum() == 2
    # every group completes at once: the 10-second window is the limit
    sc = dataclasses.replace(cfg.strategy, cooldown_ms=0, max_groups_per_10s=3)
    engine = StrategyEngine(dataclasses.replace(cfg, strategy=sc), uni, None)
    cands, _ = drive(engine, batches)
    times = np.sort(cands[cands["decision"] == Decision.TAKEN]["event_recv_mono_ns"])
    assert len(times) >= 3
    for i, t in enumerate(times):
        assert np.sum((times > t - 10_000_000_000) & (times <= t)) <= 3


class OneLegEveryBook:
    """A second strategy, written against the engine's interface only: on every book record it
    proposes buying the best ask of that symbol with a one-leg "group" (not a real strategy: it
    shows that the engine, the decisions and the intents do not depend on triangles)."""
    name = "one-leg"
    strategy_id = 9
    features = ("spread_bps",)
    n_legs = 1
    fused = False                 # scan + evaluation only: the engine decides in Python

    def __init__(self, cfg, universe, books) -> None:
        self.uni, self.books = universe, books
        self.last = None
        self.n_keys = len(universe.symbols)      # keys are symbol ids
        self.max_rows = 1

    def scan(self, records, start, n):
        from ctrader.market.books import apply_md

        for i in range(start, n):
            sid = apply_md(self.books.books, records, i)
            if sid >= 0 and records[i]["kind"] != MdKind.TRADE and self.books.books[sid]["n_asks"] > 0:
                self.last = sid
                return i + 1, 1
        return n, 0

    def evaluation(self, n):
        from ctrader.strategy.triangular import Evaluation

        b = self.books.books[self.last]
        info = self.uni.symbols[self.last]
        ask, bid = float(b["ask_px"][0]), float(b["bid_px"][0])
        steps = max(1, round(info.min_notional * 2 / ask / info.step))
        return Evaluation(key=np.array([self.last]), verdict=np.zeros(1, np.uint8), edge=np.array([1.0]),
                          size=np.array([steps * info.step * ask]), pnl=np.array([0.0]),
                          features=np.array([[1e4 * (ask - bid) / ask]], np.float32),
                          leg_symbol=one(self.last, np.int32), leg_side=one(Side.BUY, np.int8),
                          leg_px=one(ask), leg_qty=one(steps * info.step), leg_limit=one(ask),
                          leg_ticks=one(round(ask / info.tick), np.int64), leg_steps=one(steps, np.int64))

    def on_taken(self, rows, group_ids) -> None:
        pass                      # it holds nothing between groups

    def on_exec(self, records) -> None:
        pass

    def warmup(self, full: bool = False) -> None:
        pass


def test_every_strategy_has_every_member_of_the_strategy_protocol(cfg, dislocated):
    """The contract the engine relies on (``ctrader.strategy.protocol.Strategy``), member by
    member; the fused members only where ``fused`` says so."""
    from ctrader.strategy.cross_rate import CrossRateReversion
    from ctrader.strategy.maker_triangular import MakerTriangular
    from ctrader.strategy.protocol import Strategy
    from ctrader.strategy.triangular import TriangularArbitrage

    uni, _ = dislocated
    fused_only = {"scan_decide", "complete_event", "event_features"}
    members = (set(Strategy.__annotations__) | {k for k, v in vars(Strategy).items()
                                                if callable(v) or isinstance(v, property)}) - {"__init__"}
    members = {m for m in members if not m.startswith("_")}
    assert {"name", "fused", "n_keys", "max_rows", "scan", "evaluation", "warmup", "on_taken", "on_exec"} <= members
    for cls in (TriangularArbitrage, CrossRateReversion, MakerTriangular, OneLegEveryBook):
        strat = cls(cfg, uni, BookCache(len(uni.symbols)))
        for m in members - (set() if strat.fused else fused_only):
            assert hasattr(strat, m), (cls.__name__, m)
        assert strat.n_keys > 0 and strat.max_rows >= 1


def one(value, dtype=np.float64) -> np.ndarray:
    """A (1, 1) array: one candidate, one leg."""
    return np.array([[value]], dtype=dtype)


def test_a_second_strategy_plugs_in_through_the_registry(cfg, dislocated, monkeypatch):
    from ctrader.strategy import registry

    uni, batches = dislocated
    monkeypatch.setitem(registry.STRATEGIES, "one-leg", "tests.test_strategy_engine:OneLegEveryBook")
    sc = dataclasses.replace(cfg.strategy, name="one-leg", cooldown_ms=1e9)
    engine = StrategyEngine(dataclasses.replace(cfg, strategy=sc), uni, None, run_tag="x")
    assert isinstance(engine.strategy, OneLegEveryBook)
    cands, intents = drive(engine, batches[:50])
    assert len(intents) > 0 and np.all(intents["n_legs"] == 1) and np.all(intents["strategy_id"] == 9)
    assert np.all(cands["strategy_id"] == 9) and np.all(cands["n_features"] == 1)
    # the engine's rules still apply: one group per key (symbol) thanks to the long cooldown
    taken = cands[cands["decision"] == Decision.TAKEN]
    assert len(np.unique(taken["triangle_id"])) == len(taken)
    for o in intents:
        info = uni.symbols[int(o["symbol_id"])]
        info.rules.check(OrderCheck("BUY", "LIMIT", price=int(o["price_ticks"]) * info.tick_units,
                                    quantity=int(o["qty_steps"]) * info.step_units))


def test_rehearsals_between_events_change_no_decision(cfg, dislocated):
    # The live loop rehearses the order path (a model call, client ids) when it sat idle; doing
    # so before every batch must leave candidates and intents exactly as without.
    uni, batches = dislocated
    model = OnnxModel.load(PACKAGED_DIR / "default", FEATURES)
    plain = StrategyEngine(cfg, uni, model, run_tag="w")
    rehearsed = StrategyEngine(cfg, uni, model, run_tag="w")

    class Rehearsing:
        def __iter__(self):
            for batch in batches:
                rehearsed.rehearse()
                yield batch

    want_c, want_i = drive(plain, batches)
    got_c, got_i = drive(rehearsed, Rehearsing())
    assert len(want_i) > 0
    for arrays, clock_field in (((want_c, got_c), "eval_mono_ns"), ((want_i, got_i), "created_mono_ns")):
        for a in arrays:
            a[clock_field] = 0        # when it ran, the only thing allowed to differ
    for want, got in ((want_c, got_c), (want_i, got_i)):       # field by field: concatenate drops padding
        assert want.dtype == got.dtype and len(want) == len(got)
        for name in want.dtype.names:
            assert np.array_equal(want[name], got[name], equal_nan=want[name].dtype.kind == "f"), name
    stats = rehearsed.stats()
    assert stats["rehearsals"] == len(batches)
    assert stats["model_calls"] == plain.stats()["model_calls"]      # rehearsals are not model calls


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 12)), min_size=1, max_size=9),
       st.text(alphabet="abcXYZ0189", min_size=0, max_size=12))
def test_client_ids_formatted_in_numba_equal_the_python_format(rows, tag):
    from ctrader.strategy import decide as D
    from ctrader.strategy.engine import _COID_AT, _COID_WIDTH

    intents = np.zeros(len(rows), ORDER_INTENT)
    intents["client_order_id"] = b"leftover-bytes-from-an-earlier-intent"
    for i, (group, leg) in enumerate(rows):
        intents[i]["group_id"], intents[i]["leg"] = group, leg
    prefix = np.frombuffer(f"ct{tag}".encode(), np.uint8).copy()
    D.format_client_ids(intents, intents.view(np.uint8), len(intents), ORDER_INTENT.itemsize, _COID_AT,
                        _COID_WIDTH, prefix)
    for rec, (group, leg) in zip(intents, rows):
        assert rec["client_order_id"].decode() == f"ct{tag}{group:x}L{leg}"
