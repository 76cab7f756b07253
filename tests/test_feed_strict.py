"""Nothing wrong let in, nothing lost: the feed's defects 9 and 10 of the fault-injection session.

9. a frame of one of our streams without ``data`` raised out of ``FeedEngine.process`` and, over
   the socket, dropped the connection (books stale, resyncs, no parse error counted);
10. lenient parsing published wrong data (exponents, JSON numbers, ``true``, underscores, a
   leading-zero id in the C path, ``["12"]`` read as a level, three-element levels).

Each case goes through ``FeedEngine.process`` (the C path first, as the links do) and must be
counted as a parse error, publish nothing and leave the book as it was.
"""
from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest

from ctrader.config import load_config
from ctrader.core.records import MdKind
from ctrader.feed.engine import FeedEngine
from ctrader.market.universe import Universe
from ctrader.sim.universe import build_universe

pytestmark = pytest.mark.timeout(60)

SYMBOLS = ["BTCUSDT", "SOLBNB"]


def make_engine(streams: str = "bookTicker,depth@100ms,trade", ws_url: str | None = None):
    cfg = load_config(env={}, overrides={"feed.streams": streams})
    uni = Universe.from_exchange_info(build_universe(cfg.sim).exchange_info, symbols=SYMBOLS)
    out: list[np.ndarray] = []
    eng = FeedEngine(cfg, uni, lambda recs: out.append(recs.copy()), ws_url=ws_url)
    eng.out = out
    return eng


def published(eng) -> np.ndarray:
    eng.batch.flush()
    return np.concatenate(eng.out) if eng.out else np.zeros(0, eng.batch.records.dtype)


def raw_bt(data: str, stream: str = "solbnb@bookTicker") -> bytes:
    """A bookTicker frame written by hand (compact, as Binance sends it), so that odd values stay odd."""
    return f'{{"stream":"{stream}","data":{data}}}'.encode()


def synced_btc(eng) -> None:
    """BTCUSDT's book in sync at update 100: bids 100.0 x 1, asks 100.5 x 1."""
    eng.process(orjson.dumps({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 99, "u": 100, "b": [], "a": []}}), 1, 1)
    eng._on_snapshot("BTCUSDT", {"lastUpdateId": 100, "bids": [["100.0", "1"]], "asks": [["100.5", "1"]]})
    eng.batch.flush()
    eng.out.clear()


def raw_diff(bids: str, asks: str = "[]", first: str = "101", last: str = "101") -> bytes:
    return (f'{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":1700000000000,"s":"BTCUSDT",'
            f'"U":{first},"u":{last},"b":{bids},"a":{asks}}}}}').encode()


# --- 9: a frame without data --------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b'{"stream":"btcusdt@bookTicker"}',
    b'{"stream":"btcusdt@depth@100ms"}',
    b'{"stream":"btcusdt@trade"}',
    b'{"stream":"btcusdt@bookTicker","data":null}',
    b'{"stream":"btcusdt@bookTicker","data":[1,2]}',
    b'{"stream":"btcusdt@bookTicker","data":"u"}',
])
def test_a_frame_without_data_is_a_counted_parse_error(data):
    eng = make_engine()
    eng.process(data, 1, 1)                                   # never raises
    assert eng.stats()["parse_errors"] == 1 and len(published(eng)) == 0
    eng.process(raw_bt('{"u":5,"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":"3"}'), 1, 1)
    assert published(eng)["last_update_id"].tolist() == [5]  # and the engine goes on


