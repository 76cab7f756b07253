"""WebSocket plumbing shared by market streams and the WS API.

The handshake and the reading side are aiohttp's (``WebSocketResponse`` with ``autoping=False``,
so that our code sees every PING and PONG: Binance counts them against the 5 messages/s limit and
requires a pong carrying the ping's payload). The writing side bypasses aiohttp: server frames
are unmasked, so a text frame is a 2-10 byte header plus the payload, and writing pre-built
frames straight to the transport -- many per ``write`` call -- is what lets one core push tens of
thousands of messages a second. Nothing is compressed (``compress=False``), so raw frames and
aiohttp's own close frames can share the connection.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from aiohttp import WSMsgType, web

from ctrader.sim.kstamps import StampingSocket, TxStamp, socket_of

log = logging.getLogger(__name__)

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One unmasked, final server frame."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


class WsConnection:
    """One accepted WebSocket: raw frame output, server pings, pong deadline, close."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, *, ping_interval_s: float,
                 pong_timeout_s: float, kind: str) -> None:
        self.ws = ws
        self.transport = request.transport
        self.sock: StampingSocket | None = socket_of(request.transport)
        self.tag = self.sock.tag if self.sock is not None else "main"     # the listener it came in on
        self.peer = request.remote or "?"
        self.kind = kind
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.connected_at_ms = int(time.time() * 1000)
        self.pending: list[bytes] = []
        self.closed = False
        self.close_reason = ""
        self._pings: dict[bytes, float] = {}      # outstanding ping payload -> monotonic send time
        self._ping_seq = 0
        self._tasks: list[asyncio.Task] = []
        self._stamps_after_write: list[TxStamp] = []     # only without a StampingSocket

    # --- output -------------------------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        """Write one text message now."""
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(payload))

    def flush(self) -> int:
        """Write the queued frames in one call; returns how many there were."""
        pending = self.pending
        if not pending:
            return 0
        self.pending = []
        if not self.closed and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(pending))
        if self._stamps_after_write:
            now = time.monotonic_ns()
            for stamp in self._stamps_after_write:
                stamp.user_ns = now
            self._stamps_after_write.clear()
        return len(pending)

    def stamp_next_write(self, stamp: TxStamp) -> None:
        """Fill ``stamp`` when the next write to this client leaves (kernel TX stamp when the socket
        gives one, and the user-space time right after the ``send``)."""
        if self.sock is not None:
            self.sock.stamp_next_write(stamp)
        else:
            self._stamps_after_write.append(stamp)

    def buffered(self) -> int:
        t = self.transport
        return t.get_write_buffer_size() if t is not None and not t.is_closing() else 0

    # --- pings --------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._ping_loop()))

    async def _ping_loop(self) -> None:
        tick = min(self.ping_interval_s, self.pong_timeout_s) / 4
        last_ping = time.monotonic()
        while not self.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._pings and now - min(self._pings.values()) > self.pong_timeout_s:
                log.info("%s %s: no pong within %.1fs, disconnecting", self.kind, self.peer, self.pong_timeout_s)
                self.abort("pong timeout")
                return
            if now - last_ping >= self.ping_interval_s:
                self._ping_seq += 1
                payload = str(int(time.time() * 1000) * 1000 + self._ping_seq % 1000).encode()
                self._pings[payload] = now
                last_ping = now
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(frame(payload, OP_PING))

    def on_pong(self, payload: bytes) -> None:
        """A pong answers the ping with the same payload (and any earlier one); others don't count."""
        sent = self._pings.get(bytes(payload))
        if sent is not None:
            self._pings = {p: t for p, t in self._pings.items() if t > sent}

    def on_ping(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(bytes(payload), OP_PONG))

    # --- closing ------------------------------------------------------------------------------

    def abort(self, reason: str) -> None:
        """Drop the TCP connection without a close handshake (what a dead peer or a kill looks like)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if self.transport is not None:
            self.transport.abort()

    async def close(self, code: int = 1000, reason: str = "", timeout_s: float = 2.0) -> None:
        """Close with a close frame; drop the connection if the peer does not answer in time."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason or f"closed ({code})"
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), timeout_s)
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            if self.transport is not None:
                self.transport.abort()

    def stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()


async def read_loop(conn: WsConnection, on_text: Callable[[str], None],
                    on_incoming: Callable[[], bool] | None = None) -> None:
    """Serve ``conn`` until it closes: texts to ``on_text``, pings answered, pongs recorded.

    ``on_incoming`` is called for every text, ping and pong; returning False drops the connection
    (the market streams' 5 messages/s limit).
    """
    ws = conn.ws
    try:
        while not conn.closed:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
            if on_incoming is not None and not on_incoming():
                conn.abort("too many incoming messages")
                break
            if msg.type is WSMsgType.TEXT:
                on_text(msg.data)
            elif msg.type is WSMsgType.BINARY:     # requests must be text frames; read them anyway
                on_text(msg.data.decode("utf-8", "replace"))
            elif msg.type is WSMsgType.PING:
                conn.on_ping(msg.data)
            elif msg.type is WSMsgType.PONG:
                conn.on_pong(msg.data)
    except ConnectionError:
        pass
    finally:
        conn.closed = True
        conn.stop_tasks()


def new_response() -> web.WebSocketResponse:
    # autoping off: we answer pings ourselves and must see pongs; no compression: raw frames.
    return web.WebSocketResponse(autoping=False, compress=False, timeout=2.0, max_msg_size=1 << 20)
