"""Live mode against the simulator: WS API orders (HMAC, Ed25519 logon), executionReport fills,
rejects with their codes, exact wire strings, cancel-replace, and crash recovery from the journal."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ctrader.core.records import EXEC_EVENT, ExecKind, OrderType, RefusalReason, Side, TimeInForce
from ctrader.execution.engine import Executor
from ctrader.execution.journal import Journal
from ctrader.execution.live import LiveVenue, order_params
from ctrader.execution.orders import CANCELED, FILLED, NEW, REFUSED, REJECTED, Order
from ctrader.execution.risk import RiskLimits
from ctrader.execution.testing import depth_record, intent_record
from ctrader.execution.ws_api_client import WsApiClient
from ctrader.market.universe import Universe, fetch_exchange_info
from ctrader.venue.decimals import parse_units as U

pytestmark = pytest.mark.timeout(120)
SYMBOLS = ["BTCUSDT", "ETHBTC", "ETHUSDT"]
LIMITS = RiskLimits(max_order_notional=1e6, max_group_notional=1e6, max_position=1e6, max_open_orders=50,
                    orders_per_10s=1000, daily_loss_limit=1e6)


class Live:
    """An executor in live mode on a paused simulator whose books it was shown."""

    def __init__(self, sim, signer, journal_path, limits=LIMITS, user_data=True):
        self.sim = sim
        sim.control.pause()
        self.uni = Universe.from_exchange_info(fetch_exchange_info(sim.rest_url), SYMBOLS)
        self.client = WsApiClient(sim.ws_api_url, signer, rest_url=sim.rest_url, user_data=user_data).start()
        self.events: list[np.ndarray] = []
        self.ex = Executor(self.uni, LiveVenue(self.client, self.uni), Journal(journal_path), self.events.append,
                           limits)
        self.show_books()

    def show_books(self):
        for s in self.uni.symbols:
            _, bids, asks = self.sim.control.book(s.name, 10)
            rec = depth_record(s.id, [(p / 1e8, q / 1e8) for p, q in bids], [(p / 1e8, q / 1e8) for p, q in asks],
                               time.monotonic_ns())
            self.ex.on_md(rec, 1)

    def best(self, symbol):
        _, bids, asks = self.sim.control.book(symbol, 1)
        return bids[0][0], asks[0][0]

    def send(self, symbol, side, price_units, qty, **kw):
        self.ex.on_intents(intent_record(self.uni, symbol, side, price_units / 1e8, qty, **kw), 1)

    def wait(self, predicate, timeout_s=10.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.ex.poll()
            if predicate():
                return True
            time.sleep(0.005)
        return False

    def kinds(self):
        return [ExecKind(int(e[0]["kind"])).name for e in self.events]

    def close(self):
        self.ex.close()


@pytest.fixture
def live_factory(sim_server, tmp_path):
    made = []

    def make(signer, **kw):
        live = Live(sim_server, signer, tmp_path / f"journal-{len(made)}.jsonl", **kw)
        made.append(live)
        return live
    yield make
    for live in made:
        live.close()


def _fill_test(live):
    _, ask = live.best("BTCUSDT")
    live.send("BTCUSDT", Side.BUY, ask, 0.001, group_id=1, client_order_id="ct-live-1",
              cause_mono_ns=time.monotonic_ns())
    order = live.ex.orders.get("ct-live-1")
    assert live.wait(lambda: not order.is_open), live.kinds()
    assert order.status == FILLED and order.cum_qty == U("0.001")
    assert live.kinds()[0] == "ACK" and live.kinds()[-1] == "FILL"
    fills = [e[0] for e in live.events if e[0]["kind"] in (ExecKind.FILL, ExecKind.PARTIAL_FILL)]
    assert sum(f["last_qty"] for f in fills) == pytest.approx(0.001)
    # the fill reached the accounting once, even though the answer and the user data both report it
    assert live.ex.accounting.positions["BTC"] == U("0.001") - U("0.000001")    # 0.1% fee in BTC
    assert live.ex.accounting.positions["USDT"] == -order.cum_quote
    assert live.ex.accounting.fills == len(fills)
    return order


def test_hmac_order_place_fills_update_positions(live_factory, sim_account):
    live = live_factory(sim_account.hmac_signer())
    assert not live.client.logged_on
    _fill_test(live)
    latency = live.ex.stats()["tick_to_order"]
    assert latency["n"] == 1 and latency["p50_us"] > 0     # measured (its size is the benchmarks' business)


def test_ed25519_session_logon_order_place(live_factory, sim_account):
    live = live_factory(sim_account.ed25519_signer())
    assert live.client.logged_on
    _fill_test(live)


def test_wire_strings_are_exact_decimals(live_factory, sim_account):
    live = live_factory(sim_account.hmac_signer())
    info = live.uni.by_name["BTCUSDT"]
    small = Order("x", 1, 0, 1, info.id, "BTCUSDT", int(Side.BUY), int(OrderType.LIMIT), int(TimeInForce.GTC),
                  U("50000.1"), U("0.00001"))
    params = order_params(small, info)
    assert params["quantity"] == "0.00001" and params["price"] == "50000.10"
    assert params["timeInForce"] == "GTC" and params["newClientOrderId"] == "x"
    # a resting order far from the market: the venue stores exactly what we meant
    bid, _ = live.best("BTCUSDT")
    price = (bid * 97 // 100) // info.tick_units * info.tick_units
    live.send("BTCUSDT", Side.BUY, price, 0.0001, tif=TimeInForce.GTC, group_id=2, client_order_id="ct-rest")
    order = live.ex.orders.get("ct-rest")
    assert live.wait(lambda: order.status == NEW)
    doc = live.client.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "ct-rest"})
    assert doc["result"]["origQty"] == "0.00010000" and U(doc["result"]["price"]) == price


def test_venue_rejects_become_rejected_with_their_code(live_factory, sim_account):
    live = live_factory(sim_account.hmac_signer())
    _, ask = live.best("BTCUSDT")
    live.sim.control.reject_orders(count=1)
    live.send("BTCUSDT", Side.BUY, ask, 0.001, group_id=1, client_order_id="ct-rej")
    order = live.ex.orders.get("ct-rej")
    assert live.wait(lambda: not order.is_open)
    assert order.status == REJECTED and order.reject_code == -2010
    rejected = [e[0] for e in live.events if e[0]["kind"] == ExecKind.REJECTED]
    assert len(rejected) == 1 and rejected[0]["reject_code"] == -2010
    # a filter failure the venue finds (sent past the gate): -1013
    info = live.uni.by_name["BTCUSDT"]
    tiny = Order("ct-tiny", 2, 0, 1, info.id, "BTCUSDT", int(Side.BUY), int(OrderType.LIMIT),
                 int(TimeInForce.IOC), ask, U("0.00001"))           # 0.6 USDT < minNotional 5
    live.ex.orders.add(tiny)
    live.ex._apply(live.ex.venue.place(tiny, time.monotonic_ns()))
    assert live.wait(lambda: not tiny.is_open)
    assert tiny.status == REJECTED and tiny.reject_code == -1013
    assert live.ex.stats()["rejects"] == {"-2010": 1, "-1013": 1}


def test_a_venue_rate_limit_closes_the_order_budget_until_its_retry_time(sim_factory, sim_account, tmp_path):
    """The venue allows fewer unfilled orders than our gate (2 per 10 s here): its 429 -1015
    carries a retry time, and no new order leaves before it (Binance bans an IP that keeps
    sending after a 429)."""
    live = Live(sim_factory({"limits.orders_per_10s": 2}), sim_account.hmac_signer(), tmp_path / "journal.jsonl")
    try:
        info = live.uni.by_name["BTCUSDT"]
        bid, _ = live.best("BTCUSDT")
        price = (bid * 97 // 100) // info.tick_units * info.tick_units     # rests: stays unfilled

        def resting_buy(k):
            live.send("BTCUSDT", Side.BUY, price, 0.0001, tif=TimeInForce.GTC, group_id=k, client_order_id=f"ct-rl-{k}")
            return live.ex.orders.get(f"ct-rl-{k}")
        first, second = resting_buy(1), resting_buy(2)
        assert live.wait(lambda: first.status == NEW and second.status == NEW)
        third = resting_buy(3)
        assert live.wait(lambda: not third.is_open)
        assert third.status == REJECTED and third.reject_code == -1015
        venue = live.ex.venue
        assert venue.rate_limited == 1 and venue.backoff_until_ns > time.monotonic_ns()
        assert live.ex.gate.rate.closed_until_ns == venue.backoff_until_ns
        # until the retry time: refused here, never sent
        fourth = resting_buy(4)
        assert fourth.status == REFUSED and fourth.reject_code == RefusalReason.RATE_BUDGET
        assert "ct-rl-4" not in venue.orders
        # after it, orders leave again
        assert live.wait(lambda: time.monotonic_ns() >= venue.backoff_until_ns, timeout_s=12)
        live.show_books()                 # fresh books again (the gate refuses on an old one)
        fifth = resting_buy(5)
        assert live.wait(lambda: fifth.status == NEW), fifth
        assert venue.rate_limited == 1 and live.ex.stats()["refusals"] == {"RATE_BUDGET": 1}
    finally:
        live.close()


@pytest.mark.parametrize("answer, wait_s", [
    ({"status": 429, "error": {"code": -1015, "msg": "Too many new orders",
                               "data": {"serverTime": 1_000, "retryAfter": 4_000}}}, 3.0),   # WS API: venue ms
    ({"status": 429, "error": {"code": -1003, "msg": "Too much request weight used"}, "retry_after": "7"}, 7.0),
    ({"status": 418, "error": {"code": -1003, "msg": "IP banned"}, "retry_after": None}, 120.0),   # the shortest ban
    ({"status": 400, "error": {"code": -2010, "msg": "Account has insufficient balance"}}, None),
])
def test_retry_time_of_a_rate_limit_answer(answer, wait_s):
    venue = LiveVenue(client=None, universe=None)
    before = time.monotonic_ns()
    [update] = venue._on_response(("place", "ct-1"), answer)
    after = time.monotonic_ns()
    assert update.status == REJECTED and update.reject_code == answer["error"]["code"]
    if wait_s is None:
        assert venue.backoff_until_ns == 0 and venue.rate_limited == 0
    else:
        assert before + wait_s * 1e9 <= venue.backoff_until_ns <= after + wait_s * 1e9
        assert venue.rate_limited == 1


def test_restart_reconciles_an_order_sent_without_ack_and_never_sends_it_twice(sim_server, sim_account, tmp_path):
    path = tmp_path / "journal.jsonl"
    sim_server.control.pause()
    uni = Universe.from_exchange_info(fetch_exchange_info(sim_server.rest_url), SYMBOLS)
    info = uni.by_name["BTCUSDT"]
    _, asks = sim_server.control.book("BTCUSDT", 1)[1:]
    ask = asks[0][0]
    # The crashed executor journaled two intents a minute ago (longer than recvWindow: an order
    # not at the venue by now never will be). The first reached the venue and filled; the
    # process died before the answer was journaled. The second never left.
    long_ago = time.monotonic_ns() - 60 * 10**9
    sent = intent_record(uni, "BTCUSDT", Side.BUY, ask / 1e8, 0.001, group_id=1, client_order_id="ct-sent",
                         created_mono_ns=long_ago)
    lost = intent_record(uni, "BTCUSDT", Side.BUY, ask / 1e8, 0.001, group_id=2, client_order_id="ct-lost",
                         created_mono_ns=long_ago)
    journal = Journal(path)
    for rec in (sent, lost):
        journal.intent(Order.from_intent(rec[0], "BTCUSDT", info.tick_units, info.step_units))
    journal.close()
    client = WsApiClient(sim_server.ws_api_url, sim_account.hmac_signer(), rest_url=sim_server.rest_url).start()
    placed = client.call("order.place", order_params(
        Order.from_intent(sent[0], "BTCUSDT", info.tick_units, info.step_units), info))
    assert placed["result"]["status"] == FILLED

    events: list[np.ndarray] = []
    ex = Executor(uni, LiveVenue(client, uni), Journal(path), events.append, LIMITS)
    try:
        assert ex.recover() == 2
        assert ex.orders.get("ct-sent").status == FILLED
        assert ex.orders.get("ct-sent").cum_qty == U("0.001")
        assert ex.orders.get("ct-lost").status == REJECTED and ex.orders.get("ct-lost").reject_code == -2013
        assert ex.accounting.positions["BTC"] == U("0.001") - U("0.000001")
        # the strategy's ring hands the same intents again (they were never committed): not resent
        ex.on_intents(np.concatenate([sent, lost]), 2)
        assert ex.duplicates == 2 and ex.accounting.orders_sent == 0
        trades = client.call("myTrades", {"symbol": "BTCUSDT"})["result"]
        assert len({t["orderId"] for t in trades}) == 1
        # and a third executor reading the same journal finds nothing left to settle
        orders, _ = Journal.load(path)
        assert all(not o.is_open for o in orders.values())
    finally:
        ex.close()
    assert all(e.dtype == EXEC_EVENT for e in events)


def test_rest_fallback_places_the_same_order(live_factory, sim_account):
    live = live_factory(sim_account.hmac_signer())
    live.ex.venue.use_ws_api = False            # as when the WebSocket is down
    _, ask = live.best("BTCUSDT")
    live.send("BTCUSDT", Side.BUY, ask, 0.001, group_id=1, client_order_id="ct-rest-1")
    order = live.ex.orders.get("ct-rest-1")
    assert live.wait(lambda: not order.is_open)
    assert order.status == FILLED and live.ex.venue.rest_fallbacks == 1
    assert live.ex.accounting.positions["BTC"] == U("0.001") - U("0.000001")


def test_clock_offset_keeps_timestamps_inside_the_servers_window(sim_factory, sim_account, tmp_path):
    """The simulator's clock runs 3 s behind ours: unadjusted timestamps would be 'ahead of the
    server' (-1021); the client measures the offset at connect and signs with server time."""
    sim = sim_factory({"faults.clock_skew_ms": -3000})
    raw = WsApiClient(sim.ws_api_url, sim_account.hmac_signer(), user_data=False).start()
    try:
        assert raw.clock_offset_ms == pytest.approx(-3000, abs=500)
        raw.clock_offset_ms = 0.0
        assert raw.call("account.status", {})["error"]["code"] == -1021
    finally:
        raw.close()
    live = Live(sim, sim_account.hmac_signer(), tmp_path / "j.jsonl")
    try:
        _fill_test(live)
    finally:
        live.close()


