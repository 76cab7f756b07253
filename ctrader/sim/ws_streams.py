"""Market streams: ``/ws/<stream>`` (raw) and ``/stream?streams=a/b/c`` (combined).

Streams served (symbols lowercase, as on Binance):

* ``<symbol>@bookTicker`` -- on every change of the best bid/ask price or quantity;
* ``<symbol>@trade`` -- every trade;
* ``<symbol>@depth`` / ``@depth@1000ms`` / ``@depth@100ms`` -- diffs over 1000 or 100 ms of
  market time, ``U``/``u`` continuous with each other and with the REST snapshot's
  ``lastUpdateId`` (one update id per book event, see ``MatchingEngine.commit``);
* ``<symbol>@depth5|10|20`` (``@1000ms`` / ``@100ms``) -- top-N snapshots at the same periods.

``/ws`` alone, or ``/ws/<id>`` with a path that is not a stream name (no ``@``: ccxt.pro opens
``/ws/0``, ``/ws/1``, ... and subscribes), opens a connection with no stream, as Binance does.
Live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` /
``GET_PROPERTY`` with Binance's error answers; at most ``max_streams_per_connection`` streams;
more than ``ws_messages_per_s`` incoming messages (text, ping, pong) in a second drops the
connection; server pings every ``ping_interval_s`` and a connection that does not answer
within ``pong_timeout_s`` is dropped.

A payload is encoded once per event and framed once per form (raw, combined); connections
collect frames and ``flush`` writes each connection's batch with a single ``transport.write``.
Nothing is encoded for a stream nobody listens to.

During a race (``ctrader.sim.race``) ``race_symbols`` names the symbols of open dislocations:
the first frame of such a symbol to each connection gets its write stamped.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from ctrader.config.schema import SimLimitsConfig
from ctrader.sim import encode
from ctrader.sim.book import Book
from ctrader.sim.clock import SimClock
from ctrader.sim.faults import Faults
from ctrader.sim.kstamps import TxStamp
from ctrader.sim.wsconn import WsConnection, frame, new_response, read_loop

log = logging.getLogger(__name__)

_STREAM_RE = re.compile(r"^([a-z0-9]+)@(bookTicker|trade|depth(5|10|20)?(@(100|1000)ms)?)$")
_ID_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
_METHODS = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"


class StreamError(ValueError):
    """A control message or stream name Binance would refuse: ``{"error":{"code","msg"}}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class StreamConnection(WsConnection):
    def __init__(self, *args: Any, combined: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.combined = combined
        self.streams: set[str] = set()
        self.incoming: deque[float] = deque()
        self.held: list[bytes] = []     # frames kept back during a stall that releases them later


class Channel:
    """One stream name and the connections listening to it, split by raw / combined form."""
    __slots__ = ("name", "symbol", "kind", "levels", "interval_ms", "raw", "combined", "prefix",
                 "bids", "asks", "first_id", "next_emit", "held", "last_partial")

    def __init__(self, name: str, symbol: str, kind: str, levels: int = 0, interval_ms: int = 0) -> None:
        self.name = name
        self.symbol = symbol          # upper-case exchange symbol
        self.kind = kind              # bookTicker | trade | diff | partial
        self.levels = levels
        self.interval_ms = interval_ms
        self.raw: list[StreamConnection] = []
        self.combined: list[StreamConnection] = []
        self.bids: dict[int, int] = {}      # diff accumulator
        self.asks: dict[int, int] = {}
        self.first_id: int | None = None
        self.next_emit = 0
        self.held: bytes | None = None      # a diff held back by a reorder fault
        self.last_partial: tuple[int, bytes] | None = None

    def has_listeners(self) -> bool:
        return bool(self.raw or self.combined)


class SymbolStreams:
    """The channels of one symbol that have listeners (bookTicker/trade: at most one each)."""
    __slots__ = ("book_ticker", "trade", "periodic", "last_top")

    def __init__(self) -> None:
        self.book_ticker: Channel | None = None
        self.trade: Channel | None = None
        self.periodic: list[Channel] = []     # diff and partial-depth channels
        self.last_top: tuple | None = None


class StreamHub:
    """All market-stream connections and channels; the matching engine's market-data sink."""

    def __init__(self, books: dict[str, Book], clock: SimClock, limits: SimLimitsConfig, faults: Faults,
                 realtime: bool) -> None:
        self.books = books
        self.clock = clock
        self.limits = limits
        self.faults = faults
        self.realtime = realtime
        self.channels: dict[str, Channel] = {}
        self.by_symbol: dict[str, SymbolStreams] = {}
        self.connections: set[StreamConnection] = set()
        self.dirty: set[StreamConnection] = set()
        self.diff_observers: list = []           # callables(symbol, last_id) after a diff is emitted
        self.messages_sent = 0
        self.race_symbols: dict[str, Any] = {}   # symbol -> race.RaceDislocation still open
        self._next_emit = 1 << 62          # earliest end of any open diff/partial window
        self._lower_to_symbol = {s.lower(): s for s in books}

    # --- names and subscriptions ----------------------------------------------------------------

    def parse(self, name: str) -> Channel:
        """A new (unsubscribed) channel for stream ``name``, or StreamError if Binance has no such stream."""
        m = _STREAM_RE.match(name)
        symbol = self._lower_to_symbol.get(m.group(1)) if m else None
        if m is None or symbol is None:
            raise StreamError(2, f"Invalid request: invalid stream name `{name}`")
        kind = m.group(2)
        if kind in ("bookTicker", "trade"):
            return Channel(name, symbol, kind)
        interval = int(m.group(5) or 1000)
        if m.group(3):
            return Channel(name, symbol, "partial", int(m.group(3)), interval)
        return Channel(name, symbol, "diff", 0, interval)

    def subscribe(self, conn: StreamConnection, names: list[str]) -> None:
        channels = [self.channels[n] if n in self.channels else self.parse(n) for n in names]
        new = {c.name for c in channels} - conn.streams
        if len(conn.streams) + len(new) > self.limits.max_streams_per_connection:
            raise StreamError(2, f"Invalid request: too many streams; the limit is "
                                 f"{self.limits.max_streams_per_connection} per connection")
        for channel in channels:
            if channel.name in conn.streams:
                continue
            channel = self.channels.setdefault(channel.name, channel)
            if not channel.has_listeners():
                self._activate(channel)
            (channel.combined if conn.combined else channel.raw).append(conn)
            conn.streams.add(channel.name)

    def unsubscribe(self, conn: StreamConnection, names: list[str]) -> None:
        for name in names:
            if name not in conn.streams:
                continue
            channel = self.channels[name]
            (channel.combined if conn.combined else channel.raw).remove(conn)
            conn.streams.discard(name)
            if not channel.has_listeners():
                self._deactivate(channel)

    def set_combined(self, conn: StreamConnection, combined: bool) -> None:
        names = sorted(conn.streams)
        self.unsubscribe(conn, names)
        conn.combined = combined
        self.subscribe(conn, names)

    def _activate(self, channel: Channel) -> None:
        ss = self.by_symbol.setdefault(channel.symbol, SymbolStreams())
        if channel.kind == "bookTicker":
            ss.book_ticker = channel
            ss.last_top = None
        elif channel.kind == "trade":
            ss.trade = channel
        else:
            # A diff starts with the next book event: its U is then the first id the listener
            # has not seen, as the book-maintenance algorithm expects.
            channel.first_id = None
            channel.bids.clear()
            channel.asks.clear()
            now = self.clock.market_ms()
            channel.next_emit = (now // channel.interval_ms + 1) * channel.interval_ms
            self._next_emit = min(self._next_emit, channel.next_emit)
            ss.periodic.append(channel)

    def _deactivate(self, channel: Channel) -> None:
        ss = self.by_symbol.get(channel.symbol)
        if ss is not None:
            if ss.book_ticker is channel:
                ss.book_ticker = None
            elif ss.trade is channel:
                ss.trade = None
            elif channel in ss.periodic:
                ss.periodic.remove(channel)
            if ss.book_ticker is None and ss.trade is None and not ss.periodic:
                del self.by_symbol[channel.symbol]
        del self.channels[channel.name]

    # --- publishing -----------------------------------------------------------------------------

    def _publish(self, channel: Channel, payload: bytes) -> None:
        race = self.race_symbols
        if race and channel.symbol in race:
            self._stamp_first_frames(race[channel.symbol], channel)
        dirty = self.dirty
        if channel.raw:
            f = frame(payload)
            for conn in channel.raw:
                conn.pending.append(f)
                dirty.add(conn)
        if channel.combined:
            f = frame(encode.combined(channel.name, payload))
            for conn in channel.combined:
                conn.pending.append(f)
                dirty.add(conn)
        if self.faults.duplicates and self.faults.duplicate(channel.name):
            self._publish(channel, payload)

    @staticmethod
    def _stamp_first_frames(dislocation, channel: Channel) -> None:
        frames = dislocation.frames
        for conns in (channel.raw, channel.combined):
            for conn in conns:
                if conn not in frames:
                    stamp = TxStamp()
                    frames[conn] = (conn.tag, stamp)
                    conn.stamp_next_write(stamp)

    def book_update(self, book: Book, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        ss = self.by_symbol.get(book.symbol)
        if ss is None:
            return
        if ss.book_ticker is not None:
            top = book.top()
            if top != ss.last_top:
                ss.last_top = top
                self._publish(ss.book_ticker, encode.book_ticker(book.update_id, book.symbol, *top))
        for channel in ss.periodic:
            if channel.kind == "diff":
                if channel.first_id is None:
                    channel.first_id = book.update_id
                channel.bids.update(bids)
                channel.asks.update(asks)

    def trade(self, symbol: str, trade_id: int, price: int, qty: int, buyer_is_maker: bool, time_ms: int) -> None:
        ss = self.by_symbol.get(symbol)
        if ss is not None and ss.trade is not None:
            self._publish(ss.trade, encode.trade(time_ms, symbol, trade_id, price, qty, time_ms, buyer_is_maker))

    def on_market_time(self, now_ms: int) -> None:
        """Emit the diff and partial-depth windows that ended at or before ``now_ms``."""
        if now_ms < self._next_emit:
            return
        upcoming = 1 << 62
        for ss in list(self.by_symbol.values()):
            for channel in ss.periodic:
                if now_ms >= channel.next_emit:
                    channel.next_emit = (now_ms // channel.interval_ms + 1) * channel.interval_ms
                    if channel.kind == "diff":
                        self._emit_diff(channel, now_ms)
                    else:
                        self._emit_partial(channel)
                upcoming = min(upcoming, channel.next_emit)
        self._next_emit = upcoming

    def _emit_diff(self, channel: Channel, now_ms: int) -> None:
        if channel.first_id is None:
            return
        book = self.books[channel.symbol]
        bids = sorted(channel.bids.items(), reverse=True)
        asks = sorted(channel.asks.items())
        payload = encode.depth_update(now_ms, channel.symbol, channel.first_id, book.update_id, bids, asks)
        channel.first_id = None
        channel.bids.clear()
        channel.asks.clear()
        for observe in self.diff_observers:
            observe(channel.symbol, book.update_id)
        faults = self.faults
        if faults.drop_diff(channel.symbol):
            return
        if faults.reorder_diffs and faults.reorder_diff(channel.symbol):
            channel.held = payload      # sent after the next diff: the client sees them swapped
            return
        self._publish(channel, payload)
        if channel.held is not None:
            held, channel.held = channel.held, None
            self._publish(channel, held)

    def _emit_partial(self, channel: Channel) -> None:
        book = self.books[channel.symbol]
        cached = channel.last_partial
        if cached is None or cached[0] != book.update_id:
            bids, asks = book.bids.top(channel.levels), book.asks.top(channel.levels)
            cached = channel.last_partial = (book.update_id, encode.partial_depth(book.update_id, bids, asks))
        self._publish(channel, cached[1])

    def flush(self) -> None:
        """Write every connection's queued frames (one write each); drop clients too far behind."""
        if not self.dirty:
            return
        dirty, self.dirty = self.dirty, set()
        faults = self.faults
        limit = self.limits.max_send_buffer_kb * 1024
        for conn in dirty:
            if conn.closed:
                conn.pending.clear()
                continue
            if faults.stall_until:
                stalled, drop = faults.stalled(conn.streams)
                if stalled:
                    if not drop:
                        conn.held.extend(conn.pending)
                    conn.pending.clear()
                    continue
                if conn.held:
                    conn.pending[:0] = conn.held
                    conn.held = []
            self.messages_sent += conn.flush()
            if self.realtime and conn.buffered() > limit:
                log.warning("market stream %s is %d KB behind; disconnecting it", conn.peer, conn.buffered() // 1024)
                conn.abort("slow consumer")

    def max_buffered(self) -> int:
        return max((c.buffered() for c in self.connections), default=0)

    # --- connections ----------------------------------------------------------------------------

    def broadcast_shutdown(self) -> None:
        """Send ``serverShutdown`` to every stream connection (raw or wrapped as ``!serverShutdown``)."""
        payload = encode.server_shutdown(self.clock.server_ms())
        for conn in list(self.connections):
            conn.send(encode.combined("!serverShutdown", payload) if conn.combined else payload)

    async def close_all(self, code: int = 1000, reason: str = "", abort: bool = False) -> int:
        conns = list(self.connections)
        for conn in conns:
            conn.flush()
            if abort:
                conn.abort(reason or "closed by the simulator")
        if not abort:
            await asyncio.gather(*(c.close(code, reason) for c in conns), return_exceptions=True)
        return len(conns)

    def _control(self, conn: StreamConnection, text: str) -> None:
        """Answer one JSON control message (SUBSCRIBE, ...)."""
        req_id: Any = None
        try:
            try:
                req = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise StreamError(3, f"Invalid JSON: {exc}") from None
            if not isinstance(req, dict):
                raise StreamError(3, "Invalid JSON: expected an object")
            req_id = req.get("id")
            if not (req_id is None or (isinstance(req_id, int) and not isinstance(req_id, bool)
                                       and -2 ** 63 <= req_id < 2 ** 63)
                    or (isinstance(req_id, str) and _ID_RE.match(req_id))):
                req_id = None
                raise StreamError(2, "Invalid request: request ID must be an unsigned integer")
            if "method" not in req:
                raise StreamError(2, "Invalid request: missing field `method`")
            method, params = req["method"], req.get("params", [])
            if method == "SUBSCRIBE" or method == "UNSUBSCRIBE":
                if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                    raise StreamError(2, "Invalid request: params must be a list of stream names")
                (self.subscribe if method == "SUBSCRIBE" else self.unsubscribe)(conn, params)
                result: Any = None
            elif method == "LIST_SUBSCRIPTIONS":
                result = sorted(conn.streams)
            elif method in ("SET_PROPERTY", "GET_PROPERTY"):
                if not isinstance(params, list) or not params or not isinstance(params[0], str):
                    raise StreamError(2, "Invalid request: property name must be a string")
                if params[0] != "combined":
                    raise StreamError(0, "Unknown property")
                if method == "GET_PROPERTY":
                    result = conn.combined
                else:
                    if len(params) != 2 or not isinstance(params[1], bool):
                        raise StreamError(1, "Invalid value type: expected Boolean")
                    self.set_combined(conn, params[1])
                    result = None
            else:
                raise StreamError(2, f"Invalid request: unknown variant `{method}`, expected one of {_METHODS}")
            conn.send(orjson.dumps({"result": result, "id": req_id}))
        except StreamError as exc:
            conn.send(orjson.dumps({"error": {"code": exc.code, "msg": exc.msg}, "id": req_id}))

    def _count_incoming(self, conn: StreamConnection) -> bool:
        now = time.monotonic()
        q = conn.incoming
        q.append(now)
        while q and now - q[0] > 1.0:
            q.popleft()
        return len(q) <= self.limits.ws_messages_per_s

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for ``/ws``, ``/ws/{streams}``, ``/stream``."""
        combined = request.path.startswith("/stream")
        if combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        else:
            # A path without "@" is no stream name but an id (a listen key, ccxt.pro's stream
            # index): Binance opens the connection with nothing subscribed.
            names = [n for n in request.match_info.get("streams", "").split("/") if "@" in n]
        try:
            for name in names:
                self.parse(name)
            if len(set(names)) > self.limits.max_streams_per_connection:
                raise StreamError(2, f"Invalid request: too many streams; the limit is "
                                     f"{self.limits.max_streams_per_connection} per connection")
        except StreamError as exc:
            return web.json_response({"error": {"code": exc.code, "msg": exc.msg}}, status=400)
        ws = new_response()
        await ws.prepare(request)
        conn = StreamConnection(request, ws, combined=combined, ping_interval_s=self.limits.ping_interval_s,
                                pong_timeout_s=self.limits.pong_timeout_s, kind="market stream")
        self.connections.add(conn)
        self.subscribe(conn, names)
        conn.start()
        log.debug("market stream connected from %s: %d streams", conn.peer, len(names))
        try:
            await read_loop(conn, lambda text: self._control(conn, text), lambda: self._count_incoming(conn))
        finally:
            self.connections.discard(conn)
            self.dirty.discard(conn)
            self.unsubscribe(conn, sorted(conn.streams))
            log.debug("market stream %s closed: %s", conn.peer, conn.close_reason or "by the client")
        return ws
