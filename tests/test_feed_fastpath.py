"""The C bookTicker path (``ctrader._ext.feed_parse``) writes exactly the record the Python path
would, and hands every frame it is not sure about to the Python path."""
from __future__ import annotations

import numpy as np
import orjson
import pytest
from ctrader._ext.feed_parse import NOT_HANDLED, WRITTEN
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.config import load_config
from ctrader.feed.engine import FeedEngine
from ctrader.market.universe import Universe
from ctrader.sim.universe import build_universe

CFG = load_config(env={}, overrides={"feed.streams": "bookTicker,depth@100ms"})
DOC = build_universe(CFG.sim).exchange_info


def make_engine():
    out = []
    eng = FeedEngine(CFG, Universe.from_exchange_info(DOC, symbols=["BTCUSDT", "ETHBTC"]),
                     lambda recs: out.append(recs.copy()))
    return eng, out


def flushed(eng, out) -> np.ndarray:
    eng.batch.flush()
    return np.concatenate(out) if out else np.zeros(0, eng.batch.records.dtype)


def python_only(eng, data: bytes) -> None:
    """The general path, with the C path bypassed."""
    eng.messages += 1
    sid, _, payload = eng.parser.parse(data)
    eng._book_ticker(sid, payload, 5, 6)


decimals = st.builds(lambda whole, frac, nd: f"{whole}.{str(frac).zfill(nd)[:nd]}" if nd else str(whole),
                     st.integers(0, 10 ** 7), st.integers(0, 10 ** 8), st.integers(0, 8))


@settings(max_examples=300, deadline=None)
@given(u=st.integers(1, 10 ** 18 - 1), b=decimals, bq=decimals, a=decimals, aq=decimals)
def test_c_path_equals_python_path(u, b, bq, a, aq):
    data = (f'{{"stream":"btcusdt@bookTicker","data":{{"u":{u},"s":"BTCUSDT","b":"{b}","B":"{bq}",'
            f'"a":"{a}","A":"{aq}"}}}}').encode()
    fast, fast_out = make_engine()
    assert fast.fast.handle(data, 5, 6) == WRITTEN
    slow, slow_out = make_engine()
    python_only(slow, data)
    rf, rs = flushed(fast, fast_out), flushed(slow, slow_out)
    assert rf.tobytes() == rs.tobytes()
    assert rf["bid_px"][0, 0] == float(b) and rf["ask_qty"][0, 0] == float(aq)


@pytest.mark.parametrize("data", [
    b'{"stream":"btcusdt@bookTicker","data":{"u":1, "s":"BTCUSDT","b":"1","B":"1","a":"2","A":"1"}}',   # space
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTC\\"USDT","b":"1","B":"1","a":"2","A":"1"}}',  # escape
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2"}}',                          # missing A
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"-1","a":"2","A":"1"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1e3","B":"1","a":"2","A":"1"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"NaN","B":"1","a":"2","A":"1"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1.2.3","B":"1","a":"2","A":"1"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"123456789012345678","B":"1","a":"2","A":"1"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}',                   # truncated
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}}x',
    b'{"stream":"btcusdt@bookTicker","data":{"u":"1","b":"1","B":"1","a":"2","A":"1"}}',
    b'{"stream":"btcusdt@bookTicker","data":{"u":1,"ts":5,"b":"1","B":"1","a":"2","A":"1"}}',           # long key
    b'{"stream":"xrpusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}}',                  # not ours
    b'{"stream":"btcusdt@depth@100ms","data":{"U":1,"u":2,"E":3,"b":[],"a":[]}}',
])
def test_anything_unusual_goes_to_the_python_path(data):
    eng, _ = make_engine()
    assert eng.fast.handle(data, 1, 1) == NOT_HANDLED
    assert eng.batch.n == 0


def test_duplicates_outdated_and_stale_flags_in_c():
    eng, out = make_engine()
    sid = eng.symbol_ids["BTCUSDT"]
    frame = lambda u: orjson.dumps({"stream": "btcusdt@bookTicker", "data": {
        "u": u, "s": "BTCUSDT", "b": "1.5", "B": "2", "a": "1.6", "A": "3"}})
    assert eng.fast.handle(frame(10), 1, 1) == WRITTEN
    assert eng.fast.handle(frame(10), 1, 1) == 2                # duplicate
    eng.book_id[sid] = 20                                        # depth book already at 20
    eng.stale_flag[sid] = 0
    assert eng.fast.handle(frame(15), 1, 1) == 3                # older than the book
    assert eng.fast.handle(frame(21), 1, 1) == WRITTEN
    r = flushed(eng, out)
    assert r["flags"].tolist() == [1, 0] and r["last_update_id"].tolist() == [10, 21]
    s = eng.stats()
    assert s["duplicates"] == 1 and s["outdated_book_tickers"] == 1 and s["messages"] == 4


@settings(max_examples=300, deadline=None)
@given(levels=st.lists(st.tuples(decimals, decimals), max_size=12))
def test_c_level_parser_gives_the_floats_python_gives(levels):
    from ctrader.feed.book import _level, parse_levels

    pairs = [[p, q] for p, q in levels]
    expected = []
    for pair in pairs:
        try:
            expected.append(_level(pair))
        except ValueError:
            expected = None                 # a zero price: the whole side is refused
            break
    if expected is None:
        with pytest.raises(ValueError):
            parse_levels(pairs)
    else:
        assert parse_levels(pairs) == expected


def test_level_forms_python_accepts_but_c_leaves_to_python():
    from ctrader._ext.feed_parse import parse_levels_fast

    from ctrader.feed.book import parse_levels

    odd = [["1e-5", "2"], [" 3.5", "1"], ["4", "+1"]]
    assert parse_levels_fast(odd) is None
    assert parse_levels(odd) == [(1e-5, 2.0), (3.5, 1.0), (4.0, 1.0)]
