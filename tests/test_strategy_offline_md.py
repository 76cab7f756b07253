"""The offline market (ctrader.sim.offline): the simulator's model as MD_EVENT arrays, seeded."""
from __future__ import annotations

import numpy as np

from ctrader.config import load_config
from ctrader.core.records import MD_EVENT, MdKind
from ctrader.market.books import BookCache, apply_all
from ctrader.market.universe import Universe
from ctrader.sim.offline import OfflineMarket, offline_sim_config


def records(seed: int, seconds: float = 3.0, **market):
    cfg = load_config()
    m = OfflineMarket(offline_sim_config(cfg.sim, **market), seed=seed)
    uni = Universe.from_exchange_info(m.exchange_info, start_assets=cfg.market.start_assets)
    m.map_symbols(uni.by_name)
    return m, uni, np.concatenate([m.snapshots()] + list(m.run(seconds)), dtype=MD_EVENT)


def test_same_seed_same_stream_other_seed_other_stream():
    _, _, a = records(4)
    _, _, b = records(4)
    _, _, c = records(5)
    # field by field: the padding between records is not part of the data
    assert all(np.array_equal(a[f], b[f]) for f in MD_EVENT.names)
    assert len(a) != len(c) or not all(np.array_equal(a[f], c[f]) for f in MD_EVENT.names)


def test_records_look_like_the_feed_wrote_them():
    m, uni, recs = records(4)
    snaps = recs[recs["kind"] == MdKind.SNAPSHOT]
    assert sorted(snaps["symbol_id"].tolist()) == list(range(len(uni.symbols)))
    assert np.all(np.diff(recs["seq"]) == 1)
    assert np.all(np.diff(recs["recv_mono_ns"]) >= 0)
    assert np.all(recs["recv_ts_ns"] - recs["exch_ts_ns"] == m.latency_ns)
    depth = recs[recs["kind"] == MdKind.DEPTH]
    assert len(depth) > 100 and np.any(recs["kind"] == MdKind.TRADE)
    for r in depth[:200]:
        nb, na = r["n_bids"], r["n_asks"]
        assert nb == na == 10
        assert np.all(np.diff(r["bid_px"][:nb]) < 0) and np.all(np.diff(r["ask_px"][:na]) > 0)
        assert r["bid_px"][0] < r["ask_px"][0]
        name = uni.symbols[r["symbol_id"]].name
        tick = uni.by_name[name].tick
        assert np.allclose(np.round(r["bid_px"][:nb] / tick), r["bid_px"][:nb] / tick, rtol=0, atol=1e-6)
    # update ids grow per symbol, as Binance's do
    for sid in range(len(uni.symbols)):
        ids = recs[(recs["symbol_id"] == sid) & (recs["kind"] != MdKind.TRADE)]["last_update_id"]
        assert np.all(np.diff(ids) > 0)
    # and a book cache built from them matches the simulator's own book
    cache = BookCache(len(uni.symbols))
    apply_all(cache.books, recs, len(recs))
    book = m.engine.books["BTCUSDT"]
    sid = uni.symbol_id("BTCUSDT")
    assert cache.books["bid_px"][sid, 0] == book.bids.best() / 1e8
    assert cache.books["ask_px"][sid, 0] == book.asks.best() / 1e8
