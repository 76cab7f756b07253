"""The life of one shard's socket: connect with backoff, watch, replace it make-before-break.

An unplanned drop (the socket closed, or silent for ``idle_timeout_s``) is reported at once
(``on_lost``: the feed marks the shard's books STALE) and the link reconnects after an
exponential backoff with jitter. ``serverShutdown`` and the planned reconnect before the 24 h
cut open the new socket first; its frames are held until it has delivered every depth stream
once (the same venue windows the old socket is delivering), then the link switches: the old
socket is no longer read, the held frames are processed after everything the old one gave,
and the update-id rules drop whatever both delivered.

    link = ShardLink(plan, depth_streams, feed_cfg, ws_url, feed=engine)
    await link.run(lambda: stopping)      # engine.run starts one per shard
    link.connects, link.handovers, ...   # counters
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from ctrader.feed.connection import StreamConnection
from ctrader.feed.shards import ShardPlan

log = logging.getLogger(__name__)

PROVEN_AFTER_S = 10.0     # a socket that lived this long resets the backoff
WATCH_EVERY_S = 0.02      # how often a link checks its socket's age, notices and silence


class FrameSink(Protocol):
    fast: object        # .handle(data, recv_ts, recv_mono) -> nonzero when the C path took the frame

    def process_from(self, conn: StreamConnection, data: bytes, recv_ts: int, recv_mono: int) -> None: ...

    def frame_failed(self, data: bytes, exc: BaseException) -> None: ...

    def flush(self) -> None: ...

    def before_frame(self, recv_mono: int) -> None: ...

    def lost(self, symbols: list[str]) -> None: ...


def backoff_s(attempt: int, lo: float, hi: float) -> float:
    """0 for the first try, then lo, 2lo, 4lo ... up to hi, each times a jitter in [0.5, 1]."""
    if attempt <= 0:
        return 0.0
    return min(hi, lo * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


class ShardLink:
    def __init__(self, plan: ShardPlan, depth_streams: set[str], feed_cfg, ws_url: str, feed: FrameSink) -> None:
        self.index = plan.index
        self.symbols = plan.symbols
        self.streams = plan.streams
        self.depth_streams = {s.encode() for s in depth_streams & set(plan.streams)}
        self.cfg = feed_cfg
        self.ws_url = ws_url
        self.feed = feed
        self.fast = feed.fast.handle
        self.planned_s = feed_cfg.planned_reconnect_h * 3600.0
        self.live: StreamConnection | None = None
        self.incoming: StreamConnection | None = None      # the new socket during a handover
        self.held: list[tuple[bytes, int, int]] = []       # its frames until the switch
        self.held_streams: set[bytes] = set()
        self.attempt = 0
        self.connects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.handovers = 0
        self.handovers_started = {"server_shutdown": 0, "planned": 0}
        self.shutdowns_absorbed = 0        # notices that reached a socket already being replaced
        self.pongs = 0

    # --- frames ------------------------------------------------------------------------------

    def on_frame(self, conn: StreamConnection, data: bytes, recv_ts: int, recv_mono: int, last: bool) -> None:
        """picows callback for every text frame of this shard's sockets."""
        conn.last_rx_ns = recv_mono
        if conn is self.live:
            self.feed.before_frame(recv_mono)
            try:
                if not self.fast(data, recv_ts, recv_mono):
                    self.feed.process_from(conn, data, recv_ts, recv_mono)
            except Exception as exc:        # noqa: BLE001  an exception into picows would drop the socket
                self.feed.frame_failed(data, exc)
        elif conn is self.incoming:
            self.held.append((data, recv_ts, recv_mono))
            end = data.find(b'"', 11)               # {"stream":"<name>",...
            if end > 11:
                self.held_streams.add(data[11:end])
        if last:
            self.feed.flush()

    def _on_pong(self) -> None:
        self.pongs += 1

    def _on_closed(self, conn: StreamConnection) -> None:
        if conn is self.live and self.incoming is None:
            # unplanned: every book of this shard may miss updates from now on
            self.disconnects += 1
            self.live = None
            self.feed.lost(self.symbols)

    def _new_conn(self) -> StreamConnection:
        conn = StreamConnection(self.ws_url, self.streams, self.on_frame, shard=self.index,
                                messages_per_s=self.cfg.messages_per_s, url_streams=self.cfg.url_streams)
        conn.on_closed = lambda c=conn: self._on_closed(c)
        conn.on_pong = self._on_pong
        return conn

    # --- the loop -----------------------------------------------------------------------------

    async def run(self, stopping: Callable[[], bool]) -> None:
        try:
            while not stopping():
                if self.live is None:
                    conn = await self._connect(stopping)
                    if conn is None:
                        break
                    if conn.closed.is_set():
                        continue
                    self.live = conn
                conn = self.live
                if conn.age_s() > PROVEN_AFTER_S:
                    self.attempt = 0
                if conn.closed.is_set():
                    self._on_closed(conn)
                elif conn.shutdown_notice.is_set():
                    self.handovers_started["server_shutdown"] += 1
                    await self._handover()
                elif conn.age_s() >= self.planned_s:
                    self.handovers_started["planned"] += 1
                    await self._handover()
                elif time.monotonic_ns() - conn.last_rx_ns > self.cfg.idle_timeout_s * 1e9:
                    log.warning("stream connection %d silent for %.0fs: reconnecting", self.index,
                                self.cfg.idle_timeout_s)
                    conn.close()
                    self._on_closed(conn)
                else:
                    await asyncio.sleep(WATCH_EVERY_S)
        finally:
            self.close()

    def close(self) -> None:
        """Close the sockets for good (the feed is stopping; nothing is reported as lost)."""
        conns, self.live, self.incoming = (self.live, self.incoming), None, None
        for conn in conns:
            if conn is not None:
                conn.close()

    async def _connect(self, stopping: Callable[[], bool]) -> StreamConnection | None:
        while not stopping():
            delay = backoff_s(self.attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s)
            if delay:
                await asyncio.sleep(delay)
                if stopping():
                    return None
            conn = self._new_conn()
            self.attempt += 1               # back to 0 once the socket has proved itself
            try:
                await conn.open()
            except Exception as exc:            # noqa: BLE001  whatever failed, the answer is to back off
                conn.close()
                self.connect_failures += 1
                log.warning("stream connection %d failed (attempt %d): %s", self.index, self.attempt, exc)
                continue
            self.connects += 1
            log.info("stream connection %d open: %d streams", self.index, len(self.streams))
            return conn
        return None

    async def _handover(self) -> None:
        """Open a new socket, let it deliver, then switch to it and close the old one."""
        old = self.live
        noticed_before = old.shutdown_notice.is_set()
        new = self._new_conn()
        self.held, self.held_streams = [], set()
        self.incoming = new
        try:
            await asyncio.wait_for(new.open(), self.cfg.handover_timeout_s)
        except Exception as exc:                # noqa: BLE001  the old socket is still there
            log.warning("stream connection %d: fresh socket failed: %s", self.index, exc)
            self.incoming = None
            new.close()
            if old.closed.is_set():
                self._on_closed(old)
            else:
                old.shutdown_notice.clear()     # keep the old one; try again after a pause
                await asyncio.sleep(backoff_s(1, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s))
            return
        deadline = time.monotonic() + self.cfg.handover_timeout_s
        while time.monotonic() < deadline and not new.closed.is_set() and not old.closed.is_set():
            delivered = (self.depth_streams <= self.held_streams) if self.depth_streams else bool(self.held)
            if delivered:
                await asyncio.sleep(0.05)       # let the old socket deliver the same venue window
                break
            await asyncio.sleep(0.005)
        self.incoming = None
        if new.closed.is_set():
            self.held = []
            if old.closed.is_set():
                self._on_closed(old)
            return
        # the switch: the old socket is not read any more; the new one's held frames follow it
        held, self.held, self.held_streams = self.held, [], set()
        self.live = new
        fast, general = self.fast, self.feed.process_from
        for data, ts, mono in held:
            try:
                if not fast(data, ts, mono):
                    general(new, data, ts, mono)
            except Exception as exc:        # noqa: BLE001  as in on_frame: count it, keep going
                self.feed.frame_failed(data, exc)
        self.feed.flush()
        if old.shutdown_notice.is_set() and not noticed_before:
            # serverShutdown reached the old socket while we were replacing it anyway: this
            # handover serves it, and the new socket (opened after the notice) stays up
            self.shutdowns_absorbed += 1
        old.close()
        self.handovers += 1
        log.info("stream connection %d switched to a fresh socket (%d frames held)", self.index, len(held))
