"""Feed benchmarks: market-data frame -> md ring record, each beside a same-run baseline.

- bookTicker frame -> record in a real md ring: from the link's picows callback on, the C
  fast path, batches written like the feed writes them (one ``Producer.write`` per socket read,
  here 16 frames), beside a bare ``orjson.loads`` of the same frames -- the parse alone, with
  nothing done with its result. Target: within 1.5x.
- depth diff frame (10 bid + 10 ask levels) -> DEPTH record of the synchronised book, from the
  link's callback on (the C path: parse, book update, top 10 into the slot), beside a bare
  ``orjson.loads`` of the same frames. Target: within 2x;
- book apply cost per level (``LocalBook.apply``: sorted insert/delete) beside a bare dict
  store per level;
- peer: cryptofeed's Binance handler (``message_handler`` of ``cryptofeed.exchanges.Binance``:
  parse with Decimal, book update, callbacks) on the same frames, when cryptofeed is installed
  (``pip install cryptofeed``); skipped otherwise.

    from ctrader.benchmarks import feed
    for r in feed.run(quick=True): print(r["name"], r["value"], r["unit"], r["ratio"])
"""
from __future__ import annotations

import asyncio
import os
import random
import time

import orjson

from ctrader.core.records import MD_EVENT
from ctrader.core.ring import Ring

SYMBOL = "BTCUSDT"
DEPTH_LEVELS = 10          # per side in each diff frame
BOOK_LEVELS = 100          # levels per side of the synchronised book


# --- frames ---------------------------------------------------------------------------------------

def book_ticker_frames(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        bid = 65000 + rng.randint(0, 500) / 100
        out.append((f'{{"stream":"btcusdt@bookTicker","data":{{"u":{40_000_000_000 + i},"s":"BTCUSDT",'
                    f'"b":"{bid:.8f}","B":"{rng.randint(1, 10 ** 6) / 1e5:.8f}","a":"{bid + 0.01:.8f}",'
                    f'"A":"{rng.randint(1, 10 ** 6) / 1e5:.8f}"}}}}').encode())
    return out


def _levels(rng: random.Random, best: float, sign: int) -> list[list[str]]:
    out = []
    for _ in range(DEPTH_LEVELS):
        price = best + sign * rng.randint(0, BOOK_LEVELS - 1) / 100
        qty = 0.0 if rng.random() < 0.2 else rng.randint(1, 10 ** 6) / 1e5
        out.append([f"{price:.8f}", f"{qty:.8f}"])
    return out


def depth_frames(n: int, first_id: int, seed: int = 2) -> list[bytes]:
    rng = random.Random(seed)
    return [orjson.dumps({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1_700_000_000_000 + i, "s": SYMBOL, "U": first_id + i, "u": first_id + i,
        "b": _levels(rng, 65000.00, -1), "a": _levels(rng, 65000.01, 1)}}) for i in range(n)]


def snapshot(last_id: int) -> dict:
    return {"lastUpdateId": last_id,
            "bids": [[f"{65000 - k / 100:.8f}", "1.00000000"] for k in range(BOOK_LEVELS)],
            "asks": [[f"{65000.01 + k / 100:.8f}", "1.00000000"] for k in range(BOOK_LEVELS)]}


# --- measurements ---------------------------------------------------------------------------------