def test_after_a_reconnect_open_orders_are_asked_about(live_factory, sim_account):
    """The connection drops and the order is canceled meanwhile (its executionReport is lost):
    once reconnected the venue asks about every open order and learns it."""
    live = live_factory(sim_account.hmac_signer())
    bid, _ = live.best("BTCUSDT")
    info = live.uni.by_name["BTCUSDT"]
    price = (bid * 99 // 100) // info.tick_units * info.tick_units
    live.send("BTCUSDT", Side.BUY, price, 0.001, tif=TimeInForce.GTC, group_id=1, client_order_id="ct-drop")
    order = live.ex.orders.get("ct-drop")
    assert live.wait(lambda: order.status == NEW)
    live.client.reconnect_max_s = 0.5
    live.sim.control.close_api_connections(abort=True)
    other = WsApiClient(live.sim.ws_api_url, sim_account.hmac_signer(), user_data=False).start()
    try:
        assert other.call("order.cancel", {"symbol": "BTCUSDT", "origClientOrderId": "ct-drop"})["result"]
    finally:
        other.close()
    assert live.wait(lambda: not order.is_open, timeout_s=15)
    assert order.status == "CANCELED" and live.client.connects >= 2
    assert live.ex.stats()["venue"]["status_queries"] >= 1
    assert live.kinds()[-1] == "CANCELED"


# --- recovery under faults ("Nothing lost after a crash") --------------------------------------------

def test_a_restart_does_not_declare_an_order_in_flight_dead(sim_server, sim_account, tmp_path):
    """The venue holds the order 1.5 s: the restarted executor hears "no such order" (-2013) while
    it is in flight, keeps asking, and moves it to FILLED when it lands; its group settles."""
    path = tmp_path / "journal.jsonl"
    sim_server.control.pause()
    uni = Universe.from_exchange_info(fetch_exchange_info(sim_server.rest_url), SYMBOLS)
    info = uni.by_name["BTCUSDT"]
    ask = sim_server.control.book("BTCUSDT", 1)[2][0][0]
    rec = intent_record(uni, "BTCUSDT", Side.BUY, ask / 1e8, 0.001, group_id=7, client_order_id="ct-inflight",
                        created_mono_ns=time.monotonic_ns())
    order = Order.from_intent(rec[0], "BTCUSDT", info.tick_units, info.step_units)
    journal = Journal(path)
    journal.intent(order)
    journal.close()
    client = WsApiClient(sim_server.ws_api_url, sim_account.hmac_signer(), rest_url=sim_server.rest_url).start()
    sim_server.control.delay_orders(1500)
    client.send("order.place", order_params(order, info))      # the crashed executor's last act
    ex = Executor(uni, LiveVenue(client, uni), Journal(path), lambda e: None, LIMITS)
    try:
        assert ex.recover() == 1
        recovered = ex.orders.get("ct-inflight")
        assert recovered.is_open, "declared dead while it was still on its way"
        deadline = time.monotonic() + 20
        while recovered.is_open and time.monotonic() < deadline:
            ex.poll()
            time.sleep(0.01)
        assert recovered.status == FILLED and recovered.cum_qty == U("0.001")
        assert ex.groups[7].settled
    finally:
        ex.close()


def test_a_status_query_that_fails_is_asked_again_until_the_order_is_settled(live_factory, sim_account):
    live = live_factory(sim_account.hmac_signer(), user_data=False)      # only the status answers can settle it
    _, ask = live.best("BTCUSDT")
    live.sim.control.timeout_orders(1)                               # executed, then -1007: outcome unknown
    live.sim.control.fail_requests(1, match="order.status")          # the first question: 503
    live.sim.control.fail_requests(1, status=400, code=-1021, msg="Timestamp outside recvWindow",
                                   match="order.status")             # the second: -1021
    live.send("BTCUSDT", Side.BUY, ask, 0.001, group_id=3, client_order_id="ct-unsure")
    order = live.ex.orders.get("ct-unsure")
    assert live.wait(lambda: not order.is_open, timeout_s=30), live.kinds()
    assert order.status == FILLED and order.cum_qty == U("0.001")
    assert live.ex.venue.status_queries >= 3


def test_the_daily_loss_baseline_survives_a_restart(tmp_path):
    """The day's starting PnL is journaled; a restarted executor counts from it, and never sets
    a new one from books it has not received yet."""
    from ctrader.execution.bookview import BookView
    from ctrader.execution.paper import PaperFillModel, PaperVenue
    from ctrader.sim.testing import sim_universe
    from ctrader.market.books import BookCache

    uni = sim_universe()

    def executor(books: bool) -> Executor:
        cache = BookCache(len(uni.symbols))
        ex = Executor(uni, PaperVenue(PaperFillModel(BookView(cache.books), uni)),
                      Journal(tmp_path / "j.jsonl", sync=False, run_id="run-d"), lambda e: None, LIMITS, books=cache)
        for s in uni.symbols if books else ():
            mid = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "ETHBTC": 0.05}[s.name]
            ex.on_md(depth_record(s.id, [(mid * 0.9999, 5.0)], [(mid * 1.0001, 5.0)], time.monotonic_ns()), 1)
        return ex

    day = int(time.time() // 86_400)
    ex = executor(books=True)
    ex.accounting.positions.update({"BTC": U("0.01"), "USDT": -U("650")})      # worth about -50 USDT
    assert ex.accounting.daily_pnl(ex.valuer, day) == 0.0 and ex.accounting.day == day
    baseline = ex.accounting.day_start_pnl
    assert baseline == pytest.approx(-50, abs=1)
    ex.close()

    again = executor(books=False)
    again.recover()
    assert again.accounting.day == day and again.accounting.day_start_pnl == baseline
    again.accounting.positions.update({"BTC": U("0.01"), "USDT": -U("650")})
    assert math.isnan(again.accounting.daily_pnl(again.valuer, day))       # no books yet: unknown, no breach
    again.close()

def test_a_kill_while_an_order_is_on_its_way_cancels_it_once_the_venue_has_it(live_factory, sim_account):
    """The venue takes its time with an order (1.5 s); the kill switch trips meanwhile. Cancelling
    at once would fail (-2011: unknown order), asking about it would say it does not exist (-2013),
    and it would then rest on the venue's book behind the executor's back: the cancel waits for
    the order's answer instead, and the venue holds nothing open."""
    live = live_factory(sim_account.hmac_signer())
    bid, _ = live.best("BTCUSDT")
    info = live.uni.by_name["BTCUSDT"]
    price = (bid * 99 // 100) // info.tick_units * info.tick_units      # rests: 1% under the bid
    live.sim.control.delay_orders(1500, count=1)
    live.send("BTCUSDT", Side.BUY, price, 0.001, tif=TimeInForce.GTC, group_id=1, client_order_id="ct-inflight")
    order = live.ex.orders.get("ct-inflight")
    live.ex.kill.engage("test")
    live.ex.poll()                          # the executor sees the kill and cancels what it has out
    assert live.ex.stats()["venue"]["deferred_cancels"] == 1
    assert live.wait(lambda: not order.is_open, timeout_s=15), live.kinds()
    assert order.status == "CANCELED" and live.kinds() == ["ACK", "CANCELED"]
    other = WsApiClient(live.sim.ws_api_url, sim_account.hmac_signer(), user_data=False).start()
    try:
        assert other.call("openOrders.status", {"symbol": "BTCUSDT"})["result"] == []
    finally:
        other.close()


# --- cancel-replace -----------------------------------------------------------------------------------------

def _replace(live, old, coid, price, **kw):
    """What a replace intent does (the executor's side is engine.py's): the new order joins the
    executor's book, the venue sends the cancel-replace."""
    new = live.ex.orders.add(Order(coid, old.group_id, old.leg, old.n_legs, old.symbol_id, old.symbol, old.side,
                                   old.order_type, old.tif, price, old.qty))
    live.ex.venue.cancel_replace(old, new, time.monotonic_ns(), **kw)
    return new


def _resting_buy(live, coid, price):
    live.send("BTCUSDT", Side.BUY, price, 0.001, tif=TimeInForce.GTC, group_id=7, client_order_id=coid)
    order = live.ex.orders.get(coid)
    assert live.wait(lambda: order.status == NEW)
    return order


def _settled(live):
    """Every answer in and applied, and every user-data event sent before them (a WS round trip
    orders them: the venue wrote its executionReports before answering)."""
    assert live.wait(lambda: live.client.awaiting == 0)
    live.client.call("time", {})
    live.ex.poll()


def test_cancel_replace_over_rest_moves_the_order_and_counts_each_end_once(live_factory, sim_account):
    live = live_factory(sim_account.hmac_signer())
    bid, _ = live.best("BTCUSDT")
    tick = live.uni.by_name["BTCUSDT"].tick_units
    old = _resting_buy(live, "ct-cr-old", bid - 100 * tick)
    live.ex.venue.use_ws_api = False            # as when the WebSocket is down
    new = _replace(live, old, "ct-cr-new", bid - 200 * tick)
    assert live.wait(lambda: old.status == CANCELED and new.status == NEW)
    _settled(live)
    assert live.ex.venue.rest_fallbacks == 1
    assert live.kinds() == ["ACK", "CANCELED", "ACK"] and live.ex.accounting.cancels == 1
    doc = live.client.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "ct-cr-new"})
    assert doc["result"]["status"] == "NEW" and U(doc["result"]["price"]) == bid - 200 * tick


