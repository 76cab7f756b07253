"""The C frame path (``ext/feed_parse.pyx``) and the Python path (orjson + ``ctrader.feed.parse``)
give the same records and counters for every frame: bookTicker and depth diffs, well-formed or
not, in Binance's exact form or any other (hypothesis). And the C path takes the frames Binance
sends, so that the equality is not won by handing everything to Python."""
from __future__ import annotations

import re

import orjson
import pytest
from ctrader._ext.feed_parse import DUPLICATE, NOT_HANDLED, OUTDATED, WENT_STALE, WRITTEN, decimal_value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctrader.core.records import MdFlag, MdKind
from ctrader.feed import parse
from ctrader.feed.book import BadLevel, parse_levels
from tests.feed_twins import Twins, make_engine, published

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the value grammar: C == the Python reference, on any text -----------------------------------

digits = st.text("0123456789", min_size=1, max_size=25)
valid_decimals = st.one_of(
    st.builds(lambda i, f: i + ("." + f if f else ""), st.sampled_from(["0"]) | digits.filter(lambda d: d[0] != "0"),
              st.text("0123456789", max_size=25)),
    st.builds(lambda i, zeros, f, tail: f"{i}.{'0' * zeros}{f}{'0' * tail}",             # zeros held back
              st.sampled_from(["0", "1", "65000", "9007199254740991", "123456789"]), st.integers(0, 25),
              st.integers(0, 10 ** 17), st.integers(0, 12)),
    st.sampled_from(["0", "0.0", "65000.01000000", "0.00000001", "9007199254740993", "1" + "0" * 30,
                     "1" + "0" * 400, "0." + "0" * 400 + "1", "123456789012345678.123456789"]),
)
decimal_like = st.text("0123456789.-+eE_ x\u0661", max_size=12)     # mostly malformed


@SETTINGS
@given(text=st.one_of(valid_decimals, decimal_like, st.text(max_size=8)))
def test_c_decimal_grammar_is_the_python_reference(text):
    try:
        expected = parse.decimal(text)
    except parse.MalformedFrame:
        expected = None
    got = decimal_value(text)
    if expected is None:
        assert got is None or got == float("inf")      # inf: C reads it, the callers refuse it
    else:
        assert got == expected and got == float(text)


levels_json = st.lists(st.one_of(
    st.tuples(valid_decimals, valid_decimals).map(list),
    st.lists(st.one_of(valid_decimals, decimal_like, st.integers(), st.booleans(), st.none()), max_size=3),
    st.text(max_size=3),
), max_size=6)


@SETTINGS
@given(levels=levels_json)
def test_c_level_parser_is_the_python_reference(levels):
    try:
        expected = parse.levels(levels)
    except parse.MalformedFrame:
        expected = None
    if expected is None:
        with pytest.raises(BadLevel):
            parse_levels(levels)
    else:
        assert parse_levels(levels) == expected


# --- frames: compact JSON written token by token, so that odd tokens stay odd --------------------

def jstr(text: str) -> str:
    return orjson.dumps(text).decode()


def obj(members: list[tuple[str, str]], sep: str = ",") -> str:
    return "{" + sep.join(f"{jstr(k)}:{v}" for k, v in members) + "}"


def frame(stream: str, data: str) -> bytes:
    return f'{{"stream":{jstr(stream)},"data":{data}}}'.encode()


# a value where Binance sends a decimal string: mostly good, sometimes anything
decimal_token = st.one_of(
    valid_decimals.map(jstr), valid_decimals.map(jstr), valid_decimals.map(jstr),
    decimal_like.map(jstr),
    st.sampled_from(["1e5", "1.5", "0", "true", "null", "[]", '"1\\u0030"', '"\\u0031"', "01"]),
)
id_token = st.one_of(st.integers(0, 40).map(str), st.integers(0, 40).map(str),
                     st.sampled_from(["-1", "01", "1.0", "1e2", "true", '"7"', "9223372036854775807",
                                      "9223372036854775808", "123456789012345678901"]))


@st.composite
def book_ticker_frames(draw):
    members = [("u", draw(id_token)), ("s", jstr(draw(st.sampled_from(["ETHBTC", "ETHBTC", "ETHBTC", "BTCUSDT"])))),
               ("b", draw(decimal_token)), ("B", draw(decimal_token)), ("a", draw(decimal_token)),
               ("A", draw(decimal_token))]
    if draw(st.booleans()):
        members = draw(st.permutations(members))
    for _ in range(draw(st.integers(0, 1))):
        members.pop(draw(st.integers(0, len(members) - 1)))               # a missing field
    if draw(st.integers(0, 9)) == 0:
        members.append((draw(st.sampled_from(["E", "u", "x", "ts"])), draw(st.sampled_from(["1", '"y"', "[]"]))))
    sep = draw(st.sampled_from([","] * 9 + [", "]))
    return frame("ethbtc@bookTicker", obj(members, sep))


