"""The feed engine: WebSocket frames in, normalised MD_EVENT records out, books kept in sync.

One asyncio loop runs everything: a task per shard (connection) that connects, watches and
reconnects; a snapshot client that rebuilds books within the REST weight budget; the frame
handler, called by picows for each frame, which parses, updates the symbol's ``BookSync`` and
stages records in an ``MdBatch`` written to the md ring at the end of each socket read.

Frames take the C path first (``FramePath``: bookTicker and depth diffs of a book in sync, in
the exact form Binance sends); whatever it does not take comes to ``process_from``, which parses
with orjson and ``ctrader.feed.parse``. A frame that breaks Binance's format is counted in
``parse_errors`` (the first ones logged with the reason) and changes nothing: no record, no book
update, and the connection stays up.

Sockets live in ``links.ShardLink`` (one per shard: backoff, make-before-break replacement);
they hand frames to ``process_from`` and report an unplanned drop with ``lost``, which marks the
shard's books STALE at once.

    engine = FeedEngine(cfg, universe, producer.write)
    await engine.run(stop)             # stop: asyncio.Event or anything with is_set()
    engine.stats()                     # counters for StatsFile
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import numpy as np
import orjson

from ctrader._ext.feed_parse import ROUTE_BOOK_TICKER, ROUTE_DIFF, FramePath
from ctrader.config.venues import endpoints
from ctrader.core.records import MdFlag, MdKind
from ctrader.feed.batch import MdBatch
from ctrader.feed.book import parse_levels
from ctrader.feed.connection import StreamConnection
from ctrader.feed.links import ShardLink
from ctrader.feed.parse import (
    BOOK_TICKER,
    DIFF,
    FrameParser,
    MalformedFrame,
    book_ticker,
    depth_update,
    stream_kind,
    trade,
    update_id,
)
from ctrader.feed.shards import plan_shards
from ctrader.feed.snapshots import SnapshotClient
from ctrader.feed.sync import BookSync, Reason, Result
from ctrader.feed.weight import WeightBudget

log = logging.getLogger(__name__)

# Staged records are written at the end of each socket read, or after this many records: a
# burst of frames in one read then does not hold the first records back behind the last ones.
FLUSH_EVERY = 32
# ... or as soon as the first staged record has waited this long: parsing the rest of a long
# read (depth frames take ~8 µs each) must not hold back a top-of-book change received first.
FLUSH_AFTER_NS = 20_000
STALE_FLAGS = {Reason.GAP: MdFlag.STALE | MdFlag.GAP, Reason.CROSSED: MdFlag.STALE | MdFlag.CROSSED}
# Malformed frames are all counted; the first few are logged with the reason, then one in ...
LOG_PARSE_ERRORS = 10
LOG_PARSE_ERRORS_EVERY = 10_000


def venue_weight_limit(universe, configured: int) -> int:
    """REQUEST_WEIGHT per minute: the venue's own figure from exchangeInfo when it states one
    (the docs say to read it at start), never above the configured one."""
    doc = getattr(universe, "exchange_info", None) or {}
    for rl in doc.get("rateLimits", ()):
        if (rl.get("rateLimitType") == "REQUEST_WEIGHT" and rl.get("interval") == "MINUTE"
                and rl.get("intervalNum") == 1 and isinstance(rl.get("limit"), int)):
            return min(configured, rl["limit"])
    return configured


class FeedEngine:
    def __init__(self, cfg, universe, sink: Callable[[np.ndarray], None], *,
                 symbols: list[str] | None = None, ws_url: str | None = None, rest_url: str | None = None) -> None:
        self.cfg = cfg
        ep = endpoints(cfg)
        self.ws_url = ws_url or ep.ws_stream
        self.rest_url = rest_url or ep.rest
        names = symbols if symbols is not None else [s.name for s in universe.symbols]
        self.symbol_ids = {name: universe.symbol_id(name) for name in names}
        self.names = {sid: name for name, sid in self.symbol_ids.items()}
        streams = list(cfg.feed.streams)
        self.kinds = {s: stream_kind(s) for s in streams}
        self.has_depth = DIFF in self.kinds.values()
        self.parser = FrameParser()
        depth_streams = set()
        for name, sid in self.symbol_ids.items():
            for s, kind in self.kinds.items():
                stream = f"{name.lower()}@{s}"
                self.parser.add_route(stream, sid, kind)
                if kind == DIFF:
                    depth_streams.add(stream)
        n = max(self.names) + 1 if self.names else 0
        self.syncs: dict[int, BookSync] = {sid: BookSync() for sid in self.names}
        # Per-symbol state, in arrays the C fast path reads too (kept current by this class):
        self.last_bt = np.zeros(n, np.int64)          # last bookTicker u (duplicates)
        self.book_id = np.full(n, -1, np.int64)       # the depth book's update id; -1 = not in sync
        self.stale_flag = np.full(n, MdFlag.STALE if self.has_depth else 0, np.uint8)  # on every record
        self.last_trade = np.full(n, -1, np.int64)    # last trade id
        self.stale_since = {sid: time.monotonic_ns() for sid in self.names} if self.has_depth else {}
        self.stale_ns = {sid: 0 for sid in self.names}
        self.batch = MdBatch(sink, capacity=512)
        self.fast = self._frame_path(n)
        self.links = [ShardLink(p, depth_streams, cfg.feed, self.ws_url, feed=self)
                      for p in plan_shards(names, streams, cfg.feed.max_streams_per_connection)]
        self.budget = WeightBudget(venue_weight_limit(universe, cfg.feed.weight_limit_per_min), cfg.feed.weight_budget)
        self.snapshots = SnapshotClient(self.rest_url, self._on_snapshot, limit=cfg.feed.snapshot_limit,
                                        budget=self.budget, workers=cfg.feed.snapshot_workers)
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._current: StreamConnection | None = None     # the socket whose frame is being processed
        self._oldest_staged_ns = 0                         # receive time of the first staged record
        # counters
        self.messages = 0
        self.bytes = 0
        self.parse_errors = 0
        self.unexpected_errors = 0
        self.unknown_streams = 0
        self.quiet_snapshots = 0
        self.duplicates = 0
        self.last_parse_error = ""
        self.outdated = 0
        self.server_shutdowns = 0
        self.status_records = 0

    def _frame_path(self, n: int) -> FramePath:
        """The C path over this engine's routes, per-symbol arrays and books."""
        route_kinds = {BOOK_TICKER: ROUTE_BOOK_TICKER, DIFF: ROUTE_DIFF}
        routes = {stream.encode(): sid * 4 + route_kinds[kind]
                  for stream, (sid, kind) in self.parser.routes.items() if kind in route_kinds}
        names: list[bytes | None] = [None] * n
        books: list = [None] * n
        for sid, name in self.names.items():
            names[sid] = name.encode()
            if self.has_depth:
                books[sid] = self.syncs[sid].book
        return FramePath(self.batch.stage, routes, names, books, self.last_bt, self.book_id, self.stale_flag,
                         self.batch.flush, self._crossed, FLUSH_EVERY)

    # --- frames ------------------------------------------------------------------------------

    def process_from(self, conn: StreamConnection, data: bytes, recv_ts: int, recv_mono: int) -> None:
        """A frame of ``conn`` that the C path did not take (the links call ``fast.handle`` first)."""
        self._current = conn
        self._process_general(data, recv_ts, recv_mono)
        self._current = None
        if self.batch.stage.n >= FLUSH_EVERY:
            self.batch.flush()

    def flush(self) -> None:
        """End of a socket read: write the staged records to the ring."""
        self.batch.flush()

    def before_frame(self, recv_mono: int) -> None:
        """A frame is about to be processed: write what is staged first if its oldest record has
        waited ``FLUSH_AFTER_NS`` (the frame's receive time tells how long parsing has taken)."""
        if self.batch.stage.n == 0:
            self._oldest_staged_ns = recv_mono
        elif recv_mono - self._oldest_staged_ns >= FLUSH_AFTER_NS:
            self.batch.flush()
            self._oldest_staged_ns = recv_mono

    def process(self, data: bytes, recv_ts: int, recv_mono: int) -> None:
        """One frame of the combined stream -> zero or more staged records. Never raises."""
        if not self.fast.handle(data, recv_ts, recv_mono):     # bookTicker / depth diff done in C
            self._process_general(data, recv_ts, recv_mono)

    def _process_general(self, data: bytes, recv_ts: int, recv_mono: int) -> None:
        """The Python path: every frame the C path did not take. Never raises."""
        self.messages += 1
        self.bytes += len(data)
        try:
            parsed = self.parser.parse(data)
            if parsed is None:
                self._other(data)
                return
            sid, kind, payload = parsed
            name = self.names[sid]
            if kind == BOOK_TICKER:
                self._book_ticker(sid, *book_ticker(payload, name), recv_ts, recv_mono)
            elif kind == DIFF:
                self._diff(sid, *depth_update(payload, name), recv_ts, recv_mono)
            else:
                self._trade(sid, *trade(payload, name), recv_ts, recv_mono)
        except Exception as exc:             # noqa: BLE001  nothing in a frame may stop the feed
            self.frame_failed(data, exc)

    def frame_failed(self, data: bytes, exc: BaseException) -> None:
        """Count a frame that could not be used. A malformed frame is logged the first few times;
        any other failure may be a bug rather than a bad frame: logged with its traceback."""
        self.parse_errors += 1
        if isinstance(exc, ValueError):
            self.last_parse_error = f"{exc}"[:200]
            if self.parse_errors <= LOG_PARSE_ERRORS or self.parse_errors % LOG_PARSE_ERRORS_EVERY == 0:
                log.warning("malformed market-data frame (%d so far): %s: %r", self.parse_errors, exc, data[:200])
            return
        self.unexpected_errors += 1
        self.last_parse_error = f"{type(exc).__name__}: {exc}"[:200]
        if self.unexpected_errors <= LOG_PARSE_ERRORS:
            log.error("unexpected error on a market-data frame: %r", data[:200], exc_info=exc)

    def _book_ticker(self, sid: int, u: int, bid: float, bq: float, ask: float, aq: float, recv_ts: int,
                     recv_mono: int) -> None:
        """A bookTicker the C path left alone (any unusual form), validated by ``parse.book_ticker``."""
        if u <= self.last_bt[sid]:
            self.duplicates += 1
            return
        self.last_bt[sid] = u
        if u <= self.book_id[sid]:
            self.outdated += 1              # the depth book is already newer: would move it backwards
            return
        self.batch.book_ticker(sid, self.stale_flag[sid], u, bid, bq, ask, aq, recv_ts, recv_mono)

    def _diff(self, sid: int, first: int, last: int, exch: int, bids: list, asks: list, recv_ts: int,
              recv_mono: int) -> None:
        """A depth diff (validated by ``parse.depth_update``) the C path did not take: the book is
        being rebuilt, the diff opens a gap, or its form is unusual."""
        sync = self.syncs[sid]
        r = sync.on_diff(first, last, exch, bids, asks)
        if r == Result.APPLIED:
            self.book_id[sid] = last
            self.batch.depth(MdKind.DEPTH, sid, 0, sync.book, first, last, exch, recv_ts, recv_mono)
        elif r == Result.IGNORED:
            self.duplicates += 1
        elif r == Result.NEED_SNAPSHOT:
            self.snapshots.request(self.names[sid])
        elif r == Result.WENT_STALE:
            self._went_stale(sid, sync, recv_ts, recv_mono)

    def _crossed(self, sid: int, recv_ts: int, recv_mono: int) -> None:
        """The C path applied a diff that crossed the book (``on_diff`` reports the same as WENT_STALE)."""
        sync = self.syncs[sid]
        sync.mark_crossed()
        self._went_stale(sid, sync, recv_ts, recv_mono)

    def _trade(self, sid: int, tid: int, t_ms: int, price: float, qty: float, maker: bool, recv_ts: int,
               recv_mono: int) -> None:
        if tid <= self.last_trade[sid]:
            self.duplicates += 1
            return
        self.last_trade[sid] = tid
        flags = self.stale_flag[sid] | (MdFlag.BUYER_MAKER if maker else 0)
        self.batch.trade(sid, flags, tid, price, qty, t_ms, recv_ts, recv_mono)

    def _other(self, data: bytes) -> None:
        """Frames that are not market data: control replies, serverShutdown, unknown streams."""
        doc = orjson.loads(data)
        if not isinstance(doc, dict):
            raise MalformedFrame(f"not an object: {type(doc).__name__}")
        stream = doc.get("stream")
        if stream == "!serverShutdown" or (isinstance(doc.get("data"), dict)
                                           and doc["data"].get("e") == "serverShutdown"):
            self._server_shutdown()
        elif "id" in doc and ("result" in doc or "error" in doc):
            if self._current is not None:
                self._current.on_control(doc)
        elif isinstance(stream, str):
            self.unknown_streams += 1
        else:
            raise MalformedFrame("neither a stream frame nor a reply")

    def _server_shutdown(self) -> None:
        """The server of one socket is going away: replace that socket (make before break)."""
        self.server_shutdowns += 1
        conns = [self._current] if self._current is not None else [link.live for link in self.links]
        for conn in conns:
            if conn is not None and not conn.shutdown_notice.is_set():
                log.warning("serverShutdown on stream connection %d: opening a fresh socket before it closes",
                            conn.shard)
                conn.shutdown_notice.set()

    # --- book state ---------------------------------------------------------------------------

    def _went_stale(self, sid: int, sync: BookSync, recv_ts: int, recv_mono: int) -> None:
        flags = STALE_FLAGS.get(sync.stale_reason, MdFlag.STALE)
        self.book_id[sid] = -1
        self.stale_flag[sid] = MdFlag.STALE
        self.batch.status(sid, flags, sync.update_id, recv_ts, recv_mono)
        self.status_records += 1
        self.stale_since[sid] = recv_mono
        log.info("%s book stale (%s) at update %d", self.names[sid], sync.stale_reason.name, sync.update_id)
        if sync.snapshot_wanted:
            self.snapshots.request(self.names[sid])

    def _on_snapshot(self, symbol: str, doc: dict) -> None:
        sid = self.symbol_ids[symbol]
        sync = self.syncs[sid]
        try:
            last_id = update_id(doc["lastUpdateId"])
            bids, asks = parse_levels(doc["bids"]), parse_levels(doc["asks"])
        except (KeyError, TypeError, ValueError) as exc:
            self.parse_errors += 1
            self.last_parse_error = f"snapshot {symbol}: {exc}"[:200]
            log.warning("malformed depth snapshot for %s: %s", symbol, exc)
            r = Result.RETRY
        else:
            r = sync.on_snapshot(last_id, bids, asks)
        if r == Result.SYNCED:
            self.book_id[sid] = sync.update_id
            self.stale_flag[sid] = 0
            now_ts, now_mono = time.time_ns(), time.monotonic_ns()
            self.batch.depth(MdKind.SNAPSHOT, sid, MdFlag.RESYNC, sync.book, last_id, sync.update_id,
                             sync.last_exch_ms, now_ts, now_mono)
            self.batch.flush()
            since = self.stale_since.pop(sid, None)
            if since is not None:
                self.stale_ns[sid] += now_mono - since
            log.debug("%s book rebuilt at update %d", symbol, sync.update_id)
        elif r == Result.RETRY and sync.snapshot_wanted and self._loop is not None:
            self._loop.call_later(0.05, self.snapshots.request, symbol)

    def _rebuild_quiet_books(self) -> None:
        """Books still stale because no diff came since their socket went live (a quiet symbol):
        rebuild them from a snapshot alone (``BookSync.want_quiet_snapshot`` says why it is safe)."""
        if not self.has_depth:
            return
        wait_s = self.cfg.feed.quiet_book_snapshot_s
        now = time.monotonic_ns()
        for link in self.links:
            if link.live is None or link.incoming is not None or link.live.age_s() < wait_s:
                continue
            for name in link.symbols:
                sid = self.symbol_ids[name]
                since = self.stale_since.get(sid)
                if since is not None and now - since > wait_s * 1e9 and self.syncs[sid].want_quiet_snapshot():
                    self.quiet_snapshots += 1
                    self.snapshots.request(name)

    def lost(self, symbols: list[str]) -> None:
        """A socket dropped unexpectedly: these books may miss updates from now on (the links call this)."""
        if not self.has_depth:
            return
        now_ts, now_mono = time.time_ns(), time.monotonic_ns()
        for name in symbols:
            sid = self.symbol_ids[name]
            sync = self.syncs[sid]
            self.book_id[sid] = -1
            self.stale_flag[sid] = MdFlag.STALE
            if sync.go_stale(Reason.DISCONNECT):
                self.batch.status(sid, MdFlag.STALE, sync.update_id, now_ts, now_mono)
                self.status_records += 1
                self.stale_since[sid] = now_mono
        self.batch.flush()

    # --- running ------------------------------------------------------------------------------

    def start_books_stale(self) -> None:
        """Tell consumers that no book is usable yet (one STATUS|STALE per symbol)."""
        if not self.has_depth:
            return
        now_ts, now_mono = time.time_ns(), time.monotonic_ns()
        for sid in self.names:
            self.batch.status(sid, MdFlag.STALE, 0, now_ts, now_mono)
        self.batch.flush()

    async def run(self, stop, on_tick: Callable[[], None] | None = None, tick_s: float = 1.0) -> None:
        """Stream until ``stop`` is set; ``on_tick`` is called about every ``tick_s`` seconds."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self.start_books_stale()
        await self.snapshots.start()
        stopping = lambda: self._stopping
        tasks = [asyncio.create_task(link.run(stopping), name=f"feed-link-{link.index}") for link in self.links]
        next_tick = next_quiet_check = time.monotonic() + tick_s
        try:
            while not stop.is_set():
                if any(t.done() and t.exception() for t in tasks):
                    for t in tasks:
                        if t.done() and t.exception():
                            raise t.exception()
                await asyncio.sleep(0.05)
                if time.monotonic() >= next_quiet_check:
                    next_quiet_check = time.monotonic() + 0.25
                    self._rebuild_quiet_books()
                if on_tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + tick_s
                    on_tick()
        finally:
            self._stopping = True
            await asyncio.sleep(0.05)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for link in self.links:
                link.close()
            # the books stop being maintained: say so (STATUS|STALE for every book in sync)
            self.lost(list(self.symbol_ids))
            await self.snapshots.close()
            self.batch.flush()

    # --- counters -----------------------------------------------------------------------------

    def stale_seconds(self) -> dict[str, float]:
        now = time.monotonic_ns()
        out = {}
        for sid, name in self.names.items():
            ns = self.stale_ns[sid]
            since = self.stale_since.get(sid)
            if since is not None:
                ns += now - since
            out[name] = round(ns / 1e9, 3)
        return out

    def stats(self) -> dict:
        lat = self.batch.latencies()
        pct = (np.percentile(lat, [50, 99]) / 1e3).tolist() if lat.size else [None, None]
        syncs = self.syncs.values()
        return {
            "messages": self.messages + self.fast.messages, "bytes": self.bytes + self.fast.bytes,
            "records": self.batch.written,
            "parse_errors": self.parse_errors, "last_parse_error": self.last_parse_error,
            "unknown_streams": self.unknown_streams,
            "duplicates": self.duplicates + self.fast.duplicates,
            "outdated_book_tickers": self.outdated + self.fast.outdated,
            "gaps": sum(s.gaps for s in syncs), "resyncs": sum(s.resyncs for s in syncs),
            "crossed": sum(s.crossed for s in syncs), "stale_records": self.status_records,
            "stale_symbols": sum(1 for s in syncs if not s.synced) if self.has_depth else 0,
            "stale_s": self.stale_seconds(),
            "recv_to_ring_us_p50": pct[0], "recv_to_ring_us_p99": pct[1],
            "connections": sum(1 for link in self.links if link.live is not None), "shards": len(self.links),
            "connects": sum(link.connects for link in self.links),
            "connect_failures": sum(link.connect_failures for link in self.links),
            "disconnects": sum(link.disconnects for link in self.links),
            "handovers": sum(link.handovers for link in self.links),
            "handovers_started": {k: sum(link.handovers_started[k] for link in self.links)
                                  for k in ("server_shutdown", "planned")},
            "shutdowns_absorbed": sum(link.shutdowns_absorbed for link in self.links),
            "pongs": sum(link.pongs for link in self.links),
            "server_shutdowns": self.server_shutdowns,
            "snapshots": self.snapshots.requests, "quiet_snapshots": self.quiet_snapshots, "snapshot_failures": self.snapshots.failures,
            "snapshot_rate_limited": self.snapshots.rate_limited, "snapshots_pending": self.snapshots.pending(),
            "weight_used_reported": self.budget.used_reported,
        }
