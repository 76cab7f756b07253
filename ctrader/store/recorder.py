"""The recorder: the one process that writes the store during a live session.

It reads the md ring (broadcast: it can be lapped, never slows the feed; lost records are counted
and reported), the journal and exec rings (lossless: nothing is lost) and, when the run declares
it a consumer, the intents ring. Records are read straight into preallocated numpy buffers,
turned into Arrow columns in one vectorised pass per batch (``columns.py``) and inserted when a
buffer holds ``batch_rows`` records or is ``batch_ms`` old, whichever comes first.

Inserts run on a writer thread, so a slow store never stops the reading. When the store is down
or slower than the rings, batches go to a spill directory on local disk (``spill.py``); the
writer inserts them, oldest first, once the store answers again. Memory is bounded by
``max_buffer_rows`` queued rows. On stop the recorder drains every ring until its producers have
stopped, then flushes: everything written to the rings ends up in the store (or, if the store is
down at that moment, in the spill directory, which the next recorder catches up).

In-process use (tests, ``ctrader start`` without ``--processes``):

    engine = RecorderEngine(rings, run_id="r1", store_factory=lambda: Store.open(url),
                            spill_dir="/tmp/spill", symbols=["BTCUSDT", ...])
    engine.run_until(lambda: done)      # or engine.step() in your own loop
    engine.close()                      # drains, flushes, waits for the writer
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from ctrader.core import ring_layout as L
from ctrader.core import shm
from ctrader.core.records import MdFlag, MdKind
from ctrader.core.ring import Ring
from ctrader.core.wait import SLEEP, WaitStrategy
from ctrader.store.client import StoreUnavailable
from ctrader.store.columns import (
    RING_RECORDS,
    Names,
    candidates_to_arrow,
    executions_to_arrow,
    intents_to_arrow,
    md_to_arrow,
)
from ctrader.store.spill import SpillDir

log = logging.getLogger(__name__)

# Counters that continue across a restart of the recorder within a run (``runtime.stats``).
COUNTERS = ("batches", "insert_errors", "inserts", "md_lost", "md_overruns", "md_restart_gap", "read_exec",
            "read_intents", "read_journal", "read_md", "replayed_rows", "rows_candidates", "rows_executions",
            "rows_md_book", "rows_md_trade", "rows_orders", "rows_runs", "spilled_direct_batches", "spilled_rows")

_RING_WAIT = WaitStrategy(SLEEP, 1000)   # the recorder is not latency-critical: never spin


class _Writer(threading.Thread):
    """Owns the store: opens it (retrying), inserts queued batches, spills what fails, catches up."""

    def __init__(self, store_factory: Callable[[], object], spill: SpillDir, retry_s: float) -> None:
        super().__init__(name="ctrader-recorder-writer", daemon=True)
        self.store_factory = store_factory
        self.spill = spill
        self.retry_s = retry_s
        self.queue: queue.Queue = queue.Queue()
        self.queued_rows = 0
        self.store = None
        self.up = False            # the last store operation succeeded
        self.inserted: dict[str, int] = {}
        self.insert_errors = 0
        self.inserts = 0
        self._stopping = threading.Event()
        self._rows_lock = threading.Lock()
        self._next_try = 0.0
        self._failing_logged = False

    def submit(self, table: str, data: pa.Table, on_durable: Callable[[], None] | None = None) -> None:
        """Queue ``data`` for ``table``; ``on_durable`` is called (on this thread) once it is in
        the store or in a spill file."""
        with self._rows_lock:
            self.queued_rows += data.num_rows
        self.queue.put((table, data, on_durable))

    def _insert(self, table: str, data: pa.Table) -> None:
        self.store.insert(table, data)
        self.inserted[table] = self.inserted.get(table, 0) + data.num_rows
        self.inserts += 1

    def _fail(self, exc: BaseException) -> None:
        self.insert_errors += 1
        self.up = False
        self._next_try = time.monotonic() + self.retry_s
        if not self._failing_logged:
            log.warning("store unavailable (%s): spilling to %s and retrying every %.1fs",
                        exc, self.spill.dir, self.retry_s)
            self._failing_logged = True

    def _ensure_store(self) -> bool:
        if self.store is not None:
            return True
        if time.monotonic() < self._next_try:
            return False
        try:
            self.store = self.store_factory()
        except Exception as exc:       # unreachable, locked, refusing: spill meanwhile and retry
            self._fail(exc)
            return False
        return True

    def _catch_up(self) -> None:
        """Insert spilled batches (one per call, so queued work keeps flowing)."""
        if not self.spill.pending() or time.monotonic() < self._next_try:
            return
        try:
            rows = self.spill.drain(self._insert, max_files=1)
        except Exception as exc:
            self._fail(exc)
            return
        if rows and not self.spill.pending():
            log.info("caught up: every spilled batch is in the store (%d rows replayed)", self.spill.rows_replayed)
        self._mark_up()

    def _mark_up(self) -> None:
        if not self.up and self._failing_logged:
            log.info("store reachable again")
            self._failing_logged = False
        self.up = True

    def run(self) -> None:
        while True:
            catching_up = self.up and self.spill.pending()
            try:
                # while catching up, do not idle on an empty queue: replay the next spill file
                table, data, on_durable = self.queue.get_nowait() if catching_up else self.queue.get(timeout=0.05)
            except queue.Empty:
                table = data = on_durable = None
            if data is not None:
                with self._rows_lock:
                    self.queued_rows -= data.num_rows
                if self._ensure_store() and time.monotonic() >= self._next_try:
                    try:
                        self._insert(table, data)
                        self._mark_up()
                    except Exception as exc:      # Store.insert raises StoreUnavailable; anything else too
                        self._fail(exc)
                        self.spill.put(table, data)
                else:
                    self.spill.put(table, data)
                if on_durable is not None:
                    on_durable()
            elif self._stopping.is_set() and not (self.up and self.spill.pending()):
                return
            if self._ensure_store():
                self._catch_up()

    def finish(self, timeout_s: float) -> None:
        """Insert what is queued and what was spilled, trying until ``timeout_s`` (less if the
        store stays down: a few retries, then the spill files wait for the next recorder)."""
        deadline = time.monotonic() + timeout_s
        while self.queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        down_since = None
        while self.spill.pending() and time.monotonic() < deadline:
            if self.up:
                down_since = None
            elif down_since is None:
                down_since = time.monotonic()
            elif time.monotonic() - down_since > max(3 * self.retry_s, 2.0):
                break
            time.sleep(0.02)
        self._stopping.set()
        self.join(max(5.0, deadline - time.monotonic()))
        if self.is_alive():
            log.error("the store did not finish an insert within %.0fs; leaving it", timeout_s)
        if self.spill.pending():
            log.warning("store unavailable at stop: %d batches stay in %s for the next recorder",
                        self.spill.pending(), self.spill.dir)

    def close_store(self) -> None:
        if self.store is not None and not self.is_alive():
            self.store.close()
            self.store = None


class _Source:
    """One ring the recorder reads, with its buffer of records waiting to be inserted.

    A lossless ring's records stay claimed (peeked, not committed) until the batch holding them
    is in the store or in a spill file: a recorder killed meanwhile leaves them on the ring for
    the next one. One batch per ring is in flight at a time; what arrives meanwhile waits on
    the ring. (A kill between the insert and the commit inserts that batch twice: at least once.)
    The md ring is broadcast (the feed never waits for us): it is read, and its position saved
    once a batch is durable, so that a restarted recorder continues from there (see
    ``RecorderEngine.resume_md``)."""

    def __init__(self, key: str, consumer, batch_rows: int) -> None:
        self.key = key
        self.consumer = consumer
        self.dtype = RING_RECORDS[key]
        self.batch_rows = batch_rows
        self.buffer = np.empty(batch_rows, self.dtype)
        self.fill = 0
        self.first_at = 0.0         # monotonic time the oldest buffered record was read
        self.records = 0
        self.lossless = consumer.ring.kind == L.LOSSLESS
        self.in_flight = 0          # lossless: records of a submitted batch, not yet durable (not committed)

    def read(self) -> int:
        if not self.lossless:
            n = self.consumer.read_batch(self.buffer[self.fill:], 0.0)
        else:
            if self.in_flight or self.consumer.lag <= self.fill:
                return 0
            # peek starts at the committed cursor: the records already buffered, then the new ones
            n = self.consumer.peek_batch(self.buffer, 0.0) - self.fill
        if n > 0:
            if self.fill == 0:
                self.first_at = time.monotonic()
            self.fill += n
            self.records += n
        return max(n, 0)

    def take(self) -> np.ndarray:
        batch = self.buffer[: self.fill]
        if self.lossless:
            self.in_flight = self.fill
        self.buffer = np.empty(self.batch_rows, self.dtype)
        self.fill = 0
        return batch

    def durable(self, n: int) -> None:
        """A batch of ``n`` records is in the store (or spilled): release them from the ring."""
        self.consumer.commit(n)
        self.in_flight = 0

    @property
    def cursor(self) -> int:
        """The ring sequence of the next record this consumer reads."""
        return int(self.consumer.ring.views.ctl[L.C_BASE + self.consumer.index * L.C_STRIDE + L.C_CURSOR])

    def unread(self) -> int:
        """Records on the ring not read yet (lossless: not even peeked)."""
        return self.consumer.lag - (self.fill + self.in_flight if self.lossless else 0)

    def rewind_to_start(self) -> bool:
        """A broadcast consumer starts at the newest record; the recorder wants the run from its
        first record. If the ring has not wrapped far yet (head <= capacity / 2: every record is
        still intact and far from being overwritten), start from sequence 0. Returns True if so."""
        ring = self.consumer.ring
        ctl = ring.views.ctl
        if int(ctl[L.H_HEAD]) > ring.capacity // 2:
            return False
        ctl[L.C_BASE + self.consumer.index * L.C_STRIDE + L.C_CURSOR] = 0   # our own cursor: we are its only writer
        return True

    def producer_alive_elsewhere(self) -> bool:
        pid = int(self.consumer.ring.views.ctl[L.H_PRODUCER_PID])
        return pid not in (0, os.getpid()) and shm.pid_alive(pid)

    def lag(self) -> int:
        return self.consumer.lag


class RecorderEngine:
    def __init__(self, rings: dict[str, Ring], run_id: str, store_factory: Callable[[], object],
                 spill_dir: str | os.PathLike, symbols: list[str] | None = None, assets: list[str] | None = None,
                 *, batch_rows: int = 20_000, batch_ms: int = 500, max_buffer_rows: int = 200_000,
                 retry_s: float = 1.0, live=None, publish_ms: int = 250, stats_file=None,
                 read_stats: Callable[[], dict] | None = None, run_meta: dict | None = None,
                 record_intents: bool = False, rewind_md: bool = True,
                 consumer_ids: dict[str, int] | None = None, md_position_file: str | os.PathLike | None = None) -> None:
        from ctrader.core.topology import consumer_id

        self.run_id = run_id
        self.symbols = Names(symbols)
        self.assets = Names(assets)
        self.batch_ms = batch_ms
        self.max_buffer_rows = max_buffer_rows
        self.live = live
        self.publish_s = publish_ms / 1000
        self.stats_file = stats_file
        self.read_stats = read_stats
        self.run_meta = dict(run_meta or {})
        self.started_ns = time.time_ns()
        self.mono_to_wall_ns = time.time_ns() - time.monotonic_ns()
        self.sources: dict[str, _Source] = {}
        self.md_position_file = md_position_file
        self.md_restart_gap = 0       # md records a restarted recorder found gone from the ring
        self._durable: queue.SimpleQueue = queue.SimpleQueue()   # (source key, records, md position) from the writer
        if "md" in rings:
            self.sources["md"] = _Source("md", rings["md"].consumer(wait=_RING_WAIT), batch_rows)
            if not rewind_md:
                if md_position_file is not None:
                    self.resume_md()        # else: from the newest record, as a broadcast consumer starts
            elif not self.sources["md"].rewind_to_start():
                log.warning("md ring already wrapped when the recorder attached: recording from its newest record")
        for key in ("journal", "exec") + (("intents",) if record_intents else ()):
            if key in rings:
                index = (consumer_ids or {}).get(key)
                index = consumer_id(key, "recorder") if index is None else index
                self.sources[key] = _Source(key, rings[key].consumer(index, wait=_RING_WAIT), batch_rows)
        self.spill = SpillDir(spill_dir)
        self.writer = _Writer(store_factory, self.spill, retry_s)
        self.writer.start()
        self.spilled_direct = 0      # batches spilled because memory was full
        self.batches = 0
        # top of book per symbol id, for Redis
        self._tob = np.zeros((0, 4))      # bid, bid_qty, ask, ask_qty
        self._tob_ts = np.zeros(0, np.int64)
        self._tob_flags = np.zeros(0, np.int64)
        self._tob_seen = np.zeros(0, bool)
        self._next_publish = 0.0
        self._lost_reported = 0
        self._closed = False
        self._submit_run(ended=False)

    # --- the loop ------------------------------------------------------------------------------

    def resume_md(self) -> None:
        """A recorder restarted within a run: continue the md ring where the last one's durable
        batches ended (``md_position_file``), if the ring still holds those records; what it no
        longer holds is a gap, counted (``md_restart_gap``, in ``md_lost``) and logged."""
        src = self.sources["md"]
        ring = src.consumer.ring
        head = int(ring.views.ctl[L.H_HEAD])
        try:
            saved = int(open(self.md_position_file).read().split()[0]) if self.md_position_file else None
        except (OSError, ValueError, IndexError):
            saved = None
        start = 0 if saved is None else saved         # nothing durable yet: the run's first record
        # the feed keeps writing while we catch up: resume only where half the ring is still ahead
        oldest_safe = max(0, head - ring.capacity // 2)
        if start < oldest_safe:
            self.md_restart_gap = oldest_safe - start
            log.warning("recorder restarted: md records %d..%d are no longer on the ring: %d lost (not in the "
                        "store); recording from %d", start, oldest_safe - 1, self.md_restart_gap, oldest_safe)
            start = oldest_safe
        else:
            log.warning("recorder restarted: recording md from record %d, where the last recorder's stored "
                        "batches ended (%d records behind the feed)", start, head - start)
        ring.views.ctl[L.C_BASE + src.consumer.index * L.C_STRIDE + L.C_CURSOR] = start   # our own cursor

    def _settle_durable(self) -> None:
        """Batches the writer reports durable: lossless records are released from their ring,
        the md position is saved for a restart."""
        while not self._durable.empty():
            key, n, md_position = self._durable.get_nowait()
            if key == "md":
                if self.md_position_file is not None:
                    tmp = f"{self.md_position_file}.tmp"
                    with open(tmp, "w") as f:
                        f.write(f"{md_position}\n")
                    os.replace(tmp, self.md_position_file)
            else:
                self.sources[key].durable(n)

    def step(self) -> int:
        """Read what the rings hold (up to a buffer each), flush full or old buffers. Records read."""
        self._settle_durable()
        total = 0
        now = time.monotonic()
        for src in self.sources.values():
            before = src.fill
            n = src.read()
            total += n
            if n and src.key == "md" and self.live is not None:
                self._update_tob(src.buffer[before:src.fill])
            if src.fill and (src.fill == src.batch_rows or now - src.first_at >= self.batch_ms / 1000):
                self._flush(src)
        if now >= self._next_publish:
            self._next_publish = now + self.publish_s
            self._publish()
        return total

    def run_until(self, stop: Callable[[], bool], beat: Callable[[int], None] | None = None,
                  idle_sleep_s: float = 0.002) -> None:
        """Step until ``stop()``. Then call ``close()``: it drains the rings and flushes."""
        last_beat = 0.0
        while not stop():
            n = self.step()
            if beat is not None and time.monotonic() - last_beat >= 0.25:
                beat(self.records_read)
                last_beat = time.monotonic()
            if n == 0:
                time.sleep(idle_sleep_s)

    def drain(self, quiet_s: float = 0.25, timeout_s: float = 30.0, beat: Callable[[int], None] | None = None) -> None:
        """Read until every ring is empty for ``quiet_s`` and no producer in another process is
        still alive (the producers stop first), or ``timeout_s`` passes; then flush the buffers."""
        deadline = time.monotonic() + timeout_s
        quiet_since = last_beat = time.monotonic()
        while time.monotonic() < deadline:
            if beat is not None and time.monotonic() - last_beat >= 0.25:
                beat(self.records_read)            # the supervisor keeps hearing from us while we drain
                last_beat = time.monotonic()
            if self.step():
                quiet_since = time.monotonic()
                continue
            lossless_empty = all(src.unread() <= 0 for k, src in self.sources.items() if k != "md")
            producers_done = not any(src.producer_alive_elsewhere() for src in self.sources.values())
            if lossless_empty and producers_done and time.monotonic() - quiet_since >= quiet_s:
                break
            time.sleep(0.002)
        else:
            log.warning("drain stopped after %.0fs with producers still writing", timeout_s)
        for src in self.sources.values():
            if src.fill:
                self._flush(src)

    def close(self, drain: bool = True, finish_timeout_s: float = 30.0,
              beat: Callable[[int], None] | None = None) -> dict:
        """Drain (optional), flush, wait for the writer to insert everything, close the store."""
        if self._closed:
            return self.stats()
        self._closed = True
        if drain:
            self.drain(beat=beat)
        else:
            for src in self.sources.values():
                if src.fill:
                    self._flush(src)
        self.writer.finish(finish_timeout_s)
        self._settle_durable()
        self._write_final_run_row()
        self.writer.close_store()
        for src in self.sources.values():
            if src.key == "md":
                src.consumer.release()
        stats = self.stats()
        if self.stats_file is not None:
            self.stats_file.write(stats)
        self._publish()
        if self.live is not None:
            self.live.close()
        log.info("recorder stopped: %s", ", ".join(f"{k}={v}" for k, v in stats.items() if k.startswith("rows_")))
        return stats

    # --- batches -------------------------------------------------------------------------------

    def _tables(self, key: str, batch: np.ndarray) -> list[tuple[str, pa.Table]]:
        if key == "md":
            book, trades = md_to_arrow(batch, self.symbols, self.run_id)
            return [(name, t) for name, t in (("md_book", book), ("md_trade", trades)) if t is not None]
        if key == "journal":
            return [("candidates", candidates_to_arrow(batch, self.symbols, self.run_id))]
        if key == "exec":
            return [("executions", executions_to_arrow(batch, self.symbols, self.assets, self.run_id))]
        return [("orders", intents_to_arrow(batch, self.symbols, self.run_id, self.mono_to_wall_ns))]

    def _flush(self, src: _Source) -> None:
        md_position = src.cursor if src.key == "md" else 0      # just past the batch's last record
        batch = src.take()
        self.batches += 1
        tables = self._tables(src.key, batch)
        if not tables:
            self._durable.put((src.key, len(batch), md_position))
            return
        pending = [len(tables)]

        def on_durable() -> None:          # on the writer's thread; the loop settles it
            pending[0] -= 1
            if pending[0] == 0:
                self._durable.put((src.key, len(batch), md_position))

        for table, data in tables:
            self._submit(table, data, on_durable)

    def _submit(self, table: str, data: pa.Table, on_durable: Callable[[], None] | None = None) -> None:
        # Memory bound: past max_buffer_rows queued (store slow or down), go straight to disk.
        if self.writer.queued_rows + data.num_rows > self.max_buffer_rows:
            self.spill.put(table, data)
            self.spilled_direct += 1
            if on_durable is not None:
                on_durable()
        else:
            self.writer.submit(table, data, on_durable)

    def _run_row(self, ended: bool) -> pa.Table:
        from ctrader.store.store import run_table

        counters = {k: v for k, v in self.stats().items() if isinstance(v, (int, float))} if ended else {}
        return run_table(self.run_id, started_ns=self.started_ns, ended_ns=time.time_ns() if ended else None,
                         symbols=self.symbols.names, assets=self.assets.names, counters=counters, **self.run_meta)

    def _submit_run(self, ended: bool) -> None:
        self._submit("runs", self._run_row(ended))

    def _write_final_run_row(self) -> None:
        """After the writer finished, so that the row's counters are final."""
        row = self._run_row(ended=True)
        if self.writer.store is not None and self.writer.up and not self.writer.is_alive():
            try:
                self.writer.store.insert("runs", row)
                return
            except Exception as exc:
                log.warning("could not write the run's final row (%s): spilled", exc)
        self.spill.put("runs", row)

    # --- live state ----------------------------------------------------------------------------

    def _update_tob(self, recs: np.ndarray) -> None:
        """Keep the newest best bid/ask of every symbol (for Redis): gathers only the rows and
        fields it needs, never whole records."""
        book_rows = np.flatnonzero(recs["kind"] != MdKind.TRADE)
        if not len(book_rows):
            return
        sids = recs["symbol_id"][book_rows]
        top = int(sids.max()) + 1
        if top > len(self._tob):
            grow = top - len(self._tob)
            self._tob = np.vstack([self._tob, np.zeros((grow, 4))])
            self._tob_ts = np.concatenate([self._tob_ts, np.zeros(grow, np.int64)])
            self._tob_flags = np.concatenate([self._tob_flags, np.zeros(grow, np.int64)])
            self._tob_seen = np.concatenate([self._tob_seen, np.zeros(grow, bool)])
        # the newest record of each symbol: its first occurrence in the reversed batch
        uniq, first = np.unique(sids[::-1], return_index=True)
        rows = book_rows[::-1][first]
        has_bid = recs["n_bids"][rows] > 0
        has_ask = recs["n_asks"][rows] > 0
        self._tob[uniq, 0] = np.where(has_bid, recs["bid_px"][rows, 0], np.nan)
        self._tob[uniq, 1] = np.where(has_bid, recs["bid_qty"][rows, 0], np.nan)
        self._tob[uniq, 2] = np.where(has_ask, recs["ask_px"][rows, 0], np.nan)
        self._tob[uniq, 3] = np.where(has_ask, recs["ask_qty"][rows, 0], np.nan)
        self._tob_ts[uniq] = recs["recv_ts_ns"][rows]
        self._tob_flags[uniq] = recs["flags"][rows]
        self._tob_seen[uniq] = True

    def top_of_book(self) -> dict[str, dict]:
        names = self.symbols.names
        out = {}
        for sid in np.flatnonzero(self._tob_seen):
            bid, bid_qty, ask, ask_qty = self._tob[sid]
            ts = self._tob_ts[sid]
            name = names[sid] if sid < len(names) else f"#{sid}"
            out[name] = {"bid": _num(bid), "bid_qty": _num(bid_qty), "ask": _num(ask), "ask_qty": _num(ask_qty),
                         "recv_ts_ns": int(ts), "stale": bool(self._tob_flags[sid] & MdFlag.STALE)}
        return out

    def _publish(self) -> None:
        stats = self.stats()
        if stats.get("md_lost", 0) > self._lost_reported:
            log.warning("the feed lapped the recorder on the md ring: %d records lost so far (not in the store)",
                        stats["md_lost"])
            self._lost_reported = stats["md_lost"]
        if self.stats_file is not None:
            self.stats_file.maybe_write(stats)     # about once a second
        if self.live is None:
            return
        status = {"run_id": self.run_id, "updated_ns": time.time_ns()}
        if self.read_stats is not None:
            try:
                status.update({k: v for k, v in self.read_stats().items() if k != "recorder"})
            except OSError:
                pass
        status["recorder"] = stats
        stale = int(np.count_nonzero(self._tob_seen & ((self._tob_flags & MdFlag.STALE) != 0)))
        status["books"] = {"symbols": int(self._tob_seen.sum()), "stale": stale}
        self.live.offer({"tob": self.top_of_book(), "status": status})

    # --- counters ------------------------------------------------------------------------------

    @property
    def records_read(self) -> int:
        return sum(src.records for src in self.sources.values())

    def stats(self) -> dict:
        out = {f"read_{k}": src.records for k, src in self.sources.items()}
        if "md" in self.sources:
            md = self.sources["md"].consumer
            # records the feed overwrote before we read them, and those a restart found gone
            out["md_lost"] = md.lost + self.md_restart_gap
            out["md_restart_gap"] = self.md_restart_gap
            out["md_overruns"] = md.overruns
        for table, rows in sorted(self.writer.inserted.copy().items()):   # copy: the writer adds keys
            out[f"rows_{table}"] = rows
        out.update(batches=self.batches, inserts=self.writer.inserts, insert_errors=self.writer.insert_errors,
                   store_up=self.writer.up, queued_rows=self.writer.queued_rows,
                   spilled_rows=self.spill.rows_spilled, replayed_rows=self.spill.rows_replayed,
                   spill_pending_batches=self.spill.pending(), spilled_direct_batches=self.spilled_direct)
        if self.live is not None:
            out.update(self.live.stats())
        return out


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def run_recorder(ctx) -> None:
    """Entry point of the recorder process (``ctrader.runtime.supervisor``)."""
    from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, ORDER_INTENT
    from ctrader.core.topology import RING_SPECS
    from ctrader.core.stats import StatsFile, read_stats

    cfg = ctx.cfg
    symbols, assets = _universe_names(cfg)
    dtypes = {"md": MD_EVENT, "journal": CANDIDATE, "exec": EXEC_EVENT, "intents": ORDER_INTENT}
    record_intents = "recorder" in RING_SPECS["intents"][3]
    rings = {k: Ring.attach(name, dtypes[k]) for k, name in ctx.ring_names.items()
             if k in ("md", "journal", "exec") or (k == "intents" and record_intents)}
    live = None
    if cfg.redis.url:
        from ctrader.store.live_state import LiveStatePublisher

        live = LiveStatePublisher(cfg.redis.url, interval_s=cfg.recorder.redis_publish_ms / 1000,
                                  prefix=cfg.redis.key_prefix)
    run_dir = ctx.run_dir
    rc = cfg.recorder
    # A recorder restarted within a run must not record the ring's start again (duplicates):
    # only the run's first recorder starts from the first md record.
    restarted = (run_dir / "recorder.stats.json").exists()
    engine = RecorderEngine(
        rings, ctx.run_id, lambda: _open_store(cfg), _expand(rc.spill_dir, cfg), symbols, assets,
        batch_rows=rc.batch_rows, batch_ms=rc.batch_ms, max_buffer_rows=rc.max_buffer_rows, live=live,
        publish_ms=rc.redis_publish_ms, stats_file=StatsFile(run_dir, "recorder", counters=COUNTERS),
        read_stats=lambda: read_stats(run_dir),
        run_meta={"mode": cfg.run.mode, "venue": cfg.venue.kind}, record_intents=record_intents,
        rewind_md=not restarted, md_position_file=run_dir / "recorder.md_position")
    try:
        engine.run_until(ctx.stop.is_set, beat=ctx.health.beat)
    finally:
        # A fast stop (a second Ctrl-C) does not drain the rings: it flushes what was read.
        fast = ctx.stop.fast
        engine.close(drain=not fast, finish_timeout_s=3.0 if fast else 30.0, beat=ctx.health.beat)
        for ring in rings.values():
            ring.close()


def _expand(path: str, cfg) -> str:
    return os.path.expanduser(path.replace("{data_dir}", os.path.expanduser(cfg.run.data_dir)))


def _open_store(cfg):
    from ctrader.store.store import Store

    try:
        return Store.from_config(cfg)
    except StoreUnavailable:
        raise
    except Exception as exc:        # lock held, engine error, server refusing: retry later, spill meanwhile
        raise StoreUnavailable(str(exc)) from exc


def _universe_names(cfg) -> tuple[list[str], list[str]]:
    """Symbol and asset names by id, exactly as the other processes of the run number them."""
    try:
        from ctrader.market.universe import load_universe

        uni = load_universe(cfg)
        return [s.name for s in uni.symbols], list(uni.assets)
    except Exception as exc:
        log.error("cannot load the run's universe (%s): symbols are recorded as #<id>", exc)
        return [], []
