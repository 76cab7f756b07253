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

Rule 4 for a book in sync lives in the C book (``LocalBook.apply_diff``), because the feed's C
frame path applies most diffs without coming here: it takes a diff only when the book is in sync
and the diff continues it (``STEP_APPLIED`` / ``STEP_IGNORED``), calls ``mark_crossed`` when the
diff crossed the book, and leaves everything else (buffering, gaps) to ``on_diff``.

Levels come in parsed (``ctrader.feed.parse.levels`` / ``parse_levels``: ``[(price, qty), ...]``).

    sync = BookSync()
    r = sync.on_diff(U, u, E, bids, asks)       # -> Result; r == NEED_SNAPSHOT: ask for one
    r = sync.on_snapshot(last_id, bids, asks)   # -> SYNCED, RETRY (too old), ...
    sync.want_quiet_snapshot()                  # a book with no diffs for a while: snapshot alone
    sync.book.best_bid() ; sync.update_id ; sync.stale
"""
from __future__ import annotations

from collections import deque
from enum import IntEnum

from ctrader.feed.book import STEP_CROSSED, STEP_GAP, STEP_IGNORED, BadLevel, Levels, LocalBook


class Result(IntEnum):
    APPLIED = 1        # the book moved to this event's u: publish DEPTH
    IGNORED = 2        # older than the book or a duplicate: publish nothing
    BUFFERED = 3       # not synchronised: kept for after the snapshot
    NEED_SNAPSHOT = 4  # buffered, and this is the first event: request a snapshot now
    WENT_STALE = 5     # the book just became unusable (gap / crossed): publish STATUS, request a snapshot
    SYNCED = 6         # rebuilt from a snapshot (+ buffered events): publish SNAPSHOT|RESYNC
    RETRY = 7          # the snapshot is older than the buffered events: request another one


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
        "max_buffer",
        "quiet",
        "resyncs",
        "snapshot_wanted",
        "stale_reason",
    )

    def __init__(self, max_buffer: int = 20000) -> None:
        self.book = LocalBook()             # also holds update_id, last_exch_ms and synced (see below)
        self.buffer: deque = deque()        # (U, u, E, bids, asks) with parsed levels
        self.max_buffer = max_buffer
        self.stale_reason = Reason.START
        self.snapshot_wanted = False        # a snapshot has been requested and not yet used
        self.quiet = False                  # ...for a book with no diff yet (want_quiet_snapshot)
        self.gaps = 0
        self.resyncs = 0
        self.crossed = 0

    # The state the C frame path reads and moves lives in the book object.
    @property
    def synced(self) -> bool:
        """False: events are buffered, the book is stale."""
        return self.book.synced

    @synced.setter
    def synced(self, value: bool) -> None:
        self.book.synced = value

    @property
    def update_id(self) -> int:
        return self.book.update_id

    @update_id.setter
    def update_id(self, value: int) -> None:
        self.book.update_id = value

    @property
    def last_exch_ms(self) -> int:
        return self.book.last_exch_ms

    @property
    def stale(self) -> bool:
        return not self.book.synced

    # --- events ---------------------------------------------------------------------------------

    def on_diff(self, first_id: int, last_id: int, exch_ms: int, bids: Levels, asks: Levels) -> Result:
        if not self.synced:
            return self._buffer(first_id, last_id, exch_ms, bids, asks)
        # docs: u < id -> ignore (u == id is the same book again); U > id + 1 -> missed events
        step = self.book.apply_diff(first_id, last_id, exch_ms, bids, asks)
        if step == STEP_IGNORED:
            return Result.IGNORED
        if step == STEP_GAP:
            self.gaps += 1
            self.go_stale(Reason.GAP)
            self._buffer(first_id, last_id, exch_ms, bids, asks)
            return Result.WENT_STALE
        if step == STEP_CROSSED:
            self.mark_crossed()
            return Result.WENT_STALE
        return Result.APPLIED

    def mark_crossed(self) -> None:
        """The diff just applied crossed the book: it is part of the bad book, not kept."""
        self.crossed += 1
        self.go_stale(Reason.CROSSED)

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
            event = buf.popleft()
            if self.book.apply_diff(*event) == STEP_GAP:
                # a gap inside the buffer: keep the rest, wait for a newer snapshot
                buf.appendleft(event)
                self.gaps += 1
                self.synced = False
                self.stale_reason = Reason.GAP
                self.snapshot_wanted = True
                return Result.RETRY
        if self.book.crossed():                 # checked once all buffered events are in
            self.crossed += 1
            self.synced = False
            self.stale_reason = Reason.CROSSED
            self.snapshot_wanted = True
            return Result.RETRY
        self.resyncs += 1
        return Result.SYNCED
