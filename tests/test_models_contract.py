"""The pluggable parts of paper trading and replay, each implementation held to the same contract:
queue models, latency models, fee models and venues (``execution.venue.Venue``; cancel-replace's
outcomes from the paper, replay and live venues alike)."""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.core.records import OrderType, Side, TimeInForce
from ctrader.execution.bookview import BookView
from ctrader.execution.fee_model import FeeModel, FlatFees
from ctrader.execution.latency import LatencyModel, SampledLatency
from ctrader.execution.orders import CANCELED, FILLED, NEW, PARTIALLY_FILLED, REJECTED, Order, OrderBook
from ctrader.execution.paper import PaperFillModel, PaperVenue, ReplayVenue
from ctrader.execution.queue import ProbQueue, QueueModel, RiskAverseQueue
from ctrader.execution.testing import depth_record
from ctrader.sim.testing import sim_universe
from ctrader.execution.venue import Venue
from ctrader.market.books import BookCache, apply_md
from ctrader.venue.decimals import parse_units as U

QUEUES = [RiskAverseQueue(), ProbQueue(2.0), ProbQueue(3.0)]

# events at the order's level: ("trade", qty) or ("level", new visible qty)
events = st.lists(st.one_of(st.tuples(st.just("trade"), st.integers(1, 500)),
                            st.tuples(st.just("level"), st.integers(0, 2000))), max_size=40)


@pytest.mark.parametrize("queue", QUEUES, ids=lambda q: q.name)
def test_a_queue_model_is_a_queue_model(queue):
    assert isinstance(queue, QueueModel)


@pytest.mark.parametrize("queue", QUEUES, ids=lambda q: q.name)
@settings(max_examples=200, deadline=None)
@given(ahead=st.integers(0, 2000), seq=events)
def test_fills_only_what_traded_and_never_take_back(queue, ahead, seq):
    q = queue.join(ahead)
    level, traded, last = ahead, 0, 0
    for kind, x in seq:
        if kind == "trade":
            queue.traded(q, x)
            traded += x
            level = max(level - x, 0)
        else:
            queue.level_changed(q, level, x)
            level = x
        filled = queue.filled(q)
        assert last <= filled <= traded          # monotone; nothing fills that did not trade
        last = filled


@settings(max_examples=200, deadline=None)
@given(ahead=st.integers(0, 2000), seq=events)
def test_the_risk_averse_queue_never_fills_before_the_probabilistic_one(ahead, seq):
    safe, prob = RiskAverseQueue(), ProbQueue(3.0)
    a, b = safe.join(ahead), prob.join(ahead)
    level = ahead
    for kind, x in seq:
        if kind == "trade":
            safe.traded(a, x)
            prob.traded(b, x)
            level = max(level - x, 0)
        else:
            safe.level_changed(a, level, x)
            prob.level_changed(b, level, x)
            level = x
        assert safe.filled(a) <= prob.filled(b)


def test_only_trades_move_a_risk_averse_order_forward():
    queue = RiskAverseQueue()
    q = queue.join(100)
    queue.level_changed(q, 100, 150)            # more behind us
    queue.traded(q, 60)
    assert queue.filled(q) == 0
    queue.level_changed(q, 90, 30)              # cancels: some of them may have been ahead
    assert queue.filled(q) == 0 and q.ahead == 30
    queue.traded(q, 45)
    assert queue.filled(q) == 15


# --- latency ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["const:2", "uniform:1:3", "normal:2:0.5", "lognormal:2:0.5"])
def test_a_latency_model_is_seeded_and_never_negative(spec):
    model = SampledLatency.parse(spec, seed=11)
    assert isinstance(model, LatencyModel)
    first = [model.sample_ns() for _ in range(500)]
    model.reset()
    assert [model.sample_ns() for _ in range(500)] == first and min(first) >= 0


# --- fees -----------------------------------------------------------------------------------------------

def test_flat_fees_and_the_bnb_discount():
    fees = FlatFees(taker="0.001", maker="0.0002")
    assert isinstance(fees, FeeModel)
    assert (fees.rate(False), fees.rate(True)) == (U("0.001"), U("0.0002"))
    assert FlatFees(taker="0.001", maker="0.001", bnb_discount=True).rate(False) == U("0.00075")


# --- venues ------------------------------------------------------------------------------------------------

UNI = sim_universe()


def _paper_venue(queue=None):
    cache = BookCache(len(UNI.symbols))
    venue = PaperVenue(PaperFillModel(BookView(cache.books), UNI, queue=queue))
    return venue, cache


def _order(coid, side, qty, price, otype=OrderType.LIMIT, tif=TimeInForce.IOC):
    info = UNI.by_name["BTCUSDT"]
    return Order(coid, 1, 0, 1, info.id, "BTCUSDT", int(side), int(otype), int(tif), U(price), U(qty))


