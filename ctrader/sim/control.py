"""Driving a running simulator from tests: faults, the market clock, dislocations, inspection.

``ControlOps`` holds the operations; they run on the simulator's event loop. Two ways in:

* ``SimControl`` -- a thread-safe facade for tests and tools in the same process
  (``sim.control.drop_diffs("BTCUSDT")``); every call runs on the simulator's loop and returns
  its result;
* ``POST /sim/v1/control`` with ``{"op": "drop_diffs", "args": {"symbol": "BTCUSDT"}}`` -- the
  same operations over HTTP, accepted from loopback peers only; ``GET /sim/v1/status`` reports
  counters.

Operations (all keyword arguments optional unless noted):

  market:  pause(), resume(), step(n=1), dislocate(symbol, bps, duration_ms), fair_prices(),
           book(symbol, limit=None), record_books(symbols), recorded_books(symbol),
           record_tops(symbols, depth=10), recorded_tops(symbol), status(),
           set_balance(account, asset, amount)
  streams: drop_diffs(symbol="*", count=1), reorder_diffs(symbol="*", count=1),
           duplicate_messages(stream="*", count=1), stall_streams(seconds, drop=True, streams=None),
           close_stream_connections(abort=False, code=1000, reason=""),
           server_shutdown(grace_s=1.0, only_notified=False)
  orders:  delay_orders(ms, count=1), timeout_orders(count=1, after_ms=0),
           fail_requests(count=1, status=503, code=-1008, msg=..., match="", execute=False),
           reject_orders(count=1, msg="This action is disabled on this account.")
  other:   skew_clock(ms), set_rates(diff_drop_rate=None, error_rate=None),
           close_api_connections(abort=False), clear_faults()
  race:    listen(tag, port=0), connections(), accounts(),
           race_start(count, seed, interval_ms=2500, duration_ms=1000, bps=60.0, lead_ms=3000),
           race_pending(), race_report()   (see ctrader.sim.race)
"""
from __future__ import annotations

import asyncio
import inspect
import ipaddress
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ctrader.sim.faults import ANY, RequestFailure
from ctrader.venue.decimals import format_units, parse_units

if TYPE_CHECKING:
    from ctrader.sim.server import SimServer

Levels = tuple[tuple[int, int], ...]


