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
from ctrader.execution.paper import INSUFFICIENT_BALANCE, PaperFillModel
from ctrader.execution.paper_account import PaperAccount
from ctrader.execution.testing import depth_record
from ctrader.sim.testing import sim_universe
from ctrader.market.books import BookCache, apply_md
from ctrader.venue.decimals import parse_units as U

UNI = sim_universe()
BTCUSDT = UNI.symbol_id("BTCUSDT")
ETHBTC = UNI.symbol_id("ETHBTC")
MS = 1_000_000


class Market:
    """A book cache and a fill model over it, fed like the executor feeds them."""

    def __init__(self, latency_ns=0, taker="0.001", maker="0.0005", account=None):
        self.cache = BookCache(len(UNI.symbols))
        self.model = PaperFillModel(BookView(self.cache.books), UNI, taker_rate=taker, maker_rate=maker,
                                    latency_ns=latency_ns, account=account)

    def book(self, sid, bids, asks, t):
        ups = self.model.before_md(t)
        apply_md(self.cache.books, depth_record(sid, bids, asks, t), 0)
        return ups + self.model.on_book(sid, t)


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


def test_latency_matches_against_the_books_as_of_the_due_time():
    m = Market(latency_ns=2 * MS)
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 1.0)], 0)
    assert m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60000"), 0) == []     # in flight
    # 1 ms later the ask moves up: not due yet, nothing happens
    assert m.book(BTCUSDT, [(59999.0, 1.0)], [(60010.0, 1.0)], 1 * MS) == []
    # the books as of 2 ms have the ask at 60010, above the limit: the IOC expires unfilled,
    # matched before the next record (3 ms) is applied
    ups = m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 1.0)], 3 * MS)
    assert [u.status for u in ups] == [EXPIRED]
    # the same order with the ask back at 60000 by its due time (12 ms) fills, even though the
    # next record (13 ms) takes the ask away again
    m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60000", coid="o2"), 10 * MS)
    assert m.model.advance(11 * MS) == []
    assert m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 1.0)], 11 * MS) == []
    ups = m.book(BTCUSDT, [(59999.0, 1.0)], [(60050.0, 1.0)], 13 * MS)
    assert [(u.status, u.last_px) for u in ups] == [(FILLED, U("60000"))]
    # a record received exactly at the due time is part of the books it matches against
    m.model.submit(order("BTCUSDT", Side.BUY, "0.01", "60050", coid="o3"), 20 * MS)
    ups = m.book(BTCUSDT, [(59999.0, 1.0)], [(60040.0, 1.0)], 22 * MS)
    assert [(u.status, u.last_px) for u in ups] == [(FILLED, U("60040"))]
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


def _batch_equivalence_case(seed: int):
    """Two markets fed the same orders and md batches: ``before_md`` and ``on_book`` around every
    record (the reference) and ``quiet_prefix`` + one bulk apply + ``on_book`` for the rest (the executor)."""
    import numpy as np

    from ctrader.core.records import MdKind
    from ctrader.market.books import apply_all

    rng = np.random.default_rng(seed)
    ref, fast = Market(latency_ns=2 * MS), Market(latency_ns=2 * MS)
    got_ref, got_fast = [], []
    t, k = 0, 0
    for _ in range(30):
        if rng.random() < 0.4:                               # an order: IOC, sometimes GTC
            sym, side = ("BTCUSDT", Side.BUY) if rng.random() < 0.5 else ("ETHBTC", Side.SELL)
            price = "60100" if sym == "BTCUSDT" else "0.049"
            tif = TimeInForce.GTC if rng.random() < 0.1 else TimeInForce.IOC
            for m, got in ((ref, got_ref), (fast, got_fast)):
                got += m.model.submit(order(sym, side, "0.01", price, tif=tif, coid=f"o{k}"), t)
            k += 1
        recs = []
        for _ in range(int(rng.integers(1, 12))):             # a batch of md records, times rising
            t += int(rng.integers(0, 2 * MS))
            sid = BTCUSDT if rng.random() < 0.5 else ETHBTC
            mid = 60000.0 if sid == BTCUSDT else 0.05
            kind = MdKind.TRADE if rng.random() < 0.2 else MdKind.DEPTH
            jitter = mid * float(rng.normal(0, 0.001))
            recs.append(depth_record(sid, [(mid - mid * 1e-4 + jitter, float(rng.uniform(0.005, 2)))],
                                     [(mid + mid * 1e-4 + jitter, float(rng.uniform(0.005, 2)))], t, kind=kind))
        batch = np.concatenate(recs)
        n = len(batch)
        for i in range(n):                                      # the reference: one record at a time
            got_ref += ref.model.before_md(int(batch[i]["recv_mono_ns"]))
            apply_md(ref.cache.books, batch, i)
            if batch[i]["kind"] != MdKind.TRADE:
                got_ref += ref.model.on_book(int(batch[i]["symbol_id"]), int(batch[i]["recv_mono_ns"]))
        quiet = fast.model.quiet_prefix(batch, n)
        apply_all(fast.cache.books, batch, quiet)
        for i in range(quiet, n):
            got_fast += fast.model.before_md(int(batch[i]["recv_mono_ns"]))
            apply_md(fast.cache.books, batch, i)
            if batch[i]["kind"] != MdKind.TRADE:
                got_fast += fast.model.on_book(int(batch[i]["symbol_id"]), int(batch[i]["recv_mono_ns"]))
    return ref, fast, got_ref, got_fast


