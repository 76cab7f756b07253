"""Staging of MD_EVENT records: filled one by one as frames arrive, written to the ring in batches.

picows hands over every frame of one socket read in a row (``frame.last_in_buffer`` marks the
last one); the feed fills records here and writes them to the md ring with one ``Producer.write``
per read, so the ring's per-call cost is paid once per batch, not once per message. The batch
also assigns the feed sequence number and measures receive-to-ring latency at the write.

    batch = MdBatch(sink=producer.write, capacity=512)
    batch.book_ticker(sid, flags, u, bid, bid_qty, ask, ask_qty, recv_ts_ns, recv_mono_ns)
    batch.depth(MdKind.DEPTH, sid, flags, sync.book, U, u, E_ms, recv_ts_ns, recv_mono_ns)
    batch.flush()                          # -> sink(records[:n]); sink may be a Producer.write
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ctrader._ext.feed_parse import MdStage
from ctrader.core.records import BOOK_DEPTH, MD_EVENT, MdKind
from ctrader.feed.book import LocalBook

LATENCY_SAMPLES = 1 << 16    # the latest receive-to-ring latencies kept for p50/p99


class MdBatch:
    def __init__(self, sink: Callable[[np.ndarray], None], capacity: int = 512) -> None:
        self.sink = sink
        self.records = np.zeros(capacity, MD_EVENT)
        self.capacity = capacity
        # The cursor (records staged, last seq) lives in C so that the C frame path
        # (ctrader._ext.feed_parse) fills slots of the same batch.
        self.latency_ns = np.zeros(LATENCY_SAMPLES, np.int64)
        self.stage = MdStage(self.records, self.latency_ns)
        self.written = 0

    @property
    def n(self) -> int:
        return self.stage.n

    @property
    def seq(self) -> int:
        return self.stage.seq

    def _put(self, kind: int, sid: int, flags: int, exch_ts: int, recv_ts: int, recv_mono: int,
             first_id: int, last_id: int) -> int:
        i = self.stage.put(kind, sid, flags, exch_ts, recv_ts, recv_mono, first_id, last_id)
        if i < 0:
            self.flush()
            i = self.stage.put(kind, sid, flags, exch_ts, recv_ts, recv_mono, first_id, last_id)
        return i

    def book_ticker(self, sid: int, flags: int, update_id: int, bid: float, bid_qty: float, ask: float,
                    ask_qty: float, recv_ts: int, recv_mono: int) -> None:
        # spot JSON bookTicker carries no event time: exch_ts_ns 0
        i = self._put(MdKind.BOOK_TICKER, sid, flags, 0, recv_ts, recv_mono, update_id, update_id)
        self.stage.set_top(i, bid, bid_qty, ask, ask_qty)

    def depth(self, kind: int, sid: int, flags: int, book: LocalBook, first_id: int, last_id: int, exch_ms: int,
              recv_ts: int, recv_mono: int) -> None:
        """A DEPTH or SNAPSHOT record: the top BOOK_DEPTH levels of ``book``."""
        i = self._put(kind, sid, flags, exch_ms * 1_000_000, recv_ts, recv_mono, first_id, last_id)
        self.stage.set_book(i, book)

    def status(self, sid: int, flags: int, last_id: int, recv_ts: int, recv_mono: int) -> None:
        """A STATUS record: the symbol's state changed (e.g. STALE), no levels."""
        self._put(MdKind.STATUS, sid, flags, 0, recv_ts, recv_mono, last_id, last_id)

    def trade(self, sid: int, flags: int, trade_id: int, price: float, qty: float, trade_ms: int,
              recv_ts: int, recv_mono: int) -> None:
        i = self._put(MdKind.TRADE, sid, flags, trade_ms * 1_000_000, recv_ts, recv_mono, trade_id, trade_id)
        self.stage.set_trade(i, price, qty)

    def flush(self) -> int:
        """Write the staged records to the sink; returns how many."""
        n = self.stage.n
        if not n:
            return 0
        self.sink(self.records[:n])
        self.stage.finish(time.monotonic_ns())     # latency samples, zeroed slots, n = 0
        self.written += n
        return n

    def latencies(self) -> np.ndarray:
        """The kept receive-to-ring latency samples (ns)."""
        return self.latency_ns[: min(self.stage.latency_count, LATENCY_SAMPLES)]


assert BOOK_DEPTH == MD_EVENT["bid_px"].shape[0]
