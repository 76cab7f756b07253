"""Frames -> records without a network: what the engine publishes for each kind of frame, and
that malformed frames (truncated JSON, wrong types, unknown streams, NaN/negative numbers) are
counted and skipped without ever raising."""
from __future__ import annotations

import numpy as np
import orjson
import pytest

from ctrader.config import load_config
from ctrader.core.records import MdFlag, MdKind
from ctrader.feed.engine import FeedEngine
from ctrader.market.universe import Universe
from ctrader.sim.universe import build_universe


@pytest.fixture
def engine():
    cfg = load_config(env={}, overrides={"feed.streams": "bookTicker,depth@100ms,trade"})
    doc = build_universe(cfg.sim).exchange_info
    uni = Universe.from_exchange_info(doc, symbols=["BTCUSDT", "ETHBTC"])
    out = []
    eng = FeedEngine(cfg, uni, lambda recs: out.append(recs.copy()))
    eng.out = out
    return eng


def frame(stream: str, data) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def records(engine) -> np.ndarray:
    engine.batch.flush()
    return np.concatenate(engine.out) if engine.out else np.zeros(0, engine.batch.records.dtype)


def bt(u, b="100.1", bq="1.5", a="100.2", aq="2"):
    return frame("btcusdt@bookTicker", {"u": u, "s": "BTCUSDT", "b": b, "B": bq, "a": a, "A": aq})


def diff(U, u, bids=(), asks=(), stream="btcusdt@depth@100ms"):
    return frame(stream, {"e": "depthUpdate", "E": 1700000000123, "s": "BTCUSDT", "U": U, "u": u,
                          "b": [list(x) for x in bids], "a": [list(x) for x in asks]})


def test_book_ticker_depth_and_trade_frames_become_records(engine):
    engine.process(bt(7), 11, 22)
    engine.process(diff(5, 8, [("100.1", "1.5")], [("100.2", "2")]), 12, 23)      # buffered, snapshot wanted
    engine._on_snapshot("BTCUSDT", {"lastUpdateId": 6, "bids": [["100.0", "1"]], "asks": [["100.3", "1"]]})
    engine.process(diff(9, 9, [("100.05", "3")], [("100.2", "0")]), 13, 24)
    engine.process(frame("ethbtc@trade", {"e": "trade", "E": 1, "s": "ETHBTC", "t": 42, "p": "0.05", "q": "2",
                                          "T": 1700000000999, "m": True, "M": True}), 14, 25)
    r = records(engine)
    btc = engine.symbol_ids["BTCUSDT"]
    assert r["kind"].tolist() == [MdKind.BOOK_TICKER, MdKind.SNAPSHOT, MdKind.DEPTH, MdKind.TRADE]
    assert np.all(np.diff(r["seq"]) == 1)
    t, s, d, tr = r
    assert t["symbol_id"] == btc and t["flags"] == MdFlag.STALE and t["last_update_id"] == 7
    assert (t["bid_px"][0], t["bid_qty"][0], t["ask_px"][0], t["ask_qty"][0]) == (100.1, 1.5, 100.2, 2.0)
    assert t["recv_ts_ns"] == 11 and t["recv_mono_ns"] == 22
    assert s["flags"] == MdFlag.RESYNC and s["first_update_id"] == 6 and s["last_update_id"] == 8
    assert s["bid_px"][:2].tolist() == [100.1, 100.0] and s["n_asks"] == 2
    assert d["flags"] == 0 and (d["first_update_id"], d["last_update_id"]) == (9, 9)
    assert d["exch_ts_ns"] == 1700000000123 * 1_000_000
    assert d["bid_px"][:3].tolist() == [100.1, 100.05, 100.0] and d["ask_px"][:1].tolist() == [100.3]
    assert d["n_asks"] == 1 and d["ask_px"][1] == 0.0
    assert tr["symbol_id"] == engine.symbol_ids["ETHBTC"] and tr["flags"] == MdFlag.STALE | MdFlag.BUYER_MAKER
    assert (tr["trade_px"], tr["trade_qty"], tr["last_update_id"]) == (0.05, 2.0, 42)