def test_records_before_the_next_due_order_can_be_applied_in_bulk_with_the_same_fills():
    import numpy as np

    fills = 0
    for seed in range(40):
        ref, fast, got_ref, got_fast = _batch_equivalence_case(seed)
        assert got_fast == got_ref, seed
        assert fast.model._consumed == ref.model._consumed and fast.model.in_flight == ref.model.in_flight
        assert set(fast.model.resting) == set(ref.model.resting)
        assert np.array_equal(fast.cache.books, ref.cache.books)
        fills += sum(u.last_qty > 0 for u in got_ref)
    assert fills > 50                                           # the cases did trade


# --- the paper account -----------------------------------------------------------------------------

def test_an_order_needing_more_than_is_free_is_refused_as_binance_refuses_it():
    account = PaperAccount.parse(["USDT=1000", "BTC=0.01"])
    m = Market(account=account)
    m.book(BTCUSDT, [(59999.0, 1.0)], [(60000.0, 1.0)], 0)
    ups = m.model.submit(order("BTCUSDT", Side.BUY, "0.02", "60000"), 1)          # 1200 USDT > 1000 free
    assert [(u.status, u.reject_code) for u in ups] == [(REJECTED, INSUFFICIENT_BALANCE)]
    ups = m.model.submit(order("BTCUSDT", Side.SELL, "0.02", "59999", coid="s"), 2)  # 0.02 BTC > 0.01
    assert [(u.status, u.reject_code) for u in ups] == [(REJECTED, INSUFFICIENT_BALANCE)]
    assert account.free("USDT") == U("1000") and account.free("BTC") == U("0.01") and account.refusals == 2


def test_fills_move_balances_exactly_and_a_resting_order_locks_until_it_ends():
    account = PaperAccount.parse(["USDT=2000"])
    m = Market(account=account)
    m.book(BTCUSDT, [(59990.0, 1.0)], [(60000.0, 0.01)], 0)
    ups = m.model.submit(order("BTCUSDT", Side.BUY, "0.02", "60000", tif=TimeInForce.GTC), 1)
    assert [u.status for u in ups] == [PARTIALLY_FILLED]            # 0.01 taken, 0.01 rests at 60000
    # spent 600 USDT for 0.01 BTC less the 0.1% taker fee; 600 more locked for the rest
    assert account.free("BTC") == U("0.00999") and account.balances["USDT"].locked == U("600")
    assert account.free("USDT") == U("800")
    assert [u.status for u in m.model.cancel("o1", 2)] == [CANCELED]
    assert account.free("USDT") == U("1400") and account.balances["USDT"].locked == 0


def test_a_paper_session_never_holds_less_than_zero():
    """Random orders against random books: no balance ever goes negative, nothing is created."""
    import random

    rng = random.Random(5)
    account = PaperAccount.parse(["USDT=3000", "BTC=0.05", "ETH=1"])
    m = Market(account=account)
    for t in range(1, 400):
        sid = rng.choice([BTCUSDT, ETHBTC, UNI.symbol_id("ETHUSDT")])
        mid = {BTCUSDT: 60000.0, ETHBTC: 0.05}.get(sid, 3000.0) * (1 + rng.uniform(-0.002, 0.002))
        m.book(sid, [(mid * 0.9999, rng.uniform(0.01, 1))], [(mid * 1.0001, rng.uniform(0.01, 1))], t * 10)
        name = UNI.symbols[sid].name
        side = rng.choice([Side.BUY, Side.SELL])
        px = mid * (1.001 if side == Side.BUY else 0.999)
        digits = {"BTCUSDT": 2, "ETHBTC": 5}.get(name, 2)
        m.model.submit(order(name, side, f"{rng.uniform(0.001, 0.03):.3f}", f"{px:.{digits}f}",
                             tif=rng.choice([TimeInForce.IOC, TimeInForce.GTC]), coid=f"r{t}"), t * 10 + 1)
        for bal in account.balances.values():
            assert bal.free >= 0 and bal.locked >= 0