def test_the_paper_venue_is_a_venue_and_fills_an_ioc():
    venue, cache = _paper_venue()
    assert isinstance(venue, Venue)
    sid = UNI.symbol_id("BTCUSDT")
    apply_md(cache.books, depth_record(sid, [(59999.0, 1.0)], [(60000.0, 1.0)], 1), 0)
    ups = venue.place(_order("a", Side.BUY, "0.01", "60000"), 1)
    assert [u.status for u in ups] == [FILLED] and venue.cancel(_order("a", Side.BUY, "0.01", "60000"), 2) == []


def test_a_resting_paper_order_fills_when_the_trades_reach_it_in_its_queue():
    venue, cache = _paper_venue(RiskAverseQueue())
    sid = UNI.symbol_id("BTCUSDT")
    apply_md(cache.books, depth_record(sid, [(59999.0, 1.0)], [(60000.0, 1.0)], 1), 0)
    ups = venue.place(_order("m", Side.BUY, "0.2", "59999", OrderType.LIMIT_MAKER, TimeInForce.NONE), 1)
    assert [u.status for u in ups] == [NEW]                         # behind the 1.0 already there
    px = U("59999")
    assert venue.on_trade(sid, px, U("0.6"), True, 2) == []         # 0.4 still ahead
    apply_md(cache.books, depth_record(sid, [(59999.0, 0.5)], [(60000.0, 1.0)], 3), 0)
    venue.on_book(sid, 3)
    ups = venue.on_trade(sid, px, U("0.5"), True, 4)                # 0.4 to those ahead, 0.1 to us
    assert [(u.status, u.last_qty, u.last_px, u.is_maker) for u in ups] == [(PARTIALLY_FILLED, U("0.1"), px, True)]
    assert venue.on_trade(sid, px, U("0.3"), False, 5) == []        # sellers were the makers: not our side
    ups = venue.on_trade(sid, U("59998"), U("0.5"), True, 6)        # a trade below us went through us
    assert [(u.status, u.last_qty) for u in ups] == [(FILLED, U("0.1"))]


@pytest.mark.timeout(60)
def test_the_live_venue_is_a_venue(sim_server, sim_account):
    from ctrader.execution.live import LiveVenue
    from ctrader.execution.ws_api_client import WsApiClient
    from ctrader.market.universe import Universe, fetch_exchange_info

    uni = Universe.from_exchange_info(fetch_exchange_info(sim_server.rest_url), ["BTCUSDT"])
    client = WsApiClient(sim_server.ws_api_url, sim_account.hmac_signer(), rest_url=sim_server.rest_url).start()
    venue = LiveVenue(client, uni)
    try:
        assert isinstance(venue, Venue)
        assert venue.load_balances()["USDT"] > 0 and venue.account_check() is not None
        ask = sim_server.control.book("BTCUSDT", 1)[2][0][0]
        info = uni.by_name["BTCUSDT"]
        order = Order("ct-contract", 1, 0, 1, info.id, "BTCUSDT", int(Side.BUY), int(OrderType.LIMIT),
                      int(TimeInForce.IOC), ask, U("0.001"))
        assert venue.place(order, time.monotonic_ns()) == []          # the answer comes through poll
        deadline, got = time.monotonic() + 20, []
        while not any(u.status == FILLED for u in got) and time.monotonic() < deadline:
            got += venue.poll(time.monotonic_ns())
            time.sleep(0.005)
        assert any(u.status == FILLED for u in got)
    finally:
        venue.close()


# --- cancel-replace: one contract for the paper, replay and live venues --------------------------------------

class ContractRun:
    """A venue on BTCUSDT, its answers applied to an executor's ``OrderBook``; ``kinds`` keeps the
    exec kinds published per order, so a status or fill reported twice would show."""

    venue: Venue

    def __init__(self, info, bid: int, ask: int) -> None:
        self.info, self.bid, self.ask = info, bid, ask
        self.book = OrderBook()
        self.kinds: dict[str, list[str]] = {}

    def order(self, coid, price, otype=OrderType.LIMIT, tif=TimeInForce.GTC, qty="0.001") -> Order:
        return self.book.add(Order(coid, 1, 0, 1, self.info.id, "BTCUSDT", int(Side.BUY), int(otype), int(tif),
                                   price, U(qty)))

    def apply(self, updates) -> None:
        for u in updates:
            tr = self.book.apply(u)
            if tr is not None:
                self.kinds.setdefault(tr.order.client_order_id, []).extend(k.name for k in tr.kinds)

    def place(self, order: Order) -> None:
        self.apply(self.venue.place(order, self.now_ns()))

    def replace(self, old: Order, new: Order, allow_failure: bool = False) -> None:
        self.apply(self.venue.cancel_replace(old, new, self.now_ns(), allow_failure=allow_failure))

    def now_ns(self) -> int:
        raise NotImplementedError

    def settle(self, done) -> bool:
        """Poll until ``done()`` and nothing more is on its way."""
        raise NotImplementedError


