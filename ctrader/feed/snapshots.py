"""Depth snapshots (``GET /api/v3/depth``) for book rebuilds, within the REQUEST_WEIGHT budget.

Requests are queued per symbol (a symbol already queued or in flight is not queued twice) and
served by a few workers; each spends the request's weight from ``WeightBudget`` first. A 429 or
418 pauses every worker for ``Retry-After`` seconds and puts the symbol back in the queue; any
other failure retries the symbol after a short delay. Results go to ``on_snapshot(symbol, doc)``.

    client = SnapshotClient(rest_url, on_snapshot, limit=100, budget=WeightBudget(6000, 0.5))
    await client.start()
    client.request("BTCUSDT")             # from anywhere on the loop; returns at once
    await client.close()
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
import orjson

from ctrader.feed.weight import WeightBudget, depth_weight
from ctrader.venue.errors import RATE_LIMITED, retry_after_s

log = logging.getLogger(__name__)


class SnapshotClient:
    def __init__(self, rest_url: str, on_snapshot: Callable[[str, dict], None], *, limit: int = 100,
                 budget: WeightBudget | None = None, workers: int = 4, retry_delay_s: float = 0.2,
                 timeout_s: float = 10.0) -> None:
        self.url = rest_url.rstrip("/") + "/api/v3/depth"
        self.on_snapshot = on_snapshot
        self.limit = limit
        self.weight = depth_weight(limit)
        self.budget = budget or WeightBudget()
        self.n_workers = workers
        self.retry_delay_s = retry_delay_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.wanted: set[str] = set()          # queued or in flight
        self.session: aiohttp.ClientSession | None = None
        self.tasks: list[asyncio.Task] = []
        self.requests = 0
        self.failures = 0
        self.rate_limited = 0

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=self.timeout)
        self.tasks = [asyncio.create_task(self._worker(), name=f"snapshot-{i}") for i in range(self.n_workers)]

    def request(self, symbol: str) -> None:
        if symbol not in self.wanted:
            self.wanted.add(symbol)
            self.queue.put_nowait(symbol)

    def pending(self) -> int:
        return len(self.wanted)

    async def _worker(self) -> None:
        while True:
            symbol = await self.queue.get()
            try:
                doc = await self._fetch(symbol)
            except asyncio.CancelledError:
                raise
            except Exception as exc:        # noqa: BLE001  network trouble: never fatal, try again shortly
                self.failures += 1
                log.warning("depth snapshot %s failed: %s", symbol, exc)
                doc = None
            if doc is None:
                asyncio.get_running_loop().call_later(self.retry_delay_s, self.queue.put_nowait, symbol)
                continue
            self.wanted.discard(symbol)
            try:
                self.on_snapshot(symbol, doc)
            except Exception:
                log.exception("snapshot handler failed for %s", symbol)

    async def _fetch(self, symbol: str) -> dict | None:
        await self.budget.acquire(self.weight)
        self.requests += 1
        async with self.session.get(self.url, params={"symbol": symbol, "limit": str(self.limit)}) as resp:
            self.budget.observe_headers(resp.headers)
            body = await resp.read()
            if resp.status in RATE_LIMITED:
                self.rate_limited += 1
                retry = retry_after_s(resp.status, resp.headers.get("Retry-After"))
                log.warning("depth snapshot %s: HTTP %d, backing off %.0fs", symbol, resp.status, retry)
                self.budget.back_off(retry)
                return None
            if resp.status != 200:
                self.failures += 1
                log.warning("depth snapshot %s: HTTP %d %s", symbol, resp.status, body[:200])
                return None
        doc = orjson.loads(body)
        if not isinstance(doc, dict) or not isinstance(doc.get("lastUpdateId"), int):
            self.failures += 1
            return None
        return doc

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        if self.session is not None:
            await self.session.close()
            self.session = None
