"""The compiled batch gate (``RiskGate.check_batch``) says what the reference gate says.

``RiskGate.check`` (Python, one order at a time) is the reference. For random books, positions,
open orders, limits, refused groups, budgets and batches of intents, ``check_batch`` must give
every intent the reference's verdict and leave the gate in the reference's state (rate budget,
group notionals, refused groups), or decline the batch (None) so the executor uses the reference.
"""
from __future__ import annotations

import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctrader.core.records import MdFlag, OrderType, RefusalReason, Side, TimeInForce
from ctrader.execution.accounting import Accounting, Valuer
from ctrader.execution.bookview import BookView
from ctrader.execution.orders import REFUSED, Order, OrderBook
from ctrader.execution.risk import KillSwitch, RiskGate, RiskLimits
from ctrader.execution.risk_kernel import _cmp_product
from ctrader.execution.testing import depth_record, intent_record
from ctrader.sim.testing import sim_universe
from ctrader.market.books import BookCache, apply_md
from ctrader.venue.decimals import ONE

UNI = sim_universe(symbols=None)            # every simulator symbol: several quote assets
NOW = 1_000 * 10**9
MIDS = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "ETHBTC": 0.05, "BNBUSDT": 600.0, "BNBBTC": 0.01,
        "SOLUSDT": 150.0, "SOLBTC": 0.0025, "BTCFDUSD": 60000.0, "FDUSDUSDT": 1.0}
QUOTE_USDT = {"USDT": 1.0, "FDUSD": 1.0, "BTC": 60000.0, "ETH": 3000.0, "BNB": 600.0}


