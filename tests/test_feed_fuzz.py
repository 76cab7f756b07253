"""Fuzz both feed parse paths with mutated frames (a seeded mutator over a live-like stream).

A stream of Binance-like frames (bookTicker, depth diffs that keep books in sync, trades, control
replies, unknown streams, now and then a snapshot) is mutated byte- and token-wise and fed to two
engines: one as the links feed it (the C path first), one through the Python path only. After
every frame:

- nothing raised; both engines published the same bytes and count the same (``Twins.check``);
- an independent statement of Binance's format (``verdict`` below, written apart from
  ``ctrader.feed.parse``) says whether the frame is malformed: a malformed frame adds exactly one
  to ``parse_errors`` and publishes nothing; a well-formed one adds none;
- every published value is one the frame carried (bookTicker, trade) or a sane book (depth).

The default run is short (a few seconds). Longer or other runs:

    CTRADER_FUZZ_FRAMES=1000000 CTRADER_FUZZ_SEED=7 tools/test tests/test_feed_fuzz.py
"""
from __future__ import annotations

import math
import os
import random
import re

import numpy as np
import orjson

from ctrader.core.records import MdKind
from tests.feed_twins import Twins

FRAMES = int(os.environ.get("CTRADER_FUZZ_FRAMES", "20000"))
SEED = int(os.environ.get("CTRADER_FUZZ_SEED", "20261204"))

SYMBOLS = {"BTCUSDT": 100.0, "ETHBTC": 0.05}            # symbol -> mid price
ROUTES = {f"{s.lower()}@{k}": (s, k) for s in SYMBOLS for k in ("bookTicker", "depth@100ms", "trade")}
MAX_ID, MAX_MS = 2 ** 63 - 1, (2 ** 63 - 1) // 1_000_000
DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")

MALFORMED, OTHER, VALID = "malformed", "other", "valid"


# --- the oracle -------------------------------------------------------------------------------------

class Bad(Exception):
    pass


def _dec(v) -> float:
    if not isinstance(v, str) or not DECIMAL.fullmatch(v) or math.isinf(float(v)):
        raise Bad(v)
    return float(v)


def _int(v, hi=MAX_ID) -> int:
    if type(v) is not int or v < 0 or v > hi:
        raise Bad(v)
    return v


def _levels(v) -> list:
    if not isinstance(v, list):
        raise Bad(v)
    out = []
    for lv in v:
        if not isinstance(lv, list) or len(lv) != 2 or _dec(lv[0]) <= 0:
            raise Bad(lv)
        out.append((_dec(lv[0]), _dec(lv[1])))
    return out


