"""The matching engine in process: FIFO levels, taker walks, time in force, balances and fees."""
from __future__ import annotations

import pytest

from ctrader.sim.accounts import AccountRegistry
from ctrader.sim.clock import SimClock
from ctrader.sim.matching import MatchingEngine
from ctrader.sim.orders import OrderRequest
from ctrader.sim.testing import TEST_ACCOUNT, sim_config
from ctrader.sim.universe import build_universe
from ctrader.venue import errors
from ctrader.venue.decimals import parse_units as P

pytestmark = pytest.mark.timeout(60)


class Recorder:
    def __init__(self):
        self.updates, self.trades, self.reports, self.positions = [], [], [], []

    def book_update(self, book, bids, asks):
        self.updates.append((book.update_id, sorted(bids), sorted(asks)))

    def trade(self, symbol, trade_id, price, qty, buyer_is_maker, time_ms):
        self.trades.append((price, qty, buyer_is_maker))

    def execution_report(self, order, exec_type, fill, time_ms, cancel_client_id=None):
        self.reports.append((order.order_id, exec_type, order.status, fill.qty if fill else 0))

    def account_position(self, account, assets, time_ms):
        self.positions.append(tuple(assets))


@pytest.fixture
def venue():
    cfg = sim_config({"symbols": ["BTCUSDT"]})
    engine = MatchingEngine(build_universe(cfg), AccountRegistry(cfg.accounts), SimClock(1_700_000_000_000))
    rec = Recorder()
    engine.market_sinks.append(rec)
    engine.user_sinks.append(rec)
    book = engine.books["BTCUSDT"]
    for px, qty in (("60000.00", "1"), ("60000.10", "2"), ("60000.20", "3")):
        book.asks.add(P(px), P(qty))
    for px, qty in (("59999.90", "1"), ("59999.80", "2")):
        book.bids.add(P(px), P(qty))
    engine.commit(book)
    account = engine.accounts.accounts[TEST_ACCOUNT.name]
    return engine, book, account, rec


def limit(side, price, qty, tif="GTC", kind="LIMIT", cid=None):
    return OrderRequest("BTCUSDT", side, kind, tif if kind == "LIMIT" else None, P(qty), None, P(price), cid, "FULL")


def test_taker_walks_levels_and_pays_taker_commission_in_the_received_asset(venue):
    engine, book, account, rec = venue
    usdt0, btc0 = account.balance("USDT").free, account.balance("BTC").free
    order, fills = engine.place(account, limit("BUY", "60000.10", "2.5"))
    assert [(f.price, f.qty) for f in fills] == [(P("60000"), P("1")), (P("60000.10"), P("1.5"))]
    assert order.status == "FILLED" and not order.is_open
    cost = P("60000") + P("90000.15")
    assert account.balance("USDT").free == usdt0 - cost and account.balance("USDT").locked == 0
    assert account.balance("BTC").free == btc0 + P("2.5") - P("0.0025")      # 0.1% taker, in BTC
    assert book.asks.best() == P("60000.10") and book.asks.levels[P("60000.10")] == P("0.5")
    assert rec.updates[-1][0] == book.update_id and rec.updates[-1][2][0] == (P("60000"), 0)
    assert [r[1] for r in rec.reports] == ["NEW", "TRADE", "TRADE"]
    assert rec.trades[-1] == (P("60000.10"), P("1.5"), False)                # buyer took: not the maker


def test_resting_order_queues_behind_existing_liquidity_and_gets_maker_fills(venue):
    engine, book, account, rec = venue
    order, fills = engine.place(account, limit("SELL", "60000", "0.5"))   # joins the 1 BTC already there
    assert not fills and order.is_working and book.asks.levels[P("60000")] == P("1.5")
    engine.anonymous_market(book, taker_is_buy=True, qty=P("1.2"))        # 1 anonymous first, then 0.2 of ours
    engine.commit(book)
    assert order.executed_qty == P("0.2") and order.status == "PARTIALLY_FILLED"
    quote = P("12000")
    assert account.balance("USDT").free == P("1000000") + quote - quote // 1000   # maker 0.1% in USDT
    assert account.balance("BTC").locked == P("0.3")
    engine.anonymous_market(book, taker_is_buy=True, qty=P("0.3"))
    engine.commit(book)
    assert order.status == "FILLED" and account.balance("BTC").locked == 0
    assert ("BTC", "USDT") in rec.positions


