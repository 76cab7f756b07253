"""The floor: the least a client can do between a dislocated price and an order reaching the venue.

One combined ``bookTicker`` stream for every symbol and one WS API connection, both picows (the
fastest WebSocket client Python has here). For every symbol a signed ``order.place`` frame is
built ahead of time (and re-signed every second, so that its timestamp stays inside
``recvWindow``). When a symbol's mid price jumps by more than ``--threshold-bps`` from where it
was, the prepared frame for that symbol is sent, nothing else: no book, no strategy, no sizing.
What remains is loopback, one JSON parse and the simulator's own handling, the lower bound any
contender's reaction is measured against.

The order is a small IOC buy 2% under the bid: valid (filters pass, signature checks) and never
filled, so the floor's account does not move. The return of a dislocation (the mid jumping
back) re-arms the symbol without firing.

    python -m ctrader.benchmarks.race.floor --rest URL --ws URL --key K --secret S --threshold-bps 30
"""
from __future__ import annotations

import asyncio
import time
from decimal import ROUND_CEILING, Decimal

import orjson
from picows import WSListener, WSMsgType, ws_connect

from ctrader.benchmarks.race import client
from ctrader.benchmarks.race.market import SymbolRules, load_rules

RESIGN_S = 1.0


class Floor:
    def __init__(self, rules: dict[str, SymbolRules], key: str, secret: str, threshold_bps: float) -> None:
        self.rules = rules
        self.key, self.secret = key, secret
        self.threshold = threshold_bps * 1e-4
        self.reference: dict[str, float] = {}     # mid before a jump
        self.dislocated: dict[str, bool] = {}
        self.bids: dict[str, float] = {}
        self.prepared: dict[str, bytes] = {}
        self.api = None                           # picows transport of the WS API
        self.seq = 0
        self.sent = self.answers_ok = self.answers_error = 0
        self.errors: list[str] = []

    def prepare(self, symbol: str) -> None:
        bid = self.bids.get(symbol)
        if not bid:
            return
        r = self.rules[symbol]
        price = Decimal(r.price_text(bid * 0.98))
        if price <= 0:
            return
        qty = max(r.min_qty, (r.min_notional * Decimal("1.5") / price / r.step).to_integral_value(ROUND_CEILING) * r.step)
        self.seq += 1
        params = client.signed_params({
            "symbol": symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "IOC", "price": str(price),
            "quantity": str(qty), "newClientOrderId": f"floor{self.seq}", "newOrderRespType": "ACK",
            "timestamp": int(time.time() * 1000)}, self.key, self.secret)
        self.prepared[symbol] = orjson.dumps({"id": self.seq, "method": "order.place", "params": params})

    def on_ticker(self, data: dict) -> None:
        symbol = data["s"]
        bid, ask = float(data["b"]), float(data["a"])
        mid = (bid + ask) * 0.5
        ref = self.reference.get(symbol)
        self.bids[symbol] = bid
        if ref is None:
            self.reference[symbol] = mid
            return
        if self.dislocated.get(symbol):
            if abs(mid / ref - 1.0) < self.threshold * 0.5:      # back: re-arm
                self.dislocated[symbol] = False
                self.reference[symbol] = mid
            return
        if abs(mid / ref - 1.0) > self.threshold:
            frame = self.prepared.pop(symbol, None)
            if frame is not None and self.api is not None:
                self.api.send(WSMsgType.TEXT, frame)
                self.sent += 1
            self.dislocated[symbol] = True
            asyncio.get_running_loop().call_soon(self.prepare, symbol)
        else:
            self.reference[symbol] = mid

    def on_answer(self, doc: dict) -> None:
        if doc.get("status") == 200:
            self.answers_ok += 1
        else:
            self.answers_error += 1
            if len(self.errors) < 5:
                self.errors.append(str(doc.get("error")))


class _StreamListener(WSListener):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.floor.on_ticker(orjson.loads(frame.get_payload_as_bytes())["data"])


class _ApiListener(WSListener):
    def __init__(self, floor: Floor) -> None:
        self.floor = floor

    def on_ws_frame(self, transport, frame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.floor.on_answer(orjson.loads(frame.get_payload_as_bytes()))


async def main(stop: asyncio.Event, args) -> dict:
    rules = load_rules(args.rest)
    floor = Floor(rules, args.key, args.secret, args.threshold_bps)
    api, _ = await ws_connect(lambda: _ApiListener(floor), f"{args.ws}/ws-api/v3?returnRateLimits=false")
    floor.api = api
    names = "/".join(f"{s.lower()}@bookTicker" for s in rules)
    stream, _ = await ws_connect(lambda: _StreamListener(floor), f"{args.ws}/stream?streams={names}")
    while not stop.is_set():
        for symbol in rules:
            floor.prepare(symbol)
        try:
            await asyncio.wait_for(stop.wait(), RESIGN_S)
        except TimeoutError:
            pass
    stream.disconnect()
    api.disconnect()
    return {"orders_sent": floor.sent, "answers_ok": floor.answers_ok, "answers_error": floor.answers_error,
            "errors": floor.errors}


if __name__ == "__main__":
    _args = client.parse_args(__doc__.splitlines()[0],
                              threshold_bps=(float, 30.0, "a mid jump larger than this fires the prepared order"))
    client.run(lambda stop: main(stop, _args))
