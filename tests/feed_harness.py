"""Drive a FeedEngine against a simulator and check what it published against the simulator's truth.

    run = FeedRun(sim, SYMBOLS, feed={"planned_reconnect_h": 0.001})
    records = run.run(until=lambda run: run.updates() >= 20000, inject=my_faults, timeout_s=60)
    report = verify(sim, run)      # asserts: every fresh book == the simulator's at its update id
"""
from __future__ import annotations

import asyncio
import time
from typing import Self

import numpy as np

from ctrader.config import load_config
from ctrader.core.records import MdFlag, MdKind
from ctrader.feed.engine import FeedEngine
from ctrader.market.universe import Universe, fetch_exchange_info
from ctrader.sim.control import top_hash


STOP_TIMEOUT_S = 30.0


def feed_config(sim, feed: dict | None = None):
    port = sim.rest_url.rsplit(":", 1)[1]
    sets = {"venue.kind": "sim", "sim.port": port}
    for key, value in (feed or {}).items():
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        sets[f"feed.{key}"] = str(value)
    return load_config(env={}, overrides=sets)


class FeedRun:
    def __init__(self, sim, symbols, feed: dict | None = None) -> None:
        self.sim = sim
        self.cfg = feed_config(sim, feed)
        self.universe = Universe.from_exchange_info(fetch_exchange_info(sim.rest_url), symbols=list(symbols))
        self.chunks: list[np.ndarray] = []
        self.count = 0
        self.depth_count = 0
        self.engine = FeedEngine(self.cfg, self.universe, self._sink)
        self.first_u: dict[int, int] = {}
        self.last_u: dict[int, int] = {}

    def _sink(self, records: np.ndarray) -> None:
        self.chunks.append(records.copy())
        self.count += len(records)
        books = records[(records["kind"] == MdKind.DEPTH) | (records["kind"] == MdKind.SNAPSHOT)]
        self.depth_count += len(books)
        for sid in np.unique(books["symbol_id"]).tolist():
            u = books["last_update_id"][books["symbol_id"] == sid]
            self.first_u.setdefault(sid, int(u[0]))
            self.last_u[sid] = int(u[-1])

    def updates(self) -> int:
        """Book updates (update ids) the published depth records span, summed over symbols."""
        return sum(self.last_u[s] - self.first_u[s] for s in self.last_u)

    def records(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, self.engine.batch.records.dtype)

    def run(self, until, inject=None, timeout_s: float = 60.0, inject_every_s: float = 0.5) -> np.ndarray:
        async def main() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(self.engine.run(stop))
            deadline = time.monotonic() + timeout_s
            next_inject = time.monotonic() + inject_every_s
            step = 0
            try:
                while not until(self) and time.monotonic() < deadline:
                    if task.done():
                        task.result()
                    await asyncio.sleep(0.02)
                    if inject is not None and time.monotonic() >= next_inject:
                        next_inject = time.monotonic() + inject_every_s
                        step += 1
                        await asyncio.get_running_loop().run_in_executor(None, inject, step)
            finally:
                stop.set()
                # the feed stops within seconds of being told; one that does not is the failure
                try:
                    await asyncio.wait_for(task, STOP_TIMEOUT_S)
                except TimeoutError:
                    raise AssertionError(f"the feed engine did not stop within {STOP_TIMEOUT_S} s "
                                         f"of its stop event") from None
        asyncio.run(main())
        return self.records()


def _units(values) -> list[int]:
    return [round(v * 1e8) for v in values]


def levels_hash(bid_px, bid_qty, ask_px, ask_qty, nb: int, na: int, depth: int) -> int:
    """``top_hash`` of a record's first ``depth`` levels (prices back in 1e-8 units)."""
    nb, na = min(nb, depth), min(na, depth)
    bids = list(zip(_units(bid_px[:nb]), _units(bid_qty[:nb])))
    asks = list(zip(_units(ask_px[:na]), _units(ask_qty[:na])))
    return top_hash(bids, asks)


