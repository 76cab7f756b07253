"""The reference bot: triangular arbitrage the way a competent developer writes it in plain Python.

asyncio and aiohttp, one combined ``bookTicker`` stream for every symbol of a triangle, orjson,
a triangle list computed once at start (both directions of every triangle, indexed by symbol).
On each top-of-book change it re-evaluates the cycles through that symbol: the product of the
three legs' touch prices after the taker fee on each leg. When that clears ``--min-edge-bps``
it sends three HMAC-signed LIMIT IOC orders at the touch prices over the WS API at once (no
waiting for the first leg), sized to ``--notional`` USDT or the smallest top-of-book quantity on
the path, whichever is less, and leaves that cycle alone for ``--cooldown-ms``.

    python -m ctrader.benchmarks.race.refbot --rest URL --ws URL --key K --secret S
"""
from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import aiohttp
import orjson

from ctrader.benchmarks.race import client
from ctrader.benchmarks.race.market import Cycle, SymbolRules, load_rules, triangle_cycles


class RefBot:
    def __init__(self, rules: dict[str, SymbolRules], key: str, secret: str, fee: float, min_edge_bps: float,
                 notional_usdt: float, cooldown_ms: float) -> None:
        self.rules = rules
        self.key, self.secret = key, secret
        self.keep = 1.0 - fee
        self.min_return = 1.0 + min_edge_bps * 1e-4
        self.notional = notional_usdt
        self.cooldown_s = cooldown_ms / 1000.0
        self.cycles = triangle_cycles(rules)
        self.by_symbol: dict[str, list[int]] = {}
        for i, cyc in enumerate(self.cycles):
            for leg in cyc.legs:
                self.by_symbol.setdefault(leg.symbol, []).append(i)
        self.tops: dict[str, tuple[float, float, float, float]] = {}    # bid, bid qty, ask, ask qty
        self.quiet_until = [0.0] * len(self.cycles)
        self.api: aiohttp.ClientWebSocketResponse | None = None
        self.seq = 0
        self.signals = self.sent = self.answers_ok = self.answers_error = self.fills = 0
        self.errors: list[str] = []

    def symbols(self) -> list[str]:
        return sorted(self.by_symbol)

    def usdt_value(self, asset: str) -> float:
        if asset in ("USDT", "FDUSD"):
            return 1.0
        top = self.tops.get(asset + "USDT")
        return (top[0] + top[2]) * 0.5 if top else 0.0

    async def on_ticker(self, data: dict) -> None:
        symbol = data["s"]
        self.tops[symbol] = (float(data["b"]), float(data["B"]), float(data["a"]), float(data["A"]))
        now = time.monotonic()
        for i in self.by_symbol.get(symbol, ()):
            if now < self.quiet_until[i]:
                continue
            cyc = self.cycles[i]
            if self.cycle_return(cyc) > self.min_return:
                orders = self.size(cyc)
                if orders:
                    self.quiet_until[i] = now + self.cooldown_s
                    self.signals += 1
                    await self.send(orders)

    def cycle_return(self, cyc: Cycle) -> float:
        amount = 1.0
        for leg in cyc.legs:
            top = self.tops.get(leg.symbol)
            if top is None or top[0] <= 0 or top[2] <= 0:
                return 0.0
            amount = (amount / top[2] if leg.side == "BUY" else amount * top[0]) * self.keep
        return amount

    def size(self, cyc: Cycle) -> list[dict]:
        """Three IOC orders at the touch for ``notional`` USDT (or what the touch holds)."""
        value = self.usdt_value(cyc.start)
        if value <= 0:
            return []
        amount = self.notional / value
        # shrink the start amount so that no leg needs more than its touch quantity
        scale, flow = 1.0, amount
        for leg in cyc.legs:
            bid, bid_qty, ask, ask_qty = self.tops[leg.symbol]
            if leg.side == "BUY":
                base = flow / ask
                scale = min(scale, ask_qty / base)
                flow = base * self.keep
            else:
                scale = min(scale, bid_qty / flow)
                flow = flow * bid * self.keep
        amount *= min(scale, 1.0)
        orders, flow = [], amount
        for leg in cyc.legs:
            r = self.rules[leg.symbol]
            bid, _, ask, _ = self.tops[leg.symbol]
            price = ask if leg.side == "BUY" else bid
            qty = r.qty(flow / price if leg.side == "BUY" else flow)
            if qty < r.min_qty or qty * Decimal(str(price)) < r.min_notional:
                return []
            orders.append({"symbol": leg.symbol, "side": leg.side, "type": "LIMIT", "timeInForce": "IOC",
                           "price": r.price_text(price), "quantity": str(qty)})
            flow = float(qty) * self.keep if leg.side == "BUY" else float(qty) * price * self.keep
        return orders

    async def send(self, orders: list[dict]) -> None:
        timestamp = int(time.time() * 1000)
        frames = []
        for params in orders:
            self.seq += 1
            params = client.signed_params(dict(params, newClientOrderId=f"ref{self.seq}", newOrderRespType="FULL",
                                               timestamp=timestamp), self.key, self.secret)
            frames.append(orjson.dumps({"id": self.seq, "method": "order.place", "params": params}).decode())
        for text in frames:
            await self.api.send_str(text)
        self.sent += len(frames)

    def on_answer(self, doc: dict) -> None:
        if doc.get("status") == 200:
            self.answers_ok += 1
            self.fills += len((doc.get("result") or {}).get("fills") or ())
        else:
            self.answers_error += 1
            if len(self.errors) < 5:
                self.errors.append(str(doc.get("error")))


async def main(stop: asyncio.Event, args) -> dict:
    bot = RefBot(load_rules(args.rest), args.key, args.secret, args.fee, args.min_edge_bps, args.notional,
                 args.cooldown_ms)
    async with aiohttp.ClientSession() as http:
        api = await http.ws_connect(f"{args.ws}/ws-api/v3?returnRateLimits=false", autoping=True)
        bot.api = api
        names = "/".join(f"{s.lower()}@bookTicker" for s in bot.symbols())
        stream = await http.ws_connect(f"{args.ws}/stream?streams={names}", autoping=True, max_msg_size=0)

        async def read_stream() -> None:
            async for msg in stream:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await bot.on_ticker(orjson.loads(msg.data)["data"])

        async def read_answers() -> None:
            async for msg in api:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    bot.on_answer(orjson.loads(msg.data))

        tasks = [asyncio.create_task(read_stream()), asyncio.create_task(read_answers())]
        await stop.wait()
        for task in tasks:
            task.cancel()
        await stream.close()
        await api.close()
    return {"signals": bot.signals, "orders_sent": bot.sent, "answers_ok": bot.answers_ok,
            "answers_error": bot.answers_error, "fills": bot.fills, "errors": bot.errors}


if __name__ == "__main__":
    _args = client.parse_args(
        __doc__.splitlines()[0],
        min_edge_bps=(float, 1.0, "the cycle's return after fees must clear this"),
        notional=(float, 500.0, "USDT value of a cycle's first leg (less when the touch holds less)"),
        cooldown_ms=(float, 1000.0, "a cycle that fired is left alone this long"))
    client.run(lambda stop: main(stop, _args))