def _best_ns_per(fn, frames, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn(frames)
        best = min(best, (time.perf_counter_ns() - t0) / len(frames))
    return best


def bare_orjson(frames) -> None:
    loads = orjson.loads
    for f in frames:
        loads(f)


class _FeedUnderTest:
    """A FeedEngine on one symbol writing into a real md ring (no sockets)."""

    def __init__(self, streams: str) -> None:
        from ctrader.config import load_config
        from ctrader.feed.connection import StreamConnection
        from ctrader.feed.engine import FeedEngine
        from ctrader.market.universe import Universe

        cfg = load_config(env={}, overrides={"feed.streams": streams})
        uni = Universe.from_exchange_info(_exchange_info(cfg), symbols=[SYMBOL])
        self.ring = Ring.create(f"ctrader.benchfeed{os.getpid()}.{streams.count(',')}", MD_EVENT, 1 << 14)
        self.producer = self.ring.producer()
        self.engine = FeedEngine(cfg, uni, self.producer.write)
        # a socket object the link takes as its live one (nothing is connected)
        self.conn = StreamConnection("ws://127.0.0.1:1", [], self.engine.links[0].on_frame)
        self.engine.links[0].live = self.conn

    def feed(self, frames) -> None:
        """Frames as picows hands them over: through the link's callback, a socket read every 16."""
        link = self.engine.links[0]
        on_frame, conn = link.on_frame, self.conn
        last = len(frames) - 1
        for i, f in enumerate(frames):
            on_frame(conn, f, 1, 1, i & 15 == 15 or i == last)

    def close(self) -> None:
        self.ring.close()


def _exchange_info(cfg) -> dict:
    from ctrader.sim.universe import build_universe

    return build_universe(cfg.sim).exchange_info


def bench_book_ticker(n: int, reps: int) -> tuple[float, float, float]:
    """(ns/frame ours, ns/frame bare orjson.loads, records written); best of ``reps``, the two
    measured alternately so that a busy moment of the machine hits both alike."""
    frames = book_ticker_frames(n)
    fut = _FeedUnderTest("bookTicker")
    ns = base = float("inf")
    try:
        for _ in range(reps):
            base = min(base, _best_ns_per(bare_orjson, frames, 1))
            ns = min(ns, _fresh_book_ticker(fut, frames))
        records = fut.engine.batch.written
    finally:
        fut.close()
    if records < n:
        raise RuntimeError(f"bookTicker bench wrote {records} records for {n} frames")
    return ns, base, records


def _fresh_book_ticker(fut: _FeedUnderTest, frames) -> float:
    fut.engine.last_bt[:] = 0            # the same frames again must not count as duplicates
    t0 = time.perf_counter_ns()
    fut.feed(frames)
    return (time.perf_counter_ns() - t0) / len(frames)


def bench_depth(n: int, reps: int) -> tuple[float, float]:
    first = 1_000_000
    frames = depth_frames(n, first)
    best = base = float("inf")
    for _ in range(reps):
        base = min(base, _best_ns_per(bare_orjson, frames, 1))
        fut = _FeedUnderTest("depth@100ms")
        try:
            eng = fut.engine
            eng.process(frames[0], 1, 1)                     # buffered: the book needs a snapshot
            eng._on_snapshot(SYMBOL, snapshot(first))
            t0 = time.perf_counter_ns()
            fut.feed(frames[1:])
            best = min(best, (time.perf_counter_ns() - t0) / (n - 1))
            sync = eng.syncs[eng.symbol_ids[SYMBOL]]
            if sync.stale or sync.update_id != first + n - 1:
                raise RuntimeError("depth bench book fell out of sync")
        finally:
            fut.close()
    return best, base


def bench_book_apply(n: int, reps: int) -> tuple[float, float]:
    from ctrader.feed.book import LocalBook, parse_levels

    frames = [orjson.loads(f)["data"] for f in depth_frames(n, 1)]
    updates = [(parse_levels(d["b"]), parse_levels(d["a"])) for d in frames]
    snap = snapshot(0)
    snap_bids, snap_asks = parse_levels(snap["bids"]), parse_levels(snap["asks"])
    per_frame = 2 * DEPTH_LEVELS

    def apply(_):
        book = LocalBook()
        book.replace(snap_bids, snap_asks)
        for b, a in updates:
            book.apply(b, a)

    def dict_store(_):
        bids, asks = {}, {}
        for b, a in updates:
            for p, q in b:
                bids[p] = q
            for p, q in a:
                asks[p] = q

    return (_best_ns_per(apply, updates, reps) / per_frame, _best_ns_per(dict_store, updates, reps) / per_frame)


# --- peer: cryptofeed ----------------------------------------------------------------------------------

def bench_cryptofeed(n: int, reps: int) -> dict | None:
    """ns/frame of cryptofeed's Binance handler for bookTicker and depth frames, or None."""
    try:
        from decimal import Decimal

        from cryptofeed.defines import L2_BOOK, TICKER
        from cryptofeed.exchanges import Binance
        from cryptofeed.symbols import Symbol, Symbols
        from cryptofeed.types import OrderBook
    except ImportError:
        return None
    try:
        sym = Symbol("BTC", "USDT")
        # No network here: give cryptofeed its symbol table instead of letting it fetch one.
        Symbols.set(Binance.id, {sym.normalized: SYMBOL}, {"tick_size": {}, "instrument_type": {}})

        async def noop(*args, **kwargs):
            return None

        async def run() -> dict:
            feed = Binance(symbols=[sym.normalized], channels=[L2_BOOK, TICKER],
                           callbacks={L2_BOOK: noop, TICKER: noop})
            pair = sym.normalized
            conn = None
            out = {}
            bt = [f.decode() for f in book_ticker_frames(n)]
            t_best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter_ns()
                for f in bt:
                    await feed.message_handler(f, conn, 0.0)
                t_best = min(t_best, (time.perf_counter_ns() - t0) / n)
            out["bookTicker"] = t_best
            first = 1_000_000
            depth = [f.decode() for f in depth_frames(n, first + 1)]
            d_best = float("inf")
            for _ in range(reps):
                snap = snapshot(first)
                feed._l2_book[pair] = OrderBook(feed.id, pair, max_depth=feed.max_depth,
                                                bids={Decimal(p): Decimal(q) for p, q in snap["bids"]},
                                                asks={Decimal(p): Decimal(q) for p, q in snap["asks"]})
                feed.last_update_id[pair] = first
                t0 = time.perf_counter_ns()
                for f in depth:
                    await feed.message_handler(f, conn, 0.0)
                d_best = min(d_best, (time.perf_counter_ns() - t0) / n)
                if feed.last_update_id[pair] != first + n:
                    raise RuntimeError("cryptofeed book fell out of sync")
            out["depth"] = d_best
            return out

        return asyncio.run(run())
    except Exception as exc:             # noqa: BLE001  a peer figure is optional: never fail the suite
        return {"error": f"{type(exc).__name__}: {exc}"}


# --- the suite ------------------------------------------------------------------------------------

def run(quick: bool = False) -> list[dict]:
    n, reps = (20_000, 7) if quick else (200_000, 9)
    bt_ns, bt_base, _ = bench_book_ticker(n, reps)
    d_ns, d_base = bench_depth(n // 4, reps)
    apply_ns, dict_ns = bench_book_apply(n // 4, reps)
    results = [
        {"name": "bookTicker frame -> md ring record", "value": bt_ns, "unit": "ns/frame",
         "baseline_name": "orjson.loads (same frames)", "baseline_value": bt_base, "ratio": bt_ns / bt_base,
         "note": "C fast path; Producer.write per 16 frames; target <= 1.5x"},
        {"name": "depth frame -> md ring record", "value": d_ns, "unit": "ns/frame",
         "baseline_name": "orjson.loads (same frames)", "baseline_value": d_base, "ratio": d_ns / d_base,
         "note": f"C path; {DEPTH_LEVELS}+{DEPTH_LEVELS} levels/diff, {BOOK_LEVELS}-level book, top-10 record; "
                 "target <= 2x"},
        {"name": "book apply per level", "value": apply_ns, "unit": "ns/level",
         "baseline_name": "dict store per level", "baseline_value": dict_ns, "ratio": apply_ns / dict_ns,
         "note": "LocalBook.apply (C book, from Python tuples): sorted insert/delete, 20% deletes"},
    ]
    peer = bench_cryptofeed(max(2_000, n // 10), reps)
    if peer is None:
        results.append({"name": "cryptofeed Binance handler", "value": None, "unit": "ns/frame",
                        "baseline_name": "", "baseline_value": None, "ratio": None,
                        "note": "skipped: cryptofeed not installed (pip install cryptofeed)"})
    elif "error" in peer:
        results.append({"name": "cryptofeed Binance handler", "value": None, "unit": "ns/frame",
                        "baseline_name": "", "baseline_value": None, "ratio": None,
                        "note": f"skipped: {peer['error']}"})
    else:
        results.append({"name": "bookTicker frame -> md ring record (vs cryptofeed)", "value": bt_ns,
                        "unit": "ns/frame", "baseline_name": "cryptofeed Binance bookTicker",
                        "baseline_value": peer["bookTicker"], "ratio": bt_ns / peer["bookTicker"],
                        "note": "peer: message_handler -> Ticker callback"})
        results.append({"name": "depth frame -> md ring record (vs cryptofeed)", "value": d_ns,
                        "unit": "ns/frame", "baseline_name": "cryptofeed Binance depthUpdate",
                        "baseline_value": peer["depth"], "ratio": d_ns / peer["depth"],
                        "note": "peer: message_handler -> book delta, L2 callback"})
    return results


def check_regressions(results: list[dict]) -> list[str]:
    """Gross regressions of same-run ratios only."""
    problems = []
    for r in results:
        if r["name"] == "bookTicker frame -> md ring record" and r["ratio"] > 3.0:
            problems.append(f"bookTicker frame -> record is {r['ratio']:.1f}x orjson.loads (target 1.5x, limit 3x)")
        if r["name"] == "depth frame -> md ring record" and r["ratio"] > 4.0:
            problems.append(f"depth frame -> record is {r['ratio']:.1f}x orjson.loads (target 2x, limit 4x)")
        if r["name"] == "book apply per level" and r["ratio"] > 20.0:
            problems.append(f"book apply is {r['ratio']:.1f}x a dict store per level (limit 20x)")
    return problems
