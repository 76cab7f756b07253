"""``run_recorder(ctx)``, the recorder component as the supervisor and the session run it: the
run's shared memory, the run's universe (symbol names by id), stats, Redis from the config."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.core.records import MdKind
from ctrader.core.ring import wait_until
from ctrader.market.universe import fetch_exchange_info, load_universe
from ctrader.runtime.resources import RING_SPECS, RunResources
from ctrader.core.stats import read_stats
from ctrader.runtime.stopping import ThreadStop
from ctrader.runtime.supervisor import ChildContext
from ctrader.store.recorder import run_recorder
from ctrader.store.store import Store
from tests.conftest_redis import redis_server  # noqa: F401  (fixture)
from tests.test_recorder_e2e import candidates, executions
from tests.test_store_schema import T0, md_records


@pytest.fixture
def cfg(tmp_path, sim_server, redis_server):
    info = tmp_path / "exchange_info.json"
    info.write_text(json.dumps(fetch_exchange_info(sim_server.rest_url)))
    return load_config(overrides={"run.data_dir": str(tmp_path), "market.exchange_info_file": str(info),
                                  "redis.url": redis_server.url, "recorder.batch_ms": "50",
                                  "recorder.redis_publish_ms": "50"}, env={})


def test_run_recorder_records_a_run_under_the_universe_names(cfg, redis_server):
    uni = load_universe(cfg)
    n_sym = len(uni.symbols)
    run_id = "rec-proc-test"
    with RunResources.create(cfg, run_id, ["recorder"]) as res:
        stop = ThreadStop()
        ctx = ChildContext("recorder", cfg, run_id, stop, res.health.slot("recorder"),
                           {k: res.rings[k].name for k in RING_SPECS})
        thread = threading.Thread(target=run_recorder, args=(ctx,), daemon=True)
        thread.start()
        md = md_records(5000, seed=12)
        md["symbol_id"] = np.arange(5000) % n_sym
        md["symbol_id"][-n_sym:] = np.arange(n_sym)
        md["kind"][-n_sym:] = MdKind.BOOK_TICKER          # every symbol ends on a known book
        md["n_bids"][-n_sym:] = 1
        md["bid_px"][-n_sym:, 0] = np.arange(n_sym) + 1.0
        producer = res.rings["md"].producer()
        for i in range(0, len(md), 500):
            producer.write(md[i:i + 500])
        res.rings["journal"].producer().write(candidates(100))
        res.rings["exec"].producer().write(executions(30))
        r = redis_server.client()
        want = uni.symbols[-1].name

        def published_bid():
            raw = r.hget("ctrader:tob", want)
            return raw and json.loads(raw)["bid"]

        assert wait_until(lambda: published_bid() == float(n_sym), 15)
        stop.set()
        thread.join(60)
        assert not thread.is_alive()

    stats = read_stats(ctx.run_dir)["recorder"]
    assert stats["read_md"] == 5000 and stats["md_lost"] == 0
    assert stats["rows_candidates"] == 100 and stats["rows_executions"] == 30
    with Store.from_config(cfg) as store:
        run = store.run_info(run_id)
        assert run["symbols"] == [s.name for s in uni.symbols] and run["ended"] is not None
        names = [s.name for s in uni.symbols]
        got = np.concatenate([c["seq"] for c in store.read_md(names, T0, T0 + 10**12,
                                                              symbol_ids={s: i for i, s in enumerate(names)})])
        assert np.array_equal(np.sort(got), md["seq"])
        first = next(store.read_md([names[3]], T0, T0 + 10**12, symbol_ids={names[3]: 3}))
        assert (first["symbol_id"] == 3).all() and np.array_equal(first["seq"], md["seq"][md["symbol_id"] == 3])
        assert json.loads(r.hget("ctrader:status", "recorder"))["read_md"] == 5000
        assert len(store.read_executions(run_id)) == 30