@pytest.mark.parametrize("over_rest", [False, True])
def test_cancel_replace_of_an_order_that_filled_meanwhile(live_factory, sim_account, over_rest):
    """The venue filled the old order before the cancel-replace reached it: STOP_ON_FAILURE leaves
    the new one unplaced (REJECTED -2022), the old one ends FILLED, its fill counted once."""
    live = live_factory(sim_account.hmac_signer())
    bid, _ = live.best("BTCUSDT")
    tick = live.uni.by_name["BTCUSDT"].tick_units
    old = _resting_buy(live, "ct-cr-top", bid + tick)           # the best bid: the next seller takes it
    sell = live.client.call("order.place", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                            "timeInForce": "IOC", "quantity": "0.001",
                                            "price": order_params(old, live.uni.by_name["BTCUSDT"])["price"]})
    assert sell["result"]["status"] == "FILLED"                  # we have not polled: old looks open
    live.ex.venue.use_ws_api = not over_rest
    new = _replace(live, old, "ct-cr-late", bid - 100 * tick)
    assert live.wait(lambda: not old.is_open and not new.is_open)
    _settled(live)
    assert old.status == FILLED and (new.status, new.reject_code) == (REJECTED, -2022)
    assert live.kinds().count("FILL") == 1 and "CANCELED" not in live.kinds()
    assert live.ex.accounting.positions["BTC"] == U("0.001") - U("0.000001")
    assert live.ex.accounting.fills == 1
    doc = live.client.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "ct-cr-late"})
    assert doc["error"]["code"] == -2013                          # never placed