class ControlOps:
    def __init__(self, server: "SimServer") -> None:
        self.server = server
        self._recording: dict[str, dict[int, tuple[Levels, Levels]]] = {}
        server.hub.diff_observers.append(self._on_diff)

    # --- market -------------------------------------------------------------------------------

    def pause(self) -> int:
        """Stop the market clock (streams flushed); returns the market time in ms."""
        self.server.pause()
        return self.server.clock.market_ms()

    def resume(self) -> None:
        self.server.resume()

    def step(self, n: int = 1) -> int:
        """Advance a paused market by ``n`` model steps; returns the market time."""
        for _ in range(n):
            self.server.advance()
        self.server.hub.flush()
        return self.server.clock.market_ms()

    def dislocate(self, symbol: str, bps: float, duration_ms: int) -> dict:
        d = self.server.model.dislocate(symbol, bps, duration_ms)
        return {"symbol": d.symbol, "until_market_ms": self.server.clock.epoch_ms + d.until_ms}

    def fair_prices(self) -> dict[str, float]:
        return self.server.model.fair_prices()

    def book(self, symbol: str, limit: int | None = None) -> tuple[int, list, list]:
        """(update_id, bids best first, asks best first) in 1e-8 units: the simulator's own book."""
        return self.server.engine.books[symbol].snapshot(limit)

    def record_books(self, symbols: list[str]) -> None:
        """From now on keep a copy of the full book of ``symbols`` at every emitted depth diff."""
        for s in symbols:
            self._recording.setdefault(s, {})

    def recorded_books(self, symbol: str) -> dict[int, tuple[Levels, Levels]]:
        """{diff final update id u: (bids, asks)} recorded for ``symbol``."""
        return dict(self._recording.get(symbol, {}))

    def record_tops(self, symbols: list[str], depth: int = 10) -> None:
        """From now on keep ``top_hash(bids, asks)`` of the top ``depth`` levels after EVERY book update.

        A hash, not the levels, so that hundreds of thousands of updates fit in memory: a client
        checks that the book it holds at update id ``u`` is the simulator's (``top_hash``).
        """
        if not hasattr(self, "_tops"):
            self._tops = _TopRecorder(depth)
            self.server.engine.market_sinks.append(self._tops)
        for s in symbols:
            self._tops.by_symbol.setdefault(s, {})

    def recorded_tops(self, symbol: str) -> dict[int, tuple[int, int]]:
        """{update id: (top_hash of ``depth`` levels, top_hash of the best level)} since ``record_tops``."""
        tops = getattr(self, "_tops", None)
        return dict(tops.by_symbol.get(symbol, {})) if tops else {}

    def _on_diff(self, symbol: str, last_id: int) -> None:
        rec = self._recording.get(symbol)
        if rec is not None:
            book = self.server.engine.books[symbol]
            rec[last_id] = (tuple(book.bids.top(len(book.bids))), tuple(book.asks.top(len(book.asks))))

    def set_balance(self, account: str, asset: str, amount: str) -> None:
        acct = self.server.accounts.accounts[account]
        acct.balance(asset).free = parse_units(amount)

    def status(self) -> dict:
        s = self.server
        return {"market_ms": s.clock.market_ms(), "server_ms": s.clock.server_ms(), "paused": s.paused,
                "model_events": s.model.events, "model_trades": s.model.trade_events,
                "dislocations": s.model.dislocations_opened, "stream_connections": len(s.hub.connections),
                "stream_messages_sent": s.hub.messages_sent, "api_sessions": len(s.ws_api.sessions),
                "rest_requests": s.rest.requests, "symbols": len(s.universe.symbols)}

    # --- race -------------------------------------------------------------------------------

    async def listen(self, tag: str, port: int = 0) -> int:
        """Serve the venue on another port whose connections carry ``tag``; returns the port."""
        return await self.server.listen(tag, port)

    def connections(self) -> dict:
        """Open connections by listener tag: market streams (with their stream count) and WS API
        sessions (with their user-data subscriptions)."""
        s = self.server
        return {"streams": [{"tag": c.tag, "streams": len(c.streams)} for c in s.hub.connections],
                "api": [{"tag": c.tag, "subscriptions": len(c.subscriptions)} for c in s.ws_api.sessions],
                "listeners": dict(s.listeners)}

    def accounts(self) -> dict:
        """Every account's balances (free + locked, decimal strings) and the assets' fair USDT values."""
        return {"balances": {name: {a: format_units(b.free + b.locked) for a, b in acct.balances.items()}
                             for name, acct in self.server.accounts.accounts.items()},
                "asset_values_usdt": self.server.model.asset_values()}

    def race_start(self, count: int, seed: int, interval_ms: int = 2500, duration_ms: int = 1000,
                   bps: float = 60.0, lead_ms: int = 3000) -> dict:
        """Replace random dislocations by a seeded schedule; start recording stamps and orders."""
        schedule = self.server.race.start(count, seed, interval_ms, duration_ms, bps, lead_ms)
        s = self.server.stamp_support
        return {"schedule": schedule, "kernel_rx": s.rx, "kernel_tx": s.tx}

    def race_pending(self) -> int:
        """Dislocations of the race still to open or to close (0: the race is over)."""
        return self.server.race.pending()

    def race_report(self) -> dict:
        """Stamps, orders, attribution, accounts of the race so far (``pending`` > 0: not over)."""
        return self.server.race.report()

    # --- streams ------------------------------------------------------------------------------

    def drop_diffs(self, symbol: str = ANY, count: int = 1) -> None:
        f = self.server.faults.drop_diffs
        f[symbol] = f.get(symbol, 0) + count

    def reorder_diffs(self, symbol: str = ANY, count: int = 1) -> None:
        f = self.server.faults.reorder_diffs
        f[symbol] = f.get(symbol, 0) + count

    def duplicate_messages(self, stream: str = ANY, count: int = 1) -> None:
        f = self.server.faults.duplicates
        f[stream] = f.get(stream, 0) + count

    def stall_streams(self, seconds: float, drop: bool = True, streams: list[str] | None = None) -> None:
        """No stream output for ``seconds``; what was due is dropped (``drop``) or sent late."""
        f = self.server.faults
        f.stall_until = time.monotonic() + seconds
        f.stall_drop = drop
        f.stall_streams = frozenset(streams) if streams else None

    async def close_stream_connections(self, abort: bool = False, code: int = 1000, reason: str = "") -> int:
        return await self.server.hub.close_all(code, reason, abort)

    async def close_api_connections(self, abort: bool = False, code: int = 1000, reason: str = "") -> int:
        return await self.server.ws_api.close_all(code, reason, abort)

    async def server_shutdown(self, grace_s: float = 1.0, only_notified: bool = False) -> int:
        """Send ``serverShutdown`` on every WebSocket, then close them all after ``grace_s``.

        ``only_notified``: close only the sockets that got the notice, as if the ones opened
        during the grace period had reached another server (Binance's case).
        """
        self.server.hub.flush()
        notified = list(self.server.hub.connections) + list(self.server.ws_api.sessions)
        self.server.hub.broadcast_shutdown()
        self.server.ws_api.broadcast_shutdown()
        await asyncio.sleep(grace_s)
        if only_notified:
            self.server.hub.flush()
            await asyncio.gather(*(c.close(1001, "server shutdown") for c in notified), return_exceptions=True)
            return len(notified)
        return (await self.server.hub.close_all(1001, "server shutdown")
                + await self.server.ws_api.close_all(1001, "server shutdown"))

    # --- requests -----------------------------------------------------------------------------

    def delay_orders(self, ms: int, count: int = 1) -> None:
        f = self.server.faults
        f.delay_ms = ms
        f.delayed_orders = count

    def timeout_orders(self, count: int = 1, after_ms: int = 0) -> None:
        """The next ``count`` orders execute, then get -1007 (execution status unknown)."""
        f = self.server.faults
        f.timeouts = count
        f.timeout_delay_ms = after_ms

    def fail_requests(self, count: int = 1, status: int = 503, code: int = -1008,
                      msg: str = "Server is currently overloaded with other requests. Please try again in a few "
                                 "minutes.", match: str = "", execute: bool = False) -> None:
        self.server.faults.failures.append(RequestFailure(count, status, code, msg, match, execute))

    def reject_orders(self, count: int = 1, msg: str = "This action is disabled on this account.") -> None:
        self.server.faults.rejects.append([count, msg])

    def allow_cancel_replace(self, symbol: str, allowed: bool = True) -> None:
        """exchangeInfo ``cancelReplaceAllowed`` for ``symbol`` (on by default for every symbol)."""
        self.server.universe.allow_cancel_replace(symbol, allowed)

    def skew_clock(self, ms: int) -> None:
        self.server.clock.skew_ms = ms

    def set_rates(self, diff_drop_rate: float | None = None, error_rate: float | None = None) -> None:
        f = self.server.faults
        if diff_drop_rate is not None:
            f.diff_drop_rate = diff_drop_rate
        if error_rate is not None:
            f.error_rate = error_rate

    def clear_faults(self) -> None:
        self.server.faults.clear()
        self.server.clock.skew_ms = 0


