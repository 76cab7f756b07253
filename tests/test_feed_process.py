"""``run_feed(ctx)``: the feed component writes md records into the run's ring and its counters
into ``feed.stats.json``, beats its health slot, and returns when ``ctx.stop`` is set."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.core.records import MD_EVENT, MdFlag, MdKind
from ctrader.feed.process import run_feed
from ctrader.runtime.resources import RING_SPECS, RunResources
from ctrader.core.stats import read_stats
from ctrader.runtime.stopping import ThreadStop
from ctrader.runtime.supervisor import ChildContext

pytestmark = pytest.mark.timeout(60)


def test_run_feed_fills_the_md_ring_and_writes_stats(sim_factory, tmp_path):
    sim = sim_factory({"market.speed": 5})
    port = sim.rest_url.rsplit(":", 1)[1]
    cfg = load_config(env={}, overrides={"venue.kind": "sim", "sim.port": port, "run.data_dir": str(tmp_path),
                                         "market.symbols": "BTCUSDT,ETHBTC,ETHUSDT",
                                         "feed.streams": "bookTicker,depth@100ms,trade"})
    run_id = "feedtest"
    with RunResources.create(cfg, run_id, ["feed"]) as res:
        consumer = res.rings["md"].consumer()
        stop = ThreadStop()
        ctx = ChildContext("feed", cfg, run_id, stop, res.health.slot("feed"),
                           {k: res.rings[k].name for k in RING_SPECS})
        thread = threading.Thread(target=run_feed, args=(ctx,))
        thread.start()
        got = []
        buf = np.empty(1024, MD_EVENT)
        deadline = time.monotonic() + 30
        kinds: set[int] = set()
        while time.monotonic() < deadline and not {MdKind.SNAPSHOT, MdKind.DEPTH, MdKind.BOOK_TICKER,
                                                    MdKind.TRADE, MdKind.STATUS} <= kinds:
            n = consumer.read_batch(buf, timeout_s=0.1)
            got.append(buf[:n].copy())
            kinds.update(int(k) for k in buf["kind"][:n])
        time.sleep(1.2)
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "run_feed must return once ctx.stop is set"
        records = np.concatenate(got)
        health = res.health.snapshot()["feed"]
    assert {MdKind.SNAPSHOT, MdKind.DEPTH, MdKind.BOOK_TICKER, MdKind.TRADE, MdKind.STATUS} <= kinds
    assert set(records["symbol_id"].tolist()) == {0, 1, 2}
    snap = records[records["kind"] == MdKind.SNAPSHOT][0]
    assert snap["flags"] & MdFlag.RESYNC and snap["n_bids"] == 10 and snap["n_asks"] == 10
    assert np.all(snap["bid_px"][:-1] > snap["bid_px"][1:]) and np.all(snap["ask_px"][:-1] < snap["ask_px"][1:])
    assert snap["bid_px"][0] < snap["ask_px"][0]
    assert np.all(records["recv_ts_ns"] > 0) and np.all(records["recv_mono_ns"] > 0)
    assert health["events"] > 0
    stats = read_stats(tmp_path / "runs" / run_id)["feed"]
    assert stats["messages"] > 0 and stats["records"] >= len(records)
    assert stats["resyncs"] >= 3 and stats["parse_errors"] == 0
    assert stats["recv_to_ring_us_p50"] is not None and set(stats["stale_s"]) == {"BTCUSDT", "ETHBTC", "ETHUSDT"}