def test_a_frame_without_data_keeps_the_connection():
    """Over a real socket: the bad frame is counted and the frames after it still arrive on the
    same connection (picows drops a socket whose frame callback raises)."""
    from picows import WSListener, WSMsgType, ws_create_server

    good = [raw_bt(f'{{"u":{u},"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":"3"}}') for u in (7, 8)]

    venue_side = []

    class Venue(WSListener):
        def on_ws_connected(self, transport):
            venue_side.append(transport)

    async def wait_for(condition, task):
        deadline = time.monotonic() + 20
        while not condition() and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.01)

    async def main():
        server = await ws_create_server(lambda request: Venue(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        eng = make_engine("bookTicker", ws_url=f"ws://127.0.0.1:{port}")
        stop = asyncio.Event()
        task = asyncio.create_task(eng.run(stop))
        await wait_for(lambda: eng.links[0].live is not None and venue_side, task)
        for frame in (good[0], b'{"stream":"solbnb@bookTicker"}', good[1]):
            venue_side[0].send(WSMsgType.TEXT, frame)
        await wait_for(lambda: eng.batch.written >= 2 or eng.stats()["disconnects"], task)
        stats = eng.stats()
        stop.set()
        await task
        server.close()
        return eng, stats

    eng, stats = asyncio.run(main())
    assert stats["parse_errors"] == 1 and stats["connects"] == 1 and stats["disconnects"] == 0
    assert [r for r in published(eng)["last_update_id"].tolist()] == [7, 8]


# --- 10: lenient parsing ------------------------------------------------------------------------

BAD_BOOK_TICKERS = {
    "JSON number with exponent": '{"u":5,"s":"SOLBNB","b":"1.5","B":1e5,"a":"1.6","A":"3"}',
    "exponent in a string": '{"u":5,"s":"SOLBNB","b":"1.5","B":"1e5","a":"1.6","A":"3"}',
    "JSON number": '{"u":5,"s":"SOLBNB","b":1.5,"B":"2","a":"1.6","A":"3"}',
    "JSON integer": '{"u":5,"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":3}',
    "true": '{"u":5,"s":"SOLBNB","b":"1.5","B":true,"a":"1.6","A":"3"}',
    "underscore": '{"u":5,"s":"SOLBNB","b":"1_0.5","B":"2","a":"1.6","A":"3"}',
    "leading zero in a price": '{"u":5,"s":"SOLBNB","b":"01.5","B":"2","a":"1.6","A":"3"}',
    "space in a price": '{"u":5,"s":"SOLBNB","b":" 1.5","B":"2","a":"1.6","A":"3"}',
    "plus sign": '{"u":5,"s":"SOLBNB","b":"+1.5","B":"2","a":"1.6","A":"3"}',
    "no digits after the dot": '{"u":5,"s":"SOLBNB","b":"1.","B":"2","a":"1.6","A":"3"}',
    "no digits before the dot": '{"u":5,"s":"SOLBNB","b":".5","B":"2","a":"1.6","A":"3"}',
    "Infinity": '{"u":5,"s":"SOLBNB","b":"Infinity","B":"2","a":"1.6","A":"3"}',
    "a decimal too big for a float": '{"u":5,"s":"SOLBNB","b":"1' + "0" * 400 + '","B":"2","a":"1.6","A":"3"}',
    "null": '{"u":5,"s":"SOLBNB","b":"1.5","B":null,"a":"1.6","A":"3"}',
    "leading-zero update id": '{"u":0123,"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":"3"}',
    "negative update id": '{"u":-5,"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":"3"}',
    "update id as a float": '{"u":5.0,"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":"3"}',
    "update id true": '{"u":true,"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":"3"}',
    "update id beyond int64": '{"u":9223372036854775808,"s":"SOLBNB","b":"1.5","B":"2","a":"1.6","A":"3"}',
    "another symbol's data": '{"u":5,"s":"BTCUSDT","b":"1.5","B":"2","a":"1.6","A":"3"}',
}


@pytest.mark.parametrize("payload", list(BAD_BOOK_TICKERS.values()), ids=list(BAD_BOOK_TICKERS))
def test_a_book_ticker_without_decimal_strings_is_a_parse_error(payload):
    eng = make_engine()
    eng.process(raw_bt(payload), 1, 1)
    assert eng.stats()["parse_errors"] == 1 and len(published(eng)) == 0
    assert eng.last_bt[eng.symbol_ids["SOLBNB"]] == 0         # not even remembered as seen


BAD_LEVELS = {
    '["12"] read as (1.0, 2.0)': '[["100.1","1"],"12"]',
    "a one-element level": '[["12"]]',
    "a three-element level": '[["100.1","1","7"]]',
    "underscore": '[["1_00.1","1"]]',
    "exponent": '[["100.1","1e2"]]',
    "JSON number": '[[100.1,"1"]]',
    "true": '[["100.1",true]]',
    "zero price": '[["0","1"]]',
    "leading zero": '[["0100.1","1"]]',
    "a level that is an object": '[{"p":"100.1","q":"1"}]',
    "levels that are not a list": '{"100.1":"1"}',
}


@pytest.mark.parametrize("bids", list(BAD_LEVELS.values()), ids=list(BAD_LEVELS))
def test_a_diff_with_a_bad_level_is_a_parse_error_and_leaves_the_book(bids):
    eng = make_engine()
    synced_btc(eng)
    sid = eng.symbol_ids["BTCUSDT"]
    book = eng.syncs[sid].book
    eng.process(raw_diff(bids), 1, 1)
    assert eng.stats()["parse_errors"] == 1 and len(published(eng)) == 0
    assert book.bids.levels() == [(100.0, 1.0)] and book.update_id == 100 and not eng.syncs[sid].stale
    eng.process(raw_diff('[["100.1","2"]]'), 1, 1)            # the next good diff continues the book
    r = published(eng)
    assert r["kind"].tolist() == [MdKind.DEPTH] and r["bid_px"][0, :2].tolist() == [100.1, 100.0]


@pytest.mark.parametrize("first,last", [("0101", "101"), ("101", "0101"), ("101", "1e3"), ("-1", "101"),
                                        ("102", "101"), ("101", "101.0")])
def test_a_diff_with_bad_update_ids_is_a_parse_error(first, last):
    eng = make_engine()
    synced_btc(eng)
    eng.process(raw_diff('[["100.1","2"]]', first=first, last=last), 1, 1)
    assert eng.stats()["parse_errors"] == 1 and len(published(eng)) == 0
    assert eng.syncs[eng.symbol_ids["BTCUSDT"]].update_id == 100


@pytest.mark.parametrize("payload", [
    '{"e":"trade","s":"SOLBNB","t":1,"p":"1.5","q":"2","T":1,"m":1}',              # m not a bool
    '{"e":"trade","s":"SOLBNB","t":1,"p":1.5,"q":"2","T":1,"m":true}',
    '{"e":"trade","s":"SOLBNB","t":1,"p":"1.5","q":"2e0","T":1,"m":true}',
    '{"e":"aggTrade","s":"SOLBNB","t":1,"p":"1.5","q":"2","T":1,"m":true}',         # another event
    '{"e":"trade","s":"SOLBNB","t":1,"p":"1.5","q":"2","T":9223372036855,"m":true}',  # T * 1e6 > int64
])
def test_a_bad_trade_is_a_parse_error(payload):
    eng = make_engine()
    eng.process(raw_bt(payload, "solbnb@trade"), 1, 1)
    assert eng.stats()["parse_errors"] == 1 and len(published(eng)) == 0


def test_parse_errors_are_logged_with_the_reason_and_shown_in_the_stats(caplog):
    eng = make_engine()
    with caplog.at_level("WARNING", logger="ctrader.feed.engine"):
        eng.process(raw_bt(BAD_BOOK_TICKERS["true"]), 1, 1)
    assert "not a decimal string: True" in caplog.text
    stats = eng.stats()
    assert stats["parse_errors"] == 1 and "not a decimal string" in stats["last_parse_error"]


def test_decimal_strings_of_any_length_are_read_exactly():
    """Long mantissas, many fraction digits: the value is float(text), in both paths."""
    eng = make_engine()
    values = ["123456789012345678", "0.000000000000000000000000123", "98765432109876543210.5", "1.10000000"]
    for u, v in enumerate(values, 1):
        eng.process(raw_bt(f'{{"u":{u},"s":"SOLBNB","b":"{v}","B":"{v}","a":"{v}","A":"{v}"}}'), 1, 1)
    r = published(eng)
    assert r["bid_px"][:, 0].tolist() == [float(v) for v in values]
    assert eng.stats()["parse_errors"] == 0
