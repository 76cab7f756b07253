"""The ccxt.pro contender: the reference bot's logic on ccxt.pro's Binance client, unchanged.

``ccxt.pro.binance`` with its URLs pointed at the simulator: ``watch_bids_asks`` (the
``bookTicker`` streams, which ccxt.pro opens at ``/ws/<n>`` and SUBSCRIBEs) feeds the same
cycle evaluation and sizing as ``refbot``; the three legs go out as ``create_order_ws`` (WS API
``order.place``, HMAC-signed by ccxt) at once, as tasks, so the stream keeps being read while
they are answered.

``watch_bids_asks`` resolves with the tickers of the one message that woke it: the others of the
same read (the venue batches frames) only reach ccxt's cache, ``ex.bidsasks``. So after each
wake-up the bot looks at every cached ticker that changed, as a careful ccxt user does.

    python -m ctrader.benchmarks.race.ccxt_bot --rest URL --ws URL --key K --secret S
"""
from __future__ import annotations

import asyncio

from ctrader.benchmarks.race import client
from ctrader.benchmarks.race.market import load_rules
from ctrader.benchmarks.race.refbot import RefBot


def exchange(rest: str, ws: str, key: str, secret: str):
    """A ``ccxt.pro.binance`` that talks to the simulator at ``rest`` / ``ws`` (spot only)."""
    import ccxt.pro

    ex = ccxt.pro.binance({"apiKey": key, "secret": secret, "enableRateLimit": False,
                           "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                                       "fetchMargins": False, "defaultType": "spot"}})
    for api in ("public", "private", "v1"):
        ex.urls["api"][api] = f"{rest}/api/v3"
    ex.urls["api"]["ws"]["spot"] = f"{ws}/ws"
    ex.urls["api"]["ws"]["ws-api"]["spot"] = f"{ws}/ws-api/v3"
    return ex


class CcxtBot(RefBot):
    def __init__(self, ex, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ex = ex
        self.tasks: set[asyncio.Task] = set()

    async def send(self, orders: list[dict]) -> None:
        for o in orders:
            unified = self.ex.markets_by_id[o["symbol"]][0]["symbol"]
            task = asyncio.create_task(self.ex.create_order_ws(
                unified, "limit", o["side"].lower(), float(o["quantity"]), float(o["price"]),
                {"timeInForce": "IOC"}))
            self.tasks.add(task)
            task.add_done_callback(self._answered)
        self.sent += len(orders)

    def _answered(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.answers_error += 1
            if len(self.errors) < 5:
                self.errors.append(repr(exc)[:200])
        else:
            self.answers_ok += 1
            self.fills += len(task.result().get("trades") or ())


async def main(stop: asyncio.Event, args) -> dict:
    ex = exchange(args.rest, args.ws, args.key, args.secret)
    try:
        await ex.load_markets()
        bot = CcxtBot(ex, load_rules(args.rest), args.key, args.secret, args.fee, args.min_edge_bps, args.notional,
                      args.cooldown_ms)
        symbols = [ex.markets_by_id[s][0]["symbol"] for s in bot.symbols()]

        async def watch() -> None:
            seen: dict[str, object] = {}
            while True:
                await ex.watch_bids_asks(symbols)
                for symbol, ticker in ex.bidsasks.items():
                    info = ticker["info"]
                    if seen.get(symbol) is not info:
                        seen[symbol] = info
                        await bot.on_ticker(info)

        task = asyncio.create_task(watch())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()
    finally:
        await ex.close()
    return {"signals": bot.signals, "orders_sent": bot.sent, "answers_ok": bot.answers_ok,
            "answers_error": bot.answers_error, "fills": bot.fills, "errors": bot.errors}


if __name__ == "__main__":
    _args = client.parse_args(
        __doc__.splitlines()[0],
        min_edge_bps=(float, 1.0, "the cycle's return after fees must clear this"),
        notional=(float, 500.0, "USDT value of a cycle's first leg (less when the touch holds less)"),
        cooldown_ms=(float, 1000.0, "a cycle that fired is left alone this long"))
    client.run(lambda stop: main(stop, _args))
