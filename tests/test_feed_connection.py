"""One market-stream socket (picows) against the simulator: paced SUBSCRIBEs, reconnect backoff."""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from ctrader.feed.connection import StreamConnection
from ctrader.feed.links import backoff_s
from tests.feed_harness import FeedRun

pytestmark = pytest.mark.timeout(60)

SYMBOLS = ["BTCUSDT", "ETHBTC", "ETHUSDT", "BNBUSDT", "SOLBNB", "DOGEUSDT"]


def test_subscribes_are_paced_below_the_venue_limit(sim_factory):
    # The simulator, like Binance, drops a socket that sends more than 5 messages in a second.
    sim = sim_factory({"market.speed": 5, "limits.ws_messages_per_s": 5})
    streams = [f"{s.lower()}@{k}" for s in SYMBOLS for k in ("bookTicker", "trade")]
    seen: set[str] = set()

    def on_frame(conn, data, ts, mono, last):
        doc = orjson.loads(data)
        if "stream" in doc:
            seen.add(doc["stream"])
        else:
            conn.on_control(doc)

    async def main():
        # 2 a second against the venue's 5: the simulator counts messages when its loop reads
        # them, and on a loaded machine a stalled loop reads a second's worth or more at once
        conn = StreamConnection(sim.ws_url, streams, on_frame, messages_per_s=2, url_streams=1,
                                subscribe_batch=1)
        t0 = time.monotonic()
        await conn.open()                              # 11 SUBSCRIBE messages, at most 2 a second
        took = time.monotonic() - t0
        deadline = time.monotonic() + 20
        while len(seen) < len(streams) and time.monotonic() < deadline and not conn.closed.is_set():
            await asyncio.sleep(0.05)
        alive = not conn.closed.is_set()
        conn.close()
        await asyncio.wait_for(conn.closed.wait(), 5)
        return conn, took, alive

    conn, took, alive = asyncio.run(main())
    assert conn.subscribe_messages == 11 and conn.subscribe_errors == 0
    assert took >= 4.0                                 # 11 messages at 2/s need 5 s
    assert alive, "the simulator dropped the socket: too many messages per second"
    assert seen == set(streams)


def test_unreachable_venue_backs_off_and_keeps_books_stale(sim_factory):
    sim = sim_factory({"market.speed": 0})
    run = FeedRun(sim, ["BTCUSDT"], feed={"reconnect_min_s": 0.05, "reconnect_max_s": 0.4})
    for link in run.engine.links:
        link.ws_url = "ws://127.0.0.1:9"              # nothing listens there
    t0 = time.monotonic()
    run.run(until=lambda r: r.engine.stats()["connect_failures"] >= 6, timeout_s=20)
    took = time.monotonic() - t0
    stats = run.engine.stats()
    assert stats["connect_failures"] >= 6 and stats["connects"] == 0
    assert took >= 0.05 * 0.5 * (1 + 2 + 4 + 8) / 2        # delays grew (with jitter in [0.5, 1])
    assert stats["stale_symbols"] == 1 and stats["resyncs"] == 0


def test_backoff_grows_exponentially_with_jitter():
    assert backoff_s(0, 0.5, 30) == 0.0
    for attempt, full in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (20, 30.0)):
        samples = {backoff_s(attempt, 0.5, 30) for _ in range(50)}
        assert all(full * 0.5 <= d <= full for d in samples) and len(samples) > 1


def test_fragmented_messages_pings_and_close_from_a_bare_server():
    """A venue may split a message over frames and ping at any time: the socket copes with both."""
    from picows import WSListener, WSMsgType, ws_create_server

    payload = b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}}'
    got: list[bytes] = []
    pongs: list[bytes] = []

    class Venue(WSListener):
        def on_ws_connected(self, transport):
            transport.send(WSMsgType.TEXT, payload[:20], fin=False)
            transport.send_ping(b"are you there")
            transport.send(WSMsgType.CONTINUATION, payload[20:50], fin=False)
            transport.send(WSMsgType.CONTINUATION, payload[50:], fin=True)
            transport.send(WSMsgType.TEXT, payload)
            transport.send_close()

        def on_ws_frame(self, transport, frame):
            if frame.msg_type == WSMsgType.PONG:
                pongs.append(frame.get_payload_as_bytes())

    async def main():
        server = await ws_create_server(lambda request: Venue(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = StreamConnection(f"ws://127.0.0.1:{port}", ["btcusdt@bookTicker"],
                                lambda c, data, ts, mono, last: got.append(data))
        await conn.open()
        await asyncio.wait_for(conn.closed.wait(), 5)       # the venue closed: we notice
        server.close()
        return conn

    conn = asyncio.run(main())
    assert got == [payload, payload]
    assert pongs == [b"are you there"] and conn.pongs == 1
