"""REST: signing as Binance verifies it, Binance's error codes and HTTP statuses, limits, faults."""
from __future__ import annotations

import http.client
import json
import time

import pytest
import requests

from ctrader.venue.decimals import format_units, parse_units
from ctrader.venue.signing import Signer, hmac_sha256_hex, rest_query

pytestmark = pytest.mark.timeout(60)


class Client:
    """A minimal signed REST client: what an executor does, written from the docs."""

    def __init__(self, base: str, signer: Signer) -> None:
        self.base = base
        self.signer = signer
        self.http = requests.Session()

    def public(self, path: str, **params):
        return self.http.get(self.base + path, params=params)

    def signed(self, method: str, path: str, params: dict | None = None, *, in_body: bool = False,
               timestamp: int | None = None, key: str | None = None):
        params = dict(params or {})
        params.setdefault("timestamp", timestamp if timestamp is not None else int(time.time() * 1000))
        query = self.signer.signed_query(params)
        headers = {"X-MBX-APIKEY": self.signer.api_key if key is None else key}
        if in_body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self.http.request(method, self.base + path, data=query, headers=headers)
        return self.http.request(method, f"{self.base}{path}?{query}", headers=headers)

    def order(self, **params):
        return self.signed("POST", "/api/v3/order", params, in_body=True)


@pytest.fixture
def client(sim_server, sim_account):
    return Client(sim_server.rest_url, sim_account.hmac_signer())


def best(client, symbol="BTCUSDT"):
    book = client.public("/api/v3/depth", symbol=symbol, limit=5).json()
    return parse_units(book["bids"][0][0]), parse_units(book["asks"][0][0])


def error_of(resp):
    return resp.status_code, resp.json()["code"], resp.json()["msg"]


