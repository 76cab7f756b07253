"""The risk gate: every limit refuses with its own reason; the kill switch stops and cancels.

The executor runs in paper mode on a scripted book and a scripted clock; what it publishes is
collected from its exec sink.
"""
from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest

from ctrader.core.records import (
    EXEC_EVENT,
    ExecKind,
    MdFlag,
    MdKind,
    RefusalReason,
    Side,
    TimeInForce,
)
from ctrader.execution.bookview import BookView
from ctrader.execution.engine import Executor
from ctrader.execution.paper import PaperFillModel, PaperVenue
from ctrader.execution.risk import KillSwitch, RateBudget, RiskLimits
from ctrader.execution.testing import depth_record, intent_record
from ctrader.sim.testing import sim_universe
from ctrader.market.books import BookCache

UNI = sim_universe()
S = 1_000_000_000
GENEROUS = {"max_order_notional": 1e9, "max_group_notional": 1e9, "max_position": 1e9, "max_open_orders": 100,
            "orders_per_10s": 1000, "orders_per_day": 10**6, "weight_per_minute": 10**6, "daily_loss_limit": 1e9,
            "max_book_age_ms": 5000, "price_band_pct": 5.0}


class Harness:
    def __init__(self, kill_path=None, latency_ns=0, venue_cls=PaperVenue, **limits):
        self.now = 100 * S
        self.events: list[np.ndarray] = []
        cache = BookCache(len(UNI.symbols))
        venue = venue_cls(PaperFillModel(BookView(cache.books), UNI, latency_ns=latency_ns))
        self.ex = Executor(UNI, venue, None, self.events.append, RiskLimits(**dict(GENEROUS, **limits)),
                           KillSwitch(kill_path), clock=lambda: self.now, books=cache)
        self.books(self.now)

    def books(self, t, btc=(60000.0, 60001.0), flags=0):
        for sym, (bid, ask) in {"BTCUSDT": btc, "ETHUSDT": (3000.0, 3000.5), "ETHBTC": (0.05, 0.05001)}.items():
            rec = depth_record(UNI.symbol_id(sym), [(bid, 10.0)], [(ask, 10.0)], t, flags=flags)
            self.ex.on_md(rec, 1)

    def send(self, symbol="BTCUSDT", side=Side.BUY, price=60001.0, qty=0.01, **kw):
        self.ex.on_intents(intent_record(UNI, symbol, side, price, qty, **kw), 1)

    def records(self) -> np.ndarray:
        out = np.zeros(len(self.events), EXEC_EVENT)
        for i, e in enumerate(self.events):
            out[i] = e[0]
        return out

    def kinds(self):
        return [(ExecKind(int(e["kind"])).name, int(e["reject_code"])) for e in self.records()]

    def refusals(self):
        return [RefusalReason(c).name for k, c in self.kinds() if k == "REFUSED"]


def test_an_order_within_every_limit_is_sent_and_filled():
    h = Harness()
    h.send()
    assert h.kinds() == [("ACK", 0), ("FILL", 0)]
    ev = h.records()
    assert all(e.dtype == EXEC_EVENT for e in h.events) and ev[-1]["last_px"] == 60001.0 and ev[-1]["cum_qty"] == 0.01
    assert ev[0]["cum_qty"] == 0.0                  # the ACK describes the order before its fill


def test_order_notional():
    h = Harness(max_order_notional=500)          # 0.01 BTC at 60001 = 600 USDT
    h.send()
    assert h.refusals() == ["MAX_ORDER_NOTIONAL"]


def test_group_notional_and_a_refused_first_leg_refuses_the_whole_group():
    h = Harness(max_group_notional=1000)
    h.send(group_id=5, leg=0, n_legs=3)                                        # 600
    h.send("ETHUSDT", Side.SELL, 3000.0, 0.2, group_id=5, leg=1, n_legs=3)     # +600 > 1000
    assert h.refusals() == ["MAX_GROUP_NOTIONAL"]
    h.events.clear()
    h2 = Harness(max_order_notional=500)
    h2.send(group_id=9, leg=0, n_legs=3)                                       # refused: 600 > 500
    h2.send("ETHUSDT", Side.SELL, 3000.0, 0.01, group_id=9, leg=1, n_legs=3)   # would pass alone
    h2.send("ETHBTC", Side.BUY, 0.05001, 0.01, group_id=9, leg=2, n_legs=3)
    assert h2.refusals() == ["MAX_ORDER_NOTIONAL"] * 3


