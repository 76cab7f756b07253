"""The recorder end to end, in-process: real shared-memory rings, the embedded ClickHouse store,
a real redis-server; the store going away and coming back."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import numpy as np
import pytest

from ctrader.core.records import CANDIDATE, EXEC_EVENT, MD_EVENT, Decision, ExecKind, MdFlag, MdKind
from ctrader.core.ring import Ring, wait_until
from ctrader.runtime.resources import RING_SPECS
from ctrader.store.client import StoreUnavailable
from ctrader.store.live_state import LiveStatePublisher
from ctrader.store.recorder import RecorderEngine
from ctrader.store.store import Store
from tests.conftest_redis import redis_server  # noqa: F401  (fixture)
from tests.test_store_schema import SYMBOLS, T0, md_records

ASSETS = ["BTC", "ETH", "USDT"]


@pytest.fixture
def rings():
    """The run's rings as RING_SPECS declares them (small capacities)."""
    tag = uuid.uuid4().hex[:8]
    made = {}
    for key, capacity in (("md", 1 << 14), ("journal", 1 << 12), ("exec", 1 << 10)):
        dtype, kind, _, consumers = RING_SPECS[key]
        count = consumers if isinstance(consumers, int) else len(consumers)
        made[key] = Ring.create(f"ctrader.test-rec-{tag}.{key}", dtype, capacity, kind, count)
    yield made
    for ring in made.values():
        ring.close()


@pytest.fixture
def store_url(tmp_path):
    return f"chdb://{tmp_path}/store"


def candidates(n: int) -> np.ndarray:
    c = np.zeros(n, CANDIDATE)
    c["group_id"] = np.arange(n)
    c["decision"] = Decision.SKIP_EDGE
    c["event_recv_ts_ns"] = T0 + np.arange(n) * 1000
    c["leg_symbol_id"] = [0, 1, 2]
    c["n_features"] = 4
    return c


def executions(n: int) -> np.ndarray:
    e = np.zeros(n, EXEC_EVENT)
    e["group_id"] = np.arange(n)
    e["symbol_id"] = np.arange(n) % 3
    e["kind"] = ExecKind.FILL
    e["fee_asset_id"] = 2
    e["recv_ts_ns"] = T0 + np.arange(n) * 1000
    return e


def start_engine(rings, store_factory, spill_dir, **kw) -> tuple[RecorderEngine, threading.Event, threading.Thread]:
    engine = RecorderEngine(rings, "run-t", store_factory, spill_dir, SYMBOLS, ASSETS, **kw)
    stop = threading.Event()
    thread = threading.Thread(target=engine.run_until, args=(stop.is_set,), daemon=True)
    thread.start()
    return engine, stop, thread


def stop_engine(engine, stop, thread, **close_kw) -> dict:
    stop.set()
    thread.join(30)
    return engine.close(**close_kw)