def test_public_endpoints_weights_and_headers(client):
    resp = client.public("/api/v3/ping")
    assert resp.status_code == 200 and resp.json() == {}
    assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) >= 1 and resp.headers["X-MBX-USED-WEIGHT"]
    before = int(client.public("/api/v3/time").headers["X-MBX-USED-WEIGHT-1M"])
    resp = client.public("/api/v3/depth", symbol="ETHBTC", limit=1000)
    assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) - before in (50, 50 - before)   # 501-1000 weighs 50
    book = resp.json()
    assert set(book) == {"lastUpdateId", "bids", "asks"} and len(book["bids"]) >= 20
    info = client.public("/api/v3/exchangeInfo", symbols='["ETHBTC","BTCUSDT"]').json()
    assert sorted(s["symbol"] for s in info["symbols"]) == ["BTCUSDT", "ETHBTC"]
    assert {r["rateLimitType"] for r in info["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS", "RAW_REQUESTS"}
    assert error_of(client.public("/api/v3/depth", symbol="NOPE")) == (400, -1121, "Invalid symbol.")
    assert client.public("/api/v3/avgPrice", symbol="BTCUSDT").json()["mins"] == 5


def test_hmac_and_ed25519_signed_orders_in_query_or_body(client, sim_server, sim_account):
    bid, _ = best(client)
    price = format_units(bid - parse_units("100"))
    for signer, in_body in ((sim_account.hmac_signer(), True), (sim_account.ed25519_signer(), False)):
        c = Client(sim_server.rest_url, signer)
        resp = c.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                  "timeInForce": "GTC", "quantity": "0.01", "price": price},
                        in_body=in_body)
        assert resp.status_code == 200, resp.text
        order = resp.json()
        assert order["status"] == "NEW" and order["price"] == price and order["fills"] == []
        assert resp.headers["X-MBX-ORDER-COUNT-10S"] and resp.headers["X-MBX-ORDER-COUNT-1D"]
        got = c.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order["orderId"]}).json()
        assert got["isWorking"] and got["clientOrderId"] == order["clientOrderId"]
    opened = client.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()
    assert len(opened) == 2
    canceled = client.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": opened[0]["orderId"]}).json()
    assert canceled["status"] == "CANCELED" and canceled["origClientOrderId"] == opened[0]["clientOrderId"]
    account = client.signed("GET", "/api/v3/account", {"omitZeroBalances": "true"}).json()
    usdt = next(b for b in account["balances"] if b["asset"] == "USDT")
    reserved = -(-(bid - parse_units("100")) * parse_units("0.01") // 10 ** 8)
    assert parse_units(usdt["locked"]) == reserved and account["makerCommission"] == 10


def test_market_order_fills_pay_fees_and_show_in_my_trades(client):
    resp = client.order(symbol="ETHUSDT", side="SELL", type="MARKET", quantity="2")
    order = resp.json()
    assert order["status"] == "FILLED" and order["executedQty"] == "2.00000000" and order["fills"]
    fee = sum(parse_units(f["commission"]) for f in order["fills"])
    assert {f["commissionAsset"] for f in order["fills"]} == {"USDT"}
    assert fee == sum(-(-parse_units(f["price"]) * parse_units(f["qty"]) // 10 ** 8 * 100_000 // 10 ** 8)
                      for f in order["fills"])
    trades = client.signed("GET", "/api/v3/myTrades", {"symbol": "ETHUSDT"}).json()
    assert [t["id"] for t in trades] == [f["tradeId"] for f in order["fills"]]
    assert all(t["isBuyer"] is False and t["isMaker"] is False for t in trades)
    quote = client.order(symbol="ETHUSDT", side="BUY", type="MARKET", quoteOrderQty="1000").json()
    assert parse_units(quote["cummulativeQuoteQty"]) <= parse_units("1000") and quote["origQuoteOrderQty"] == \
        "1000.00000000"


@pytest.mark.parametrize("params, expected", [
    ({"quantity": "0.000015"}, (400, -1013, "Filter failure: LOT_SIZE")),
    ({"price": "1000.001"}, (400, -1013, "Filter failure: PRICE_FILTER")),
    ({"quantity": "0.00005"}, (400, -1013, "Filter failure: NOTIONAL")),
    ({"price": "900000"}, (400, -1013, "Filter failure: PERCENT_PRICE_BY_SIDE")),
    ({"quantity": "12abc"}, (400, -1100, "Illegal characters found in parameter 'quantity'; legal range is "
                                         "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")),
    ({"quantity": "0.000000001"}, (400, -1111, "Parameter 'quantity' has too much precision.")),
    ({"timeInForce": None}, (400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, "
                                         "or malformed.")),
    ({"side": "HOLD"}, (400, -1117, "Invalid side.")),
    ({"type": "FANCY"}, (400, -1116, "Invalid orderType.")),
    ({"type": "STOP_LOSS_LIMIT", "stopPrice": "1"}, (400, -2010, "Stop loss limit orders are not supported for "
                                                                 "this symbol.")),
    ({"type": "MARKET", "timeInForce": None}, (400, -1106, "Parameter 'price' sent when not required.")),
    ({"symbol": "BTCEUR"}, (400, -1121, "Invalid symbol.")),
    ({"quantity": "25"}, (400, -2010, "Account has insufficient balance for requested action.")),
    ({"colour": "red"}, (400, -1104, "Not all sent parameters were read; read '8' parameter(s) but was sent '9'.")),
])
def test_order_errors_are_binances(client, params, expected):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
             "price": "50000"}
    order.update(params)
    order = {k: v for k, v in order.items() if v is not None}
    assert error_of(client.order(**order)) == expected


def test_authentication_errors(client, sim_server, sim_account):
    ok = {"symbol": "BTCUSDT"}
    wrong = Client(sim_server.rest_url, Signer(sim_account.api_key, secret="not-the-secret"))
    assert error_of(wrong.signed("GET", "/api/v3/openOrders", ok)) == \
        (400, -1022, "Signature for this request is not valid.")
    stale = int(time.time() * 1000) - 10_000
    assert error_of(client.signed("GET", "/api/v3/openOrders", ok, timestamp=stale)) == \
        (400, -1021, "Timestamp for this request is outside of the recvWindow.")
    assert client.signed("GET", "/api/v3/openOrders", dict(ok, recvWindow=20000), timestamp=stale).status_code == 200
    ahead = int(time.time() * 1000) + 5_000
    assert error_of(client.signed("GET", "/api/v3/openOrders", ok, timestamp=ahead)) == \
        (400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    micro = int(time.time() * 1_000_000)
    assert client.signed("GET", "/api/v3/openOrders", ok, timestamp=micro).status_code == 200
    assert error_of(client.signed("GET", "/api/v3/openOrders", dict(ok, recvWindow=70000)))[1] == -1131
    assert error_of(client.signed("GET", "/api/v3/openOrders", ok, key="nobody")) == \
        (401, -2015, "Invalid API-key, IP, or permissions for action.")
    assert error_of(client.signed("GET", "/api/v3/openOrders", ok, key="")) == (401, -2014, "API-key format invalid.")
    unsigned = client.http.get(f"{sim_server.rest_url}/api/v3/openOrders?symbol=BTCUSDT&timestamp={ahead - 5000}",
                               headers={"X-MBX-APIKEY": sim_account.api_key})
    assert error_of(unsigned)[1:] == (-1102, "Mandatory parameter 'signature' was not sent, was empty/null, "
                                             "or malformed.")
    dup = client.http.get(f"{sim_server.rest_url}/api/v3/depth?symbol=BTCUSDT&symbol=ETHBTC")
    assert error_of(dup)[1] == -1101


def _raw_get(base: str, target: str, api_key: str):
    """GET with the request target sent byte for byte (requests would re-quote %42 to B)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", target, headers={"X-MBX-APIKEY": api_key})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    return resp.status, body


def test_signature_must_cover_the_bytes_as_sent(sim_server, sim_account):
    # Sign "symbol=BTCUSDT" but send the value percent-encoded: Binance verifies the raw bytes,
    # so a signature computed before (or without) the encoding is rejected.
    ts = int(time.time() * 1000)
    sig = hmac_sha256_hex(sim_account.api_secret, f"symbol=BTCUSDT&timestamp={ts}")
    status, body = _raw_get(sim_server.rest_url, f"/api/v3/openOrders?symbol=%42TCUSDT&timestamp={ts}"
                                                 f"&signature={sig}", sim_account.api_key)
    assert (status, body["code"]) == (400, -1022)
    sent = f"symbol=%42TCUSDT&timestamp={ts}"
    status, body = _raw_get(sim_server.rest_url, f"/api/v3/openOrders?{sent}&signature="
                                                 f"{hmac_sha256_hex(sim_account.api_secret, sent)}",
                            sim_account.api_key)
    assert (status, body) == (200, [])
    assert rest_query({"a": "b c"}) == "a=b+c"


def test_unknown_orders(client):
    assert error_of(client.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 424242})) == \
        (400, -2011, "Unknown order sent.")
    assert error_of(client.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "nope"})) == \
        (400, -2013, "Order does not exist.")
    assert error_of(client.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT"}))[1:] == \
        (-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")


def test_request_weight_limit_answers_429_with_retry_after(sim_factory, sim_account):
    sim = sim_factory({"limits.request_weight_per_minute": 50})
    c = Client(sim.rest_url, sim_account.hmac_signer())
    for _ in range(10):                       # windows are calendar minutes: retry across a boundary
        resp = c.public("/api/v3/exchangeInfo")          # weight 20
        if resp.status_code == 429:
            break
    assert resp.status_code == 429 and 1 <= int(resp.headers["Retry-After"]) <= 60
    code, msg = resp.json()["code"], resp.json()["msg"]
    assert code == -1003 and msg.startswith("Too much request weight used; current limit is 50 request weight "
                                            "per 1 MINUTE.")
    assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) > 50


def test_unfilled_order_count_limit(sim_factory, sim_account):
    sim = sim_factory({"limits.orders_per_10s": 3})
    c = Client(sim.rest_url, sim_account.hmac_signer())
    counts = []
    for i in range(12):                       # 10 s windows: retry across a boundary
        resp = c.order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
                       price="50000")
        if resp.status_code == 429:
            break
        counts.append(int(resp.headers["X-MBX-ORDER-COUNT-10S"]))
    assert error_of(resp)[1:] == (-1015, "Too many new orders; current limit is 3 orders per 10 SECOND.")
    assert counts[-1] == 3 and "Retry-After" in resp.headers


def test_scripted_request_faults(client, sim_server):
    ctl = sim_server.control
    limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
             "price": "50000"}
    ctl.fail_requests(count=1, status=503, match="/api/v3/order")
    assert error_of(client.order(**limit))[:2] == (503, -1008)
    assert client.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json() == []   # not executed
    ctl.fail_requests(count=1, status=500, code=-1001, msg="Internal error; unable to process your request. "
                      "Please try again.", match="/api/v3/order", execute=True)
    assert error_of(client.order(**limit))[:2] == (500, -1001)
    assert len(client.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()) == 1  # it executed
    ctl.timeout_orders(count=1)
    assert error_of(client.order(**limit)) == (503, -1007, "Timeout waiting for response from backend server. "
                                                          "Send status unknown; execution status unknown.")
    assert len(client.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()) == 2
    ctl.reject_orders(count=1, msg="Market is closed.")
    assert error_of(client.order(**limit)) == (400, -2010, "Market is closed.")
    ctl.delay_orders(300, count=1)
    started = time.monotonic()
    assert client.order(**limit).status_code == 200
    assert time.monotonic() - started >= 0.3          # a lower bound only: the delay cannot be shorter


def test_clock_skew(client, sim_server):
    sim_server.control.skew_clock(-20_000)            # the venue's clock runs 20 s behind ours
    server_time = client.public("/api/v3/time").json()["serverTime"]
    assert server_time < time.time() * 1000 - 15_000
    assert error_of(client.signed("GET", "/api/v3/account"))[1:] == \
        (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    assert client.signed("GET", "/api/v3/account", timestamp=server_time).status_code == 200
    sim_server.control.skew_clock(20_000)
    assert error_of(client.signed("GET", "/api/v3/account"))[1:] == \
        (-1021, "Timestamp for this request is outside of the recvWindow.")
    sim_server.control.clear_faults()
    assert client.signed("GET", "/api/v3/account").status_code == 200


def test_test_order_validates_without_trading(client):
    ok = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001",
          "price": "50000"}
    assert client.signed("POST", "/api/v3/order/test", ok).json() == {}
    rates = client.signed("POST", "/api/v3/order/test", dict(ok, computeCommissionRates="true")).json()
    assert rates["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
    assert error_of(client.signed("POST", "/api/v3/order/test", dict(ok, quantity="0.0000001")))[1:] == \
        (-1013, "Filter failure: LOT_SIZE")
    assert client.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json() == []


def test_trade_fee_as_binance_serves_it(client):
    """``GET /sapi/v1/asset/tradeFee`` (NautilusTrader's instrument provider asks it first)."""
    fees = client.signed("GET", "/sapi/v1/asset/tradeFee")
    assert fees.status_code == 200 and int(fees.headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    rows = fees.json()
    assert len(rows) == 35 and {r["symbol"] for r in rows} >= {"BTCUSDT", "ETHBTC", "SOLBNB"}
    assert all(r == {"symbol": r["symbol"], "makerCommission": "0.001", "takerCommission": "0.001"} for r in rows)
    assert client.signed("GET", "/sapi/v1/asset/tradeFee", {"symbol": "ETHBTC"}).json() == \
        [{"symbol": "ETHBTC", "makerCommission": "0.001", "takerCommission": "0.001"}]
    assert error_of(client.signed("GET", "/sapi/v1/asset/tradeFee", {"symbol": "NOPE"}))[:2] == (400, -1121)
    unsigned = client.public("/sapi/v1/asset/tradeFee")
    assert unsigned.status_code in (400, 401) and unsigned.json()["code"] in (-2014, -2015, -1102)
