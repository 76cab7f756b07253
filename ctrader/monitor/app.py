"""The monitor's HTTP API and dashboard (FastAPI).

    GET  /                  the dashboard (one self-contained page; plotly.js from the installed package)
    GET  /metrics           Prometheus text format
    GET  /api/status        the status document (``monitor.status``)
    GET  /api/fills         ?since=<fill id>&since_ts=<epoch s>&limit=N: fills, oldest first
    GET  /api/history       the PnL curve kept by the monitor
    GET  /api/events        server-sent events: "status" about once a second, "fill" per fill, "alert"
    POST /api/kill          engage the kill switch (bearer token)   {"reason": "..."} optional
    POST /api/resume        clear the kill file (bearer token)
    GET  /healthz           {"ok": true}, always open

Reads are open while the monitor listens on loopback only; otherwise they need the token too,
as an ``Authorization: Bearer`` header or the ``ctrader_token`` cookie the dashboard sets (an
EventSource cannot send headers). Control endpoints take the header only, so no other site can
make a browser send them (and no CORS headers are sent unless ``monitor.cors_origins`` says so).
A refused request is logged (method, path, client, why; never a token) and counted.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import pathlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse

from ctrader.monitor.auth import TokenCheck, bearer

log = logging.getLogger("ctrader.monitor.api")

STATIC = pathlib.Path(__file__).parent / "static"
COOKIE = "ctrader_token"
KEEPALIVE_S = 15.0
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",               # no framing: the kill button cannot be clickjacked
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
}


class MonitorState(Protocol):
    """What the API serves; ``process.MonitorService`` is the real one, tests may pass another."""

    hub: EventHub
    auth_failures: collections.Counter

    def status(self) -> dict: ...

    def fills(self, since: int, since_ts: float | None, limit: int) -> list[dict]: ...

    def history(self) -> dict: ...

    def kill(self, by: str, reason: str) -> dict: ...

    def resume(self, by: str) -> dict: ...

    def metrics(self) -> tuple[bytes, str]: ...


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


class EventHub:
    """Fans events out to the open event streams. ``publish`` may be called from any thread;
    each stream has a bounded queue, and a client too slow to keep up loses its oldest events
    rather than growing the monitor's memory."""

    def __init__(self, max_queue: int = 256) -> None:
        self.max_queue = max_queue
        self._queues: set[asyncio.Queue] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    @property
    def clients(self) -> int:
        return len(self._queues)

    def publish(self, event: str, data: Any) -> None:
        loop = self._loop
        if loop is None or self.closed or not self._queues:
            return
        try:
            loop.call_soon_threadsafe(self._fanout, sse(event, data))
        except RuntimeError:          # the loop closed under us: the server is stopping
            pass

    def _fanout(self, item: str | None) -> None:
        for q in list(self._queues):
            if q.full():
                q.get_nowait()
            q.put_nowait(item)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self.closed = True
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._fanout, None)
            except RuntimeError:
                pass

    async def stream(self, first: str) -> AsyncIterator[str]:
        q: asyncio.Queue = asyncio.Queue(self.max_queue)
        self._queues.add(q)
        try:
            yield "retry: 2000\n\n" + first
            while not self.closed:
                try:
                    item = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    return
                yield item
        finally:
            self._queues.discard(q)


def create_app(state: MonitorState, token: TokenCheck, open_reads: bool,
               cors_origins: tuple[str, ...] = ()) -> FastAPI:
    app = FastAPI(title="ctrader monitor", docs_url=None, redoc_url=None, openapi_url=None)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    def refuse(request: Request, why: str) -> None:
        path = request.url.path
        state.auth_failures[path] += 1
        client = request.client.host if request.client else "?"
        log.warning("refused %s %s from %s: %s", request.method, path, client, why)
        raise HTTPException(401, detail=why, headers={"WWW-Authenticate": "Bearer"})

    def control(request: Request) -> None:
        if not token.configured:
            refuse(request, "no token configured: set CTRADER_MONITOR_TOKEN or monitor.token_file")
        presented = bearer(request.headers.get("authorization"))
        if presented is None:
            refuse(request, "missing bearer token")
        if not token.matches(presented):
            refuse(request, "wrong token")

    def read(request: Request) -> None:
        if open_reads:
            return
        presented = bearer(request.headers.get("authorization")) or request.cookies.get(COOKIE)
        if presented is None:
            refuse(request, "missing bearer token")
        if not token.matches(presented):
            refuse(request, "wrong token")

    def who(request: Request) -> str:
        return f"the monitor API (client {request.client.host if request.client else '?'})"

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.get("/")
    def index() -> FileResponse:
        # the page holds no data (it fetches it), so it loads without a token; its API calls need one
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name == "plotly.min.js":
            return FileResponse(_plotly_js(), media_type="text/javascript")
        path = STATIC / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise HTTPException(404)
        media = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}.get(path.suffix)
        return FileResponse(path, media_type=media)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:
        read(request)
        body, content_type = state.metrics()
        return Response(body, media_type=content_type)

    @app.get("/api/status")
    def status(request: Request) -> JSONResponse:
        read(request)
        return JSONResponse(state.status())

    @app.get("/api/fills")
    def fills(request: Request, since: int = 0, since_ts: float | None = None, limit: int = 1000) -> JSONResponse:
        read(request)
        if since < 0 or limit < 1 or limit > 100_000:
            raise HTTPException(422, detail="since must be >= 0 and limit in 1..100000")
        return JSONResponse(state.fills(since, since_ts, limit))

    @app.get("/api/history")
    def history(request: Request) -> JSONResponse:
        read(request)
        return JSONResponse(state.history())

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        read(request)
        state.hub.bind(asyncio.get_running_loop())
        return StreamingResponse(state.hub.stream(sse("status", state.status())), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/kill")
    async def kill(request: Request) -> JSONResponse:
        control(request)
        reason = await _reason(request)
        return JSONResponse(state.kill(who(request), reason))

    @app.post("/api/resume")
    async def resume(request: Request) -> JSONResponse:
        control(request)
        return JSONResponse(state.resume(who(request)))

    return app


async def _reason(request: Request) -> str:
    """The optional ``{"reason": ...}`` of a kill request, on one line, at most 200 characters."""
    raw = await request.body()
    if not raw:
        return ""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise HTTPException(422, detail="the body must be JSON: {\"reason\": \"...\"}") from None
    reason = doc.get("reason", "") if isinstance(doc, dict) else ""
    if not isinstance(reason, str):
        raise HTTPException(422, detail="reason must be a string")
    return " ".join(reason.split())[:200]


def _plotly_js() -> pathlib.Path:
    import plotly

    path = pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise HTTPException(500, detail="plotly.min.js is missing from the installed plotly package")
    return path