def write_in_batches(producer, records: np.ndarray, batch: int = 500, engine: RecorderEngine | None = None) -> None:
    """Write like a feed; with ``engine``, at a pace the recorder keeps up with (a broadcast ring
    never waits for a slow reader: a test that wants no loss must not outrun it)."""
    for i in range(0, len(records), batch):
        if engine is not None:
            assert wait_until(lambda: engine.sources["md"].lag() < producer.ring.capacity // 2, 10)
        producer.write(records[i:i + batch])


def counts(url: str) -> dict[str, int]:
    with Store.open(url) as s:
        return {t: s.client.query(f"SELECT count() FROM ctrader.{t}").result_rows[0][0]
                for t in ("md_book", "md_trade", "candidates", "executions")}


def test_recorder_drains_every_ring_into_the_store_exactly(rings, store_url, tmp_path):
    engine, stop, thread = start_engine(rings, lambda: Store.open(store_url), tmp_path / "spill",
                                        batch_rows=2000, batch_ms=50)
    md = md_records(20_000, seed=5)
    write_in_batches(rings["md"].producer(), md, engine=engine)
    write_in_batches(rings["journal"].producer(), candidates(3000))
    write_in_batches(rings["exec"].producer(), executions(300), batch=100)
    stats = stop_engine(engine, stop, thread)

    trades = int((md["kind"] == MdKind.TRADE).sum())
    assert stats["md_lost"] == 0 and stats["read_md"] == len(md), stats
    assert counts(store_url) == {"md_book": len(md) - trades, "md_trade": trades, "candidates": 3000,
                                 "executions": 300}
    assert stats["md_lost"] == 0 and stats["read_md"] == len(md)
    assert stats["rows_md_book"] + stats["rows_md_trade"] == len(md)
    assert stats["spilled_rows"] == 0 and stats["spill_pending_batches"] == 0
    with Store.open(store_url) as s:
        got = list(s.read_md(SYMBOLS, T0, T0 + 10**12, chunk_rows=50_000))[0]
        assert np.array_equal(got["seq"], md["seq"]) and np.array_equal(got["bid_px"], md["bid_px"])
        run = s.run_info("run-t")
        assert run["symbols"] == SYMBOLS and run["ended"] is not None
        assert run["counters"]["read_md"] == len(md)
        assert len(s.read_executions("run-t")) == 300


def test_store_down_then_back_spills_and_catches_up_without_loss(rings, tmp_path):
    """Down at start (a closed port: nothing listens), then reachable, then failing mid-run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    url = {"now": f"http://127.0.0.1:{closed_port}"}
    real_url = f"chdb://{tmp_path}/store"
    down = threading.Event()

    class FailingWhileDown:
        """The real store, made to fail on demand (the outage a server restart causes)."""

        def __init__(self, store):
            self.store = store

        def insert(self, table, data):
            if down.is_set():
                raise StoreUnavailable("injected outage")
            return self.store.insert(table, data)

        def close(self):
            self.store.close()

    engine, stop, thread = start_engine(rings, lambda: FailingWhileDown(Store.open(url["now"])),
                                        tmp_path / "spill", batch_rows=1000, batch_ms=20, retry_s=0.05)
    md = md_records(9000, seed=6)
    producer = rings["md"].producer()
    write_in_batches(producer, md[:3000], engine=engine)
    assert wait_until(lambda: engine.stats()["spilled_rows"] >= 3000, 20)   # nothing lost: on disk
    assert engine.stats()["insert_errors"] > 0 and engine.spill.pending() > 0

    url["now"] = real_url                           # the store comes up
    assert wait_until(lambda: engine.spill.pending() == 0 and engine.writer.up, 30)
    write_in_batches(producer, md[3000:6000], engine=engine)
    assert wait_until(lambda: engine.stats().get("rows_md_book", 0) + engine.stats().get("rows_md_trade", 0)
                      >= 6000, 30)

    down.set()                                      # fails mid-run
    write_in_batches(producer, md[6000:], engine=engine)
    assert wait_until(lambda: engine.stats()["spilled_rows"] > 3000, 20)
    down.clear()
    stats = stop_engine(engine, stop, thread)

    assert stats["spill_pending_batches"] == 0 and stats["replayed_rows"] == stats["spilled_rows"]
    assert stats["rows_md_book"] + stats["rows_md_trade"] == len(md)
    c = counts(real_url)
    assert c["md_book"] + c["md_trade"] == len(md)
    with Store.open(real_url) as s:
        seqs = np.sort(np.concatenate([c["seq"] for c in s.read_md(SYMBOLS, T0, T0 + 10**12)]))
    assert np.array_equal(seqs, md["seq"])         # each row exactly once


def test_spill_left_by_a_dead_recorder_is_caught_up_by_the_next(rings, tmp_path):
    store_url = f"chdb://{tmp_path}/store"

    def unreachable():
        raise StoreUnavailable("no store yet")

    first = RecorderEngine(rings, "run-1", unreachable, tmp_path / "spill", SYMBOLS, ASSETS, batch_rows=500)
    write_in_batches(rings["md"].producer(), md_records(2000, seed=7))
    first.close(finish_timeout_s=0.2)              # the store never came: rows stay on disk
    assert first.spill.pending() > 0
    first.sources["md"].consumer.release()

    second = RecorderEngine(rings, "run-2", lambda: Store.open(store_url), tmp_path / "spill", SYMBOLS, ASSETS,
                            rewind_md=False)           # a restart: the ring's records are already on disk
    stats = second.close()
    assert stats["spill_pending_batches"] == 0
    c = counts(store_url)
    assert c["md_book"] + c["md_trade"] == 2000


def test_md_overruns_are_counted_and_everything_else_recorded(tmp_path):
    """A recorder lapped by the feed loses records; it says exactly how many."""
    name = f"ctrader.test-rec-{uuid.uuid4().hex[:8]}.md"
    with Ring.create(name, MD_EVENT, 1024, "broadcast", 8) as ring:
        store_url = f"chdb://{tmp_path}/store"
        engine = RecorderEngine({"md": ring}, "run-o", lambda: Store.open(store_url), tmp_path / "spill",
                                SYMBOLS, batch_rows=4096)
        write_in_batches(ring.producer(), md_records(5000, seed=8))   # nobody reads meanwhile
        stats = engine.close()
    assert stats["md_lost"] > 0
    assert stats["read_md"] + stats["md_lost"] == 5000
    c = counts(store_url)
    assert c["md_book"] + c["md_trade"] == stats["read_md"]


def test_live_state_reaches_redis_and_survives_an_outage(rings, tmp_path, redis_server):
    live = LiveStatePublisher(redis_server.url, interval_s=0.02)
    engine, stop, thread = start_engine(rings, lambda: Store.open(f"chdb://{tmp_path}/store"), tmp_path / "spill",
                                        live=live, publish_ms=20,
                                        read_stats=lambda: {"feed": {"messages": 42, "stale_books": 0}})
    md = md_records(600, seed=9)
    md["kind"][-3:] = MdKind.BOOK_TICKER           # the newest record of every symbol is a book
    md["symbol_id"][-3:] = [0, 1, 2]
    md["n_bids"][-3:] = md["n_asks"][-3:] = 1
    md["bid_px"][-3:, 0] = [101.0, 0.05, 3000.5]
    md["ask_px"][-3:, 0] = [101.5, 0.051, 3001.0]
    md["flags"][-3:] = [0, MdFlag.STALE, 0]
    producer = rings["md"].producer()
    producer.write(md)
    r = redis_server.client()

    def tob():
        return {k: json.loads(v) for k, v in r.hgetall("ctrader:tob").items()}

    assert wait_until(lambda: tob().get("ETHUSDT", {}).get("bid") == 3000.5, 10)
    book = tob()
    assert book["BTCUSDT"]["ask"] == 101.5 and not book["BTCUSDT"]["stale"]
    assert book["ETHBTC"]["stale"] and book["ETHBTC"]["recv_ts_ns"] == int(md["recv_ts_ns"][-2])
    status = r.hgetall("ctrader:status")
    assert status["run_id"] == "run-t" and json.loads(status["feed"])["messages"] == 42
    assert wait_until(lambda: json.loads(r.hget("ctrader:status", "recorder"))["read_md"] == 600, 10)

    redis_server.stop()                             # Redis goes away: the recorder carries on
    producer.write(md_records(300, seed=10))
    assert wait_until(lambda: live.errors > 0, 10)
    assert wait_until(lambda: engine.stats()["read_md"] == 900, 10)
    redis_server.start()                            # and comes back on the same port
    r = redis_server.client()
    assert wait_until(lambda: r.hget("ctrader:status", "recorder") is not None
                      and json.loads(r.hget("ctrader:status", "recorder"))["read_md"] == 900, 10)
    stats = stop_engine(engine, stop, thread)
    assert stats["redis_errors"] > 0 and stats["redis_published"] > 0


def test_a_slow_store_never_holds_more_than_max_buffer_rows_in_memory(rings, tmp_path):
    store_url = f"chdb://{tmp_path}/store"
    peak = {"queued": 0}

    class Slow:
        """The real store, 50 ms slower per insert (a busy server)."""

        def __init__(self):
            self.store = Store.open(store_url)

        def insert(self, table, data):
            peak["queued"] = max(peak["queued"], engine.writer.queued_rows)
            time.sleep(0.05)
            return self.store.insert(table, data)

        def close(self):
            self.store.close()

    engine, stop, thread = start_engine(rings, Slow, tmp_path / "spill", batch_rows=500, batch_ms=10,
                                        max_buffer_rows=2000)
    md = md_records(12_000, seed=13)
    write_in_batches(rings["md"].producer(), md, engine=engine)
    stats = stop_engine(engine, stop, thread)
    assert stats["spilled_direct_batches"] > 0            # memory full: batches went to disk
    assert peak["queued"] <= 2000
    assert stats["spill_pending_batches"] == 0
    c = counts(store_url)
    assert c["md_book"] + c["md_trade"] == len(md)


def test_records_written_before_the_recorder_attached_are_recorded(rings, tmp_path):
    """The feed may start writing before the recorder is up: the run is recorded from its first record."""
    store_url = f"chdb://{tmp_path}/store"
    write_in_batches(rings["md"].producer(), md_records(1500, seed=14))
    engine = RecorderEngine(rings, "run-late", lambda: Store.open(store_url), tmp_path / "spill", SYMBOLS)
    stats = engine.close()
    assert stats["read_md"] == 1500 and stats["md_lost"] == 0
    c = counts(store_url)
    assert c["md_book"] + c["md_trade"] == 1500


def test_intents_are_recorded_when_the_recorder_consumes_them(tmp_path):
    """The intents ring is strategy -> executor; a run that lists the recorder as its consumer
    gets every order intent in the ``orders`` table."""
    from ctrader.core.records import ORDER_INTENT, Side

    name = f"ctrader.test-rec-{uuid.uuid4().hex[:8]}.intents"
    with Ring.create(name, ORDER_INTENT, 256, "lossless", 1) as ring:
        intents = np.zeros(90, ORDER_INTENT)
        intents["group_id"] = np.arange(90) // 3
        intents["leg"] = np.arange(90) % 3
        intents["side"] = Side.BUY
        intents["order_type"] = 1
        intents["tif"] = 2
        intents["price_ticks"] = 123456
        intents["created_mono_ns"] = time.monotonic_ns()
        intents["client_order_id"] = [f"ct-{i}".encode() for i in range(90)]
        store_url = f"chdb://{tmp_path}/store"
        engine = RecorderEngine({"intents": ring}, "run-i", lambda: Store.open(store_url), tmp_path / "spill",
                                SYMBOLS, record_intents=True, consumer_ids={"intents": 0})
        ring.producer().write(intents)
        engine.close()
    with Store.open(store_url) as s:
        rows = s.client.query("SELECT count(), uniqExact(client_order_id), any(tif), any(side), "
                              "max(toUnixTimestamp64Nano(created_ts)) FROM ctrader.orders").result_rows[0]
    assert rows[:4] == (90, 90, "ioc", "buy")
    # the monotonic creation time is stored on the wall clock, through the engine's offset
    assert rows[4] == int(intents["created_mono_ns"][0]) + engine.mono_to_wall_ns