def verify(sim, run: FeedRun) -> dict:
    """Check every record: fresh books equal the simulator's, stale intervals are flagged."""
    records = run.records()
    names = {s.id: s.name for s in run.universe.symbols}
    truth = {sid: sim.control.recorded_tops(name) for sid, name in names.items()}
    assert np.all(np.diff(records["seq"]) > 0), "feed seq must be strictly increasing"
    # plain lists: per-record access to numpy structured rows is slow
    cols = {k: records[k].tolist() for k in ("symbol_id", "kind", "flags", "last_update_id", "n_bids", "n_asks",
                                            "bid_px", "bid_qty", "ask_px", "ask_qty")}
    stale = {sid: True for sid in names}        # every book starts stale
    out = {"depth_checked": 0, "ticker_checked": 0, "stale_records": 0, "status": 0, "resyncs": 0,
           "trades": 0, "unknown_u": 0}
    for i in range(len(records)):
        sid, kind, flags, u = cols["symbol_id"][i], cols["kind"][i], cols["flags"][i], cols["last_update_id"][i]
        if kind == MdKind.STATUS:
            assert flags & MdFlag.STALE, "a STATUS record announces a stale book"
            stale[sid] = True
            out["status"] += 1
            continue
        if kind == MdKind.SNAPSHOT:
            assert flags & MdFlag.RESYNC and not flags & MdFlag.STALE, "a rebuild is a fresh SNAPSHOT|RESYNC"
            assert stale[sid], "a SNAPSHOT only ends a stale interval"
            stale[sid] = False
            out["resyncs"] += 1
        elif kind == MdKind.TRADE:
            out["trades"] += 1
            assert bool(flags & MdFlag.STALE) == stale[sid]
            continue
        if stale[sid]:
            assert flags & MdFlag.STALE, f"{names[sid]}: record at update {u} not flagged although the book is stale"
            out["stale_records"] += 1
            continue
        assert not flags & MdFlag.STALE, f"{names[sid]}: STALE record outside a stale interval"
        want = truth[sid].get(u)
        if want is None:
            out["unknown_u"] += 1          # before the simulator started recording
            continue
        depth = 1 if kind == MdKind.BOOK_TICKER else 10
        got = levels_hash(cols["bid_px"][i], cols["bid_qty"][i], cols["ask_px"][i], cols["ask_qty"][i],
                          cols["n_bids"][i], cols["n_asks"][i], depth)
        if kind == MdKind.BOOK_TICKER:
            assert got == want[1], f"{names[sid]}: bookTicker at {u} differs from the simulator's best levels"
            out["ticker_checked"] += 1
        else:
            assert got == want[0], f"{names[sid]}: book at update {u} differs from the simulator's"
            out["depth_checked"] += 1
    out["updates"] = run.updates()
    return out


class FeedThread:
    """A ``FeedEngine`` against ``sim`` on a thread of its own, its records kept in arrival order;
    the test's thread drives the simulator (``sim.control``, REST) and waits on what arrived.

        with FeedThread(sim, ["BTCUSDT"], streams=["bookTicker", "depth@100ms", "trade"]) as feed:
            feed.wait(lambda f: f.has(MdKind.SNAPSHOT))
            sim.control.step(100)
            feed.wait_caught_up(sim, "BTCUSDT")      # every frame of those steps is a record now
            recs = feed.records()
    """

    def __init__(self, sim, symbols, streams=("bookTicker", "depth@100ms", "trade"), feed: dict | None = None) -> None:
        import threading

        self.sim = sim
        self.cfg = feed_config(sim, {"streams": list(streams), **(feed or {})})
        self.universe = Universe.from_exchange_info(fetch_exchange_info(sim.rest_url), symbols=list(symbols))
        self.engine = FeedEngine(self.cfg, self.universe, self._sink)
        self._chunks: list[np.ndarray] = []
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="feed-thread", daemon=True)

    def _sink(self, records: np.ndarray) -> None:
        with self._cond:
            self._chunks.append(records.copy())
            self._cond.notify_all()

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            await self.engine.run(self._stop)
        try:
            self._loop.run_until_complete(main())
        except Exception as exc:  # noqa: BLE001 -- re-raised by wait() on the test's thread
            self._error = exc
        finally:
            self._loop.close()
            with self._cond:
                self._cond.notify_all()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: self._stop is not None and self._stop.set())
            self._thread.join(30)

    def count(self) -> int:
        with self._cond:
            return sum(len(c) for c in self._chunks)

    def records(self) -> np.ndarray:
        with self._cond:
            if not self._chunks:
                return np.zeros(0, self.engine.batch.records.dtype)
            self._chunks = [np.concatenate(self._chunks)]
            return self._chunks[0].copy()

    def has(self, kind: MdKind) -> bool:
        with self._cond:
            return any((c["kind"] == kind).any() for c in self._chunks)

    def last_book_update_id(self, symbol_id: int) -> int:
        """The highest update id of a DEPTH/SNAPSHOT record of ``symbol_id`` so far (0: none)."""
        with self._cond:
            best = 0
            for c in self._chunks:
                books = c[((c["kind"] == MdKind.DEPTH) | (c["kind"] == MdKind.SNAPSHOT)) & (c["symbol_id"] == symbol_id)]
                if len(books):
                    best = max(best, int(books["last_update_id"].max()))
            return best

    def wait(self, predicate, timeout_s: float = 30.0) -> None:
        """Block until ``predicate(self)`` holds (re-checked whenever records arrive)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                self._cond.release()
                try:
                    ok = predicate(self)
                finally:
                    self._cond.acquire()
                if ok:
                    return
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise TimeoutError("the feed did not publish what was waited for")
                self._cond.wait(min(left, 1.0))

    def wait_caught_up(self, symbol: str, timeout_s: float = 30.0) -> None:
        """Until a book record carries the simulator's current update id of ``symbol``: with the
        market paused, every trade and book frame sent before it has become a record."""
        target = self.sim.control.book(symbol, 1)[0]
        sid = self.universe.symbol_id(symbol)
        self.wait(lambda f: f.last_book_update_id(sid) >= target, timeout_s)