def verdict(data: bytes):
    """(MALFORMED | OTHER | VALID, the values a valid frame carries)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return MALFORMED, None
    if not isinstance(doc, dict):
        return MALFORMED, None
    stream = doc.get("stream")
    if not isinstance(stream, str) or stream not in ROUTES:
        data_e = doc.get("data").get("e") if isinstance(doc.get("data"), dict) else None
        if stream == "!serverShutdown" or data_e == "serverShutdown":
            return OTHER, None
        if "id" in doc and ("result" in doc or "error" in doc):
            return OTHER, None
        return (OTHER, None) if isinstance(stream, str) else (MALFORMED, None)
    symbol, kind = ROUTES[stream]
    p = doc.get("data")
    try:
        if not isinstance(p, dict) or ("s" in p and p["s"] != symbol):
            raise Bad(p)
        if kind == "bookTicker":
            return VALID, (_int(p["u"]), _dec(p["b"]), _dec(p["B"]), _dec(p["a"]), _dec(p["A"]))
        if kind == "depth@100ms":
            if ("e" in p and p["e"] != "depthUpdate") or _int(p["U"]) > _int(p["u"]):
                raise Bad(p)
            return VALID, (_int(p["E"], MAX_MS), _levels(p["b"]), _levels(p["a"]))
        if ("e" in p and p["e"] != "trade") or not isinstance(p["m"], bool) or _dec(p["p"]) <= 0 \
                or _dec(p["q"]) <= 0:
            raise Bad(p)
        return VALID, (_int(p["t"]), _int(p["T"], MAX_MS), _dec(p["p"]), _dec(p["q"]))
    except (Bad, KeyError):
        return MALFORMED, None


# --- the stream and its mutations -----------------------------------------------------------------

class Stream:
    """Frames as a venue would send them, continuing each book from where the engine has it."""

    def __init__(self, rng: random.Random, twins: Twins) -> None:
        self.rng = rng
        self.twins = twins
        self.u = {s: 1 for s in SYMBOLS}
        self.trade_id = {s: 1 for s in SYMBOLS}

    def _px(self, symbol: str, ticks: int) -> str:
        mid = SYMBOLS[symbol]
        return f"{mid + ticks * mid / 1000:.8f}"

    def _levels(self, symbol: str, side: int) -> list:
        return [[self._px(symbol, side * self.rng.randint(1, 20)),
                 self.rng.choice(["0.00000000", "1.00000000", "0.25000000", "3.50000000"])]
                for _ in range(self.rng.randint(0, 6))]

    def next(self) -> bytes:
        rng = self.rng
        symbol = rng.choice(list(SYMBOLS))
        roll = rng.random()
        if roll < 0.35:
            self.u[symbol] += rng.choice([1, 1, 1, 0])
            return orjson.dumps({"stream": f"{symbol.lower()}@bookTicker", "data": {
                "u": self.u[symbol], "s": symbol, "b": self._px(symbol, -1), "B": "1.50000000",
                "a": self._px(symbol, 1), "A": "2.00000000"}})
        if roll < 0.80:
            sync = self.twins.c.syncs[self.twins.c.symbol_ids[symbol]]
            first = sync.update_id + rng.choice([1, 1, 1, 1, 0, 2])
            return orjson.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": {
                "e": "depthUpdate", "E": 1_700_000_000_000 + first, "s": symbol, "U": first,
                "u": first + rng.randint(0, 2), "b": self._levels(symbol, -1), "a": self._levels(symbol, 1)}})
        if roll < 0.92:
            self.trade_id[symbol] += 1
            return orjson.dumps({"stream": f"{symbol.lower()}@trade", "data": {
                "e": "trade", "E": 1, "s": symbol, "t": self.trade_id[symbol], "p": self._px(symbol, 0),
                "q": "0.01000000", "T": 1_700_000_000_000, "m": rng.random() < 0.5, "M": True}})
        return rng.choice([b'{"result":null,"id":3}', b'{"stream":"xrpusdt@trade","data":{"t":1}}',
                           b'{"stream":"btcusdt@kline_1m","data":{"k":{}}}'])

    def snapshot(self, symbol: str) -> dict | None:
        """A snapshot that fits the engine's buffered diffs (None when the book needs none)."""
        sync = self.twins.c.syncs[self.twins.c.symbol_ids[symbol]]
        if sync.synced or not sync.buffer:
            return None
        return {"lastUpdateId": sync.buffer[0][0],
                "bids": [[self._px(symbol, -k), "1.00000000"] for k in range(1, 25)],
                "asks": [[self._px(symbol, k), "1.00000000"] for k in range(1, 25)]}


BYTES = b'0123456789.,:"[]{}-+eE_ \\nulltrueabBsSuU\x00\xff\xc3'
VALUE_TOKENS = [b"1e5", b"true", b"false", b"null", b"0123", b"-1", b"1.0", b'"1_0.5"', b'"01"', b'"1e5"', b'"NaN"',
                b'""', b'" 1"', b'"1."', b'".5"', b'"+1"', b"[]", b"{}", b'["12"]', b'[["1","2","3"]]', b'"12"',
                b"9223372036854775808", b"18446744073709551616", b'"1\\u0030"', b'"\xc3\xa9"', b'"0.0"',
                b'"' + b"9" * 30 + b'"', b"0"]
LEVEL_TOKENS = [b'"12"', b'["12"]', b'["1","2","3"]', b'[1.5,"2"]', b'["1.5",2]', b'["0","1"]', b"[]", b"null",
                b'["1.5","1e1"]', b'["1_5","1"]', b'["01.5","1"]', b'[" 1.5","1"]']
VALUE = re.compile(rb'":("[^"\\]*"|-?[0-9][0-9.eE+-]*|true|false|null)')
LEVEL = re.compile(rb'\["[^"]*","[^"]*"\]')


