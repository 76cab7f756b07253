"""Resting orders in the executor: CANCEL intents and expiry (``good_till_mono_ns``), with the
paper venue. How a strategy uses them: place a GTC/LIMIT_MAKER intent with a client order id
(and, if it should not rest for ever, a ``good_till_mono_ns``), and send a CANCEL intent naming
that id to take it off the book."""
from __future__ import annotations

import numpy as np

from ctrader.core.records import (
    EXEC_EVENT,
    ORDER_INTENT,
    ExecKind,
    IntentAction,
    OrderType,
    RefusalReason,
    Side,
    TimeInForce,
)
from ctrader.execution.bookview import BookView
from ctrader.execution.engine import Executor
from ctrader.execution.journal import Journal
from ctrader.execution.orders import CANCELED
from ctrader.execution.paper import PaperFillModel, PaperVenue
from ctrader.execution.risk import RiskLimits
from ctrader.execution.testing import cancel_intent, depth_record, intent_record
from ctrader.market.books import BookCache
from ctrader.sim.testing import sim_universe

UNI = sim_universe()
S = 1_000_000_000
LIMITS = RiskLimits(max_order_notional=1e6, max_group_notional=1e6, max_position=1e6, max_open_orders=50,
                    orders_per_10s=1000, daily_loss_limit=1e6)


class Clock:
    def __init__(self) -> None:
        self.ns = 100 * S

    def __call__(self) -> int:
        return self.ns


def paper_executor(events: list, clock: Clock) -> Executor:
    cache = BookCache(len(UNI.symbols))
    venue = PaperVenue(PaperFillModel(BookView(cache.books), UNI))
    ex = Executor(UNI, venue, None, events.append, LIMITS, clock=clock, wall_clock=clock, books=cache)
    ex.on_md(depth_record(UNI.symbol_id("BTCUSDT"), [(60000.0, 10.0)], [(60001.0, 10.0)], clock.ns), 1)
    return ex


def resting_bid(coid: str, good_till_mono_ns: int = 0, group_id: int = 1) -> np.ndarray:
    """A GTC buy one tick-ish below the bid: it rests, nothing trades into it."""
    return intent_record(UNI, "BTCUSDT", Side.BUY, 59990.0, 0.01, group_id=group_id, tif=TimeInForce.GTC,
                         client_order_id=coid, good_till_mono_ns=good_till_mono_ns)


def kinds(events: list, coid: str) -> list[ExecKind]:
    return [ExecKind(int(e[0]["kind"])) for e in events
            if e[0]["client_order_id"].rstrip(b"\0").decode() == coid]


def test_zeroed_intent_is_a_new_order_without_expiry_and_the_record_stays_three_cache_lines():
    rec = np.zeros(1, ORDER_INTENT)
    assert rec[0]["action"] == IntentAction.NEW and rec[0]["good_till_mono_ns"] == 0
    assert ORDER_INTENT.itemsize == 192
    assert EXEC_EVENT.itemsize % 64 == 0


def test_cancel_intent_takes_a_resting_order_off_the_book():
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    ex.on_intents(resting_bid("rest1"), 1)
    assert ex.orders.get("rest1").is_open
    ex.on_intents(cancel_intent("rest1"), 1)
    ex.poll()
    assert ex.orders.get("rest1").status == CANCELED
    assert kinds(events, "rest1")[-1] == ExecKind.CANCELED
    assert ex.orders.open_count() == 0 and ex.cancels_of_unknown == 0


def test_cancel_of_an_unknown_or_ended_order_is_ignored_and_counted():
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    ex.on_intents(cancel_intent("never-sent"), 1)
    assert ex.cancels_of_unknown == 1 and events == []
    ex.on_intents(resting_bid("rest2"), 1)
    ex.on_intents(cancel_intent("rest2"), 1)
    ex.poll()
    published = len(events)
    ex.on_intents(cancel_intent("rest2"), 1)          # ended already: the second cancel does nothing
    assert ex.cancels_of_unknown == 2 and len(events) == published


def test_a_batch_may_place_an_order_and_cancel_it_in_order():
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    batch = np.concatenate([resting_bid("a", group_id=1), resting_bid("b", group_id=2), cancel_intent("a")])
    before = ex.events
    ex.on_intents(batch, len(batch))
    ex.poll()
    assert ex.orders.get("a").status == CANCELED
    assert ex.orders.get("b").is_open
    assert ex.events == before + 3        # every intent of the batch counted once


