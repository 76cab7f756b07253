"""The executor end to end in paper mode: broken groups and the unwind policy, the journal across
a restart, and the ring loop (peek -> journal -> commit) with real shared-memory rings."""
from __future__ import annotations

import numpy as np
import pytest

from ctrader.core.records import EXEC_EVENT, MD_EVENT, ORDER_INTENT, ExecKind, RefusalReason, Side
from ctrader.core.ring import Ring
from ctrader.execution.bookview import BookView
from ctrader.execution.engine import Executor
from ctrader.execution.journal import Journal
from ctrader.execution.orders import FILLED, Order, client_order_ids
from ctrader.execution.paper import PaperFillModel, PaperVenue
from ctrader.execution.process import ExecutorLoop
from ctrader.execution.risk import RiskLimits
from ctrader.execution.testing import depth_record, intent_record
from ctrader.sim.testing import sim_universe
from ctrader.market.books import BookCache
from ctrader.venue.decimals import parse_units as U

UNI = sim_universe()
S = 1_000_000_000
LIMITS = RiskLimits(max_order_notional=1e6, max_group_notional=1e6, max_position=1e6, max_open_orders=50,
                    orders_per_10s=1000, daily_loss_limit=1e6)
BOOKS = {"BTCUSDT": (60000.0, 60001.0), "ETHUSDT": (3000.0, 3000.5), "ETHBTC": (0.05, 0.05001)}


def paper_executor(sink, journal=None, unwind="market", clock=None):
    cache = BookCache(len(UNI.symbols))
    venue = PaperVenue(PaperFillModel(BookView(cache.books), UNI))
    now = [100 * S]
    ex = Executor(UNI, venue, journal, sink, LIMITS, unwind=unwind, clock=clock or (lambda: now[0]), books=cache)
    for sym, (bid, ask) in BOOKS.items():
        ex.on_md(depth_record(UNI.symbol_id(sym), [(bid, 10.0)], [(ask, 10.0)], now[0]), 1)
    return ex


def triangle(group_id, leg1_price=0.05001):
    """USDT -> BTC -> ETH -> USDT, 0.01 BTC; leg 1's limit decides whether it fills."""
    return [intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=group_id, leg=0, n_legs=3),
            intent_record(UNI, "ETHBTC", Side.BUY, leg1_price, 0.1998, group_id=group_id, leg=1, n_legs=3),
            intent_record(UNI, "ETHUSDT", Side.SELL, 3000.0, 0.1998, group_id=group_id, leg=2, n_legs=3)]


def records(events):
    out = np.zeros(len(events), EXEC_EVENT)
    for i, e in enumerate(events):
        out[i] = e[0]
    return out


def test_complete_triangle_needs_no_unwind():
    events = []
    ex = paper_executor(events.append)
    for rec in triangle(1):
        ex.on_intents(rec, 1)
    assert all(o.status == FILLED for o in ex.orders.orders.values())
    assert ex.accounting.unwinds == 0 and ex.groups[1].settled
    # exact flows: USDT -600.01 + 599.4 - 0.5994 fee; BTC 0.00999 - 0.00999; ETH 0.1998 - 0.1998 fee 0.0001998
    pos = ex.accounting.positions
    assert pos["USDT"] == -U("600.01") + U("599.4") - U("0.5994")
    assert pos["BTC"] == U("0.01") - U("0.00001") - U("0.00999199")     # 0.1998 * 0.05001 = 0.00999199...
    assert pos["ETH"] == U("0.1998") - U("0.0001998") - U("0.1998")


def test_broken_triangle_is_unwound_at_market_and_the_loss_is_counted():
    events = []
    ex = paper_executor(events.append)
    for rec in triangle(2, leg1_price=0.049):        # leg 1 cannot fill: IOC expires
        ex.on_intents(rec, 1)
    group = ex.groups[2]
    assert group.broken and group.settled and ex.accounting.unwinds == 1
    unwinds = {o.symbol: o for o in group.unwind_orders}
    # left over: +0.00999 BTC (sold back for USDT) and -0.1998 ETH (bought back with USDT)
    assert unwinds["BTCUSDT"].side == Side.SELL and unwinds["BTCUSDT"].qty == U("0.00999")
    assert unwinds["ETHUSDT"].side == Side.BUY and unwinds["ETHUSDT"].qty == U("0.1998")
    assert all(o.status == FILLED for o in unwinds.values())
    kinds = [ExecKind(k).name for k in records(events)["kind"]]
    assert kinds.count("CANCELED") == 1 and kinds.count("FILL") == 4
    # what is left is dust below a step plus the fees; the loss is the group's PnL at mid
    assert abs(ex.accounting.positions["BTC"]) < UNI.by_name["BTCUSDT"].step_units
    loss = ex.accounting.unwind_pnl
    assert loss < 0 and loss == pytest.approx(ex.accounting.group_pnl(2, ex.valuer))
    assert ex.stats()["unwinds"] == 1


