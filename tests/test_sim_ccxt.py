"""ccxt's own ``binance`` class against the simulator: markets, book, balances, orders, errors.

ccxt is a client we did not write: if it parses our exchangeInfo, signs requests we accept and
maps our errors to the exceptions it raises against Binance, the simulator speaks Binance.
"""
from __future__ import annotations

import ccxt
import pytest

pytestmark = pytest.mark.timeout(90)


def binance(sim, account, **extra) -> ccxt.binance:
    ex = ccxt.binance({"apiKey": account.api_key, "secret": account.api_secret, "enableRateLimit": False,
                       # spot only: no futures/margin/sapi endpoints, which the simulator does not serve
                       "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                                   "fetchMargins": False}, **extra})
    for api in ("public", "private", "v1"):
        ex.urls["api"][api] = f"{sim.rest_url}/api/v3"
    return ex


@pytest.fixture
def ex(sim_server, sim_account):
    return binance(sim_server, sim_account)


def test_load_markets_and_fetch_order_book(ex):
    markets = ex.load_markets()
    assert len(markets) == 35 and {"BTC/USDT", "ETH/BTC", "SOL/BNB", "BTC/FDUSD"} <= set(markets)
    btc = markets["BTC/USDT"]
    assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5.0 and btc["limits"]["amount"]["min"] == 0.00001
    book = ex.fetch_order_book("ETH/BTC", limit=20)
    assert len(book["bids"]) == len(book["asks"]) == 20
    assert book["bids"][0][0] < book["asks"][0][0] and book["nonce"] > 0


def test_balances_orders_and_cancels(ex):
    ex.load_markets()
    balance = ex.fetch_balance()
    assert balance["USDT"]["free"] == 1_000_000 and balance["BTC"]["total"] == 20
    assert ex.fetch_open_orders("BTC/USDT") == []
    bid = ex.fetch_order_book("BTC/USDT", 5)["bids"][0][0]
    order = ex.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.99, 2))
    assert order["status"] == "open" and order["amount"] == 0.01
    opened = ex.fetch_open_orders("BTC/USDT")
    assert [o["id"] for o in opened] == [order["id"]]
    assert ex.fetch_balance()["USDT"]["used"] == pytest.approx(0.01 * round(bid * 0.99, 2), abs=0.01)
    canceled = ex.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled" and ex.fetch_open_orders("BTC/USDT") == []
    market = ex.create_order("ETH/USDT", "market", "buy", 0.5)
    assert market["status"] == "closed" and market["filled"] == 0.5
    assert market["fee"]["currency"] == "ETH" and market["fee"]["cost"] == pytest.approx(0.0005)
    assert ex.fetch_balance()["ETH"]["free"] == pytest.approx(300 + 0.5 - 0.0005)


def test_errors_map_to_the_exceptions_binance_would_raise(ex, sim_server, sim_account):
    ex.load_markets()
    wrong = binance(sim_server, sim_account, secret="wrong-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        wrong.fetch_balance()
    stale = binance(sim_server, sim_account)
    stale.options["timeDifference"] = 20_000          # our clock 20 s behind the venue's
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        stale.fetch_balance()
    with pytest.raises(ccxt.InvalidOrder, match=r'"code":-1013,"msg":"Filter failure: LOT_SIZE"'):
        ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                               "quantity": "0.000015", "price": "50000"})
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        ex.create_order("BTC/USDT", "limit", "buy", 0.00005, 50000)
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        ex.cancel_order("123456789", "BTC/USDT")
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("BTC/USDT", "limit", "sell", 100, 70000)


def test_rate_limit_reaches_ccxt_as_429(sim_factory, sim_account):
    sim = sim_factory({"limits.request_weight_per_minute": 45})
    ex = binance(sim, sim_account)
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        for _ in range(10):
            ex.fetch_markets()                     # exchangeInfo weighs 20