def test_position_counts_open_orders():
    h = Harness(max_position=1000)
    h.send(price=59000.0, qty=0.01, tif=TimeInForce.GTC, group_id=1)   # rests: 0.01 BTC pending (590)
    h.send(price=59000.0, qty=0.01, tif=TimeInForce.GTC, group_id=2)   # 0.02 BTC = 1200 > 1000
    assert h.kinds() == [("ACK", 0), ("REFUSED", RefusalReason.MAX_POSITION)]


def test_open_orders():
    h = Harness(max_open_orders=1)
    h.send(price=59000.0, tif=TimeInForce.GTC, group_id=1)
    h.send(price=59000.0, tif=TimeInForce.GTC, group_id=2)
    assert h.refusals() == ["MAX_OPEN_ORDERS"]


UNFILLED = {"price": 59000.0}     # an IOC buy under the ask: expires unfilled, keeps its ORDERS slot


def test_rate_budget_refuses_the_burst_and_recovers_after_the_window():
    h = Harness(orders_per_10s=2)
    for g in range(3):
        h.send(group_id=g + 1, **UNFILLED)
    assert h.refusals() == ["RATE_BUDGET"]
    h.now += 10 * S + 1
    h.books(h.now)
    h.send(group_id=10, **UNFILLED)
    assert h.refusals() == ["RATE_BUDGET"]                  # no new refusal


def test_rate_budget_window_arithmetic():
    rb = RateBudget(orders_per_10s=2, orders_per_day=3, weight_per_minute=100)
    for t in (0, 1):
        assert rb.allows(t * S)
        rb.charge(t * S)
    assert not rb.allows(2 * S)
    assert rb.allows(11 * S)           # the 10 s window slid past the first order
    rb.charge(11 * S)
    assert not rb.allows(30 * S)       # 3 orders today


def test_rate_budget_room_is_how_many_allows_would_let_through():
    rb = RateBudget(orders_per_10s=5, orders_per_day=100, weight_per_minute=100)
    for t in (0, 1, 2):
        rb.charge(t * S)
    assert rb.room(3 * S) == 2 and rb.room(3 * S, reserve=1) == 1 and rb.room(3 * S, reserve=4) == 0
    assert rb.room(10.5 * S) == 3          # the first order slid out of the 10 s window
    room, granted = rb.room(11 * S), 0     # by 11 s the first two slid out
    while rb.allows(11 * S):
        rb.charge(11 * S)
        granted += 1
    assert room == granted == 4 and rb.room(11 * S) == 0


def test_rate_budget_counts_what_was_sent_by_then_whatever_order_it_was_charged_in():
    """A replay charges each order when the recorded session sent it, which can be later than
    the replay's clock (an unwind the session's loop sent late): the budget at a time holds what
    was sent by then, and the windows still slide in time order."""
    rb = RateBudget(orders_per_10s=2, orders_per_day=100, weight_per_minute=100)
    rb.charge(5 * S)                       # sent at 5 s, charged while the replay is at 1 s
    rb.charge(1 * S)
    assert rb.room(1 * S) == 1             # the 5 s order does not count yet
    assert rb.room(5 * S) == 0
    assert [c.t for c in rb.events["orders_10s"]] == [1 * S, 5 * S]
    assert rb.room(11 * S) == 1            # the 1 s order slid out first
    assert rb.usage(15 * S)["orders_10s"]["used"] == 0