def test_cancel_replace_with_an_unknown_outcome_asks_about_both_orders(live_factory, sim_account):
    live = live_factory(sim_account.hmac_signer(), user_data=False)
    bid, _ = live.best("BTCUSDT")
    tick = live.uni.by_name["BTCUSDT"].tick_units
    old = _resting_buy(live, "ct-cr-lost", bid - 100 * tick)
    live.sim.control.timeout_orders(count=1)       # it executes, then answers -1007
    new = _replace(live, old, "ct-cr-found", bid - 200 * tick)
    assert live.wait(lambda: old.status == CANCELED and new.status == NEW)
    venue = live.ex.venue
    assert venue.unknown_outcomes == 1 and venue.status_queries >= 2
    assert live.kinds() == ["ACK", "CANCELED", "ACK"]


def test_cancel_replace_of_a_partly_filled_order_fetches_the_fill_its_cancel_reports(live_factory, sim_account):
    """No user data (as while the stream is down): the cancel's answer says 0.001 of the old
    order executed, which the executor has not seen; the fill is fetched before it ends."""
    live = live_factory(sim_account.hmac_signer(), user_data=False)
    bid, _ = live.best("BTCUSDT")
    info = live.uni.by_name["BTCUSDT"]
    live.send("BTCUSDT", Side.BUY, bid + info.tick_units, 0.002, tif=TimeInForce.GTC, group_id=8,
              client_order_id="ct-cr-half")
    old = live.ex.orders.get("ct-cr-half")
    assert live.wait(lambda: old.status == NEW)
    sell = live.client.call("order.place", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                            "timeInForce": "IOC", "quantity": "0.001",
                                            "price": order_params(old, info)["price"]})
    assert sell["result"]["status"] == "FILLED"
    new = _replace(live, old, "ct-cr-rest", bid - 100 * info.tick_units)
    assert live.wait(lambda: old.status == CANCELED and new.status == NEW)
    assert old.cum_qty == U("0.001") and live.ex.accounting.fills == 1
    assert live.ex.accounting.positions["BTC"] == U("0.001") - U("0.000001")