def test_hold_policy_keeps_the_inventory_and_reports_it():
    ex = paper_executor(lambda r: None, unwind="hold")
    for rec in triangle(3, leg1_price=0.049):
        ex.on_intents(rec, 1)
    assert ex.groups[3].broken and ex.groups[3].unwind_orders == []
    assert ex.stats()["positions"]["BTC"] == pytest.approx(0.00999)


def test_journal_restart_restores_positions_and_never_resends(tmp_path):
    path = tmp_path / "executor.jsonl"
    first = paper_executor(lambda r: None, Journal(path, run_id="run1"))
    intents = triangle(4)
    for rec in intents:
        first.on_intents(rec, 1)
    positions = dict(first.accounting.positions)
    first.journal.close()                              # crash: no close(), no cancels
    events = []
    second = paper_executor(events.append, Journal(path, run_id="run1"))
    assert second.recover() == 0
    assert dict(second.accounting.positions) == positions
    for rec in intents:
        second.on_intents(rec, 1)
    assert second.duplicates == 3 and events == []
    second.journal.close()                             # (a journal has one writer at a time)
    # a new run starts its accounting from zero but still knows the old orders
    third = paper_executor(lambda r: None, Journal(path, run_id="run2"))
    third.recover()
    assert not any(third.accounting.positions.values()) and len(third.orders.orders) == 3
    third.on_intents(intents[0], 1)
    assert third.duplicates == 1


def test_ring_loop_commits_only_journaled_intents_and_a_restart_resumes_without_resending(tmp_path):
    tag = f"ctrader.test-exec-{id(tmp_path) & 0xffff}"
    md_ring = Ring.create(f"{tag}.md", MD_EVENT, 1024, "broadcast")
    in_ring = Ring.create(f"{tag}.in", ORDER_INTENT, 64, "lossless", consumers=1)
    try:
        md_c = md_ring.consumer()
        for sym, (bid, ask) in BOOKS.items():
            md_ring.producer().write(depth_record(UNI.symbol_id(sym), [(bid, 10.0)], [(ask, 10.0)], 100 * S))
        producer = in_ring.producer()
        for rec in triangle(5):
            producer.write(rec)
        events = []
        path = tmp_path / "j.jsonl"
        ex = paper_executor(events.append, Journal(path, run_id="r"))
        loop = ExecutorLoop(ex, md_c, in_ring.consumer(0))
        while loop.step(0.0):
            pass
        assert [ExecKind(k).name for k in records(events)["kind"]] == ["ACK", "FILL"] * 3
        assert in_ring.consumer(0).lag == 0                 # all three committed
        # two more intents arrive; the executor dies after journaling them but before the commit
        for rec in triangle(6)[:2]:
            producer.write(rec)
        buf = np.empty(8, ORDER_INTENT)
        n = in_ring.consumer(0).peek_batch(buf, 0.0)
        ex.on_intents(buf, n)
        ex.journal.close()
        sent = ex.accounting.orders_sent
        # restarted: same journal, same ring cursor; the peeked intents come again
        events2 = []
        ex2 = paper_executor(events2.append, Journal(path, run_id="r"))
        ex2.recover()
        loop2 = ExecutorLoop(ex2, None, in_ring.consumer(0))
        assert loop2.step(0.0) == 2
        # nothing sent again; the count is the run's, over both incarnations
        assert ex2.duplicates == 2 and ex2.accounting.orders_sent == sent == 5
        assert in_ring.consumer(0).lag == 0
    finally:
        md_ring.close()
        in_ring.close()