def test_a_resting_order_is_cancelled_once_its_good_till_time_passes():
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    ex.on_intents(resting_bid("gtt", good_till_mono_ns=clock.ns + 2 * S, group_id=1), 1)
    ex.on_intents(resting_bid("forever", group_id=2), 1)
    assert ex.next_expiry() == clock.ns + 2 * S          # what a replay waits for (a due time)
    clock.ns += S
    ex.poll()
    assert ex.orders.get("gtt").is_open and ex.expired == 0
    clock.ns += S
    ex.poll()
    assert ex.orders.get("gtt").status == CANCELED and ex.expired == 1
    assert ex.next_expiry() is None
    assert ex.orders.get("forever").is_open
    clock.ns += 10 * S
    ex.poll()
    assert ex.expired == 1 and ex.cancels_of_unknown == 0


def test_expiry_of_an_order_cancelled_before_is_a_no_op():
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    ex.on_intents(resting_bid("x", good_till_mono_ns=clock.ns + S), 1)
    ex.on_intents(cancel_intent("x"), 1)
    ex.poll()
    assert ex.next_expiry() is None                      # canceled before its time: nothing due
    clock.ns += 2 * S
    ex.poll()
    assert ex.expired == 0 and ex.orders.get("x").status == CANCELED


def replace_intent(target: str, coid: str, price: float, good_till_mono_ns: int = 0, group_id: int = 1):
    rec = intent_record(UNI, "BTCUSDT", Side.BUY, price, 0.01, group_id=group_id, tif=TimeInForce.GTC,
                        client_order_id=coid, good_till_mono_ns=good_till_mono_ns)
    rec[0]["action"] = int(IntentAction.REPLACE)
    rec[0]["target_client_order_id"] = target.encode()
    return rec


def test_replace_cancels_the_old_order_and_rests_the_new_one_with_its_own_expiry():
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    ex.on_intents(resting_bid("v1"), 1)
    ex.on_intents(replace_intent("v1", "v2", 59995.0, good_till_mono_ns=clock.ns + S), 1)
    ex.poll()
    assert ex.orders.get("v1").status == CANCELED
    v2 = ex.orders.get("v2")
    assert v2.is_open and v2.price == 59995 * 10**8
    clock.ns += S
    ex.poll()
    assert v2.status == CANCELED and ex.expired == 1


def test_replace_of_an_order_no_longer_open_places_nothing_and_says_so():
    """As Binance answers a cancelReplace whose cancel failed (-2022, the new order not
    attempted): the strategy learns its new order never rests."""
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    ex.on_intents(replace_intent("gone", "v2", 59995.0), 1)
    assert ex.cancels_of_unknown == 1 and ex.orders.open_count() == 0
    assert kinds(events, "v2") == [ExecKind.REJECTED]
    assert int(events[-1][0]["reject_code"]) == -2022


def test_a_group_led_by_a_resting_order_that_ended_unfilled_is_settled_without_its_other_legs():
    """``maker_triangular``: leg 0 rests (LIMIT_MAKER) and legs 1 and 2 follow only its fills;
    canceled with nothing filled, the group is over (not waiting for legs that never come)."""
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    lead = intent_record(UNI, "BTCUSDT", Side.BUY, 59990.0, 0.01, group_id=7, n_legs=3,
                         order_type=OrderType.LIMIT_MAKER, tif=TimeInForce.NONE, client_order_id="lead")
    ex.on_intents(lead, 1)
    group = ex.groups[7]
    assert ex.orders.get("lead").is_open and not group.settled and group.resting_lead() is not None
    ex.on_intents(cancel_intent("lead"), 1)
    ex.poll()
    assert group.lead_ended_unfilled() and group.settled and not group.broken
    assert ex.accounting.unwinds == 0


class VenueThatKeptItsOrders(PaperVenue):
    """A restarted executor's venue that still holds the orders the journal left open (live:
    Binance keeps them; the paper venue's died with its process)."""

    def reconcile(self, orders):
        for o in orders:
            self.model.submit(o, 0)
        return []


def test_a_resting_order_and_its_expiry_survive_a_restart_of_the_executor(tmp_path):
    path = tmp_path / "executor.jsonl"
    clock = Clock()
    first = paper_executor([], clock)
    first.journal = Journal(path, run_id="run1")
    first.on_intents(resting_bid("keeps", good_till_mono_ns=clock.ns + 5 * S, group_id=1), 1)
    first.on_intents(resting_bid("cancelled", group_id=2), 1)
    first.on_intents(cancel_intent("cancelled"), 1)
    first.poll()
    first.journal.close()                              # crash: no close(), no cancels
    events = []
    cache = BookCache(len(UNI.symbols))
    venue = VenueThatKeptItsOrders(PaperFillModel(BookView(cache.books), UNI))
    second = Executor(UNI, venue, Journal(path, run_id="run1"), events.append, LIMITS, clock=clock,
                      wall_clock=clock, books=cache)
    assert second.recover() == 1
    assert second.orders.get("keeps").is_open and second.orders.get("cancelled").status == CANCELED
    assert second.orders.get("keeps").good_till_mono_ns == clock.ns + 5 * S
    clock.ns += 5 * S
    second.poll()
    assert second.orders.get("keeps").status == CANCELED and second.expired == 1
    second.journal.close()