@pytest.mark.parametrize("resting", [True, False])
def test_a_cancel_replace_waits_for_the_old_orders_place_answer(live_factory, sim_account, resting):
    """The venue holds the old order 300 ms: a cancel-replace sent at once would find nothing to
    cancel. It waits for the place answer: a resting order is replaced; one that filled leaves
    the new order unsent (REJECTED -2022, as the venue would have answered)."""
    live = live_factory(sim_account.hmac_signer())
    bid, ask = live.best("BTCUSDT")
    tick = live.uni.by_name["BTCUSDT"].tick_units
    live.sim.control.delay_orders(300, count=1)
    price, tif = (bid - 100 * tick, TimeInForce.GTC) if resting else (ask, TimeInForce.IOC)
    live.send("BTCUSDT", Side.BUY, price, 0.001, tif=tif, group_id=9, client_order_id="ct-cr-early")
    old = live.ex.orders.get("ct-cr-early")
    new = _replace(live, old, "ct-cr-after", bid - 200 * tick)
    assert live.ex.venue.deferred_replaces == 1
    assert live.wait(lambda: not new.is_open or (new.status == NEW and not old.is_open))
    _settled(live)
    if resting:
        assert (old.status, new.status) == (CANCELED, NEW)
        assert live.kinds() == ["ACK", "CANCELED", "ACK"]
    else:
        assert old.status == FILLED and (new.status, new.reject_code) == (REJECTED, -2022)
        assert live.ex.accounting.fills == live.kinds().count("FILL") + live.kinds().count("PARTIAL_FILL")


