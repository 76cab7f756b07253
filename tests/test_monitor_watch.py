"""The monitor's ring readers: the executor never waits for the monitor (dead, stalled or slow),
fills come out as exact decimals, and the books' ages and stale marks are tracked."""
from __future__ import annotations

import time

import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.core.records import EXEC_EVENT, ExecKind, MdFlag, Side
from ctrader.execution.testing import depth_record
from ctrader.sim.testing import sim_universe
from ctrader.monitor.watch import ExecWatcher, MdWatcher, SymbolTable, exact
from ctrader.runtime.resources import OBSERVERS, RunResources, consumer_id

COMPONENTS = ["monitor", "executor", "strategy", "recorder"]


@pytest.fixture
def uni():
    return sim_universe(["BTCUSDT", "ETHBTC", "ETHUSDT"])


@pytest.fixture
def res(tmp_path):
    cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides={"rings.exec_capacity": "64",
                                                                         "rings.md_capacity": "1024"})
    resources = RunResources.create(cfg, f"mw{time.monotonic_ns() % 10**9}", COMPONENTS)
    yield resources
    resources.close()


def fill(uni, symbol: str, px: float, qty: float, coid: str, kind=ExecKind.FILL, fee=0.0, sent=0, cause=0):
    rec = np.zeros(1, EXEC_EVENT)
    r = rec[0]
    r["symbol_id"], r["kind"], r["side"] = uni.symbol_id(symbol), int(kind), int(Side.BUY)
    r["last_px"], r["last_qty"], r["fee"], r["fee_asset_id"] = px, qty, fee, uni.asset_id("BTC")
    r["client_order_id"], r["group_id"], r["recv_ts_ns"] = coid.encode(), 0xABC, 1_700_000_000 * 10**9
    r["sent_mono_ns"], r["cause_recv_mono_ns"] = sent, cause
    return rec


def test_the_executor_never_waits_for_the_monitor_and_the_monitor_counts_what_it_missed(res, uni):
    assert OBSERVERS["exec"] == ("monitor",)
    ring = res.rings["exec"]
    producer = ring.producer(timeout_s=0.5)
    strategy = ring.consumer(consumer_id("exec", "strategy"))
    recorder = ring.consumer(consumer_id("exec", "recorder"))
    monitor = ExecWatcher(ring.consumer(consumer_id("exec", "monitor")), SymbolTable.from_universe(uni))
    out = np.empty(64, EXEC_EVENT)
    # four ring-fulls while the monitor reads nothing: the producer never stops for it
    for i in range(4 * ring.capacity):
        producer.write(fill(uni, "BTCUSDT", 60000.01, 0.001, f"o{i}"))
        strategy.read_batch(out)
        recorder.read_batch(out)
    assert ring.stats()["producer_waits"] == 0
    fills, _ = monitor.poll()
    assert monitor.lost > 0 and len(fills) + monitor.lost == 4 * ring.capacity
    assert fills[-1].client_order_id == f"o{4 * ring.capacity - 1}"     # it caught up with the newest

    # the lossless consumers still hold the producer back: the ring is as lossless as before
    with pytest.raises(Exception, match="full"):
        for i in range(ring.capacity + 1):
            producer.write(fill(uni, "BTCUSDT", 60000.01, 0.001, f"x{i}"))


def test_fills_are_exact_decimals_on_the_symbols_tick_and_step_and_each_order_is_timed_once(res, uni):
    ring = res.rings["exec"]
    producer = ring.producer()
    watcher = ExecWatcher(ring.consumer(consumer_id("exec", "monitor")), SymbolTable.from_universe(uni))
    t0 = 10**12
    producer.write(fill(uni, "ETHBTC", 0.05123, 0.3, "a", kind=ExecKind.ACK, sent=t0 + 250_000, cause=t0))
    producer.write(fill(uni, "ETHBTC", 0.05123, 0.1, "a", kind=ExecKind.PARTIAL_FILL, fee=0.00000513,
                        sent=t0 + 250_000, cause=t0))
    producer.write(fill(uni, "ETHBTC", 0.05123, 0.2, "a", fee=1e-05, sent=t0 + 250_000, cause=t0))
    producer.write(fill(uni, "BTCUSDT", 60000.1, 0.00001, "b", sent=t0 + 900_000, cause=t0))
    fills, latencies = watcher.poll()
    assert latencies == [250_000, 900_000]
    # printed with the decimals of the symbol's tick and step, as Binance prints them
    assert [(f.symbol, f.price, f.qty, f.kind) for f in fills] == [
        ("ETHBTC", "0.05123", "0.1000", "partial_fill"), ("ETHBTC", "0.05123", "0.2000", "fill"),
        ("BTCUSDT", "60000.10", "0.00001", "fill")]
    info = uni.by_name["ETHBTC"]
    assert fills[0].price == exact(0.05123, info.tick_units)
    assert fills[1].fee == "0.00001000" and fills[1].fee_asset == "BTC"     # never 1e-05
    assert fills[0].quote == "0.00512300" and [f.id for f in fills] == [1, 2, 3]
    assert fills[0].group_id == "abc" and fills[0].side == "BUY"


def test_books_age_and_stale_marks(res, uni):
    ring = res.rings["md"]
    producer = ring.producer()
    watcher = MdWatcher(ring.consumer(), len(uni.symbols))
    btc, eth = uni.symbol_id("BTCUSDT"), uni.symbol_id("ETHBTC")
    t = time.monotonic_ns()
    producer.write(depth_record(btc, [(60000, 1)], [(60001, 1)], t - 3_000_000_000))
    producer.write(depth_record(eth, [(0.05, 1)], [(0.051, 1)], t - 2_000_000_000, flags=int(MdFlag.STALE)))
    producer.write(depth_record(eth, [(0.05, 1)], [(0.051, 1)], t - 1_000_000_000, flags=int(MdFlag.STALE)))
    producer.write(depth_record(btc, [(60000, 1)], [(60001, 1)], t - 500_000_000))
    assert watcher.poll() == 4
    age, stale_for = watcher.ages(t)
    assert age[btc] == pytest.approx(0.5) and not watcher.stale[btc]
    assert age[eth] == pytest.approx(1.0) and watcher.stale[eth]
    assert stale_for[eth] == pytest.approx(1.0)       # stale since the first stale record it saw last
    assert np.isnan(age[uni.symbol_id("ETHUSDT")])     # never seen
    producer.write(depth_record(eth, [(0.05, 1)], [(0.051, 1)], t))
    watcher.poll()
    assert not watcher.stale[eth] and watcher.ages(t)[1][eth] == 0.0