def test_a_state_journaled_but_not_published_is_published_again_on_restart(tmp_path):
    """The process died between the journal's fsync and the exec ring: the restart publishes
    the order's state again (at least once), and nothing for orders already published."""
    path = tmp_path / "j.jsonl"
    first_events = []
    first = paper_executor(first_events.append, Journal(path, run_id="r"))
    first.on_intents(triangle(7)[0], 1)                 # published: ACK, FILL
    order = first.orders.get("ct7-0")
    journal = first.journal
    # a second order whose fill reached the journal but whose events never left the process
    lost = triangle(8)[0]
    info = UNI.by_name["BTCUSDT"]
    from ctrader.execution.orders import Order, VenueUpdate
    o = Order.from_intent(lost[0], "BTCUSDT", info.tick_units, info.step_units)
    journal.intent(o)
    u = VenueUpdate(o.client_order_id, FILLED, 99, last_qty=o.qty, last_px=U("60001"), last_quote=U("600.01"),
                    fee=U("0.00001"), fee_asset="BTC", trade_id=5)
    o.status, o.cum_qty, o.cum_quote = FILLED, o.qty, U("600.01")
    journal.fill(o, u)
    journal.state(o)
    journal.close()
    assert order.published == (FILLED, order.qty)
    events = []
    second = paper_executor(events.append, Journal(path, run_id="r"))
    second.recover()
    recs = records(events)
    assert [(r["client_order_id"], ExecKind(r["kind"]).name) for r in recs] == [(b"ct8-0", "FILL")]
    assert recs[0]["last_px"] == 60001.0 and recs[0]["cum_qty"] == 0.01 and recs[0]["fee"] == 0.00001
    second.journal.close()
    third_events = []
    third = paper_executor(third_events.append, Journal(path, run_id="r"))
    third.recover()
    assert third_events == []                           # published by the second: not again


def test_an_unwind_refused_by_the_rate_budget_is_retried_until_it_goes_through():
    import dataclasses

    clock = [100 * S]
    cache = BookCache(len(UNI.symbols))
    events = []
    ex = Executor(UNI, PaperVenue(PaperFillModel(BookView(cache.books), UNI)), None, events.append,
                  dataclasses.replace(LIMITS, orders_per_10s=3), clock=lambda: clock[0], books=cache)

    def show_books():
        for sym, (bid, ask) in BOOKS.items():
            ex.on_md(depth_record(UNI.symbol_id(sym), [(bid, 10.0)], [(ask, 10.0)], clock[0]), 1)
    show_books()
    # The budget counts unfilled orders (Binance's ORDERS): legs 0 and 2 fill and free their
    # place; two orders that expire unfilled and leg 1 (expires: the group breaks) spend it
    leg0, leg1, leg2 = triangle(11, leg1_price=0.049)
    ex.on_intents(leg0, 1)
    ex.on_intents(leg2, 1)
    for g in (21, 22):
        ex.on_intents(intent_record(UNI, "BTCUSDT", Side.BUY, 59000.0, 0.01, group_id=g), 1)
    ex.on_intents(leg1, 1)
    group = ex.groups[11]
    assert group.broken and not group.settled
    assert [RefusalReason(o.reject_code).name for o in group.unwind_orders] == ["RATE_BUDGET"] * 2
    clock[0] += 5 * S
    show_books()
    ex.poll()                                        # retried, still inside the 10 s window
    assert not group.settled and group.unwind_attempts == 2
    clock[0] += 6 * S
    show_books()
    ex.poll()
    assert group.settled and group.unwind_attempts == 3
    filled = [o for o in group.unwind_orders if o.status == FILLED]
    assert sorted(o.symbol for o in filled) == ["BTCUSDT", "ETHUSDT"]
    assert abs(ex.accounting.positions["BTC"]) < UNI.by_name["BTCUSDT"].step_units


def test_rehearsal_changes_nothing_and_the_next_real_order_is_unaffected(tmp_path):
    # The executor loop rehearses the order path when idle (keep_warm_us): gate, journal
    # encoding and exec record for a made-up order. No order, budget, journal line or event.
    events = []
    journal = Journal(tmp_path / "j.jsonl", sync=False)
    ex = paper_executor(events.append, journal=journal)
    before = (dict(ex.gate.rate.used), dict(ex.gate.group_notional), journal.records,
              (tmp_path / "j.jsonl").stat().st_size, ex.stats()["orders_sent"])
    for _ in range(50):
        ex.rehearse()
    after = (dict(ex.gate.rate.used), dict(ex.gate.group_notional), journal.records,
             (tmp_path / "j.jsonl").stat().st_size, ex.stats()["orders_sent"])
    assert after == before and events == [] and len(ex.orders.orders) == 0
    assert ex.stats()["rehearsals"] == 50
    for rec in triangle(1):
        ex.on_intents(rec, 1)
    assert all(o.status == FILLED for o in ex.orders.orders.values()) and len(ex.orders.orders) == 3