def test_a_credited_order_frees_its_orders_slot_from_its_credit_time_on():
    """Binance's unfilled order count: an order's first fill takes it off every ORDERS window
    from then on; the request weight it cost stays."""
    rb = RateBudget(orders_per_10s=2, orders_per_day=100, weight_per_minute=100)
    rb.charge(0, client_order_id="a")
    rb.charge(1 * S, client_order_id="b")
    assert rb.room(2 * S) == 0
    assert rb.credit("a", 3 * S)
    assert rb.room(2 * S) == 0 and not rb.allows(2.9 * S)      # before its first fill it counted
    assert rb.room(3 * S) == 1 and rb.allows(3 * S)
    use = rb.usage(3 * S)
    assert use["orders_10s"]["used"] == 1 and use["orders_day"]["used"] == 1
    assert use["weight_min"]["used"] == 2                         # weight is not credited
    assert rb.usage(11 * S)["orders_10s"]["used"] == 0            # b slid out; a does not count twice
    assert rb.usage(11 * S)["orders_day"]["used"] == 1            # b: a day long
    assert rb.usage(61 * S)["weight_min"]["used"] == 0
    assert rb.credited == 1


def test_a_credit_frees_the_day_window_too():
    rb = RateBudget(orders_per_10s=100, orders_per_day=2, weight_per_minute=100)
    rb.charge(0, client_order_id="a")
    rb.charge(1 * S, client_order_id="b")
    assert not rb.allows(20 * S)                      # two orders today
    rb.credit("a", 15 * S)                            # left the 10 s window, still in the day's
    assert rb.allows(20 * S) and not rb.allows(14 * S)
    use = rb.usage(20 * S)
    assert use["orders_day"]["used"] == 1 and use["orders_10s"]["used"] == 0
    assert rb.usage(86_401 * S)["orders_day"]["used"] == 0        # both out of the day: none negative
    assert not rb._by_id                              # b never filled: forgotten with its day


def test_harmless_credits():
    """A credit twice, of an unknown order, of one charged without an id, before the charge or
    once the day window dropped it changes nothing it should not; no window goes negative."""
    rb = RateBudget(orders_per_10s=3, orders_per_day=100, weight_per_minute=100)
    assert not rb.credit("nobody", 1 * S) and rb.credited == 0
    rb.charge(1 * S)                                  # no id: never credited
    rb.charge(2 * S, client_order_id="a")
    assert rb.credit("a", 4 * S)
    assert not rb.credit("a", 3 * S)                  # twice: the first credit stands
    assert rb.room(3.5 * S) == 1 and rb.room(4 * S) == 2
    assert rb.usage(4 * S)["orders_10s"]["used"] == 1 and rb.credited == 1
    rb.charge(6 * S, client_order_id="early")         # a fill said to precede its own charge:
    assert rb.credit("early", 5 * S)                  # it counts at no time, and nothing less
    assert rb.room(5.5 * S) == 2 and rb.room(6 * S) == 2
    assert not rb.credit("late", 7 * S)               # credited before it was charged: unknown then
    rb.charge(7 * S, client_order_id="late")
    assert rb.room(8 * S) == 1
    for t in (12, 13, 17, 30, 86_500):
        use = rb.usage(t * S)
        assert all(use[k]["used"] >= 0 for k in use)
    assert rb.usage(30 * S)["orders_10s"]["used"] == 0
    assert not rb.credit("late", 86_500 * S)          # left the day window: nothing to credit


def test_a_credit_ahead_of_the_clock_counts_from_its_time():
    """A replay charges and credits at the session's times, which can be ahead of its market
    clock: the budget at a time counts the orders sent and not yet filled by then."""
    rb = RateBudget(orders_per_10s=2, orders_per_day=100, weight_per_minute=100)
    rb.charge(5 * S, client_order_id="a")
    rb.credit("a", 6 * S)
    rb.charge(1 * S, client_order_id="b")
    assert rb.room(1 * S) == 1 and rb.room(5 * S) == 0 and rb.room(6 * S) == 1
    rb.credit("b", 2 * S)
    assert rb.room(1.5 * S) == 1 and rb.room(2 * S) == 2 and rb.room(5 * S) == 1 and rb.room(6 * S) == 2
    assert rb.usage(20 * S)["orders_10s"]["used"] == 0


def test_the_day_window_forgets_charges_credited_long_ago():
    """Orders that fill are limited by the request weight alone: a day of them must not pile
    up in the day window; the unfilled ones among them still count."""
    rb = RateBudget(orders_per_10s=10**6, orders_per_day=10**6, weight_per_minute=10**9)
    for i in range(20_000):
        t = i * 10_000_000                            # 100 orders a second
        rb.charge(t, client_order_id=str(i))
        if i % 100:
            rb.credit(str(i), t + 1_000_000)          # 99 of 100 fill a millisecond later
        assert rb.allows(t)
    assert len(rb.events["orders_day"]) < 3 * RateBudget.COMPACT_MIN + 200 + 1_000
    assert rb.usage(t + 2_000_000)["orders_day"]["used"] == 200
    assert rb.usage(t + 2_000_000)["orders_10s"]["used"] == 10


