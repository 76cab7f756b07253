"""PaperFillModel: hand-computed fills walking the visible depth, partials, exact fees, latency."""
from __future__ import annotations

from ctrader.core.records import OrderType, Side, TimeInForce
from ctrader.execution.bookview import BookView
from ctrader.execution.orders import (
    CANCELED,
    EXPIRED,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    REJECTED,
    Order,
    OrderBook,
)
from ctrader.execution.paper import PaperFillModel
from ctrader.execution.testing import depth_record, sim_universe
from ctrader.market.books import BookCache, apply_md
from ctrader.venue.decimals import parse_units as U

UNI = sim_universe()
BTCUSDT = UNI.symbol_id("BTCUSDT")
ETHBTC = UNI.symbol_id("ETHBTC")
MS = 1_000_000


class Market:
    """A book cache and a fill model over it, fed like the executor feeds them."""

    def __init__(self, latency_ns=0, taker="0.001", maker="0.0005"):
        self.cache = BookCache(len(UNI.symbols))
        self.model = PaperFillModel(BookView(self.cache.books), UNI, taker_rate=taker, maker_rate=maker,
                                    latency_ns=latency_ns)

    def book(self, sid, bids, asks, t):
        apply_md(self.cache.books, depth_record(sid, bids, asks, t), 0)
        return self.model.on_book(sid, t)


def order(symbol, side, qty, price="0", otype=OrderType.LIMIT, tif=TimeInForce.IOC, coid="o1"):
    info = UNI.by_name[symbol]
    return Order(coid, 1, 0, 1, info.id, symbol, int(side), int(otype), int(tif), U(price), U(qty))


def test_ioc_buy_walks_asks_up_to_its_limit_and_expires_the_rest():
    m = Market()
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 0.01), (60001.0, 0.02), (60002.0, 0.5)], 0)
    ups = m.model.submit(order("BTCUSDT", Side.BUY, "0.05", "60001"), 10)
    assert [(u.status, u.last_px, u.last_qty) for u in ups] == [
        (PARTIALLY_FILLED, U("60000"), U("0.01")), (PARTIALLY_FILLED, U("60001"), U("0.02")), (EXPIRED, 0, 0)]
    first, second = ups[0], ups[1]
    # quote = price * qty exactly; commission 0.1% of the BTC received, in BTC
    assert (first.last_quote, first.fee, first.fee_asset) == (U("600"), U("0.00001"), "BTC")
    assert (second.last_quote, second.fee) == (U("1200.02"), U("0.00002"))
    assert not first.is_maker and first.trade_id != second.trade_id


def test_sell_fee_is_in_the_quote_asset_rounded_up_to_1e8():
    m = Market()
    m.book(ETHBTC, [(0.05123, 0.3), (0.05122, 1.0)], [(0.05124, 1.0)], 0)
    ups = m.model.submit(order("ETHBTC", Side.SELL, "0.1", otype=OrderType.MARKET, tif=TimeInForce.NONE), 5)
    assert len(ups) == 1 and ups[0].status == FILLED
    u = ups[0]
    assert u.last_px == U("0.05123") and u.last_qty == U("0.1")
    assert u.last_quote == U("0.005123")                 # BTC received
    assert u.fee == U("0.00000513") and u.fee_asset == "BTC"   # 0.000005123 rounded up


def test_market_order_takes_the_whole_visible_book_then_expires():
    m = Market()
    m.book(BTCUSDT, [(60000.0, 0.01), (59990.0, 0.01)], [(60001.0, 1.0)], 0)
    ups = m.model.submit(order("BTCUSDT", Side.SELL, "0.05", otype=OrderType.MARKET, tif=TimeInForce.NONE), 1)
    assert [(u.status, u.last_px, u.last_qty) for u in ups] == [
        (PARTIALLY_FILLED, U("60000"), U("0.01")), (PARTIALLY_FILLED, U("59990"), U("0.01")), (EXPIRED, 0, 0)]
    assert ups[0].fee == U("0.6") and ups[0].fee_asset == "USDT"   # 600 USDT * 0.1%


