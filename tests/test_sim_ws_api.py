"""WebSocket API: signed requests (HMAC, Ed25519), session logon, user data stream events."""
from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import orjson
import pytest

from ctrader.venue.signing import Signer

pytestmark = pytest.mark.timeout(60)


class ApiConnection:
    """Requests matched to responses by id; user-data events collected as they come."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.event_arrived = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            doc = orjson.loads(msg.data)
            if "event" in doc:
                self.events.append(doc)
                self.event_arrived.set()
            else:
                self.waiting.pop(doc["id"]).set_result(doc)

    async def call(self, method: str, params: dict | None = None, signer: Signer | None = None,
                   api_key: bool = True) -> dict:
        req_id = next(self.ids)
        params = dict(params or {})
        if signer is not None:
            params.setdefault("timestamp", int(time.time() * 1000))
            params = signer.signed_ws_params(params, include_api_key=api_key)
        elif "timestamp" in params and params["timestamp"] is None:
            params["timestamp"] = int(time.time() * 1000)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[req_id] = fut
        await self.ws.send_str(orjson.dumps({"id": req_id, "method": method, "params": params}).decode())
        return await asyncio.wait_for(fut, 10)

    async def next_events(self, n: int) -> list[dict]:
        while len(self.events) < n:
            self.event_arrived.clear()
            await asyncio.wait_for(self.event_arrived.wait(), 10)
        out, self.events = self.events[:n], self.events[n:]
        return out


def run_with(sim, scenario, query: str = ""):
    async def main():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(sim.ws_api_url + query) as ws:
                conn = ApiConnection(ws)
                try:
                    await scenario(conn)
                finally:
                    conn.reader.cancel()
    asyncio.run(asyncio.wait_for(main(), 30))


LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
         "price": "50000.00"}


def test_order_place_with_hmac_signature(sim_server, sim_account):
    async def scenario(api: ApiConnection):
        resp = await api.call("order.place", LIMIT, sim_account.hmac_signer())
        assert resp["status"] == 200 and resp["result"]["status"] == "NEW"
        assert resp["result"]["price"] == "50000.00000000" and resp["result"]["fills"] == []
        kinds = [(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in resp["rateLimits"]]
        assert kinds == [("ORDERS", "SECOND", 10), ("ORDERS", "DAY", 1), ("REQUEST_WEIGHT", "MINUTE", 1)]
        assert resp["rateLimits"][0]["count"] == 1
        order_id = resp["result"]["orderId"]
        status = await api.call("order.status", {"symbol": "BTCUSDT", "orderId": order_id}, sim_account.hmac_signer())
        assert status["result"]["isWorking"] is True
        bad = await api.call("order.place", LIMIT, Signer(sim_account.api_key, secret="wrong"))
        assert bad["status"] == 400 and bad["error"] == {"code": -1022, "msg": "Signature for this request is not valid."}
        unsigned = await api.call("order.place", dict(LIMIT, timestamp=None))
        assert unsigned["error"]["code"] == -1102 and "'apiKey'" in unsigned["error"]["msg"]
        unknown = await api.call("order.teleport", {})
        assert unknown["status"] == 400 and unknown["error"]["code"] == -1020
        quiet = await api.call("time", {"returnRateLimits": False})
        assert "rateLimits" not in quiet and quiet["result"]["serverTime"] > 0
    run_with(sim_server, scenario)


def test_session_logon_with_ed25519_then_unsigned_requests(sim_server, sim_account):
    async def scenario(api: ApiConnection):
        hmac_logon = await api.call("session.logon", {}, sim_account.hmac_signer())
        assert hmac_logon["status"] == 401 and hmac_logon["error"]["code"] == -1002   # Ed25519 keys only
        logon = await api.call("session.logon", {}, sim_account.ed25519_signer())
        assert logon["status"] == 200 and logon["result"]["apiKey"] == sim_account.ed25519_api_key
        assert logon["result"]["authorizedSince"] >= logon["result"]["connectedSince"]
        placed = await api.call("order.place", dict(LIMIT, timestamp=None))
        assert placed["status"] == 200, placed
        opened = await api.call("openOrders.status", {"symbol": "BTCUSDT", "timestamp": None})
        assert [o["orderId"] for o in opened["result"]] == [placed["result"]["orderId"]]
        account = await api.call("account.status", {"timestamp": None})
        usdt = next(b for b in account["result"]["balances"] if b["asset"] == "USDT")
        assert usdt["locked"] == "500.00000000"
        canceled = await api.call("order.cancel", {"symbol": "BTCUSDT", "orderId": placed["result"]["orderId"],
                                                   "timestamp": None})
        assert canceled["result"]["status"] == "CANCELED"
        stale = await api.call("account.status", {"timestamp": int(time.time() * 1000) - 60_000})
        assert stale["error"]["code"] == -1021
        out = await api.call("session.logout")
        assert out["result"]["apiKey"] is None
        again = await api.call("account.status", {"timestamp": None})
        assert again["error"]["code"] == -1102
    run_with(sim_server, scenario, "?returnRateLimits=false")


def test_user_data_stream_delivers_execution_reports_and_balances(sim_server, sim_account):
    # The market stands still: a market trade of the model would otherwise be free to hit our
    # maker order at the best ask before our own taker does (seen on a loaded machine).
    sim_server.control.pause()

    async def scenario(api: ApiConnection):
        sub = await api.call("userDataStream.subscribe.signature", {}, sim_account.hmac_signer())
        assert sub["status"] == 200 and sub["result"] == {"subscriptionId": 0}
        again = await api.call("userDataStream.subscribe.signature", {}, sim_account.hmac_signer())
        assert again["error"]["code"] == -2035
        book = await api.call("depth", {"symbol": "ETHUSDT", "limit": 5})
        ask = book["result"]["asks"][0][0]
        sell = await api.call("order.place", {"symbol": "ETHUSDT", "side": "SELL", "type": "LIMIT",
                                              "timeInForce": "GTC", "quantity": "1", "price": ask,
                                              "newClientOrderId": "maker-1"}, sim_account.hmac_signer())
        assert sell["result"]["status"] == "NEW"
        new, position = await api.next_events(2)
        report = new["event"]
        assert new["subscriptionId"] == 0 and report["e"] == "executionReport"
        assert (report["x"], report["X"], report["c"], report["S"], report["q"]) == \
            ("NEW", "NEW", "maker-1", "SELL", "1.00000000")
        assert report["w"] is True and report["N"] is None and report["t"] == -1
        assert position["event"]["e"] == "outboundAccountPosition"
        assert {b["a"]: b["l"] for b in position["event"]["B"]}["ETH"] == "1.00000000"
        # cross our own ask: both the taker and the maker side report their trade
        taker = await api.call("order.place", {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET",
                                               "quantity": "0.5", "newOrderRespType": "RESULT"},
                               sim_account.hmac_signer())
        assert taker["result"]["status"] == "FILLED" and "fills" not in taker["result"]
        events = []
        while not any(e["event"]["e"] == "outboundAccountPosition" for e in events):
            events += await api.next_events(1)
        reports = [e["event"] for e in events if e["event"]["e"] == "executionReport"]
        assert reports[0]["x"] == "NEW" and reports[0]["o"] == "MARKET"
        fills = [r for r in reports if r["x"] == "TRADE"]
        assert sum(float(r["l"]) for r in fills if not r["m"]) == 0.5
        maker = [r for r in fills if r["m"]]
        if maker:                                 # our ask was at the top: we traded with ourselves
            assert maker[0]["c"] == "maker-1" and maker[0]["N"] == "USDT" and maker[0]["X"] == "PARTIALLY_FILLED"
        assert all(r["I"] > 0 and r["t"] > 0 and r["L"] != "0.00000000" for r in fills)
        canceled = await api.call("order.cancel", {"symbol": "ETHUSDT", "origClientOrderId": "maker-1"},
                                  sim_account.hmac_signer())
        assert canceled["result"]["status"] == "CANCELED"
        cancel_report = (await api.next_events(1))[0]["event"]
        assert (cancel_report["x"], cancel_report["C"]) == ("CANCELED", "maker-1")
        off = await api.call("userDataStream.unsubscribe")
        assert off["status"] == 200
    run_with(sim_server, scenario)


def test_logon_subscription_and_order_faults(sim_server, sim_account):
    async def scenario(api: ApiConnection):
        await api.call("session.logon", {}, sim_account.ed25519_signer())
        sub = await api.call("userDataStream.subscribe")
        assert sub["result"] == {"subscriptionId": 0}
        sim_server.control.timeout_orders(count=1)
        lost = await api.call("order.place", dict(LIMIT, timestamp=None))
        assert lost["status"] == 503 and lost["error"]["code"] == -1007
        events = await api.next_events(2)                     # it executed all the same
        assert events[0]["event"]["x"] == "NEW"
        sim_server.control.fail_requests(count=1, status=503, match="order.")
        busy = await api.call("order.place", dict(LIMIT, timestamp=None))
        assert busy["status"] == 503 and busy["error"]["code"] == -1008
        status = await api.call("session.status")
        assert status["result"]["userDataStream"] is True
        listed = await api.call("session.subscriptions")
        assert listed["result"] == [{"subscriptionId": 0}]
    run_with(sim_server, scenario)