def test_ioc_expires_the_rest_and_fok_trades_nothing_unless_complete(venue):
    engine, book, account, _ = venue
    order, fills = engine.place(account, limit("BUY", "60000", "1.5", tif="IOC"))
    assert order.status == "EXPIRED" and order.executed_qty == P("1") and sum(f.qty for f in fills) == P("1")
    assert account.balance("USDT").locked == 0
    before = book.snapshot()
    order, fills = engine.place(account, limit("BUY", "60000.10", "5", tif="FOK"))
    assert order.status == "EXPIRED" and not fills and book.snapshot()[1:] == before[1:]
    assert order.expiry_reason == "UNFILLED_FOK_ORDER_EXPIRED"


def test_limit_maker_that_would_take_is_rejected(venue):
    engine, _, account, _ = venue
    with pytest.raises(errors.BinanceError) as err:
        engine.place(account, limit("BUY", "60000", "0.1", kind="LIMIT_MAKER"))
    assert (err.value.code, err.value.msg) == (-2010, "Order would immediately match and take.")


def test_insufficient_balance_and_duplicate_client_id(venue):
    engine, _, account, _ = venue
    with pytest.raises(errors.BinanceError) as err:
        engine.place(account, limit("SELL", "70000", "21"))                  # holds 20 BTC
    assert (err.value.code, err.value.msg) == (-2010, "Account has insufficient balance for requested action.")
    engine.place(account, limit("SELL", "70000", "1", cid="mine-1"))
    with pytest.raises(errors.BinanceError, match="Duplicate order sent."):
        engine.place(account, limit("SELL", "70000", "1", cid="mine-1"))


def test_market_by_quote_spends_at_most_the_budget_on_whole_steps(venue):
    engine, _, account, _ = venue
    req = OrderRequest("BTCUSDT", "BUY", "MARKET", None, None, P("100000"), None, None, "FULL")
    order, fills = engine.place(account, req)
    assert order.status == "FILLED" and order.cum_quote <= P("100000")
    assert order.executed_qty % P("0.00001") == 0 and order.orig_qty == order.executed_qty
    assert P("100000") - order.cum_quote < P("60000.10") * P("0.00001") // P("1") + 1
    assert account.balance("USDT").locked == 0


def test_price_improvement_releases_the_excess_reservation(venue):
    engine, _, account, _ = venue
    order, fills = engine.place(account, limit("BUY", "60000.05", "1.5"))    # 1 fills at 60000, 0.5 rests
    assert order.is_working and order.executed_qty == P("1")
    assert account.balance("USDT").locked == P("30000.025")                  # exactly 0.5 x 60000.05


def test_cancel_releases_funds_and_a_second_cancel_is_unknown(venue):
    engine, book, account, rec = venue
    order, _ = engine.place(account, limit("BUY", "59000", "1"))
    assert account.balance("USDT").locked == P("59000")
    canceled, cancel_id = engine.cancel(account, "BTCUSDT", order.order_id, None)
    assert canceled.status == "CANCELED" and account.balance("USDT").locked == 0
    assert P("59000") not in book.bids.levels and rec.reports[-1][1] == "CANCELED"
    with pytest.raises(errors.BinanceError) as err:
        engine.cancel(account, "BTCUSDT", order.order_id, None)
    assert (err.value.code, err.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(errors.BinanceError) as err:
        engine.query(account, "BTCUSDT", 999_999, None)
    assert err.value.code == -2013


def test_fair_value_moving_through_a_resting_order_fills_it(venue):
    engine, book, account, _ = venue
    order, _ = engine.place(account, limit("BUY", "59999.90", "0.5"))        # behind 1 anonymous BTC
    engine.sweep_level(book.bids, book, P("59999.90"))                       # makers pull, the rest trades
    engine.commit(book)
    assert order.status == "FILLED" and P("59999.90") not in book.bids.levels