class World:
    """A gate with everything it reads, built from one description (so it can be built twice)."""

    def __init__(self, desc: dict) -> None:
        cache = BookCache(len(UNI.symbols))
        for k, info in enumerate(UNI.symbols):
            mode, skew = desc["books"][k]
            if mode == "empty":
                continue
            mid = MIDS.get(info.name, 10.0) * skew
            half = mid * 0.0001
            flags = int(MdFlag.STALE) if mode == "stale" else 0
            age = 10 * 10**9 if mode == "old" else 1000
            rec = depth_record(info.id, [(mid - half, 5.0)], [(mid + half, 5.0)], NOW - age, flags=flags)
            apply_md(cache.books, rec, 0)
        self.books = BookView(cache.books)
        self.valuer = Valuer(UNI, self.books, "USDT")
        self.accounting = Accounting(UNI)
        for asset, units in desc["positions"].items():
            self.accounting.positions[asset] = units
        if desc.get("day_start") is not None:      # else the first look of a day sets it
            self.accounting.day = int(time.time() // 86_400)
            self.accounting.day_start_pnl = desc["day_start"]
        self.order_book = OrderBook()
        for k, (sid, side, market, price_ticks, qty_steps, filled) in enumerate(desc["open"]):
            info = UNI.symbols[sid]
            qty = qty_steps * info.step_units
            self.order_book.add(Order(f"open{k}", 900 + k, 0, 1, sid, info.name, side,
                                      int(OrderType.MARKET if market else OrderType.LIMIT), int(TimeInForce.GTC),
                                      0 if market else price_ticks * info.tick_units, qty,
                                      cum_qty=min(filled * info.step_units, qty)))
        kill = KillSwitch()
        if desc["kill"]:
            kill.engage("test")
        self.gate = RiskGate(RiskLimits(**desc["limits"]), UNI, self.books, self.valuer, self.accounting,
                             self.order_book, kill)
        for gid, reason in desc["refused_groups"].items():
            self.gate.refused_groups[gid] = RefusalReason(reason)
        for gid, notional in desc["group_notional"].items():
            self.gate.group_notional[gid] = notional
        for _ in range(desc["orders_used"]):
            self.gate.rate.charge(NOW - 10**9)

    def state(self) -> tuple:
        return ({k: v["used"] for k, v in self.gate.rate.usage(NOW).items()}, dict(self.gate.group_notional),
                {g: int(r) for g, r in self.gate.refused_groups.items()})


def reference(world: World, intents: np.ndarray) -> list[int]:
    """The executor's path before the batch gate: one ``check`` per order, duplicates skipped."""
    out = []
    for rec in intents:
        info = UNI.symbols[int(rec["symbol_id"])]
        order = Order.from_intent(rec, info.name, info.tick_units, info.step_units)
        if world.order_book.get(order.client_order_id) is not None:
            out.append(-1)
            continue
        reason = world.gate.check(order, NOW)
        world.order_book.add(order)
        if reason:
            world.order_book.settle(order, REFUSED)
        out.append(int(reason))
    return out


def batch_verdicts(world: World, intents: np.ndarray) -> list[int] | None:
    ids: set[str] = set()
    skip = []
    for rec in intents:
        coid = rec["client_order_id"].rstrip(b"\0").decode()
        skip.append(coid in ids or world.order_book.get(coid) is not None)
        ids.add(coid)
    return world.gate.check_batch(intents, len(intents), skip, NOW)


n_symbols = len(UNI.symbols)
book_modes = st.tuples(st.sampled_from(["ok"] * 16 + ["stale", "old", "empty"]), st.sampled_from([1.0, 1.0, 1.02, 0.9]))
known = [UNI.symbol_id(name) for name in MIDS]
symbol = st.one_of(st.sampled_from(known), st.sampled_from(known), st.sampled_from(known), st.integers(0, n_symbols - 1))
limits = st.fixed_dictionaries({
    "max_order_notional": st.sampled_from([1e9, 2000.0, 300.0, 20.0]),
    "max_group_notional": st.sampled_from([1e9, 3000.0, 500.0]),
    "max_position": st.sampled_from([1e9, 5000.0, 400.0, 5.0]),
    "max_open_orders": st.integers(0, 8),
    "orders_per_10s": st.integers(1, 60),
    "daily_loss_limit": st.sampled_from([1e9] * 6 + [10.0, 30.0, -1.0]),
    "max_book_age_ms": st.sampled_from([5000.0, 20000.0]),
    "price_band_pct": st.sampled_from([5.0, 0.5, 0.0]),
})
open_order = st.tuples(st.integers(0, n_symbols - 1), st.sampled_from([int(Side.BUY), int(Side.SELL)]),
                       st.booleans(), st.integers(1, 10**9), st.integers(1, 10**6), st.integers(0, 10**6))
intent = st.tuples(
    symbol, st.sampled_from([Side.BUY, Side.SELL]),
    st.sampled_from([OrderType.LIMIT] * 4 + [OrderType.MARKET]),
    st.sampled_from([1.0, 1.0, 1.0001, 0.9999, 1.0001, 0.9999, 1.03, 0.96, 1.2, 0.5]),   # price / mid
    st.sampled_from([0.0, 0.001, 1.0, 15.0, 50.0, 50.0, 200.0, 200.0, 1000.0, 5000.0, 1e6]),  # USDT notional
    st.integers(1, 4),                                                            # group
    st.integers(0, 2),                                                            # leg
    st.integers(0, 3),                                                            # client id (repeats)
)
world_desc = st.fixed_dictionaries({
    "books": st.lists(book_modes, min_size=n_symbols, max_size=n_symbols),
    "positions": st.dictionaries(st.sampled_from(UNI.assets), st.integers(-10**11, 10**11), max_size=3),
    "open": st.lists(open_order, max_size=4),
    "kill": st.sampled_from([False] * 19 + [True]),
    "limits": limits,
    "refused_groups": st.dictionaries(st.integers(1, 4), st.sampled_from([int(r) for r in RefusalReason if r]),
                                      max_size=1),
    "group_notional": st.dictionaries(st.integers(1, 4), st.sampled_from([0.0, 100.0, 2900.0]), max_size=2),
    "orders_used": st.integers(0, 40),
    "day_start": st.sampled_from([None, 0.0, 0.0, 40.0, -40.0]),
})


# Worlds where most orders pass, so the limits that count what passed before in the batch
# (open orders, group notional, position, rate budget) decide.
healthy_world = world_desc.map(lambda d: {**d, "books": [("ok", d["books"][k][1]) for k in range(n_symbols)],
                                          "kill": False, "refused_groups": {},
                                          "limits": {**d["limits"], "daily_loss_limit": 1e9}})
healthy_intent = st.tuples(st.sampled_from(known), st.sampled_from([Side.BUY, Side.SELL]),
                           st.sampled_from([OrderType.LIMIT] * 4 + [OrderType.MARKET]),
                           st.sampled_from([1.0, 1.0001, 0.9999, 1.001]), st.sampled_from([15.0, 200.0, 1000.0]),
                           st.integers(1, 3), st.integers(0, 2), st.integers(0, 5))


def make_intents(draws: list) -> np.ndarray:
    recs = []
    for sid, side, order_type, rel, usdt, group, leg, cid in draws:
        info = UNI.symbols[sid]
        px = MIDS.get(info.name, 10.0) * rel
        qty = usdt / QUOTE_USDT[info.quote] / px
        rec = intent_record(UNI, info.name, side, px if order_type == OrderType.LIMIT else 0.0, qty,
                            group_id=group, leg=leg, n_legs=3, order_type=order_type,
                            client_order_id=f"c{cid}-{group}-{leg}")
        recs.append(rec)
    return np.concatenate(recs)


def assert_batch_matches_reference(desc: dict, draws: list) -> None:
    intents = make_intents(draws)
    expected_world, batch_world = World(desc), World(desc)
    expected = reference(expected_world, intents)
    got = batch_verdicts(batch_world, intents)
    if got is None:        # declined: the executor gates this batch with the reference
        assert batch_world.state() == World(desc).state(), "a declined batch must change nothing"
        return
    assert got == expected
    assert batch_world.state() == expected_world.state()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world_desc, st.lists(intent, min_size=1, max_size=6))