def test_the_budget_agrees_with_counting_every_charge_one_by_one(monkeypatch):
    """Random charges (recorded at once, or on the budget's next use as the gate does) and
    credits, some ahead of the time asked (as in a replay), questions asked again at one time
    (as a burst does), against the definition: charges at times <= now, in the window, not
    credited at or before now; every charge's request weight for its minute."""
    monkeypatch.setattr(RateBudget, "COMPACT_MIN", 8)
    rng = np.random.default_rng(7)
    rb = RateBudget(orders_per_10s=10**6, orders_per_day=10**6, weight_per_minute=10**9)
    charged: dict[str, int] = {}
    credited: dict[str, int] = {}
    now = 0
    for i in range(3_000):
        now += int(rng.integers(0, 50_000_000)) if rng.random() < 0.7 else 0
        at = now + int(rng.integers(-1_000_000, 5_000_000))          # a little ahead or behind
        op = rng.random()
        if op < 0.5:
            if op < 0.25:
                rb.charge(at, client_order_id=f"o{i}")
            else:
                rb.charge_later(at, f"o{i}")
            charged[f"o{i}"] = at
        elif op < 0.8 and charged:
            coid = list(charged)[int(rng.integers(0, len(charged)))]
            if rb.credit(coid, at):
                credited[coid] = max(at, charged[coid])
            else:
                assert coid in credited
        use = rb.usage(now)
        for key, window in (("orders_10s", 10 * S), ("orders_day", 86_400 * S)):
            expect = sum(1 for c, t in charged.items()
                         if now - window < t <= now and not credited.get(c, now + 1) <= now)
            assert use[key]["used"] == expect, (i, key)
        assert use["weight_min"]["used"] == sum(1 for t in charged.values() if now - 60 * S < t <= now), i


def test_orders_that_fill_leave_the_order_budget_free_unfilled_ones_hold_it():
    """As on Binance (faqs/order_count_decrement): IOC takers that fill can be sent on and on;
    those that expire unfilled and resting GTC orders count for the whole window."""
    h = Harness(orders_per_10s=2)
    for g in range(3):
        h.send(group_id=g + 1)                        # fill against the ask
    assert h.refusals() == [] and [k for k, _ in h.kinds()].count("FILL") == 3
    st = h.ex.stats()
    assert st["rate_budget"]["orders_10s"]["used"] == 0 and st["rate_budget"]["weight_min"]["used"] == 3
    assert st["rate_credits"] == 3

    h = Harness(orders_per_10s=2)
    for g in range(3):
        h.send(group_id=g + 1, **UNFILLED)            # IOC, nothing at its price: expires unfilled
    assert h.refusals() == ["RATE_BUDGET"] and h.ex.stats()["rate_credits"] == 0

    h = Harness(orders_per_10s=2)
    for g in range(2):
        h.send(group_id=g + 1, price=59000.0, tif=TimeInForce.GTC)      # rest
    h.send(group_id=3)                                # would fill, but the resting two hold the budget
    assert h.refusals() == ["RATE_BUDGET"] and h.ex.orders.open_count() == 2
    h.now += S
    h.books(h.now, btc=(58990.0, 58999.0))            # the ask falls through their price: both fill
    assert h.ex.orders.open_count() == 0
    assert h.ex.gate.rate.usage(h.now - 1)["orders_10s"]["used"] == 2
    assert h.ex.gate.rate.usage(h.now)["orders_10s"]["used"] == 0       # from the fill on
    h.send(group_id=4, price=59000.0)
    assert h.refusals() == ["RATE_BUDGET"] and h.kinds()[-1] == ("FILL", 0)


