"""Combined-stream frames -> (symbol id, stream kind, payload), and the strict grammar of payloads.

Every frame of ``/stream?streams=...`` is ``{"stream":"<name>","data":<payload>}``; the stream
name says both the symbol and the kind, so one dict lookup routes a frame. Frames that are not
market data (SUBSCRIBE replies, ``!serverShutdown``, unknown streams) come back as ``None`` and
the engine looks at them on its slow path; a frame of one of our streams without an object as
``data`` is malformed.

Binance sends prices and quantities as decimal strings and ids and times as JSON integers. This
module is the one statement of what is accepted, and anything else raises ``MalformedFrame``
(the engine counts it as a parse error, publishes nothing, and keeps the connection):

- decimal: a JSON string ``0`` or ``[1-9][0-9]*``, optionally followed by ``.`` and digits --
  no sign, exponent, space, underscore, leading zero, ``NaN``; never a JSON number or ``true``.
  Its value is ``float(text)`` and must be finite.
- id (update id, trade id): a JSON integer in [0, 2**63); time (ms): in [0, MAX_MS].
- level: a list of exactly two decimals, price > 0.
- ``"s"`` (when present) names the stream's symbol; ``"e"`` (when present) the stream's event.

The C path (``ext/feed_parse.pyx``, ``ext/feed_values.pxi``) implements the same grammar and the
tests hold it to this module, byte for byte.

    parser = FrameParser()
    parser.add_route("btcusdt@bookTicker", 0, BOOK_TICKER)
    sid, kind, payload = parser.parse(frame_bytes)      # payload: dict
    u, bid, bid_qty, ask, ask_qty = book_ticker(payload, "BTCUSDT")
"""
from __future__ import annotations

import math
import re

import orjson

BOOK_TICKER, DIFF, TRADE = 1, 2, 3

_KINDS = {"bookTicker": BOOK_TICKER, "depth": DIFF, "depth@100ms": DIFF, "depth@1000ms": DIFF, "trade": TRADE}

MAX_ID = 2 ** 63 - 1
MAX_MS = MAX_ID // 1_000_000          # a time in ms whose ns still fits int64 (year 2262)
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")     # [0-9]: ASCII digits only


class MalformedFrame(ValueError):
    """A frame of one of our streams that does not follow Binance's format."""


def stream_kind(stream: str) -> int:
    """The kind of a configured per-symbol stream suffix (``bookTicker``, ``depth@100ms``, ``trade``)."""
    try:
        return _KINDS[stream]
    except KeyError:
        raise ValueError(f"unsupported feed stream {stream!r}; use one of {sorted(_KINDS)}") from None


class FrameParser:
    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, int]] = {}

    def add_route(self, stream: str, symbol_id: int, kind: int) -> None:
        self.routes[stream] = (symbol_id, kind)

    def parse(self, data: bytes) -> tuple[int, int, dict] | None:
        """(symbol id, kind, payload) for our streams, None for anything else; raises
        ``orjson.JSONDecodeError`` (a ValueError) or ``MalformedFrame``."""
        doc = orjson.loads(data)
        if type(doc) is not dict:
            return None
        stream = doc.get("stream")
        if type(stream) is not str:
            return None
        route = self.routes.get(stream)
        if route is None:
            return None
        payload = doc.get("data")
        if type(payload) is not dict:
            raise MalformedFrame(f"{stream}: no data object")
        return route[0], route[1], payload


# --- values ------------------------------------------------------------------------------------

def decimal(value) -> float:
    if type(value) is not str or _DECIMAL.fullmatch(value) is None:
        raise MalformedFrame(f"not a decimal string: {value!r}")
    x = float(value)
    if x == math.inf:
        raise MalformedFrame(f"decimal out of range: {value[:40]!r}")
    return x


def update_id(value) -> int:
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise MalformedFrame(f"not an id: {value!r}")
    return value


def millis(value) -> int:
    if type(value) is not int or not 0 <= value <= MAX_MS:
        raise MalformedFrame(f"not a time in ms: {value!r}")
    return value


def levels(value) -> list[tuple[float, float]]:
    """``[["price", "qty"], ...]`` -> ``[(price, qty), ...]``, all or nothing."""
    if type(value) is not list:
        raise MalformedFrame(f"levels are not a list: {type(value).__name__}")
    out = []
    for pair in value:
        if type(pair) is not list or len(pair) != 2:
            raise MalformedFrame(f"a level is not a [price, qty] pair: {pair!r}")
        price, qty = decimal(pair[0]), decimal(pair[1])
        if not price > 0.0:
            raise MalformedFrame(f"level price is not positive: {pair!r}")
        out.append((price, qty))
    return out


def _field(payload: dict, key: str):
    try:
        return payload[key]
    except KeyError:
        raise MalformedFrame(f"missing field {key!r}") from None


def _names(payload: dict, symbol: str, event: str | None) -> None:
    if "s" in payload and payload["s"] != symbol:
        raise MalformedFrame(f"symbol {payload['s']!r} on a {symbol} stream")
    if event is not None and "e" in payload and payload["e"] != event:
        raise MalformedFrame(f"event {payload['e']!r} on a {event} stream")


# --- payloads ----------------------------------------------------------------------------------

def book_ticker(payload: dict, symbol: str) -> tuple[int, float, float, float, float]:
    """``{"u","s","b","B","a","A"}`` -> (u, bid, bid qty, ask, ask qty)."""
    _names(payload, symbol, None)
    return (update_id(_field(payload, "u")), decimal(_field(payload, "b")), decimal(_field(payload, "B")),
            decimal(_field(payload, "a")), decimal(_field(payload, "A")))


def depth_update(payload: dict, symbol: str) -> tuple[int, int, int, list, list]:
    """``{"e":"depthUpdate","E","s","U","u","b","a"}`` -> (U, u, E ms, bids, asks), levels parsed."""
    _names(payload, symbol, "depthUpdate")
    first, last = update_id(_field(payload, "U")), update_id(_field(payload, "u"))
    if first > last:
        raise MalformedFrame(f"U {first} > u {last}")
    exch_ms = millis(_field(payload, "E"))
    return first, last, exch_ms, levels(_field(payload, "b")), levels(_field(payload, "a"))


def trade(payload: dict, symbol: str) -> tuple[int, int, float, float, bool]:
    """``{"e":"trade","t","T","p","q","m",...}`` -> (trade id, T ms, price, qty, buyer is maker)."""
    _names(payload, symbol, "trade")
    tid, t_ms = update_id(_field(payload, "t")), millis(_field(payload, "T"))
    price, qty = decimal(_field(payload, "p")), decimal(_field(payload, "q"))
    maker = _field(payload, "m")
    if not (price > 0.0 and qty > 0.0) or type(maker) is not bool:
        raise MalformedFrame(f"bad trade: p={payload['p']!r} q={payload['q']!r} m={maker!r}")
    return tid, t_ms, price, qty, maker
