"""Market-stream payloads in Binance's exact JSON shapes, built as bytes on the hot path.

String formatting is used instead of building dicts for orjson: the shapes are fixed, and this
is the simulator's most frequent operation (tens of thousands of messages a second). Prices and
quantities are 1e-8 units printed with 8 decimals, as Binance prints them.
"""
from __future__ import annotations

from ctrader.venue.decimals import ONE


def units(value: int) -> str:
    whole, frac = divmod(value, ONE)
    return f"{whole}.{frac:08d}"


def levels(pairs: list[tuple[int, int]]) -> str:
    return ",".join(f'["{units(p)}","{units(q)}"]' for p, q in pairs)


def book_ticker(update_id: int, symbol: str, bid: int, bid_qty: int, ask: int, ask_qty: int) -> bytes:
    return (f'{{"u":{update_id},"s":"{symbol}","b":"{units(bid)}","B":"{units(bid_qty)}",'
            f'"a":"{units(ask)}","A":"{units(ask_qty)}"}}').encode()


def depth_update(event_time: int, symbol: str, first_id: int, last_id: int, bids: list[tuple[int, int]],
                 asks: list[tuple[int, int]]) -> bytes:
    return (f'{{"e":"depthUpdate","E":{event_time},"s":"{symbol}","U":{first_id},"u":{last_id},'
            f'"b":[{levels(bids)}],"a":[{levels(asks)}]}}').encode()


def partial_depth(last_update_id: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> bytes:
    return f'{{"lastUpdateId":{last_update_id},"bids":[{levels(bids)}],"asks":[{levels(asks)}]}}'.encode()


def trade(event_time: int, symbol: str, trade_id: int, price: int, qty: int, trade_time: int,
          buyer_is_maker: bool) -> bytes:
    m = "true" if buyer_is_maker else "false"
    return (f'{{"e":"trade","E":{event_time},"s":"{symbol}","t":{trade_id},"p":"{units(price)}",'
            f'"q":"{units(qty)}","T":{trade_time},"m":{m},"M":true}}').encode()


def server_shutdown(event_time: int) -> bytes:
    return f'{{"e":"serverShutdown","E":{event_time}}}'.encode()


def combined(stream: str, payload: bytes) -> bytes:
    """The combined-stream wrapper ``{"stream":...,"data":...}``."""
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"
