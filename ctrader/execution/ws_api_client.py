"""A Binance WebSocket API client for one thread: the executor's.

Orders leave from the thread that decided them: ``send`` (or ``send_frame`` with a frame from
``order_frames``) writes to the socket before it returns; no event loop, no queue, no second
thread on the way out. What comes back is read by ``pump()``, which the executor's loop calls
between intents: answers and user-data events are parsed there, never while an order is being
sent. Everything that arrived is appended to ``inbox`` as ``(kind, tag, doc)``:
``("response", tag, doc)`` for the answer to ``send(..., tag=...)``, ``("event", None, event)``
for user-data events, ``("connected"|"disconnected", None, info)``.

    client = WsApiClient(url, signer, recv_window_ms=5000, rest_url=rest).start()   # blocking
    client.send("order.place", params, tag=("place", "ct1-0"))      # written to the socket now
    client.pump(); kind, tag, doc = client.inbox.popleft()
    doc = client.call("openOrders.status", {})        # blocking: start-up, reconcile, stop
    client.close()

Session set-up on every connection: the clock offset (``time``), an Ed25519 ``session.logon``
when the key is Ed25519 (requests then carry no signature at all), and the user data stream
(``userDataStream.subscribe`` after a logon, ``.subscribe.signature`` otherwise). Connecting
blocks (TCP, TLS, upgrade, set-up): the first connection is made by ``start``; a reconnection
runs on a helper thread, and ``pump`` adopts the new connection once it is set up, so the
executor's loop never waits for it. Requests in flight when a connection drops are answered
-1006 (outcome unknown): the caller asks about them.

REST is the fallback while the WebSocket is down: ``rest_send`` hands the request to a worker
thread and returns at once; the answer arrives in ``inbox`` like a WS answer, so a REST request
that never answers delays nothing (it times out after ``rest_timeout_s``). ``rest_call`` is
the blocking form.
"""
from __future__ import annotations

import collections
import http.client
import itertools
import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import orjson

from ctrader.execution.order_frames import build_request
from ctrader.execution.ws_wire import WireClosed, WsWire
from ctrader.venue.signing import ED25519, Signer

log = logging.getLogger(__name__)

# WS API method -> (HTTP method, REST path) for the REST fallback.
REST_ROUTES = {
    "order.place": ("POST", "/api/v3/order"), "order.cancel": ("DELETE", "/api/v3/order"),
    "order.status": ("GET", "/api/v3/order"), "openOrders.status": ("GET", "/api/v3/openOrders"),
    "myTrades": ("GET", "/api/v3/myTrades"), "account.status": ("GET", "/api/v3/account"),
    "allOrders": ("GET", "/api/v3/allOrders"), "order.cancelReplace": ("POST", "/api/v3/order/cancelReplace"),
}
UNSIGNED = frozenset({"time", "ping", "exchangeInfo", "depth", "ticker.book", "avgPrice", "session.status",
                      "session.logout", "userDataStream.subscribe", "userDataStream.unsubscribe"})
NOT_CONNECTED = {"status": 503, "error": {"code": -1001, "msg": "WS API not connected"}}
LOST = {"status": 503, "error": {"code": -1006, "msg": "connection lost; execution status unknown"}}
_CLOCK = object()          # tag of our own ``time`` requests
REST_WORKERS = 4           # REST requests in flight at once while the WebSocket is down


class WsApiError(RuntimeError):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status, self.code, self.msg = status, code, msg