def top_hash(bids, asks) -> int:
    """Hash of top levels given best first as (price, qty) pairs in 1e-8 units."""
    return hash((tuple((int(p), int(q)) for p, q in bids), tuple((int(p), int(q)) for p, q in asks)))


class _TopRecorder:
    """A market sink that hashes the top levels of chosen books after each update."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.by_symbol: dict[str, dict[int, int]] = {}

    def book_update(self, book, bids, asks) -> None:
        rec = self.by_symbol.get(book.symbol)
        if rec is not None:
            bids, asks = book.bids.top(self.depth), book.asks.top(self.depth)
            rec[book.update_id] = (top_hash(bids, asks), top_hash(bids[:1], asks[:1]))

    def trade(self, *args) -> None:
        pass


OPERATIONS = tuple(name for name, fn in vars(ControlOps).items()
                   if callable(fn) and not name.startswith("_"))


class SimControl:
    """Thread-safe access to ``ControlOps`` of a simulator running on another thread's loop."""

    def __init__(self, ops: ControlOps, loop: asyncio.AbstractEventLoop, timeout_s: float = 30.0) -> None:
        self._ops = ops
        self._loop = loop
        self._timeout_s = timeout_s

    def __getattr__(self, name: str):
        if name not in OPERATIONS:
            raise AttributeError(name)
        fn = getattr(self._ops, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            async def run() -> Any:
                result = fn(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result
            return asyncio.run_coroutine_threadsafe(run(), self._loop).result(self._timeout_s)
        call.__name__ = name
        call.__doc__ = fn.__doc__
        return call

    def __dir__(self) -> list[str]:
        return sorted(OPERATIONS)


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def control_routes(ops: ControlOps) -> list[web.RouteDef]:
    async def control(request: web.Request) -> web.Response:
        if not _loopback(request):
            return web.json_response({"error": "loopback only"}, status=403)
        try:
            doc = orjson.loads(await request.read())
            op, args = doc["op"], doc.get("args", {})
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"op": NAME, "args": {...}}'}, status=400)
        if op not in OPERATIONS:
            return web.json_response({"error": f"unknown op {op!r}", "ops": sorted(OPERATIONS)}, status=404)
        try:
            result = getattr(ops, op)(**args)
            if inspect.isawaitable(result):
                result = await result
        except (TypeError, KeyError, ValueError) as exc:
            return web.json_response({"error": f"{op}: {exc}"}, status=400)
        return web.Response(body=orjson.dumps({"result": result}, option=orjson.OPT_NON_STR_KEYS),
                            content_type="application/json")

    async def status(request: web.Request) -> web.Response:
        if not _loopback(request):
            return web.json_response({"error": "loopback only"}, status=403)
        return web.json_response(ops.status())

    return [web.post("/sim/v1/control", control), web.get("/sim/v1/status", status)]
