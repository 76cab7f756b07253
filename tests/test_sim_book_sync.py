"""Depth diffs + REST snapshot obey Binance's book-maintenance rules.

A client written from the documented algorithm ("How to manage a local order book correctly",
web-socket-streams.md) reconstructs the simulator's own book: after every diff it applies, its
book is compared level by level with the simulator's book at that diff's final update id
(recorded by the simulator when it emitted the diff). Over many thousands of updates, with and
without injected gaps -- with a gap the client must notice ``U > local + 1``, discard its book and
resync from a new snapshot.
"""
from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from ctrader.venue.decimals import parse_units

pytestmark = pytest.mark.timeout(120)

SYMBOLS = ("BTCUSDT", "ETHBTC", "SOLBNB", "DOGEUSDT")


class DocumentedOrderBook:
    """Binance's algorithm, step by step, for one symbol (no shortcuts: this is the oracle)."""

    def __init__(self, symbol: str, http: aiohttp.ClientSession, rest_url: str) -> None:
        self.symbol = symbol
        self.http = http
        self.rest_url = rest_url
        self.buffer: list[dict] = []
        self.update_id: int | None = None      # None: not synchronised, events are buffered
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.syncing: asyncio.Task | None = None
        self.states: dict[int, tuple[tuple, tuple]] = {}   # u -> book after applying the event
        self.applied = 0
        self.ignored = 0                       # events older than the book (rule 1)
        self.discarded = 0                     # buffered events older than the snapshot (step 5)
        self.gaps = 0
        self.snapshots = 0

    def on_event(self, event: dict) -> None:
        if self.update_id is None:
            # step 2: buffer the events; the first one's U decides whether a snapshot is usable
            self.buffer.append(event)
            if self.syncing is None:
                self.syncing = asyncio.get_running_loop().create_task(self._sync())
            return
        self._apply(event)

    async def _sync(self) -> None:
        while True:
            # step 3: snapshot; step 4: it must not be older than the first buffered event
            async with self.http.get(f"{self.rest_url}/api/v3/depth",
                                     params={"symbol": self.symbol, "limit": "5000"}) as resp:
                snap = await resp.json(loads=orjson.loads)
            self.snapshots += 1
            if snap["lastUpdateId"] >= self.buffer[0]["U"]:
                break
            await asyncio.sleep(0.01)
        # step 5: drop buffered events with u <= lastUpdateId
        last = snap["lastUpdateId"]
        pending = [e for e in self.buffer if e["u"] > last]
        self.discarded += len(self.buffer) - len(pending)
        self.buffer = []
        # step 6: the snapshot is the book
        self.bids = {parse_units(p): parse_units(q) for p, q in snap["bids"]}
        self.asks = {parse_units(p): parse_units(q) for p, q in snap["asks"]}
        self.update_id = last
        self.syncing = None
        if pending:
            assert pending[0]["U"] <= last + 1, "first event after the snapshot must straddle lastUpdateId"
        # step 7: apply the buffered events, then everything that follows
        for event in pending:
            if self.update_id is None:       # a gap inside the buffer restarted the process
                self.on_event(event)
            else:
                self._apply(event)

    def _apply(self, event: dict) -> None:
        if event["u"] < self.update_id:
            self.ignored += 1                 # older than the book: ignore
            return
        if event["U"] > self.update_id + 1:
            self.gaps += 1                    # missed events: discard the book, start again
            self.update_id = None
            self.bids, self.asks = {}, {}
            self.on_event(event)
            return
        for side, levels in ((self.bids, event["b"]), (self.asks, event["a"])):
            for p, q in levels:
                price, qty = parse_units(p), parse_units(q)
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.update_id = event["u"]
        self.applied += 1
        self.states[event["u"]] = (tuple(sorted(self.bids.items(), reverse=True)), tuple(sorted(self.asks.items())))


async def _follow(sim, stream_suffix: str, min_applied: int, faults=None) -> dict[str, DocumentedOrderBook]:
    names = "/".join(f"{s.lower()}@{stream_suffix}" for s in SYMBOLS)
    async with aiohttp.ClientSession() as http:
        books = {s: DocumentedOrderBook(s, http, sim.rest_url) for s in SYMBOLS}
        async with http.ws_connect(f"{sim.ws_url}/stream?streams={names}", max_msg_size=0) as ws:
            received = 0
            async for msg in ws:
                doc = orjson.loads(msg.data)
                event = doc["data"]
                assert doc["stream"].endswith(stream_suffix) and event["e"] == "depthUpdate"
                books[event["s"]].on_event(event)
                received += 1
                if faults is not None and received % 400 == 0:
                    faults(received)
                if min(b.applied for b in books.values()) >= min_applied:
                    break
    return books


def _verify(sim, books: dict[str, DocumentedOrderBook]) -> int:
    """Compare every state the client reached with the simulator's book at the same update id."""
    compared = 0
    for symbol, book in books.items():
        truth = sim.control.recorded_books(symbol)
        for u, state in book.states.items():
            assert u in truth, f"{symbol}: client reached update {u}, which the simulator never published"
            assert state == truth[u], f"{symbol}: book differs from the simulator's at update {u}"
            compared += 1
    return compared


def test_client_following_the_docs_reconstructs_the_book_exactly(sim_factory):
    sim = sim_factory({"market.speed": 0})
    sim.control.record_books(list(SYMBOLS))
    books = asyncio.run(_follow(sim, "depth@100ms", min_applied=1500))
    compared = _verify(sim, books)
    updates = sum(max(b.states) - min(b.states) for b in books.values())
    print(f"\nno faults: {compared} diffs compared level by level, spanning {updates} book updates")
    assert compared >= 6000 and updates >= 20000
    assert all(b.gaps == 0 for b in books.values())
    # every book is a real one: at least 20 levels a side
    assert all(len(s[0]) >= 20 and len(s[1]) >= 20 for b in books.values() for s in list(b.states.values())[-5:])


def test_dropped_and_reordered_diffs_are_detected_and_resynced(sim_factory):
    sim = sim_factory({"market.speed": 0})
    sim.control.record_books(list(SYMBOLS))

    def inject(received: int) -> None:
        symbol = SYMBOLS[(received // 400) % len(SYMBOLS)]
        if (received // 400) % 2:
            sim.control.drop_diffs(symbol, 1)
        else:
            sim.control.reorder_diffs(symbol, 1)

    books = asyncio.run(_follow(sim, "depth@100ms", min_applied=1500, faults=inject))
    compared = _verify(sim, books)
    gaps = sum(b.gaps for b in books.values())
    print(f"\nwith gaps: {gaps} gaps detected and resynced, {compared} diffs compared level by level")
    assert gaps >= 5 and compared >= 6000
    assert sum(b.snapshots for b in books.values()) >= len(SYMBOLS) + gaps
    # a reordered diff arrives after its successor: ignored, or discarded from the resync buffer
    assert sum(b.ignored + b.discarded for b in books.values()) >= 1


def test_random_drops_and_the_1000ms_stream(sim_factory):
    sim = sim_factory({"market.speed": 0, "faults.diff_drop_rate": 0.01})
    sim.control.record_books(list(SYMBOLS))
    books = asyncio.run(_follow(sim, "depth", min_applied=300))
    compared = _verify(sim, books)
    print(f"\n1000ms stream, 1% drops: {sum(b.gaps for b in books.values())} gaps, {compared} diffs compared")
    assert compared >= 1200
