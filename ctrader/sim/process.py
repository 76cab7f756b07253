"""The simulator as a component of a run (``ctrader start`` / ``ctrader record`` with venue sim).

    Component("sim", "ctrader.sim.process:run_sim", ready="ctrader.sim.process:wait_ready")

``wait_ready`` holds the supervisor back until the REST API answers, so the feed and executor
never race the simulator's start-up.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

from ctrader.config.schema import Config


def run_sim(ctx) -> None:
    from ctrader.sim.server import SimServer

    async def main() -> None:
        server = SimServer(ctx.cfg.sim)
        await server.start()
        try:
            while not ctx.stop.is_set():
                ctx.health.beat()
                await asyncio.sleep(0.2)
        finally:
            await server.stop()

    asyncio.run(main())


def wait_ready(cfg: Config, timeout_s: float = 30.0) -> None:
    """Return once GET /api/v3/ping answers on the configured simulator port."""
    url = f"http://{cfg.sim.host}:{cfg.sim.port}/api/v3/ping"
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                json.loads(resp.read())
                return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"simulator on {cfg.sim.host}:{cfg.sim.port} did not answer within {timeout_s:g}s: {last}")