def test_a_replace_is_gated_with_the_old_orders_slot_and_notional_released():
    """One open order allowed and a group notional that holds one order: a second order is
    refused, a replace of the first fits (the venue cancels the old order before placing)."""
    import dataclasses

    events, clock = [], Clock()
    cache = BookCache(len(UNI.symbols))
    limits = dataclasses.replace(LIMITS, max_open_orders=1, max_group_notional=700.0)
    ex = Executor(UNI, PaperVenue(PaperFillModel(BookView(cache.books), UNI)), None, events.append, limits,
                  clock=clock, wall_clock=clock, books=cache)
    ex.on_md(depth_record(UNI.symbol_id("BTCUSDT"), [(60000.0, 10.0)], [(60001.0, 10.0)], clock.ns), 1)
    ex.on_intents(resting_bid("r1"), 1)                         # ~600 USDT, rests
    ex.on_intents(resting_bid("other", group_id=2), 1)
    assert ex.orders.get("other").reject_code == RefusalReason.MAX_OPEN_ORDERS
    ex.on_intents(replace_intent("r1", "r2", 59995.0), 1)
    ex.poll()
    assert ex.orders.get("r1").status == CANCELED
    r2 = ex.orders.get("r2")
    assert r2.is_open and r2.reject_code == 0
    assert ex.groups[1].legs[0] is r2 and ex.groups[1].replaced == [ex.orders.get("r1")]


def test_a_refused_replace_leaves_the_old_order_resting_and_the_leg_to_it():
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    ex.on_intents(resting_bid("k1"), 1)
    ex.on_intents(replace_intent("k1", "k2", 70000.0), 1)        # beyond the price band: refused
    k1, k2 = ex.orders.get("k1"), ex.orders.get("k2")
    assert k2.reject_code == RefusalReason.PRICE_BAND and k1.is_open
    assert ex.groups[1].legs[0] is k1 and ex.groups[1].replaced == []
    assert 1 not in ex.gate.refused_groups          # the group may still trade


def test_fills_of_a_replaced_leg_count_when_its_group_ends():
    """A two-leg group: leg 0 partly filled, then replaced by an order that never fills and is
    cancelled; leg 1 expires unfilled. The group traded (the old order's fill), so it is broken
    and unwound, not settled as untouched."""
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    btc, eth = UNI.symbol_id("BTCUSDT"), UNI.symbol_id("ETHUSDT")
    ex.on_md(depth_record(btc, [(60000.0, 10.0)], [(60001.0, 0.01), (60010.0, 10.0)], clock.ns), 1)
    ex.on_md(depth_record(eth, [(3000.0, 10.0)], [(3000.5, 10.0)], clock.ns), 1)
    bid = intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.02, n_legs=2, tif=TimeInForce.GTC, client_order_id="p1")
    ex.on_intents(bid, 1)                   # takes the 0.01 at 60001, rests 0.01
    p1 = ex.orders.get("p1")
    assert p1.cum_qty == 10**6 and p1.is_open
    low = intent_record(UNI, "ETHUSDT", Side.BUY, 2999.0, 0.1, leg=1, n_legs=2, client_order_id="q1")
    ex.on_intents(low, 1)                   # IOC below the ask: expires unfilled
    replace = replace_intent("p1", "p2", 59990.0)
    replace["n_legs"] = 2
    ex.on_intents(replace, 1)
    ex.on_intents(cancel_intent("p2"), 1)
    ex.poll()
    group = ex.groups[1]
    assert not p1.is_open and not ex.orders.get("p2").is_open and not ex.orders.get("q1").is_open
    assert group.broken and ex.accounting.unwinds == 1
    assert [o.side for o in group.unwind_orders] == [Side.SELL]     # the 0.01 BTC bought goes back


def test_a_one_order_group_keeps_what_it_traded():
    """A group of one order (a strategy taking a position it closes itself, e.g. the cross-rate
    reversion) that filled in part is settled as it is: nothing to net its fill against, so
    nothing is unwound."""
    events, clock = [], Clock()
    ex = paper_executor(events, clock)
    btc = UNI.symbol_id("BTCUSDT")
    ex.on_md(depth_record(btc, [(60000.0, 10.0)], [(60001.0, 0.01), (60010.0, 10.0)], clock.ns), 1)
    ex.on_intents(intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.02, client_order_id="one"), 1)
    ex.poll()
    one, group = ex.orders.get("one"), ex.groups[1]
    assert one.cum_qty == 10**6 and not one.is_open          # IOC: 0.01 of 0.02, the rest expired
    assert group.settled and not group.broken and group.unwind_orders == [] and ex.accounting.unwinds == 0
    assert 0 < ex.accounting.positions["BTC"] <= 10**6                  # held: 0.01 BTC less its fee