def test_intents_cancel_replace_and_expire_resting_orders_on_the_venue(live_factory, sim_account):
    """The executor's resting-order actions in live mode, end to end: a CANCEL intent, a REPLACE
    intent (order.cancelReplace) and a good-till expiry each leave the venue holding nothing."""
    from ctrader.core.records import IntentAction
    from ctrader.execution.testing import cancel_intent

    live = live_factory(sim_account.hmac_signer())
    bid, _ = live.best("BTCUSDT")
    tick = live.uni.by_name["BTCUSDT"].tick_units
    first = _resting_buy(live, "ct-act-1", bid - 100 * tick)
    live.ex.on_intents(cancel_intent("ct-act-1"), 1)
    assert live.wait(lambda: first.status == CANCELED), live.kinds()

    old = _resting_buy(live, "ct-act-2", bid - 100 * tick)
    rec = intent_record(live.uni, "BTCUSDT", Side.BUY, (bid - 200 * tick) / 1e8, 0.001, tif=TimeInForce.GTC,
                        group_id=7, client_order_id="ct-act-3",
                        good_till_mono_ns=time.monotonic_ns() + 300_000_000)
    rec[0]["action"] = int(IntentAction.REPLACE)
    rec[0]["target_client_order_id"] = b"ct-act-2"
    live.ex.on_intents(rec, 1)
    new = live.ex.orders.get("ct-act-3")
    assert live.wait(lambda: old.status == CANCELED and new.status in (NEW, CANCELED)), live.kinds()
    # the replacement rests until its good-till time, then the executor cancels it
    assert live.wait(lambda: new.status == CANCELED), live.kinds()
    assert live.ex.expired == 1
    _settled(live)
    assert live.client.call("openOrders.status", {"symbol": "BTCUSDT"})["result"] == []
    assert live.ex.orders.open_count() == 0