def mutate(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        n = len(data)
        op = rng.randrange(8)
        if op == 0 and (values := list(VALUE.finditer(data))):
            m = rng.choice(values)
            data = data[:m.start(1)] + rng.choice(VALUE_TOKENS) + data[m.end(1):]
        elif op == 1 and (levels := list(LEVEL.finditer(data))):
            m = rng.choice(levels)
            data = data[:m.start()] + rng.choice(LEVEL_TOKENS) + data[m.end():]
        elif op == 2 and n:
            i = rng.randrange(n)
            data = data[:i] + bytes([rng.choice(BYTES)]) + data[i + 1:]
        elif op == 3 and n:
            i = rng.randrange(n)
            data = data[:i] + data[i + rng.randint(1, 4):]
        elif op == 4:
            i = rng.randrange(n + 1)
            data = data[:i] + bytes([rng.choice(BYTES)]) + data[i:]
        elif op == 5 and n:
            data = data[:rng.randrange(n)]
        elif op == 6 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 12))
            data = data[:j] + data[i:j] + data[j:]
        elif op == 7:                                      # a member Binance might add, or a repeated one
            i = data.find(b'"data":{')
            if i > 0:
                extra = rng.choice([b'"x":1,', b'"E":5,', b'"u":7,', b'"s":"BTCUSDT",', b'"e":"depthUpdate",'])
                data = data[:i + 8] + extra + data[i + 8:]
    return data


# --- the run --------------------------------------------------------------------------------------

def _check_values(kind: str, values, records: np.ndarray) -> None:
    for r in records:
        floats = np.concatenate([r["bid_px"], r["bid_qty"], r["ask_px"], r["ask_qty"], [r["trade_px"], r["trade_qty"]]])
        assert np.all(np.isfinite(floats)), r
        if r["kind"] == MdKind.BOOK_TICKER:
            assert kind == "bookTicker"
            u, b, bq, a, aq = values
            assert (r["last_update_id"], r["bid_px"][0], r["bid_qty"][0], r["ask_px"][0], r["ask_qty"][0]) == \
                (u, b, bq, a, aq)
        elif r["kind"] == MdKind.TRADE:
            assert kind == "trade"
            assert (r["last_update_id"], r["trade_px"], r["trade_qty"]) == (values[0], values[2], values[3])
        elif r["kind"] in (MdKind.DEPTH, MdKind.SNAPSHOT):
            nb, na = r["n_bids"], r["n_asks"]
            bids, asks = r["bid_px"][:nb], r["ask_px"][:na]
            assert np.all(bids > 0) and np.all(asks > 0)
            assert np.all(r["bid_qty"][:nb] > 0) and np.all(r["ask_qty"][:na] > 0)
            assert np.all(np.diff(bids) < 0) and np.all(np.diff(asks) > 0)
            assert not (nb and na and bids[0] >= asks[0]), "a crossed book published as fresh"
            if r["kind"] == MdKind.DEPTH:
                assert r["exch_ts_ns"] == values[0] * 1_000_000


def test_mutated_frames_are_counted_never_published_and_both_paths_agree():
    rng = random.Random(SEED)
    twins = Twins(list(SYMBOLS))
    stream = Stream(rng, twins)
    for symbol in SYMBOLS:                  # books in sync to start with: diffs take the C path
        twins.frame(stream.next())
        twins.frame(orjson.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": {
            "e": "depthUpdate", "E": 1, "s": symbol, "U": 1, "u": 1, "b": [], "a": []}}))
        twins.snapshot(symbol, stream.snapshot(symbol))
    twins.check()
    tally = {MALFORMED: 0, OTHER: 0, VALID: 0}
    for i in range(FRAMES):
        data = stream.next()
        if rng.random() < 0.6:
            data = mutate(rng, data)
        if i % 64 == 0:
            for symbol in SYMBOLS:
                doc = stream.snapshot(symbol)
                if doc is not None:
                    twins.snapshot(symbol, doc)
            twins.check()
        before = twins.c.parse_errors
        twins.frame(data, 1_000 + i, 2_000 + i)
        try:
            records = twins.check(counted=i % 64 == 63)
        except AssertionError as exc:
            raise AssertionError(f"seed {SEED}, frame {i}: {data!r}: {exc}") from None
        what, values = verdict(data)
        tally[what] += 1
        errors = twins.c.parse_errors - before
        assert errors == (1 if what == MALFORMED else 0), f"seed {SEED}, frame {i} ({what}): {data!r}"
        if what == MALFORMED:
            assert len(records) == 0, f"seed {SEED}, frame {i}: published from a malformed frame {data!r}"
        else:
            kind = ROUTES[orjson.loads(data)["stream"]][1].split("@")[0] if what == VALID else ""
            _check_values(kind, values, records[records["kind"] != MdKind.STATUS])
    twins.check()
    assert twins.c.unexpected_errors == 0 and twins.py.unexpected_errors == 0
    # the run covered all three kinds of frames, and the C path took a good share of them
    assert min(tally.values()) > FRAMES // 20, tally
    assert twins.c.fast.messages > FRAMES // 10      # about a fifth to a quarter, by seed