def test_fok_fills_whole_or_not_at_all():
    m = Market()
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 0.01), (60001.0, 0.01)], 0)
    assert [u.status for u in m.model.submit(order("BTCUSDT", Side.BUY, "0.03", "60001", tif=TimeInForce.FOK), 1)] \
        == [EXPIRED]
    ups = m.model.submit(order("BTCUSDT", Side.BUY, "0.02", "60001", tif=TimeInForce.FOK, coid="o2"), 2)
    assert [u.status for u in ups] == [PARTIALLY_FILLED, FILLED]


def test_liquidity_one_order_took_is_gone_until_the_book_changes():
    m = Market()
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 0.01), (60005.0, 1.0)], 0)
    a = m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60000", coid="a"), 1)
    b = m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60000", coid="b"), 2)
    assert [u.status for u in a] == [FILLED]
    assert [u.status for u in b] == [EXPIRED]           # nothing left at 60000
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 0.01)], 3)
    c = m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60000", coid="c"), 4)
    assert [u.status for u in c] == [FILLED]


def test_latency_matches_against_the_first_book_at_or_after_the_due_time():
    m = Market(latency_ns=2 * MS)
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 1.0)], 0)
    assert m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60000"), 0) == []     # in flight
    # 1 ms later the ask moves up: not due yet, nothing happens
    assert m.book(BTCUSDT, [(59999.0, 1.0)], [(60010.0, 1.0)], 1 * MS) == []
    # the first book at/after 2 ms has the ask at 60010, above the limit: the IOC expires unfilled
    ups = m.book(BTCUSDT, [(59999.0, 1.0)], [(60010.0, 1.0)], 3 * MS)
    assert [u.status for u in ups] == [EXPIRED]
    # the same order with the ask back at 60000 by its due time fills
    m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60000", coid="o2"), 10 * MS)
    assert m.model.advance(11 * MS) == []
    ups = m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 1.0)], 12 * MS)
    assert [(u.status, u.last_px) for u in ups] == [(FILLED, U("60000"))]
    assert m.model.in_flight == []


def test_gtc_rests_then_fills_as_maker_when_the_book_crosses_it():
    m = Market()
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60001.0, 1.0)], 0)
    ups = m.model.submit(order("BTCUSDT", Side.BUY, "0.02", "60000", tif=TimeInForce.GTC), 1)
    assert [u.status for u in ups] == [NEW]
    ups = m.book(BTCUSDT, [(59990.0, 1.0)], [(59995.0, 0.005), (60000.0, 1.0)], 2)
    assert [(u.status, u.last_px, u.last_qty, u.is_maker) for u in ups] == [
        (PARTIALLY_FILLED, U("60000"), U("0.005"), True), (FILLED, U("60000"), U("0.015"), True)]
    assert ups[0].fee == U("0.0000025")                  # maker rate 0.05%


def test_limit_maker_that_would_take_is_rejected_and_cancel_removes_a_resting_order():
    m = Market()
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60001.0, 1.0)], 0)
    ups = m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60001", otype=OrderType.LIMIT_MAKER,
                               tif=TimeInForce.NONE), 1)
    assert [(u.status, u.reject_code) for u in ups] == [(REJECTED, -2010)]
    ups = m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "59000", tif=TimeInForce.GTC, coid="r"), 2)
    assert [u.status for u in ups] == [NEW]
    assert [u.status for u in m.model.cancel("r", 3)] == [CANCELED]
    assert m.model.resting == {}


def test_order_book_turns_paper_updates_into_exec_kinds():
    m = Market()
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 0.01), (60001.0, 0.02)], 0)
    book = OrderBook()
    o = book.add(order("BTCUSDT", Side.BUY, "0.05", "60001"))
    kinds = [k.name for u in m.model.submit(o, 1) for k in book.apply(u).kinds]
    assert kinds == ["ACK", "PARTIAL_FILL", "PARTIAL_FILL", "CANCELED"]
    assert o.cum_qty == U("0.03") and o.cum_quote == U("1800.02") and o.fees == {"BTC": U("0.00003")}
    assert o.status == EXPIRED and not o.is_open