def test_gap_writes_a_stale_status_record_then_flags_until_resync(engine):
    engine.process(diff(5, 8), 1, 1)
    engine._on_snapshot("BTCUSDT", {"lastUpdateId": 6, "bids": [["100.0", "1"]], "asks": [["100.3", "1"]]})
    engine.process(diff(10, 11), 2, 2)                       # 9 missing
    engine.process(bt(12), 3, 3)
    r = records(engine)
    assert r["kind"].tolist() == [MdKind.SNAPSHOT, MdKind.STATUS, MdKind.BOOK_TICKER]
    assert r[1]["flags"] == MdFlag.STALE | MdFlag.GAP and r[2]["flags"] == MdFlag.STALE
    assert engine.stats()["gaps"] == 1 and "BTCUSDT" in engine.snapshots.wanted


MALFORMED = [
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"1"',     # truncated
    b"",
    b"[1,2,3]",
    b'"just a string"',
    b'{"stream":["x"],"data":{}}',
    b'{"nostream":1}',
    frame("btcusdt@bookTicker", {"u": "1", "b": "1", "B": "1", "a": "2", "A": "1"}),   # u is a string
    frame("btcusdt@bookTicker", {"u": 2, "b": "1", "B": "NaN", "a": "2", "A": "1"}),
    frame("btcusdt@bookTicker", {"u": 3, "b": "1", "B": "-1", "a": "2", "A": "1"}),
    frame("btcusdt@bookTicker", {"u": 4, "b": "1", "B": "1", "a": "2"}),                # missing A
    b'{"stream":"btcusdt@bookTicker","data":{"u":1180591620717411303424,"b":"1","B":"1","a":"2","A":"1"}}',
    frame("btcusdt@bookTicker", {"u": 2 ** 64 - 1, "b": "1", "B": "1", "a": "2", "A": "1"}),  # > int64
    frame("btcusdt@bookTicker", [1, 2]),
    diff(1, "2"),
    diff(3, 1),                                                                           # U > u
    diff(1, 2, [("1", "nan")]),
    diff(1, 2, [("abc", "1")]),
    diff(1, 2, [["1"]]),
    frame("btcusdt@depth@100ms", {"U": 1, "u": 2, "E": 3, "b": 5, "a": []}),
    frame("ethbtc@trade", {"t": 1, "p": "-1", "q": "1", "T": 1, "m": False}),
    frame("ethbtc@trade", {"t": 1, "p": "1", "q": "inf", "T": 1, "m": False}),
]


def test_malformed_frames_are_counted_and_skipped(engine):
    for data in MALFORMED:
        engine.process(data, 1, 1)
    engine.process(frame("xrpusdt@bookTicker", {"u": 1}), 1, 1)                    # a stream we never asked for
    engine.process(frame("btcusdt@kline_1m", {"k": {}}), 1, 1)
    stats = engine.stats()
    assert stats["parse_errors"] == len(MALFORMED)
    assert stats["unknown_streams"] == 2
    assert stats["messages"] == len(MALFORMED) + 2
    assert len(records(engine)) == 0
    # and the engine still works afterwards
    engine.process(bt(9), 1, 1)
    assert records(engine)["last_update_id"].tolist() == [9]


def test_duplicates_and_control_frames(engine):
    engine.process(bt(9), 1, 1)
    engine.process(bt(9), 1, 1)
    engine.process(bt(8), 1, 1)
    engine.process(b'{"result":null,"id":1}', 1, 1)
    engine.process(frame("!serverShutdown", {"e": "serverShutdown", "E": 1}), 1, 1)
    assert len(records(engine)) == 1
    stats = engine.stats()
    assert stats["duplicates"] == 2 and stats["parse_errors"] == 0 and stats["server_shutdowns"] == 1
