"""``ctrader sim``: the Binance Spot simulator on loopback, until Ctrl-C (a second one stops at once)."""
from __future__ import annotations

import asyncio
import logging
import signal
from typing import Optional

import typer

from ctrader.cli.common import state
from ctrader.config.schema import SimConfig

log = logging.getLogger("ctrader.sim")


STOP_TIMEOUT_S = 10.0


async def serve(cfg: SimConfig) -> int:
    """Run a simulator until SIGINT/SIGTERM, then close every connection and stop; a second
    signal stops at once. Returns the exit code: 0, or 130 after a fast stop."""
    from ctrader.sim.server import SimServer

    server = SimServer(cfg)
    received: list[signal.Signals] = []
    stop, fast = asyncio.Event(), asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:     # asyncio runs this in the loop, not in the handler
        received.append(sig)
        (fast if len(received) > 1 else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, on_signal, sig)
    await server.start()
    try:
        await stop.wait()
        log.info("stopping on %s (again to stop at once)", received[0].name)
        closing = asyncio.create_task(server.stop())
        second = asyncio.create_task(fast.wait())
        await asyncio.wait({closing, second}, timeout=STOP_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        second.cancel()
        if not closing.done():
            closing.cancel()
            log.warning("%s: stopped without closing every connection",
                        f"{received[-1].name} again" if fast.is_set() else f"not closed within {STOP_TIMEOUT_S:g} s")
            return 130 if fast.is_set() else 1
        log.info("simulator stopped")
        return 0
    except BaseException:
        await server.stop()
        raise


def register(app: typer.Typer) -> None:
    @app.command("sim")
    def sim(
        ctx: typer.Context,
        port: Optional[int] = typer.Option(None, "--port", "-p", help="port to listen on (0 = any free port); "
                                                                       "default sim.port"),
        seed: Optional[int] = typer.Option(None, "--seed", help="seed of the market model; default sim.seed"),
        config: Optional[str] = typer.Option(None, "--config", "-c",
                                             help="TOML file layered over config/default.toml "
                                                  "(same as the global --config)"),
        speed: Optional[float] = typer.Option(None, "--speed", help="market seconds per wall second; "
                                                                     "0 = as fast as clients read"),
        exchange_info: Optional[str] = typer.Option(None, "--exchange-info",
                                                    help="serve a saved exchangeInfo JSON instead of the "
                                                         "built-in universe"),
    ) -> None:
        """Run the Binance Spot simulator (REST, market streams, WS API) on 127.0.0.1 until Ctrl-C.

        Its market is seeded and set in [sim.market]: correlated random walks of the assets' fair
        values; books re-quoted around each pair's cross rate, with liquidity events and market
        trades that consume resting levels (resting orders fill in queue order); each pair's
        cross-rate residual wandering off the implied rate and reverting (residual_bps,
        residual_half_life_s); and now and then a dislocation that opens a triangular arbitrage
        (dislocations_per_min, dislocation_bps, dislocation_ms). Set any key with the global --set:
        ctrader --set sim.market.residual_bps=5 sim."""
        st = state(ctx)
        if config is not None:
            st.config_path = config
        overrides = dict(st.overrides or {})
        for key, value in (("sim.port", port), ("sim.seed", seed), ("sim.market.speed", speed),
                           ("sim.exchange_info_file", exchange_info)):
            if value is not None:
                overrides[key] = str(value)
        st.overrides = overrides
        cfg = st.setup_logging("sim")
        try:
            code = asyncio.run(serve(cfg.sim))
        except (ValueError, OSError) as exc:
            typer.secho(f"sim: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        if code:
            raise typer.Exit(code)
