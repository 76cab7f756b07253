"""One market-stream WebSocket (picows) on Binance's combined endpoint ``/stream?streams=...``.

The URL carries the first ``url_streams`` streams; the rest are added with SUBSCRIBE messages,
paced so that everything this side sends (SUBSCRIBE, PONG) stays under Binance's 5 incoming
messages per second per connection. PINGs are answered at once with their payload. Data frames
go to ``on_frame(conn, payload, recv_ts_ns, recv_mono_ns, last_in_buffer)`` straight from
picows' callback; ``closed`` is set when the socket goes away, ``shutdown_notice`` when the
server announced ``serverShutdown``.

    conn = StreamConnection(ws_base_url, streams, on_frame, messages_per_s=4)
    await conn.open()                    # connects and subscribes everything (paced)
    await conn.closed.wait()             # or conn.close()
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable

import orjson
from picows import WSListener, WSMsgType, WSTransport, ws_connect

log = logging.getLogger(__name__)

_ids = itertools.count(1)
FrameHandler = Callable[["StreamConnection", bytes, int, int, bool], None]


class Pacer:
    """At most ``per_s`` messages in any 1-second window (a sliding window of send times)."""

    def __init__(self, per_s: float, clock=time.monotonic) -> None:
        self.per_s = max(1, int(per_s))
        self.sent: deque[float] = deque()
        self.clock = clock

    def _trim(self, now: float) -> None:
        while self.sent and now - self.sent[0] >= 1.0:
            self.sent.popleft()

    def delay(self) -> float:
        now = self.clock()
        self._trim(now)
        if len(self.sent) < self.per_s:
            return 0.0
        return 1.0 - (now - self.sent[0]) + 0.001

    def note(self) -> None:
        self.sent.append(self.clock())

    async def wait(self) -> None:
        while (d := self.delay()) > 0.0:
            await asyncio.sleep(d)
        self.note()

    def in_last_second(self) -> int:
        self._trim(self.clock())
        return len(self.sent)


class _Listener(WSListener):
    def __init__(self, conn: StreamConnection) -> None:
        self.conn = conn
        self.parts: list[bytes] | None = None     # a message split over several frames

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.conn.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame) -> None:
        conn = self.conn
        mt = frame.msg_type
        if (mt == WSMsgType.TEXT or mt == WSMsgType.BINARY) and frame.fin:
            conn.on_frame(conn, frame.get_payload_as_bytes(), time.time_ns(), time.monotonic_ns(),
                          frame.last_in_buffer)
        elif mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            self.parts = [frame.get_payload_as_bytes()]        # a fragmented message begins
        elif mt == WSMsgType.CONTINUATION:
            if self.parts is not None:
                self.parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    data, self.parts = b"".join(self.parts), None
                    conn.on_frame(conn, data, time.time_ns(), time.monotonic_ns(), frame.last_in_buffer)
        elif mt == WSMsgType.PING:
            # Binance pings every 20 s and drops us without a pong within a minute.
            transport.send_pong(frame.get_payload_as_bytes())
            conn.pacer.note()
            conn.pongs += 1
            conn.last_rx_ns = time.monotonic_ns()
            if conn.on_pong is not None:
                conn.on_pong()
        elif mt == WSMsgType.CLOSE:
            conn.close_code = frame.get_close_code()
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.conn._disconnected()


class StreamConnection:
    def __init__(self, base_url: str, streams: list[str], on_frame: FrameHandler, *, messages_per_s: float = 4.0,
                 url_streams: int = 100, subscribe_batch: int = 200, handshake_timeout_s: float = 10.0,
                 shard: int = 0) -> None:
        self.id = next(_ids)
        self.shard = shard
        self.base_url = base_url.rstrip("/")
        self.streams = list(streams)
        self.on_frame = on_frame
        self.pacer = Pacer(messages_per_s)
        self.url_streams = url_streams
        self.subscribe_batch = subscribe_batch
        self.handshake_timeout_s = handshake_timeout_s
        self.transport: WSTransport | None = None
        self.closed = asyncio.Event()
        self.shutdown_notice = asyncio.Event()
        self.opened_mono = 0.0
        self.last_rx_ns = 0                    # CLOCK_MONOTONIC of the last frame (the watchdog reads it)
        self.pongs = 0
        self.subscribe_messages = 0
        self.subscribe_errors = 0
        self.close_code = None
        self._pending_ids: set[int] = set()
        self.on_closed: Callable[[], None] | None = None
        self.on_pong: Callable[[], None] | None = None

    def url(self) -> str:
        first = self.streams[: self.url_streams]
        return f"{self.base_url}/stream?streams={'/'.join(first)}"

    async def open(self) -> None:
        """Connect and subscribe every stream; raises on failure (the caller backs off)."""
        transport, _ = await ws_connect(lambda: _Listener(self), self.url(),
                                        websocket_handshake_timeout=self.handshake_timeout_s,
                                        enable_auto_pong=False, max_frame_size=64 << 20)
        self.transport = transport
        self.opened_mono = time.monotonic()
        self.last_rx_ns = time.monotonic_ns()
        rest = self.streams[self.url_streams:]
        for i in range(0, len(rest), self.subscribe_batch):
            await self.pacer.wait()
            if self.closed.is_set():
                raise ConnectionError("stream connection closed while subscribing")
            req_id = next(_ids)
            self._pending_ids.add(req_id)
            self.transport.send(WSMsgType.TEXT, orjson.dumps(
                {"method": "SUBSCRIBE", "params": rest[i:i + self.subscribe_batch], "id": req_id}))
            self.subscribe_messages += 1

    def on_control(self, doc: dict) -> None:
        """A reply to SUBSCRIBE: ``{"result": null, "id": n}`` or ``{"error": {...}, "id": n}``."""
        self._pending_ids.discard(doc.get("id"))
        if doc.get("error") is not None:
            self.subscribe_errors += 1
            log.error("stream connection %d: SUBSCRIBE refused: %s", self.id, doc["error"])

    def _disconnected(self) -> None:
        self.closed.set()
        if self.on_closed is not None:
            self.on_closed()

    def close(self) -> None:
        if self.transport is not None and not self.closed.is_set():
            with contextlib.suppress(Exception):     # closing a dying socket may fail
                self.transport.send_close()
            self.transport.disconnect()

    def age_s(self) -> float:
        return time.monotonic() - self.opened_mono if self.opened_mono else 0.0