class PaperRun(ContractRun):
    """Paper (answers at once) or replay (each order 1 ms of replay time on its way)."""

    def __init__(self, replay: bool) -> None:
        cache = BookCache(len(UNI.symbols))
        model = PaperFillModel(BookView(cache.books), UNI)
        self.venue = (ReplayVenue(model, SampledLatency.parse(1), SampledLatency.parse(0)) if replay
                      else PaperVenue(model))
        info = UNI.by_name["BTCUSDT"]
        apply_md(cache.books, depth_record(info.id, [(59999.0, 1.0)], [(60000.0, 1.0)], 1), 0)
        super().__init__(info, U("59999"), U("60000"))
        self.now = 1

    def now_ns(self) -> int:
        return self.now

    def settle(self, done) -> bool:
        for _ in range(10):
            self.now += 1_000_000
            self.apply(self.venue.poll(self.now))
            if done():
                return True
        return False


class LiveRun(ContractRun):
    """``LiveVenue`` over the WS API against the simulator, its market paused."""

    def __init__(self, sim, account) -> None:
        from ctrader.execution.live import LiveVenue
        from ctrader.execution.ws_api_client import WsApiClient
        from ctrader.market.universe import Universe, fetch_exchange_info

        sim.control.pause()
        uni = Universe.from_exchange_info(fetch_exchange_info(sim.rest_url), ["BTCUSDT"])
        self.client = WsApiClient(sim.ws_api_url, account.hmac_signer(), rest_url=sim.rest_url).start()
        self.venue = LiveVenue(self.client, uni)
        _, bids, asks = sim.control.book("BTCUSDT", 1)
        super().__init__(uni.by_name["BTCUSDT"], bids[0][0], asks[0][0])

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def settle(self, done, timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.apply(self.venue.poll(time.monotonic_ns()))
            if done() and self.client.awaiting == 0 and not self.client.inbox:
                return True
            time.sleep(0.005)
        return False


@pytest.fixture(params=["paper", "replay", "live"])
def contract_run(request):
    if request.param != "live":
        yield PaperRun(replay=request.param == "replay")
        return
    run = LiveRun(request.getfixturevalue("sim_server"), request.getfixturevalue("sim_account"))
    yield run
    run.venue.close()


def _resting(run: ContractRun, coid: str, ticks_below: int) -> Order:
    order = run.order(coid, run.bid - ticks_below * run.info.tick_units)
    run.place(order)
    assert run.settle(lambda: order.status == NEW)
    return order


def _filled(run: ContractRun, coid: str) -> Order:
    order = run.order(coid, run.ask, tif=TimeInForce.IOC)
    run.place(order)
    assert run.settle(lambda: not order.is_open) and order.status == FILLED
    return order


@pytest.mark.timeout(60)
def test_cancel_replace_moves_a_resting_order(contract_run):
    run = contract_run
    old = _resting(run, "cr-old", 100)
    new = run.order("cr-new", run.bid - 200 * run.info.tick_units)
    run.replace(old, new)
    assert run.settle(lambda: old.status == CANCELED and new.status == NEW)
    assert run.kinds == {"cr-old": ["ACK", "CANCELED"], "cr-new": ["ACK"]}


@pytest.mark.timeout(60)
def test_cancel_replace_of_a_filled_order_does_not_place_the_new_one(contract_run):
    run = contract_run
    old = _filled(run, "cr-gone")
    new = run.order("cr-next", run.bid - 200 * run.info.tick_units)
    run.replace(old, new)
    assert run.settle(lambda: not new.is_open)
    assert (new.status, new.reject_code) == (REJECTED, -2022)      # STOP_ON_FAILURE: not attempted
    assert old.status == FILLED and old.cum_qty == old.qty
    assert run.kinds["cr-gone"][0] == "ACK" and run.kinds["cr-gone"][-1] == "FILL"
    assert "CANCELED" not in run.kinds["cr-gone"] and run.kinds["cr-next"] == ["REJECTED"]


@pytest.mark.timeout(60)
def test_cancel_replace_allowing_failure_places_the_new_order_anyway(contract_run):
    run = contract_run
    old = _filled(run, "cr-gone")
    new = run.order("cr-anyway", run.bid - 200 * run.info.tick_units)
    run.replace(old, new, allow_failure=True)
    assert run.settle(lambda: new.status == NEW)
    assert old.status == FILLED and run.kinds["cr-anyway"] == ["ACK"]


@pytest.mark.timeout(60)
def test_cancel_replace_whose_new_order_is_refused_still_cancels(contract_run):
    run = contract_run
    old = _resting(run, "cr-old", 100)
    new = run.order("cr-taker", run.ask, otype=OrderType.LIMIT_MAKER, tif=TimeInForce.NONE)
    run.replace(old, new)
    assert run.settle(lambda: not old.is_open and not new.is_open)
    assert old.status == CANCELED and (new.status, new.reject_code) == (REJECTED, -2010)
    assert run.kinds == {"cr-old": ["ACK", "CANCELED"], "cr-taker": ["REJECTED"]}
