"""Market-stream protocol: payload shapes, raw vs combined, live subscriptions, limits, pings, faults."""
from __future__ import annotations

import asyncio
import re

import aiohttp
import orjson
import pytest

pytestmark = pytest.mark.timeout(60)

DECIMAL = re.compile(r"^[0-9]+\.[0-9]{8}$")


def _json(doc) -> str:
    return orjson.dumps(doc).decode()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _messages(url: str, n: int, **kw) -> list[dict]:
    out = []
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, **kw) as ws:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    out.append(orjson.loads(msg.data))
                    if len(out) >= n:
                        break
    return out


def test_raw_and_combined_payloads_have_binance_shapes(sim_server):
    ticker = run(_messages(f"{sim_server.ws_url}/ws/btcusdt@bookTicker", 3))
    assert all(set(m) == {"u", "s", "b", "B", "a", "A"} and m["s"] == "BTCUSDT" for m in ticker)
    assert all(DECIMAL.match(m[k]) for m in ticker for k in "bBaA")
    assert ticker[0]["u"] < ticker[1]["u"] < ticker[2]["u"]
    assert float(ticker[0]["b"]) < float(ticker[0]["a"])

    names = "ethbtc@trade/ethbtc@depth5@100ms/ethbtc@depth@100ms/btcusdt@depth20"
    msgs = run(_messages(f"{sim_server.ws_url}/stream?streams={names}", 12))
    by_stream = {}
    for m in msgs:
        assert set(m) == {"stream", "data"}
        by_stream.setdefault(m["stream"], []).append(m["data"])
    partial = by_stream["ethbtc@depth5@100ms"][0]
    assert set(partial) == {"lastUpdateId", "bids", "asks"} and len(partial["bids"]) == len(partial["asks"]) == 5
    diff = by_stream["ethbtc@depth@100ms"][0]
    assert set(diff) == {"e", "E", "s", "U", "u", "b", "a"} and diff["e"] == "depthUpdate" and diff["U"] <= diff["u"]
    assert all(DECIMAL.match(p) and DECIMAL.match(q) for p, q in diff["b"] + diff["a"])
    if "ethbtc@trade" in by_stream:
        trade = by_stream["ethbtc@trade"][0]
        assert set(trade) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"} and trade["e"] == "trade"