def test_idle_executor_loop_rehearses_every_keep_warm_interval():
    ex = paper_executor(lambda rec: None)
    with Ring.create(f"ctrader.test.warm{id(ex)}", ORDER_INTENT, 64, "lossless", 1) as ring:
        loop = ExecutorLoop(ex, None, ring.consumer(0), keep_warm_us=1)
        for _ in range(5):
            loop.step(idle_wait_s=0.001)
        assert ex.rehearsals == 5
        off = ExecutorLoop(ex, None, ring.consumer(0), keep_warm_us=0)
        off.step(idle_wait_s=0.001)
        assert ex.rehearsals == 5


def test_client_order_ids_of_a_batch_are_the_ids_its_orders_get():
    """The executor finds duplicates from the records, before building any order: the ids must
    be exactly those ``Order.from_intent`` gives (the intent's own, or ct<group>-<leg>)."""
    batch = np.concatenate([intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=0x1F, leg=0),
                            intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=0x1F, leg=2,
                                          client_order_id="my-id-7"),
                            intent_record(UNI, "ETHBTC", Side.SELL, 0.05, 0.1, group_id=2**63 + 5, leg=1)])
    info = [UNI.symbols[int(r["symbol_id"])] for r in batch]
    built = [Order.from_intent(r, i.name, i.tick_units, i.step_units).client_order_id for r, i in zip(batch, info)]
    assert client_order_ids(batch, 3) == built == ["ct1f-0", "my-id-7", f"ct{2**63 + 5:x}-1"]
    assert client_order_ids(batch, 1) == ["ct1f-0"]


def test_a_paper_order_matches_on_the_market_as_of_its_due_time_however_late_the_loop_reads_it():
    """Matching depends on the market data's receive times, never on when the executor's loop
    read them: the session and a replay of its recording match on the same books."""
    ms = 1_000_000
    clock = [100 * S]
    cache = BookCache(len(UNI.symbols))
    venue = PaperVenue(PaperFillModel(BookView(cache.books), UNI, latency_ns=2 * ms), quiet_ns=20 * ms)
    ex = Executor(UNI, venue, None, lambda rec: None, LIMITS, clock=lambda: clock[0], books=cache)
    btc = UNI.symbol_id("BTCUSDT")

    def book(ask, at):
        ex.on_md(depth_record(btc, [(59990.0, 10.0)], [(ask, 10.0)], at), 1)

    t0 = clock[0]
    book(60010.0, t0)
    ex.on_intents(intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=1, leg=0, n_legs=1), 1)
    (order,) = [o for o in ex.orders.orders.values() if o.group_id == 1]
    # the loop comes round 3 ms later: due at 2 ms, but a record received before then may still
    # be on its way through the feed, so nothing matches yet
    clock[0] = t0 + 3 * ms
    assert ex.poll() == 0 and order.is_open
    # ... and here it is: received at 1.5 ms, read late; the ask came down to the limit
    book(60001.0, t0 + 1_500_000)
    assert order.is_open
    # the next record (4 ms) moves the ask away; the order matched before it, on the 1.5 ms books
    book(60050.0, t0 + 4 * ms)
    assert order.status == FILLED and order.cum_quote == U("600.01")

    # a quiet market: no record after the due time; matched quiet_ns after it, on the books as they are
    t1 = t0 + 10 * ms
    clock[0] = t1
    book(60001.0, t1)
    ex.on_intents(intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=2, leg=0, n_legs=1), 1)
    (order2,) = [o for o in ex.orders.orders.values() if o.group_id == 2]
    clock[0] = t1 + 21 * ms
    assert ex.poll() == 0 and order2.is_open          # due 2 ms + 20 ms quiet = 22 ms
    clock[0] = t1 + 22 * ms
    assert ex.poll() > 0 and order2.status == FILLED