def test_an_order_is_credited_once_on_its_first_fill():
    h = Harness(orders_per_10s=5)
    h.send(group_id=1, price=60001.0, qty=12.0, tif=TimeInForce.GTC)   # 10 at the ask, 2 rest
    assert [k for k, _ in h.kinds()] == ["ACK", "PARTIAL_FILL"] and h.ex.gate.rate.credited == 1
    h.now += S
    h.books(h.now, btc=(60000.0, 60000.5))            # the ask falls through: the rest fills
    assert h.kinds()[-1] == ("FILL", 0) and h.ex.gate.rate.credited == 1
    assert h.ex.gate.rate.usage(h.now)["orders_10s"]["used"] == 0


def test_a_paper_order_is_credited_at_its_due_time_whenever_it_is_matched():
    """Paper and replay: the first fill frees the slot at the time the venue matched the order
    (its due time, on the books as of then), not when a later record or poll got to it: the
    same time in a session and its replay."""
    latency = 2_000_000
    h = Harness(orders_per_10s=5, latency_ns=latency)
    sent = h.now
    h.send(group_id=1)
    assert h.kinds() == [] and h.ex.gate.rate.usage(sent)["orders_10s"]["used"] == 1
    h.now += S
    h.books(h.now)                                    # before_md: matched on the books before this record
    assert [k for k, _ in h.kinds()] == ["ACK", "FILL"]
    rate = h.ex.gate.rate
    assert rate.usage(sent + latency - 1)["orders_10s"]["used"] == 1
    assert rate.usage(sent + latency)["orders_10s"]["used"] == 0
    fill = h.ex.venue.model                           # the update itself carries that time
    h.send(group_id=2)
    (u,) = [u for u in fill.advance(h.now + latency) if u.last_qty]
    assert u.venue_mono_ns == h.now + latency


class ClockOnlyVenue(PaperVenue):
    """A venue that does not say when it matched (as live: its clock is not ours)."""

    def _strip(self, updates):
        return [dataclasses.replace(u, venue_mono_ns=0) for u in updates]

    def place(self, order, now_ns):
        return self._strip(super().place(order, now_ns))

    def before_md(self, recv_ns):
        return self._strip(super().before_md(recv_ns))

    def on_book(self, symbol_id, now_ns):
        return self._strip(super().on_book(symbol_id, now_ns))

    def poll(self, now_ns):
        return self._strip(super().poll(now_ns))


def test_a_fill_with_no_venue_time_is_credited_when_the_executor_applies_it():
    latency = 2_000_000
    h = Harness(orders_per_10s=5, latency_ns=latency, venue_cls=ClockOnlyVenue)
    sent = h.now
    h.send(group_id=1)
    h.now += S
    h.books(h.now)
    assert [k for k, _ in h.kinds()] == ["ACK", "FILL"]
    rate = h.ex.gate.rate
    assert rate.usage(sent + latency)["orders_10s"]["used"] == 1
    assert rate.usage(h.now)["orders_10s"]["used"] == 0


def test_the_replay_of_a_session_gates_its_orders_when_and_as_the_session_did():
    """``gated_at``: the replay's executor gates each intent at the instant the session's gate
    looked at it, in the session's batches; the exec records carry that instant."""
    recorded = {(1, 2): 100 * S + 10, (1, 0): 100 * S + 70, (1, 1): 100 * S + 70}
    h = Harness(orders_per_10s=1000)
    h.ex.gated_at = lambda g, leg: recorded.get((g, leg))
    batch = np.concatenate([intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=1, leg=leg, n_legs=3)
                            for leg in (2, 0, 1)])
    assert h.ex._recorded_batches(batch, 3) == [(0, 1, 100 * S + 10), (1, 3, 100 * S + 70)]
    h.ex.on_intents(batch, 3)
    assert [c.t for c in h.ex.gate.rate.events["orders_10s"]] == [100 * S + 10, 100 * S + 70, 100 * S + 70]
    gated = {(int(r["leg"]), int(r["gated_mono_ns"])) for r in h.records() if r["kind"] == ExecKind.ACK}
    assert gated == {(2, 100 * S + 10), (0, 100 * S + 70), (1, 100 * S + 70)}


def test_exec_records_carry_the_gate_time_of_intents_and_unwinds():
    h = Harness()
    h.now += 5
    h.send(group_id=3)
    (ack,) = [r for r in h.records() if r["kind"] == ExecKind.ACK]
    assert ack["gated_mono_ns"] == h.now


