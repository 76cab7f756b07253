"""Binance's local-order-book algorithm for one symbol, as a pure state machine (no I/O).

"How to manage a local order book correctly" (web-socket-streams.md), step by step:

1. buffer diff events; the first buffered ``U`` decides whether a snapshot is usable;
2. get a REST snapshot; if its ``lastUpdateId`` < first buffered ``U``, get another one;
3. drop buffered events with ``u <= lastUpdateId``; the snapshot is the book;
4. apply the rest, then live events: ``u <= book id`` -> ignore (older or a duplicate);
   ``U > book id + 1`` -> missed events: discard the book and start again.

The book is STALE from the moment anything is wrong (gap, crossed book, disconnect) until a
snapshot rebuilds it; the caller publishes a STATUS record when ``on_*`` reports ``WENT_STALE``
and a SNAPSHOT|RESYNC record on ``SYNCED``.

    sync = BookSync()
    r = sync.on_diff(U, u, bids, asks)        # -> Result; r == NEED_SNAPSHOT: ask for one
    r = sync.on_snapshot(last_id, bids, asks)  # -> SYNCED, RETRY (too old), WENT_STALE...
    sync.want_quiet_snapshot()                 # a book with no diffs for a while: snapshot alone
    sync.book.top... ; sync.update_id ; sync.stale
"""
from __future__ import annotations

from collections import deque
from enum import IntEnum

from ctrader.feed.book import BadLevel, Levels, LocalBook, parse_levels


class Result(IntEnum):
    APPLIED = 1        # the book moved to this event's u: publish DEPTH
    IGNORED = 2        # older than the book or a duplicate: publish nothing
    BUFFERED = 3       # not synchronised: kept for after the snapshot
    NEED_SNAPSHOT = 4  # buffered, and this is the first event: request a snapshot now
    WENT_STALE = 5     # the book just became unusable (gap / crossed): publish STATUS, request a snapshot
    SYNCED = 6         # rebuilt from a snapshot (+ buffered events): publish SNAPSHOT|RESYNC
    RETRY = 7          # the snapshot is older than the buffered events: request another one
    BAD = 8            # malformed levels: nothing changed


class Reason(IntEnum):
    NONE = 0
    START = 1
    GAP = 2
    CROSSED = 3
    DISCONNECT = 4
    MALFORMED = 5


class BookSync:
    __slots__ = (
        "book",
        "buffer",
        "crossed",
        "gaps",
        "ignored",
        "last_exch_ms",
        "max_buffer",
        "quiet",
        "resyncs",
        "snapshot_wanted",
        "stale_reason",
        "synced",
        "update_id",
    )

    def __init__(self, max_buffer: int = 20000) -> None:
        self.book = LocalBook()
        self.update_id = 0
        self.synced = False                 # False: events are buffered, the book is stale
        self.buffer: deque = deque()        # (U, u, E, bids, asks) with parsed levels
        self.max_buffer = max_buffer
        self.stale_reason = Reason.START
        self.snapshot_wanted = False        # a snapshot has been requested and not yet used
        self.quiet = False                  # ...for a book with no diff yet (want_quiet_snapshot)
        self.gaps = 0
        self.resyncs = 0
        self.ignored = 0
        self.crossed = 0
        self.last_exch_ms = 0

    @property
    def stale(self) -> bool:
        return not self.synced

    # --- events ---------------------------------------------------------------------------------

    def on_diff(self, first_id: int, last_id: int, exch_ms: int, bids: Levels, asks: Levels) -> Result:
        try:
            b, a = parse_levels(bids), parse_levels(asks)
        except BadLevel:
            return Result.BAD
        if not self.synced:
            return self._buffer(first_id, last_id, exch_ms, b, a)
        if last_id <= self.update_id:
            self.ignored += 1               # docs: u < id -> ignore; u == id is the same book again
            return Result.IGNORED
        if first_id > self.update_id + 1:
            self.gaps += 1
            self.go_stale(Reason.GAP)
            self._buffer(first_id, last_id, exch_ms, b, a)
            return Result.WENT_STALE
        self.book.apply(b, a)
        self.update_id = last_id
        self.last_exch_ms = exch_ms
        if self.book.crossed():
            self.crossed += 1
            self.go_stale(Reason.CROSSED)   # this event is part of the bad book: not kept
            return Result.WENT_STALE
        return Result.APPLIED

    def _buffer(self, first_id: int, last_id: int, exch_ms: int, b, a) -> Result:
        buf = self.buffer
        buf.append((first_id, last_id, exch_ms, b, a))
        if len(buf) > self.max_buffer:
            buf.popleft()                   # the snapshot then must reach the oldest kept U
        if not self.snapshot_wanted:
            self.snapshot_wanted = True
            return Result.NEED_SNAPSHOT
        return Result.BUFFERED

    def go_stale(self, reason: Reason) -> bool:
        """Discard the book (it stays readable as 'last good', never published as fresh).

        Returns True if the book was in sync until now (the caller publishes STATUS).
        """
        was_synced = self.synced
        self.synced = False
        self.stale_reason = reason
        if reason == Reason.DISCONNECT:
            # events of the old connection can never be continued by a new one: start over
            self.buffer.clear()
            self.snapshot_wanted = False
            self.quiet = False
        return was_synced

    def want_quiet_snapshot(self) -> bool:
        """A quiet book (no diff since the stream was live) may be rebuilt from a snapshot alone.

        The docs buffer a first event before the snapshot so that it cannot predate the stream;
        when the caller asks for the snapshot only after the stream is live, every update after
        the snapshot's ``lastUpdateId`` is in a diff still to come, and the usual
        ``U > id + 1`` check on that diff catches anything else. Returns True if the caller
        should request one now.
        """
        if self.synced or self.buffer or self.snapshot_wanted:
            return False
        self.snapshot_wanted = True
        self.quiet = True
        return True

    def on_snapshot(self, last_update_id: int, bids: Levels, asks: Levels) -> Result:
        """A REST snapshot arrived; rebuild the book if it fits the buffered events."""
        if self.synced:
            return Result.IGNORED           # a late answer to a request already served
        buf = self.buffer
        if not buf and not self.quiet:
            # nothing buffered (e.g. reconnecting): the algorithm needs the first U first
            self.snapshot_wanted = False
            return Result.RETRY
        self.quiet = False
        if buf and last_update_id < buf[0][0]:
            return Result.RETRY             # step 4: the snapshot predates the buffered events
        try:
            self.book.replace(bids, asks)
        except BadLevel:
            return Result.RETRY
        while buf and buf[0][1] <= last_update_id:
            buf.popleft()                   # step 5
        self.update_id = last_update_id
        self.synced = True
        self.snapshot_wanted = False
        self.stale_reason = Reason.NONE
        while buf:
            first_id, last_id, exch_ms, b, a = buf.popleft()
            if last_id <= self.update_id:
                continue
            if first_id > self.update_id + 1:
                # a gap inside the buffer: keep the rest, wait for a newer snapshot
                buf.appendleft((first_id, last_id, exch_ms, b, a))
                self.gaps += 1
                self.synced = False
                self.stale_reason = Reason.GAP
                self.snapshot_wanted = True
                return Result.RETRY
            self.book.apply(b, a)
            self.update_id = last_id
            self.last_exch_ms = exch_ms
        if self.book.crossed():
            self.crossed += 1
            self.synced = False
            self.stale_reason = Reason.CROSSED
            self.snapshot_wanted = True
            return Result.RETRY
        self.resyncs += 1
        return Result.SYNCED