def test_the_batch_gate_gives_every_intent_the_reference_verdict(desc, draws):
    assert_batch_matches_reference(desc, draws)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(healthy_world, st.lists(healthy_intent, min_size=1, max_size=8))
def test_limits_that_count_earlier_legs_of_the_batch_agree(desc, draws):
    assert_batch_matches_reference(desc, draws)


def test_most_batches_are_decided_by_the_kernel():
    """The fallback is for the rare close call, not the common order: a triangle's legs at the
    book are decided by the kernel."""
    desc = {"books": [("ok", 1.0)] * n_symbols, "positions": {}, "open": [], "kill": False,
            "limits": {"max_order_notional": 1e9, "max_group_notional": 1e9, "max_position": 1e9},
            "refused_groups": {}, "group_notional": {}, "orders_used": 0}
    world = World(desc)
    legs = make_intents([(UNI.symbol_id("BTCUSDT"), Side.BUY, OrderType.LIMIT, 1.0001, 600.0, 7, 0, 0),
                         (UNI.symbol_id("ETHBTC"), Side.BUY, OrderType.LIMIT, 1.0001, 600.0, 7, 1, 0),
                         (UNI.symbol_id("ETHUSDT"), Side.SELL, OrderType.LIMIT, 0.9999, 600.0, 7, 2, 0)])
    assert batch_verdicts(world, legs) == [0, 0, 0]
    assert world.gate.batches == {"compiled": 1, "reference": 0}
    assert world.gate.rate.usage(NOW)["orders_10s"]["used"] == 3


def test_exact_notional_edges():
    """At exactly the minimum notional an order passes, one step below it is refused, and a
    product too close to call in float64 is declined to the exact reference."""
    assert _cmp_product(5 * ONE, ONE, 5 * ONE) == 0 or _cmp_product(5 * ONE, ONE, 5 * ONE) == 2
    assert _cmp_product(499_999_999, ONE, 5 * ONE) in (-1, 2)
    assert _cmp_product(600_000 * ONE, 10 * ONE, 5 * ONE) == 1
    assert _cmp_product(1, 1, 5 * ONE) == -1
    assert _cmp_product(0, 7, 0) == 0
    # beyond 2^63: the product is compared without overflowing
    assert _cmp_product(9 * 10**18, 9 * 10**17, 5 * ONE) == 1
    # one unit apart at 1e-16 scale: float64 cannot tell, so the kernel says so
    a, b = 123_456_789_013, 987_654_321
    assert _cmp_product(a, b, (a * b) // ONE) == 2


def test_a_symbol_outside_the_tables_declines_the_batch():
    """A symbol whose filters are not in the tables (as if it had too many) is gated by the
    executor gates that batch with the reference (tested below with the executor)."""
    desc = {"books": [("ok", 1.0)] * n_symbols, "positions": {}, "open": [], "kill": False,
            "limits": {}, "refused_groups": {}, "group_notional": {}, "orders_used": 0}
    world = World(desc)
    world.gate.tables.compiled[UNI.symbol_id("ETHBTC")] = False
    legs = make_intents([(UNI.symbol_id("ETHBTC"), Side.BUY, OrderType.LIMIT, 1.0001, 600.0, 7, 0, 0)])
    assert batch_verdicts(world, legs) is None