def test_live_subscribe_list_properties_and_errors(sim_server):
    async def scenario():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{sim_server.ws_url}/ws") as ws:
                async def ask(req):
                    await ws.send_str(orjson.dumps(req).decode() if isinstance(req, dict) else req)
                    while True:
                        doc = orjson.loads((await ws.receive()).data)
                        if "id" in doc:
                            return doc
                        await asyncio.sleep(0)
                assert await ask({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@bookTicker"], "id": 1}) \
                    == {"result": None, "id": 1}
                assert await ask({"method": "LIST_SUBSCRIPTIONS", "id": 2}) == \
                    {"result": ["btcusdt@bookTicker", "btcusdt@trade"], "id": 2}
                await asyncio.sleep(0.25)                     # keep under 5 incoming messages a second
                assert await ask({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": "x1"}) == \
                    {"result": None, "id": "x1"}
                assert await ask({"method": "GET_PROPERTY", "params": ["combined"], "id": 3}) == \
                    {"result": False, "id": 3}
                await asyncio.sleep(1.0)
                assert await ask({"method": "SET_PROPERTY", "params": ["combined", True], "id": 4}) == \
                    {"result": None, "id": 4}
                while True:                                   # now wrapped
                    doc = orjson.loads((await ws.receive()).data)
                    if "stream" in doc:
                        assert doc["stream"] == "btcusdt@bookTicker"
                        break
                bad = await ask({"method": "SUBSCRIB", "params": [], "id": 5})
                assert bad["error"]["code"] == 2 and "unknown variant `SUBSCRIB`" in bad["error"]["msg"]
                await asyncio.sleep(1.0)
                assert (await ask({"method": "GET_PROPERTY", "params": ["colour"], "id": 6}))["error"] == \
                    {"code": 0, "msg": "Unknown property"}
                assert (await ask({"method": "SUBSCRIBE", "params": ["BTCUSDT@trade"], "id": 7}))["error"]["code"] == 2
                bad_json = await ask("{not json")
                assert bad_json["error"]["code"] == 3 and bad_json["id"] is None
    run(scenario())


def test_invalid_stream_in_url_is_refused(sim_server):
    async def scenario():
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(f"{sim_server.ws_url}/ws/nosuchsym@trade")
            assert err.value.status == 400
    run(scenario())


def test_stream_count_limit_and_incoming_message_limit(sim_factory):
    sim = sim_factory({"limits.max_streams_per_connection": 3})

    async def scenario():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{sim.ws_url}/stream?streams=btcusdt@trade/ethbtc@trade") as ws:
                await ws.send_str(_json({"method": "SUBSCRIBE", "id": 1,
                                                  "params": ["solbnb@trade", "ltcbtc@trade"]}))
                while True:
                    doc = orjson.loads((await ws.receive()).data)
                    if doc.get("id") == 1:
                        assert doc["error"]["code"] == 2 and "too many streams" in doc["error"]["msg"]
                        break
            async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
                for i in range(7):                        # more than 5 incoming messages in a second
                    await ws.send_str(_json({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                answers = 0
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        break
                    answers += 1
                assert ws.closed and answers == 5        # the sixth message got the connection dropped
    run(scenario())


def test_server_pings_and_drops_a_client_that_does_not_pong(sim_factory):
    sim = sim_factory({"limits.ping_interval_s": 0.3, "limits.pong_timeout_s": 0.9})

    async def scenario():
        async with aiohttp.ClientSession() as http:
            # autoping answers every ping with its payload: the connection stays up
            async with http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker", autoping=True) as good:
                deadline = asyncio.get_running_loop().time() + 2.0
                while asyncio.get_running_loop().time() < deadline:
                    msg = await good.receive()
                    assert msg.type is aiohttp.WSMsgType.TEXT
                assert not good.closed
            # no pongs: dropped once the oldest ping is older than pong_timeout_s
            async with http.ws_connect(f"{sim.ws_url}/ws/btcusdt@bookTicker", autoping=False) as mute:
                pings = 0
                async for msg in mute:
                    if msg.type is aiohttp.WSMsgType.PING:
                        pings += 1
                    elif msg.type is not aiohttp.WSMsgType.TEXT:
                        break
                assert mute.closed and pings >= 2
    run(scenario())


def test_server_shutdown_event_then_close(sim_server):
    async def scenario():
        async with aiohttp.ClientSession() as http:
            raw = await http.ws_connect(f"{sim_server.ws_url}/ws/btcusdt@trade")
            combined = await http.ws_connect(f"{sim_server.ws_url}/stream?streams=btcusdt@trade")
            await asyncio.sleep(0.1)
            loop = asyncio.get_running_loop()
            closing = loop.run_in_executor(None, lambda: sim_server.control.server_shutdown(grace_s=0.3))
            seen = {}
            for name, ws in (("raw", raw), ("combined", combined)):
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        doc = orjson.loads(msg.data)
                        if "serverShutdown" in msg.data:
                            seen[name] = doc
                    else:
                        break
                assert ws.closed and ws.close_code == 1001
            assert await closing == 2
            assert seen["raw"]["e"] == "serverShutdown" and isinstance(seen["raw"]["E"], int)
            assert seen["combined"]["stream"] == "!serverShutdown"
            assert seen["combined"]["data"]["e"] == "serverShutdown"
    run(scenario())


def test_abrupt_close_and_duplicates(sim_server):
    async def scenario():
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{sim_server.ws_url}/ws/btcusdt@bookTicker")
            await ws.receive()
            sim_server.control.duplicate_messages("btcusdt@bookTicker", 1)
            ids = [orjson.loads((await ws.receive()).data)["u"] for _ in range(4)]
            assert len(ids) - len(set(ids)) == 1                      # exactly one message came twice
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: sim_server.control.close_stream_connections(abort=True))
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
            assert ws.closed and ws.close_code != 1000
    run(scenario())


@pytest.mark.parametrize("drop", [True, False])
def test_stall_drops_or_delays_a_stream(sim_server, drop):
    async def scenario():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{sim_server.ws_url}/ws/btcusdt@depth@100ms") as ws:
                prev = orjson.loads((await ws.receive()).data)
                sim_server.control.stall_streams(0.5, drop=drop)
                continuous = True
                for _ in range(8):
                    diff = orjson.loads((await ws.receive()).data)
                    continuous &= diff["U"] == prev["u"] + 1
                    prev = diff
                # dropped output leaves a hole in the update ids; held output arrives late but whole
                assert continuous is (not drop)
    run(scenario())


def test_ws_path_with_an_id_then_subscribe_as_ccxt_pro_does(sim_server):
    """ccxt.pro opens ``/ws/<n>`` (no stream name: no "@") and subscribes; Binance accepts both."""
    async def scenario():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{sim_server.ws_url}/ws/0") as ws:
                await ws.send_str(_json({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
                assert orjson.loads((await ws.receive()).data) == {"result": [], "id": 1}
                await ws.send_str(_json({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 2}))
                assert orjson.loads((await ws.receive()).data) == {"result": None, "id": 2}
                ticker = orjson.loads((await ws.receive()).data)
                assert ticker["s"] == "BTCUSDT" and set(ticker) == {"u", "s", "b", "B", "a", "A"}
    run(scenario())
