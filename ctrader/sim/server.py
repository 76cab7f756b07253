"""The simulator server: one aiohttp application on one loopback port.

    REST        http://HOST:PORT/api/v3/...
    streams     ws://HOST:PORT/ws/<stream>   ws://HOST:PORT/stream?streams=a/b
    WS API      ws://HOST:PORT/ws-api/v3
    control     http://HOST:PORT/sim/v1/control  (loopback peers only)

More listeners serve the same venue on other ports (``listen(tag)``): the race benchmark gives
each contender its own, so that the simulator can tell whose socket a frame went to.
Connections are ``kstamps.StampingSocket``s: kernel RX stamps on every read, a kernel TX
stamp on the writes the race marks (user-space stamps where the kernel gives none).

``SimServer`` wires the parts together and runs the market loop: at ``speed`` > 0 the model
steps when the market clock is due (``speed`` market seconds per wall second) and a client more
than ``max_send_buffer_kb`` behind is dropped, as a real venue drops slow consumers; at speed 0
the model runs as fast as the slowest stream client reads (it waits while any connection has
more than ``HIGH_WATER`` bytes unsent), for stress tests. Either way the content of the market
stream depends on the seed only.

``SimThread`` runs a server on its own thread and event loop (tests, tools):

    with SimThread(cfg).start() as sim:
        sim.rest_url, sim.ws_url, sim.ws_api_url, sim.control.drop_diffs("BTCUSDT")
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time

from aiohttp import web

from ctrader.config.schema import SimConfig
from ctrader.core.net import is_loopback
from ctrader.sim import kstamps
from ctrader.sim.accounts import AccountRegistry
from ctrader.sim.api import SimApi
from ctrader.sim.auth import Authenticator
from ctrader.sim.clock import SimClock
from ctrader.sim.control import ControlOps, SimControl, control_routes
from ctrader.sim.faults import Faults
from ctrader.sim.market import MarketModel
from ctrader.sim.matching import MatchingEngine
from ctrader.sim.race import RaceTracker
from ctrader.sim.ratelimit import RateLimiter
from ctrader.sim.rest import RestApi
from ctrader.sim.universe import build_universe
from ctrader.sim.ws_api import WsApi
from ctrader.sim.ws_streams import StreamHub

log = logging.getLogger(__name__)

HIGH_WATER = 4 << 20          # speed 0: the model waits while a client has this much unsent
FAST_BATCH_STEPS = 10         # speed 0: model steps between flushes
MAX_CATCH_UP_STEPS = 500      # speed > 0: steps run at most per wake-up before yielding


class SimServer:
    def __init__(self, cfg: SimConfig) -> None:
        if not is_loopback(cfg.host):
            raise ValueError(f"sim.host = {cfg.host!r}: the simulator serves loopback addresses only "
                             "(its demo keys are public)")
        self.cfg = cfg
        self.universe = build_universe(cfg)
        self.clock = SimClock(cfg.market.epoch_ms, cfg.faults.clock_skew_ms)
        self.accounts = AccountRegistry(cfg.accounts)
        self.engine = MatchingEngine(self.universe, self.accounts, self.clock, cfg.seed)
        self.model = MarketModel(self.universe, self.engine, self.clock, cfg.market, cfg.seed)
        self.faults = Faults(cfg.faults, cfg.seed)
        self.limiter = RateLimiter(cfg.limits, self.clock)
        self.engine.first_fill_hooks.append(self.limiter.order_filled)
        self.hub = StreamHub(self.engine.books, self.clock, cfg.limits, self.faults, realtime=cfg.market.speed > 0)
        self.engine.market_sinks.append(self.hub)
        self.api = SimApi(self.universe, self.engine, self.accounts, self.clock, self.limiter, self.faults)
        self.auth = Authenticator(self.accounts, self.clock)
        self.rest = RestApi(self.api, self.auth, self.limiter, self.faults)
        self.ws_api = WsApi(self.api, self.auth, self.limiter, self.faults, self.clock)
        self.ws_api.ping_interval_s = cfg.limits.ping_interval_s
        self.ws_api.pong_timeout_s = cfg.limits.pong_timeout_s
        self.engine.user_sinks.append(self.ws_api)
        self.stamp_support = kstamps.probe()
        self.race = RaceTracker(self)
        self.model.dislocation_listeners.append(self.race)
        self.ws_api.order_observers.append(self.race.order_arrived)
        self.rest.order_observers.append(self.race.order_arrived)
        self.ops = ControlOps(self)
        self.paused = False
        self.port = cfg.port
        self.listeners: dict[str, int] = {}          # tag -> port
        self.loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._market_task: asyncio.Task | None = None
        self._resumed: asyncio.Event | None = None

    # --- addresses ----------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://{self.cfg.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}"

    @property
    def ws_api_url(self) -> str:
        return f"ws://{self.cfg.host}:{self.port}/ws-api/v3"

    # --- lifecycle ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.add_routes(self.rest.routes())
        app.add_routes([web.get("/ws", self.hub.handle), web.get("/ws/{streams:.*}", self.hub.handle),
                        web.get("/stream", self.hub.handle), web.get("/ws-api/v3", self.ws_api.handle)])
        app.add_routes(control_routes(self.ops))
        return app

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        self.port = await self.listen("main", self.cfg.port)
        self._market_task = self.loop.create_task(self._market_loop())
        self._log_banner()

    async def listen(self, tag: str, port: int = 0) -> int:
        """Serve the venue on one more port (0: a free one) whose connections carry ``tag``."""
        if tag in self.listeners:
            raise ValueError(f"a listener tagged {tag!r} already serves port {self.listeners[tag]}")
        sock = kstamps.listen(self.cfg.host, port, tag, self.stamp_support)
        await web.SockSite(self._runner, sock).start()
        self.listeners[tag] = sock.getsockname()[1]
        return self.listeners[tag]

    async def stop(self) -> None:
        if self._market_task is not None:
            self._market_task.cancel()
            try:
                await self._market_task
            except asyncio.CancelledError:
                pass
        await self.hub.close_all(1001, "simulator stopping", abort=True)
        await self.ws_api.close_all(1001, "simulator stopping", abort=True)
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("simulator stopped: %d market messages sent, %d REST requests",
                 self.hub.messages_sent, self.rest.requests)

    def _log_banner(self) -> None:
        m = self.cfg.market
        log.info("Binance Spot simulator on %s:%d  REST %s  streams %s/ws/<stream> | %s/stream?streams=...  "
                 "WS API %s", self.cfg.host, self.port, self.rest_url, self.ws_url, self.ws_url, self.ws_api_url)
        log.info("market: %d symbols, %d assets, %d triangles; seed %d, speed %s, step %d ms, "
                 "dislocations %.1f/min of %.0f bps for %d ms; cross-rate residuals %.1f bps stdev, "
                 "half-life %g s", len(self.universe.symbols),
                 len(self.universe.assets), len(self.model.triangles), self.cfg.seed,
                 m.speed if m.speed > 0 else "max", m.step_ms, m.dislocations_per_min, m.dislocation_bps,
                 m.dislocation_ms, m.residual_bps, m.residual_half_life_s)
        for acc in self.cfg.accounts:
            keys = [k for k in (acc.api_key and f"HMAC {acc.api_key}",
                                acc.ed25519_api_key and f"Ed25519 {acc.ed25519_api_key}") if k]
            log.info("account %s: %s", acc.name, ", ".join(keys) or "no API keys")
        f = self.cfg.faults
        if f.clock_skew_ms or f.order_delay_ms or f.diff_drop_rate or f.error_rate:
            log.warning("faults active: clock skew %d ms, order delay %d ms, diff drop rate %.3f, error rate %.3f",
                        f.clock_skew_ms, f.order_delay_ms, f.diff_drop_rate, f.error_rate)

    # --- the market clock ---------------------------------------------------------------------

    def advance(self) -> None:
        """One model step, then the depth windows that step closed."""
        self.model.step()
        self.race.after_step()
        self.hub.on_market_time(self.clock.market_ms())

    def pause(self) -> None:
        self.paused = True
        if self._resumed is not None:
            self._resumed.clear()
        self.hub.flush()

    def resume(self) -> None:
        self.paused = False
        if self._resumed is not None:
            self._resumed.set()

    async def _market_loop(self) -> None:
        loop = asyncio.get_running_loop()
        speed, step_ms = self.cfg.market.speed, self.cfg.market.step_ms
        anchor_wall, anchor_market = loop.time(), self.clock.elapsed_ms
        last_lag_warning = 0.0
        while True:
            if self.paused:
                await self._resumed.wait()
                anchor_wall, anchor_market = loop.time(), self.clock.elapsed_ms
                continue
            if speed > 0:
                due = anchor_market + (loop.time() - anchor_wall) * 1000.0 * speed
                steps = 0
                while self.clock.elapsed_ms + step_ms <= due and steps < MAX_CATCH_UP_STEPS and not self.paused:
                    self.advance()
                    steps += 1
                self.hub.flush()
                lag_ms = due - self.clock.elapsed_ms
                if lag_ms > 1000.0 * speed:     # more than a wall second behind: stop trying to catch up
                    if time.monotonic() - last_lag_warning > 10:
                        log.warning("market model is %.0f ms behind the wall clock; slowing the market clock",
                                    lag_ms / speed)
                        last_lag_warning = time.monotonic()
                    anchor_wall, anchor_market = loop.time(), self.clock.elapsed_ms
                next_wall = anchor_wall + (self.clock.elapsed_ms + step_ms - anchor_market) / (1000.0 * speed)
                await asyncio.sleep(max(0.0, next_wall - loop.time()))
            else:
                for _ in range(FAST_BATCH_STEPS):
                    self.advance()
                self.hub.flush()
                while self.hub.max_buffered() > HIGH_WATER and not self.paused:
                    await asyncio.sleep(0.0005)
                await asyncio.sleep(0)


class SimThread:
    """A ``SimServer`` on a background thread with its own event loop."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.server: SimServer | None = None
        self.control: SimControl | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self, timeout_s: float = 30.0) -> "SimThread":
        self._thread = threading.Thread(target=self._run, name="ctrader-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the simulator did not start")
        if self._error is not None:
            raise RuntimeError("the simulator failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.server = SimServer(self.cfg)
            await self.server.start()
            self.control = SimControl(self.server.ops, asyncio.get_running_loop())
        except BaseException as exc:   # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout_s)

    def __enter__(self) -> "SimThread":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def rest_url(self) -> str:
        return self.server.rest_url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def ws_api_url(self) -> str:
        return self.server.ws_api_url