def test_a_venue_back_off_closes_the_budget_until_its_retry_time():
    rb = RateBudget(orders_per_10s=5, orders_per_day=100, weight_per_minute=100)
    rb.back_off(3 * S)                      # a 429 at 1 s said "retry after 2 s"
    rb.back_off(2 * S)                      # an earlier retry time does not shorten it
    assert rb.closed_until_ns == 3 * S
    assert not rb.allows(2 * S, reserve=0) and rb.room(2.9 * S) == 0
    assert rb.allows(3 * S) and rb.room(3 * S) == 5


def test_daily_loss_stops_new_orders():
    h = Harness(daily_loss_limit=50)
    h.send()                                  # buys 0.01 BTC at 60001
    h.books(h.now, btc=(50000.0, 50001.0))    # BTC drops: about -100 USDT
    h.send(group_id=2, price=50001.0)
    assert h.refusals() == ["DAILY_LOSS"]
    assert h.ex.stats()["pnl"] == pytest.approx(0.01 * 50000.5 - 600.01 - 0.00001 * 50000.5)


def test_stale_book_by_flag_and_by_age():
    h = Harness()
    h.ex.on_md(depth_record(UNI.symbol_id("BTCUSDT"), [], [], h.now, flags=int(MdFlag.STALE),
                            kind=MdKind.STATUS), 1)
    h.send(group_id=1)
    h.books(h.now)                               # fresh again
    h.send(group_id=2)
    h.now += 6 * S                               # older than max_book_age_ms
    h.send(group_id=3)
    assert h.refusals() == ["STALE_BOOK", "STALE_BOOK"]
    assert [k for k, _ in h.kinds()].count("FILL") == 1


def test_price_band_and_filters(caplog):
    h = Harness(price_band_pct=2.0)
    h.send(price=58000.0, group_id=1)            # 3.3% under mid
    with caplog.at_level("INFO", logger="ctrader.execution.risk"):
        h.send(price=60001.0, qty=0.00005, group_id=2)   # 3 USDT < NOTIONAL minNotional 5
    assert h.refusals() == ["PRICE_BAND", "FILTER"]
    assert "Filter failure: NOTIONAL" in caplog.text      # the log says which filter


def test_kill_file_refuses_new_orders_and_cancels_open_ones_within_one_event(tmp_path):
    kill = tmp_path / "KILL"
    h = Harness(kill_path=kill)
    h.send(price=59000.0, tif=TimeInForce.GTC, group_id=1)
    assert h.kinds() == [("ACK", 0)] and h.ex.orders.open_count() == 1
    kill.touch()
    h.send(group_id=2)            # the very next event: cancel the open order, refuse the new one
    assert h.kinds()[1:] == [("CANCELED", 0), ("REFUSED", RefusalReason.KILL_SWITCH)]
    assert h.ex.orders.open_count() == 0
    kill.unlink()                 # `ctrader kill --clear`
    h.send(group_id=3)
    assert h.kinds()[-1] == ("FILL", 0)


def test_sigusr1_engages_the_kill_switch():
    h = Harness()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        h.ex.kill.install_signal_handler()
        h.send(price=59000.0, tif=TimeInForce.GTC, group_id=1)
        os.kill(os.getpid(), signal.SIGUSR1)
        h.ex.poll()                              # one event later the open order is canceled
        assert h.kinds() == [("ACK", 0), ("CANCELED", 0)]
        h.send(group_id=2)
        assert h.refusals() == ["KILL_SWITCH"]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_new_orders_leave_a_fifth_of_the_order_budget_to_unwinds():
    h = Harness(orders_per_10s=10)
    for g in range(9):
        h.send(group_id=g + 1, **UNFILLED)
    assert h.refusals() == ["RATE_BUDGET"]              # 8 sent: 2 of 10 kept for unwinds
    from ctrader.execution.orders import Order
    info = UNI.by_name["BTCUSDT"]
    unwind = Order("uw1-0-0", 1, 3, 3, info.id, "BTCUSDT", int(Side.SELL), 2, 0, 0, 10**6)   # MARKET 0.01
    assert h.ex.gate.check(unwind, h.now, unwind=True) == RefusalReason.NONE