@SETTINGS
@given(frames=st.lists(book_ticker_frames(), min_size=1, max_size=12))
def test_book_ticker_frames_c_path_equals_python_path(frames):
    twins = Twins(["BTCUSDT", "ETHBTC"])
    for data in frames:
        twins.frame(data)
    records = twins.check()
    assert all(r["kind"] == MdKind.BOOK_TICKER for r in records)


@st.composite
def level_tokens(draw, valid_only: bool):
    out = []
    for _ in range(draw(st.integers(0, 5))):
        price = jstr(f"{draw(st.integers(9900, 10100)) / 100:.2f}")     # a grid: levels meet again
        qty = jstr(draw(st.sampled_from(["0", "0.00000000", "1", "2.5", "0.001"])))
        if not valid_only and draw(st.integers(0, 6)) == 0:
            price, qty = draw(st.sampled_from([(draw(decimal_token), qty), (price, draw(decimal_token))]))
        out.append(f"[{price},{qty}]")
    text = "[" + ",".join(out) + "]"
    if not valid_only and draw(st.integers(0, 15)) == 0:
        text = draw(st.sampled_from(['["12"]', '[["1","2","3"]]', '{}', '"[]"', "null", '[["1"]]', "[[]]"]))
    return text


@st.composite
def depth_frames(draw, valid_only: bool = False):
    """A diff for BTCUSDT near update 100 (overlaps, duplicates, gaps), levels on a price grid."""
    first = draw(st.integers(95, 112))
    last = first + draw(st.integers(0, 3))
    ids = [str(first), str(last)]
    if not valid_only and draw(st.integers(0, 8)) == 0:
        ids[draw(st.integers(0, 1))] = draw(id_token)
    members = [("e", jstr("depthUpdate")), ("E", str(draw(st.integers(1_700_000_000_000, 1_700_000_000_100)))),
               ("s", jstr("BTCUSDT")), ("U", ids[0]), ("u", ids[1]),
               ("b", draw(level_tokens(valid_only))), ("a", draw(level_tokens(valid_only)))]
    if not valid_only:
        roll = draw(st.integers(0, 20))
        if roll == 0:
            members = draw(st.permutations(members))
        elif roll == 1:
            members.pop(draw(st.integers(0, len(members) - 1)))
        elif roll == 2:
            members[0] = ("e", jstr(draw(st.sampled_from(["depth", "trade", "depthUpdate "]))))
        elif roll == 3:
            members[2] = ("s", jstr("ETHBTC"))
        elif roll == 4:
            members[1] = ("E", draw(st.sampled_from(["9223372036855", "-1", "1.5", '"1"'])))
        elif roll == 5:
            members.append(("x", "1"))
    sep = "," if valid_only else draw(st.sampled_from([","] * 15 + [", "]))     # Binance's form is compact
    return frame("btcusdt@depth@100ms", obj(members, sep))


SNAPSHOT = {"lastUpdateId": 100, "bids": [["100.00", "1"], ["99.50", "2"]], "asks": [["100.50", "1"], ["101.00", "3"]]}


@SETTINGS
@given(frames=st.lists(depth_frames(), min_size=1, max_size=25), resync_at=st.integers(0, 25))
def test_depth_frames_c_path_equals_python_path(frames, resync_at):
    """Book in sync at 100, then diffs that continue it, repeat it, skip ahead (gap -> stale,
    buffered) or cross it; a snapshot may come mid-way. Same records, same counters."""
    twins = Twins(["BTCUSDT", "ETHBTC"])
    twins.frame(frame("btcusdt@depth@100ms", obj([("U", "99"), ("u", "100"), ("E", "1"), ("b", "[]"), ("a", "[]")])))
    twins.snapshot("BTCUSDT", SNAPSHOT)
    for i, data in enumerate(frames):
        if i == resync_at:
            sync = twins.c.syncs[twins.c.symbol_ids["BTCUSDT"]]
            first_buffered = sync.buffer[0][0] if sync.buffer else sync.update_id
            twins.snapshot("BTCUSDT", {**SNAPSHOT, "lastUpdateId": first_buffered})
        twins.frame(data)
    twins.check()


@SETTINGS
@given(frames=st.lists(depth_frames(valid_only=True), min_size=1, max_size=25))
def test_valid_diffs_of_a_book_in_sync_are_all_taken_by_the_c_path(frames):
    twins = Twins(["BTCUSDT"])
    twins.frame(frame("btcusdt@depth@100ms", obj([("U", "99"), ("u", "100"), ("E", "1"), ("b", "[]"), ("a", "[]")])))
    twins.snapshot("BTCUSDT", SNAPSHOT)
    sync = twins.c.syncs[0]
    for data in frames:
        in_sync, book_id = sync.synced, sync.update_id
        first = int(re.search(rb'"U":(\d+)', data).group(1))
        code = twins.frame(data)
        if in_sync and first <= book_id + 1:
            assert code in (WRITTEN, DUPLICATE, WENT_STALE)        # C decided
        else:
            assert code == NOT_HANDLED                             # rebuilding / a gap: Python
    twins.check()


