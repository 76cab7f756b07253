"""A Binance WebSocket API client on its own thread, for a synchronous caller.

The executor's loop is synchronous (it polls rings); this client runs an asyncio loop on a
background thread that keeps one WS API connection: it syncs the clock (``time``), logs the
session on with an Ed25519 key (``session.logon``; then requests carry only ``timestamp``) or
signs every request with HMAC, and subscribes to the user data stream
(``userDataStream.subscribe`` after logon, ``userDataStream.subscribe.signature`` otherwise).
When the connection drops it reconnects with backoff and says so (a ``("connected", ...)``
message), so that the caller reconciles what it may have missed.

Everything that arrives is put on ``inbox`` (a thread-safe queue) as ``(kind, tag, doc)``:
``("response", tag, doc)`` for the answer to ``send(..., tag=...)``, ``("event", None, event)``
for user-data events, ``("connected"|"disconnected", None, info)``.

    client = WsApiClient(url, signer, recv_window_ms=5000).start()
    client.send("order.place", params, tag="ct1-0")      # returns at once
    kind, tag, doc = client.inbox.get()
    doc = client.call("openOrders.status", {})           # blocking, for start-up and reconcile
    client.close()

``rest_call`` is the fallback for when the WebSocket is down: the same SIGNED request over
REST (query string signed as sent, ``venue.signing``).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import aiohttp
import orjson

from ctrader.venue.signing import ED25519, Signer

log = logging.getLogger(__name__)

# WS API method -> (HTTP method, REST path) for the REST fallback.
REST_ROUTES = {
    "order.place": ("POST", "/api/v3/order"), "order.cancel": ("DELETE", "/api/v3/order"),
    "order.status": ("GET", "/api/v3/order"), "openOrders.status": ("GET", "/api/v3/openOrders"),
    "myTrades": ("GET", "/api/v3/myTrades"), "account.status": ("GET", "/api/v3/account"),
}
UNSIGNED = frozenset({"time", "ping", "exchangeInfo", "depth", "ticker.book", "avgPrice", "session.status",
                      "session.logout", "userDataStream.subscribe", "userDataStream.unsubscribe"})


class WsApiError(RuntimeError):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg


class WsApiClient:
    def __init__(self, url: str, signer: Signer, recv_window_ms: int = 5000, rest_url: str = "",
                 user_data: bool = True, reconnect_max_s: float = 5.0) -> None:
        self.url = url
        self.rest_url = rest_url
        self.signer = signer
        self.recv_window_ms = recv_window_ms
        self.user_data = user_data
        self.reconnect_max_s = reconnect_max_s
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.clock_offset_ms = 0.0          # server time - local wall clock
        self.connected = threading.Event()
        self.logged_on = False
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[Any, Future | None]] = {}    # id -> (tag, future)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="ws-api", daemon=True)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._http: aiohttp.ClientSession | None = None
        self._closing = False
        self._ready = threading.Event()
        self.connects = 0

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self, timeout_s: float = 10.0) -> WsApiClient:
        self._thread.start()
        if not self.connected.wait(timeout_s):
            raise ConnectionError(f"WS API {self.url}: not connected after {timeout_s:g}s")
        return self

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _shutdown(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()

    async def _main(self) -> None:
        backoff = 0.1
        async with aiohttp.ClientSession() as http:
            self._http = http
            while not self._closing:
                try:
                    async with http.ws_connect(self.url, heartbeat=None, max_msg_size=1 << 24) as ws:
                        self._ws = ws
                        reader = asyncio.create_task(self._read(ws))
                        await self._session_setup()
                        self.connects += 1
                        self.connected.set()
                        self.inbox.put(("connected", None, {"connects": self.connects}))
                        backoff = 0.1
                        await reader
                except (TimeoutError, aiohttp.ClientError, OSError, WsApiError) as exc:
                    if not self._closing:
                        log.warning("WS API %s: %s", self.url, exc)
                finally:
                    self._ws = None
                    was = self.connected.is_set()
                    self.connected.clear()
                    self.logged_on = False
                    self._fail_waiting()
                    if was and not self._closing:
                        self.inbox.put(("disconnected", None, {}))
                if not self._closing:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.reconnect_max_s)
            self._http = None

    def _fail_waiting(self) -> None:
        """Requests in flight when the connection dropped: their outcome is unknown."""
        waiting, self._waiting = self._waiting, {}
        for tag, fut in waiting.values():
            doc = {"status": 503, "error": {"code": -1006, "msg": "connection lost; execution status unknown"}}
            if fut is not None:
                fut.set_result(doc)
            else:
                self.inbox.put(("response", tag, doc))

    async def _sync_clock(self) -> None:
        """Offset to the server's clock from one ``time`` round trip (its midpoint)."""
        t0 = time.time() * 1000
        server = await self._request("time", {})
        t1 = time.time() * 1000
        if "result" in server:
            self.clock_offset_ms = server["result"]["serverTime"] - (t0 + t1) / 2

    def resync_clock(self) -> None:
        """Measure the clock offset again (after a -1021 timestamp reject); returns at once."""
        asyncio.run_coroutine_threadsafe(self._sync_clock(), self._loop)

    async def _session_setup(self) -> None:
        await self._sync_clock()
        if self.signer.kind == ED25519:
            doc = await self._request("session.logon", {})
            if "error" in doc:
                raise WsApiError(doc["status"], doc["error"]["code"], doc["error"]["msg"])
            self.logged_on = True
        if self.user_data:
            method = "userDataStream.subscribe" if self.logged_on else "userDataStream.subscribe.signature"
            doc = await self._request(method, {})
            if "error" in doc:
                raise WsApiError(doc["status"], doc["error"]["code"], doc["error"]["msg"])

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            doc = orjson.loads(msg.data)
            if "event" in doc:
                self.inbox.put(("event", None, doc["event"]))
                continue
            tag, fut = self._waiting.pop(doc.get("id"), (None, None))
            if fut is not None:
                fut.set_result(doc)
            else:
                self.inbox.put(("response", tag, doc))

    # --- requests -----------------------------------------------------------------------------

    def timestamp_ms(self) -> int:
        return int(time.time() * 1000 + self.clock_offset_ms)

    def _params(self, method: str, params: dict) -> dict:
        if method in UNSIGNED:
            return params
        params = dict(params)
        params.setdefault("timestamp", self.timestamp_ms())
        if self.recv_window_ms:
            params.setdefault("recvWindow", self.recv_window_ms)
        if self.logged_on and method != "session.logon":
            return params
        return self.signer.signed_ws_params(params)

    async def _request(self, method: str, params: dict) -> dict:
        fut = self._send_now(method, params, None, want_future=True)
        return await asyncio.wait_for(asyncio.wrap_future(fut), 15)

    def _send_now(self, method: str, params: dict, tag: Any, want_future: bool = False) -> Future | None:
        """On the loop thread: frame and send one request."""
        req_id = next(self._ids)
        fut: Future | None = Future() if want_future else None
        if self._ws is None or self._ws.closed:
            doc = {"status": 503, "error": {"code": -1001, "msg": "WS API not connected"}}
            if fut is not None:
                fut.set_result(doc)
            else:
                self.inbox.put(("response", tag, doc))
            return fut
        self._waiting[req_id] = (tag, fut)
        frame = orjson.dumps({"id": req_id, "method": method, "params": self._params(method, params)})
        self._loop.create_task(self._ws.send_str(frame.decode()))
        return fut

    def send(self, method: str, params: dict, tag: Any = None) -> None:
        """Send without waiting; the answer arrives on ``inbox`` as ("response", tag, doc)."""
        self._loop.call_soon_threadsafe(self._send_now, method, params, tag)

    def call(self, method: str, params: dict | None = None, timeout_s: float = 10.0) -> dict:
        """Send and wait for the answer (``{"status", "result"|"error"}``)."""
        holder: Future = Future()

        def go() -> None:
            inner = self._send_now(method, params or {}, None, want_future=True)
            inner.add_done_callback(lambda f: holder.set_result(f.result()))
        self._loop.call_soon_threadsafe(go)
        return holder.result(timeout_s)

    def rest_call(self, method: str, params: dict, timeout_s: float = 10.0) -> dict:
        """The same request over REST (when the WebSocket is down); answered like ``call``."""
        verb, path = REST_ROUTES[method]
        params = dict(params)
        params.setdefault("timestamp", self.timestamp_ms())
        if self.recv_window_ms:
            params.setdefault("recvWindow", self.recv_window_ms)
        query = self.signer.signed_query(params)

        async def go() -> dict:
            async with self._http.request(verb, f"{self.rest_url}{path}?{query}",
                                          headers={"X-MBX-APIKEY": self.signer.api_key}) as resp:
                body = orjson.loads(await resp.read())
                if resp.status >= 400 or (isinstance(body, dict) and "code" in body and "msg" in body):
                    return {"status": resp.status, "error": body, "retry_after": resp.headers.get("Retry-After")}
                return {"status": resp.status, "result": body}
        return asyncio.run_coroutine_threadsafe(go(), self._loop).result(timeout_s)