class Flag:
    """A plain flag with ``threading.Event``'s reading method (one thread writes it)."""

    def __init__(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False


class WsApiClient:
    def __init__(self, url: str, signer: Signer, recv_window_ms: int = 5000, rest_url: str = "",
                 user_data: bool = True, reconnect_max_s: float = 5.0, connect_timeout_s: float = 10.0,
                 rest_timeout_s: float = 10.0) -> None:
        self.url = url
        self.rest_url = rest_url
        self.signer = signer
        self.recv_window_ms = recv_window_ms
        self.user_data = user_data
        self.reconnect_max_s = reconnect_max_s
        self.connect_timeout_s = connect_timeout_s
        self.rest_timeout_s = rest_timeout_s
        self.inbox: collections.deque = collections.deque()
        self.clock_offset_ms = 0.0           # server time - local wall clock
        self.connected = Flag()
        self.logged_on = False
        self.connects = 0
        self.rest_requests = 0
        self._ids = itertools.count(1)
        self._wire: WsWire | None = None
        self._waiting: dict[int, Any] = {}   # request id -> tag
        self._handover: queue.SimpleQueue = queue.SimpleQueue()   # (wire, logged_on, offset, early messages)
        self._rest_answers: queue.SimpleQueue = queue.SimpleQueue()
        self._rest_pending = 0               # REST requests whose answer is not in inbox yet
        self._rest_pool: ThreadPoolExecutor | None = None
        self._connecting = False
        self._next_attempt = 0.0
        self._backoff = 0.1
        self._clock_sent_at = 0.0
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout_s: float | None = None) -> WsApiClient:
        """Connect and set the session up in this thread (blocking); raises ``ConnectionError``."""
        try:
            self._adopt(*self._open(timeout_s or self.connect_timeout_s))
        except (OSError, WsApiError, TimeoutError) as exc:
            raise ConnectionError(f"WS API {self.url}: not connected: {exc}") from exc
        return self

    def close(self) -> None:
        self._closing = True
        if self._wire is not None:
            self._wire.close()
            self._wire = None
        self.connected.clear()
        if self._rest_pool is not None:
            self._rest_pool.shutdown(wait=False, cancel_futures=True)

    # --- sending --------------------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    @property
    def awaiting(self) -> int:
        """Requests sent (WS API or REST) whose answer has not reached ``inbox`` yet."""
        return len(self._waiting) + self._rest_pending

    def send(self, method: str, params: dict, tag: Any = None) -> None:
        """Write the request now; its answer arrives in ``inbox`` as ("response", tag, doc)."""
        req_id = self.next_id()
        self.send_frame(req_id, build_request(req_id, method, self._params(method, params),
                                              self._signer_for(method), self.logged_on), tag)

    def send_frame(self, req_id: int, frame: bytes, tag: Any = None) -> None:
        """Write a frame built by the caller (``order_frames``) whose id is ``req_id``."""
        if self._wire is None:
            self.inbox.append(("response", tag, NOT_CONNECTED))
            return
        self._waiting[req_id] = tag
        try:
            self._wire.send_text(frame)
        except WireClosed as exc:
            self._dropped(exc)

    def _signer_for(self, method: str) -> Signer | None:
        return None if method in UNSIGNED else self.signer

    def _params(self, method: str, params: dict) -> dict:
        if method in UNSIGNED:
            return params
        params = dict(params)
        params.setdefault("timestamp", self.timestamp_ms())
        if self.recv_window_ms:
            params.setdefault("recvWindow", self.recv_window_ms)
        return params

    def timestamp_ms(self) -> int:
        return int(time.time() * 1000 + self.clock_offset_ms)

    def resync_clock(self) -> None:
        """Measure the clock offset again (after a -1021 timestamp reject); returns at once."""
        if self._wire is not None:
            self._clock_sent_at = time.time() * 1000
            self.send("time", {}, tag=_CLOCK)

    # --- receiving ------------------------------------------------------------------------------

    def pump(self) -> int:
        """Read what arrived (non-blocking) into ``inbox``; adopt a reconnection that is ready;
        start one when it is due. Returns how many items were added."""
        before = len(self.inbox)
        if not self._handover.empty():
            self._adopt(*self._handover.get_nowait())
        while not self._rest_answers.empty():
            self.inbox.append(self._rest_answers.get_nowait())
            self._rest_pending -= 1
        wire = self._wire
        if wire is not None:
            try:
                for message in wire.read():
                    self._dispatch(message)
            except WireClosed as exc:
                self._dropped(exc)
        elif not self._connecting and not self._closing and time.monotonic() >= self._next_attempt:
            self._reconnect_in_background()
        return len(self.inbox) - before

    def _dispatch(self, message: bytes) -> None:
        doc = orjson.loads(message)
        if "event" in doc:
            self.inbox.append(("event", None, doc["event"]))
            return
        tag = self._waiting.pop(doc.get("id"), None)
        if tag is _CLOCK:
            if "result" in doc:
                self.clock_offset_ms = doc["result"]["serverTime"] - (self._clock_sent_at + time.time() * 1000) / 2
            return
        self.inbox.append(("response", tag, doc))

    def call(self, method: str, params: dict | None = None, timeout_s: float = 10.0) -> dict:
        """Send and wait for the answer (``{"status", "result"|"error"}``), reading meanwhile:
        whatever else arrives stays in ``inbox``, in order. Over REST when not connected."""
        if self._wire is None:
            if self.rest_url and method in REST_ROUTES:
                return self.rest_call(method, params or {}, timeout_s)
            return NOT_CONNECTED
        marker = object()
        self.send(method, params or {}, tag=marker)
        deadline = time.monotonic() + timeout_s
        while True:
            for i, item in enumerate(self.inbox):
                if item[1] is marker:
                    del self.inbox[i]
                    return item[2]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer within {timeout_s:g} s")
            if self._wire is not None:
                self._wire.wait_readable(min(left, 0.05))
            else:
                time.sleep(min(left, 0.01))
            self.pump()

    def _dropped(self, exc: BaseException) -> None:
        """The connection is gone: requests in flight get -1006 (outcome unknown), the caller is
        told, and a reconnection is scheduled."""
        if not self._closing:
            log.warning("WS API %s: %s", self.url, exc)
        if self._wire is not None:
            self._wire.close()
        self._wire = None
        self.connected.clear()
        self.logged_on = False
        waiting, self._waiting = self._waiting, {}
        for tag in waiting.values():
            if tag is not _CLOCK:
                self.inbox.append(("response", tag, LOST))
        self.inbox.append(("disconnected", None, {}))
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.reconnect_max_s)

    # --- connecting -------------------------------------------------------------------------------

    def _reconnect_in_background(self) -> None:
        self._connecting = True

        def connect() -> None:
            try:
                self._handover.put(self._open(self.connect_timeout_s))
            except (OSError, WsApiError, TimeoutError) as exc:
                log.warning("WS API %s: reconnect failed: %s", self.url, exc)
                self._handover.put((None, False, 0.0, []))

        threading.Thread(target=connect, name="ws-api-connect", daemon=True).start()

    def _adopt(self, wire: WsWire | None, logged_on: bool, offset_ms: float, early: list[bytes]) -> None:
        """Take over a connection set up by ``_open`` (this thread owns it from now on)."""
        self._connecting = False
        if wire is None:
            self._next_attempt = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.reconnect_max_s)
            return
        if self._closing:
            wire.close()
            return
        self._wire, self.logged_on, self.clock_offset_ms = wire, logged_on, offset_ms
        self._backoff = 0.1
        self.connects += 1
        self.connected.set()
        for message in early:
            self._dispatch(message)
        self.inbox.append(("connected", None, {"connects": self.connects}))

    def _open(self, timeout_s: float) -> tuple[WsWire, bool, float, list[bytes]]:
        """Connect and set the session up (blocking, on whichever thread calls it): returns the
        wire, whether it is logged on, the clock offset and user-data events that came early."""
        deadline = time.monotonic() + timeout_s
        wire = WsWire.connect(self.url, timeout_s)
        early: list[bytes] = []
        try:
            ids = itertools.count(1_000_000_000)

            def request(method: str, params: dict, signer: Signer | None, logged_on: bool) -> dict:
                req_id = next(ids)
                wire.send_text(build_request(req_id, method, params, signer, logged_on))
                while True:
                    for message in wire.read():
                        doc = orjson.loads(message)
                        if doc.get("id") == req_id:
                            return doc
                        early.append(message)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(f"{method}: no answer while connecting")
                    wire.wait_readable(min(left, 0.1))

            t0 = time.time() * 1000
            server = request("time", {}, None, False)
            offset = server["result"]["serverTime"] - (t0 + time.time() * 1000) / 2 if "result" in server else 0.0

            def stamped() -> dict:
                params: dict = {"timestamp": int(time.time() * 1000 + offset)}
                if self.recv_window_ms:
                    params["recvWindow"] = self.recv_window_ms
                return params

            logged_on = False
            if self.signer.kind == ED25519:
                doc = request("session.logon", stamped(), self.signer, False)
                if "error" in doc:
                    raise WsApiError(doc["status"], doc["error"]["code"], doc["error"]["msg"])
                logged_on = True
            if self.user_data:
                if logged_on:
                    doc = request("userDataStream.subscribe", {}, None, True)
                else:
                    doc = request("userDataStream.subscribe.signature", stamped(), self.signer, False)
                if "error" in doc:
                    raise WsApiError(doc["status"], doc["error"]["code"], doc["error"]["msg"])
        except BaseException:
            wire.close()
            raise
        return wire, logged_on, offset, early

    # --- REST -----------------------------------------------------------------------------------

    def rest_send(self, method: str, params: dict, tag: Any = None) -> None:
        """The request over REST on a worker thread; returns at once. The answer arrives in
        ``inbox`` as ("response", tag, doc) at a later ``pump``. Requests do not queue behind
        one another: a venue that never answers one does not hold up the next."""
        if self._rest_pool is None:
            self._rest_pool = ThreadPoolExecutor(REST_WORKERS, thread_name_prefix="rest-fallback")
        self.rest_requests += 1
        self._rest_pending += 1
        params = dict(params)
        params.setdefault("timestamp", self.timestamp_ms())    # stamped when sent, not when a worker is free
        self._rest_pool.submit(self._rest_job, method, params, tag)

    def _rest_job(self, method: str, params: dict, tag: Any) -> None:
        try:
            doc = self.rest_call(method, params, self.rest_timeout_s)
        except Exception as exc:          # noqa: BLE001  any failure: outcome unknown
            log.warning("REST %s: %s", method, exc)
            doc = {"status": 503, "error": {"code": -1006, "msg": f"REST request failed: {exc}"}}
        self._rest_answers.put(("response", tag, doc))

    def rest_call(self, method: str, params: dict, timeout_s: float = 10.0) -> dict:
        """The same request over REST, blocking; answered like ``call``."""
        verb, path = REST_ROUTES[method]
        params = dict(params)
        params.setdefault("timestamp", self.timestamp_ms())
        if self.recv_window_ms:
            params.setdefault("recvWindow", self.recv_window_ms)
        query = self.signer.signed_query(params)
        parts = urlsplit(self.rest_url)
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(parts.hostname, parts.port, timeout=timeout_s)
        try:
            conn.request(verb, f"{parts.path.rstrip('/')}{path}?{query}", headers={"X-MBX-APIKEY": self.signer.api_key})
            resp = conn.getresponse()
            body = orjson.loads(resp.read() or b"{}")
            if resp.status >= 400 or (isinstance(body, dict) and "code" in body and "msg" in body):
                return {"status": resp.status, "error": body, "retry_after": resp.getheader("Retry-After")}
            return {"status": resp.status, "result": body}
        finally:
            conn.close()