def test_the_c_path_takes_binances_frames_and_writes_what_python_writes():
    twins = Twins(["BTCUSDT", "ETHBTC"])
    bt = orjson.dumps({"stream": "ethbtc@bookTicker", "data": {
        "u": 400900217, "s": "ETHBTC", "b": "0.05123000", "B": "31.21000000", "a": "0.05124000", "A": "40.66000000"}})
    assert twins.frame(bt) == WRITTEN
    assert twins.frame(bt) == DUPLICATE
    twins.frame(frame("btcusdt@depth@100ms", obj([("U", "99"), ("u", "100"), ("E", "1"), ("b", "[]"), ("a", "[]")])))
    twins.snapshot("BTCUSDT", SNAPSHOT)
    diff = lambda first, last, bids, asks: orjson.dumps({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1672515782136, "s": "BTCUSDT", "U": first, "u": last, "b": bids, "a": asks}})
    assert twins.frame(diff(99, 101, [["100.10000000", "3.00000000"]], [["100.50000000", "0.00000000"]])) == WRITTEN
    assert twins.frame(diff(100, 101, [], [])) == DUPLICATE                 # u <= book: ignored
    assert twins.frame(diff(102, 102, [["101.50000000", "1"]], [])) == WENT_STALE   # crosses 101.00
    assert twins.frame(diff(103, 103, [], [])) == NOT_HANDLED               # stale: buffered by Python
    assert twins.frame(bt.replace(b"400900217", b"400900218")) == WRITTEN
    records = twins.check()
    assert records["kind"].tolist() == [MdKind.BOOK_TICKER, MdKind.SNAPSHOT, MdKind.DEPTH, MdKind.STATUS,
                                        MdKind.BOOK_TICKER]
    d = records[2]
    assert d["bid_px"][:3].tolist() == [100.1, 100.0, 99.5] and d["ask_px"][:2].tolist() == [101.0, 0.0]
    assert d["n_asks"] == 1 and d["exch_ts_ns"] == 1672515782136 * 1_000_000
    assert records[3]["flags"] == MdFlag.STALE | MdFlag.CROSSED
    assert twins.c.fast.messages == 6 and twins.c.stats()["duplicates"] == 2      # all but the stale one in C


@pytest.mark.parametrize("data", [
    b'{"stream":"ethbtc@bookTicker","data":{"u":1, "s":"ETHBTC","b":"1","B":"1","a":"2","A":"1"}}',  # space
    b'{"stream":"ethbtc@bookTicker","data":{"u":1,"s":"ETH\\u0042TC","b":"1","B":"1","a":"2","A":"1"}}',  # escape
    b'{"stream":"ethbtc@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1","E":5}}',   # a field C does not know
    b'{"stream":"ethbtc@bookTicker","data":{"u":1,"u":2,"b":"1","B":"1","a":"2","A":"1"}}',   # repeated field
    b'{"stream":"ethbtc@bookTicker","data":{"u":1234567890123456789,"b":"1","B":"1","a":"2","A":"1"}}',  # 19 digits
    b'{"data":{"u":1,"b":"1","B":"1","a":"2","A":"1"},"stream":"ethbtc@bookTicker"}',       # members swapped
    b'{"stream":"xrpusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}}',      # not ours
    b'{"stream":"ethbtc@trade","data":{"e":"trade","t":1,"p":"1","q":"1","T":1,"m":true}}',  # trades: Python
])
def test_valid_frames_in_unusual_forms_go_to_python_and_are_used_there(data):
    twins = Twins(["BTCUSDT", "ETHBTC"])
    assert twins.frame(data) == NOT_HANDLED
    twins.check()
    assert twins.c.stats()["parse_errors"] == 0


def test_outdated_book_tickers_and_stale_flags_in_c():
    eng = make_engine(["BTCUSDT", "ETHBTC"])
    sid = eng.symbol_ids["BTCUSDT"]
    bt = lambda u: orjson.dumps({"stream": "btcusdt@bookTicker", "data": {
        "u": u, "s": "BTCUSDT", "b": "1.5", "B": "2", "a": "1.6", "A": "3"}})
    assert eng.fast.handle(bt(10), 1, 1) == WRITTEN
    eng.book_id[sid] = 20                                        # depth book already at 20
    eng.stale_flag[sid] = 0
    assert eng.fast.handle(bt(15), 1, 1) == OUTDATED             # older than the book
    assert eng.fast.handle(bt(21), 1, 1) == WRITTEN
    r = published(eng)
    assert r["flags"].tolist() == [MdFlag.STALE, 0] and r["last_update_id"].tolist() == [10, 21]
    assert eng.stats()["outdated_book_tickers"] == 1
