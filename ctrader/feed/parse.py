"""Combined-stream frames -> (symbol id, stream kind, payload).

Every frame of ``/stream?streams=...`` is ``{"stream":"<name>","data":<payload>}``; the stream
name says both the symbol and the kind, so one dict lookup routes a frame. Frames that are not
market data (SUBSCRIBE replies, ``!serverShutdown``, unknown streams) come back as ``None`` and
the engine looks at them on its slow path.

    parser = FrameParser()
    parser.add_route("btcusdt@bookTicker", 0, BOOK_TICKER)
    sid, kind, payload = parser.parse(frame_bytes)      # payload: dict (or a parsed tuple)
"""
from __future__ import annotations

import orjson

BOOK_TICKER, DIFF, TRADE = 1, 2, 3

_KINDS = {"bookTicker": BOOK_TICKER, "depth": DIFF, "depth@100ms": DIFF, "depth@1000ms": DIFF, "trade": TRADE}


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

    def parse(self, data: bytes):
        doc = orjson.loads(data)
        if type(doc) is not dict:
            return None
        route = self.routes.get(doc.get("stream"))
        if route is None:
            return None
        return route[0], route[1], doc["data"]
