"""The WebSocket API (``/ws-api/v3``): requests, session logon, user data stream.

Requests are ``{"id","method","params"}`` text frames; answers are ``{"id","status","result"}``
or ``{"id","status","error"}`` plus ``rateLimits`` (unless ``returnRateLimits=false`` in the URL or
the request). The same endpoints as REST run behind the methods (``order.place``,
``order.cancel``, ``order.status``, ``openOrders.status``, ``account.status``, ...), sharing the
per-IP weight and the per-account order count. ``order.cancelReplace`` answers status 409 when
one of its halves failed, with both in ``error.data``.

SIGNED methods carry ``apiKey`` + ``signature`` over the params sorted by name (no
percent-encoding), or rely on ``session.logon`` (Ed25519 keys only), after which only
``timestamp`` is needed. ``userDataStream.subscribe.signature`` (any key type) and
``userDataStream.subscribe`` (after logon) deliver ``executionReport`` and
``outboundAccountPosition`` events as ``{"subscriptionId": n, "event": {...}}``. Connecting costs
2 weight. Each request runs in its own task, so a delayed order does not block the connection.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import orjson
from aiohttp import web

from ctrader.sim import render
from ctrader.sim.accounts import Account, ApiKey
from ctrader.sim.api import Call, Endpoint, SimApi
from ctrader.sim.auth import Authenticator
from ctrader.sim.clock import SimClock
from ctrader.sim.faults import Faults
from ctrader.sim.orders import Fill, Order
from ctrader.sim.params import Params
from ctrader.sim.race import OrderArrival, new_arrival, observed_place
from ctrader.sim.ratelimit import RateLimiter
from ctrader.sim.wsconn import WsConnection, new_response, read_loop
from ctrader.venue import errors, signing
from ctrader.venue.errors import BinanceError

log = logging.getLogger(__name__)

# WS API method -> SimApi endpoint name (web-socket-api.md method names).
METHODS = {
    "ping": "ping", "time": "time", "exchangeInfo": "exchangeInfo", "depth": "depth", "avgPrice": "avgPrice",
    "ticker.book": "ticker.book", "account.status": "account", "order.place": "order.place",
    "order.test": "order.test", "order.status": "order.status", "order.cancel": "order.cancel",
    "order.cancelReplace": "order.cancelReplace",
    "openOrders.status": "openOrders.status", "openOrders.cancelAll": "openOrders.cancelAll",
    "myTrades": "myTrades",
}
SESSION_METHODS = ("session.logon", "session.status", "session.logout", "userDataStream.subscribe",
                   "userDataStream.subscribe.signature", "userDataStream.unsubscribe", "session.subscriptions")
CONNECT_WEIGHT = 2
SESSION_WEIGHT = 2


class WsApiSession(WsConnection):
    def __init__(self, *args: Any, return_rate_limits: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.return_rate_limits = return_rate_limits
        self.logon_key: ApiKey | None = None
        self.authorized_since: int | None = None
        self.subscriptions: dict[int, Account] = {}
        self.next_subscription = 0
        self.logon_subscription: int | None = None


class WsApi:
    """All WS API sessions; the matching engine's user-data sink."""

    def __init__(self, api: SimApi, auth: Authenticator, limiter: RateLimiter, faults: Faults,
                 clock: SimClock) -> None:
        self.api = api
        self.auth = auth
        self.limiter = limiter
        self.faults = faults
        self.clock = clock
        self.endpoints = api.endpoints()
        self.sessions: set[WsApiSession] = set()
        self.listeners: dict[Account, list[tuple[WsApiSession, int]]] = {}
        self._execution_id = 0
        self.order_observers: list[Callable[[OrderArrival], None]] = []   # the race tracker
        self.ping_interval_s = 20.0
        self.pong_timeout_s = 60.0

    # --- user data --------------------------------------------------------------------------------

    def _push(self, account: Account, event: dict) -> None:
        for session, sub_id in self.listeners.get(account, ()):
            session.send(orjson.dumps({"subscriptionId": sub_id, "event": event}))

    def execution_report(self, order: Order, exec_type: str, fill: Fill | None, time_ms: int,
                         cancel_client_id: str | None = None) -> None:
        self._execution_id += 1
        if order.account in self.listeners:
            self._push(order.account, render.execution_report(order, exec_type, fill, time_ms, self._execution_id,
                                                               cancel_client_id))

    def account_position(self, account: Account, assets: list[str], time_ms: int) -> None:
        if account in self.listeners:
            self._push(account, render.account_position(account, assets, time_ms))

    def _subscribe(self, session: WsApiSession, account: Account) -> int:
        if any(a is account for a in session.subscriptions.values()):
            raise errors.subscription_active()
        sub_id = session.next_subscription
        session.next_subscription += 1
        session.subscriptions[sub_id] = account
        self.listeners.setdefault(account, []).append((session, sub_id))
        return sub_id

    def _unsubscribe(self, session: WsApiSession, sub_id: int, terminated: bool = False) -> None:
        account = session.subscriptions.pop(sub_id, None)
        if account is None:
            return
        entries = [e for e in self.listeners.get(account, []) if e != (session, sub_id)]
        if entries:
            self.listeners[account] = entries
        else:
            self.listeners.pop(account, None)
        if terminated:
            session.send(orjson.dumps({"subscriptionId": sub_id, "event": {
                "e": "eventStreamTerminated", "E": self.clock.server_ms()}}))

    # --- requests -----------------------------------------------------------------------------------

    def _answer(self, session: WsApiSession, req_id: Any, status: int, body: dict, ip: str,
                account: Account | None, rate_limits: bool) -> None:
        doc: dict[str, Any] = {"id": req_id, "status": status}
        doc.update(body)
        if rate_limits:
            doc["rateLimits"] = self.limiter.rate_limits_json(ip, account)
        session.send(orjson.dumps(doc))

    def _signed_key(self, session: WsApiSession, params: dict, p: Params) -> ApiKey:
        """The key a SIGNED request acts with: its own apiKey + signature, or the session's logon."""
        if "apiKey" in params or "signature" in params or session.logon_key is None:
            key = self.auth.key(p.text("apiKey")) if "apiKey" in params else None
            if key is None:
                raise errors.mandatory_missing("apiKey")
            p.read("signature")
            self.auth.check_timestamp(p)
            self.auth.check_signature(key, signing.ws_api_payload(params).encode(), p.raw("signature"))
            return key
        self.auth.check_timestamp(p)
        return session.logon_key

    async def _handle(self, session: WsApiSession, text: str, arrived: tuple[int, int] = (0, 0)) -> None:
        """Answer one request; ``arrived``: (user-space, kernel RX) stamps of its arrival, monotonic ns."""
        ip = session.peer
        req_id: Any = None
        account: Account | None = None
        call: Call | None = None
        rate_limits = session.return_rate_limits
        try:
            try:
                req = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise errors.invalid_json() from None
            if not isinstance(req, dict):
                raise errors.invalid_json()
            req_id = req.get("id")
            method = str(req.get("method", ""))
            if method.startswith("v3/"):
                method = method[3:]
            params = req.get("params") or {}
            if not isinstance(params, dict):
                raise errors.invalid_json()
            p = Params(params)
            if "returnRateLimits" in params:
                rate_limits = bool(p.boolean("returnRateLimits"))
            if method in SESSION_METHODS:
                self.limiter.charge(ip, SESSION_WEIGHT)
                result, account = self._session_method(session, method, params, p)
                self._answer(session, req_id, 200, {"result": result}, ip, account, rate_limits)
                return
            name = METHODS.get(method)
            if name is None:
                raise BinanceError(-1020, f"Unknown method: '{method}'.")
            endpoint = self.endpoints[name]
            call = Call(p, ip)
            result = await self._call(session, method, endpoint, params, call, arrived)
            self._answer(session, req_id, 200, {"result": result}, ip, call.account, rate_limits)
        except BinanceError as exc:
            if call is not None:
                account = call.account       # a signed request's errors count its orders too
            body: dict[str, Any] = {"error": exc.to_json()}
            if exc.http_status in (418, 429) and exc.retry_after_s is not None:
                now = self.clock.server_ms()
                body["error"]["data"] = {"serverTime": now, "retryAfter": now + exc.retry_after_s * 1000}
            self._answer(session, req_id, exc.http_status, body, ip, account, rate_limits)

    async def _call(self, session: WsApiSession, method: str, endpoint: Endpoint, params: dict, call: Call,
                    arrived: tuple[int, int] = (0, 0)) -> Any:
        """Run ``endpoint``; ``call.account`` is the signer's account once the signature is checked."""
        p, ip = call.params, call.ip
        weight = endpoint.weight_of(p)
        self.limiter.charge(ip, weight)
        failure = self.faults.request_failure(method)
        if failure is not None and not failure.execute:
            raise BinanceError(failure.code, failure.msg, failure.status)
        key = None
        if endpoint.signed:
            key = self._signed_key(session, params, p)
            call.account = key.account
        if endpoint.places_order:
            delay = self.faults.order_delay_s()
            if delay:
                await asyncio.sleep(delay)
        if endpoint.places_order and self.order_observers and key is not None:
            arrival = new_arrival(params, key, session.tag, "ws", *arrived)
            result = observed_place(endpoint.handler, call, arrival, self.order_observers)
        else:
            result = endpoint.handler(call)
        if endpoint.places_order:
            self.limiter.refund(ip, weight)
            timeout = self.faults.order_timeout()
            if timeout is not None:
                await asyncio.sleep(timeout)
                raise errors.timeout()
        if failure is not None:
            raise BinanceError(failure.code, failure.msg, failure.status)
        return result

    def _session_status(self, session: WsApiSession) -> dict:
        return {"apiKey": session.logon_key.key if session.logon_key else None,
                "authorizedSince": session.authorized_since, "connectedSince": session.connected_at_ms,
                "returnRateLimits": session.return_rate_limits, "serverTime": self.clock.server_ms(),
                "userDataStream": bool(session.subscriptions)}

    def _session_method(self, session: WsApiSession, method: str, params: dict,
                        p: Params) -> tuple[Any, Account | None]:
        if method == "session.logon":
            key = self.auth.key(p.text("apiKey", required=True))
            p.read("signature")
            self.auth.check_timestamp(p)
            self.auth.check_signature(key, signing.ws_api_payload(params).encode(), p.raw("signature"))
            p.check_all_read()
            if key.kind != signing.ED25519:
                raise errors.unauthorized()   # session logon accepts Ed25519 keys only
            session.logon_key = key
            session.authorized_since = self.clock.server_ms()
            return self._session_status(session), key.account
        if method == "session.status":
            p.check_all_read()
            return self._session_status(session), None
        if method == "session.logout":
            p.check_all_read()
            if session.logon_subscription is not None:
                self._unsubscribe(session, session.logon_subscription, terminated=True)
                session.logon_subscription = None
            session.logon_key = None
            session.authorized_since = None
            return self._session_status(session), None
        if method == "userDataStream.subscribe":
            p.check_all_read()
            if session.logon_key is None:
                raise errors.unauthorized()
            sub_id = self._subscribe(session, session.logon_key.account)
            session.logon_subscription = sub_id
            return {"subscriptionId": sub_id}, session.logon_key.account
        if method == "userDataStream.subscribe.signature":
            key = self.auth.key(p.text("apiKey", required=True))
            p.read("signature")
            self.auth.check_timestamp(p)
            self.auth.check_signature(key, signing.ws_api_payload(params).encode(), p.raw("signature"))
            p.check_all_read()
            return {"subscriptionId": self._subscribe(session, key.account)}, key.account
        if method == "userDataStream.unsubscribe":
            sub_id = p.integer("subscriptionId")
            p.check_all_read()
            if sub_id is None:
                for sid in list(session.subscriptions):
                    self._unsubscribe(session, sid)
                session.logon_subscription = None
            elif sub_id in session.subscriptions:
                self._unsubscribe(session, sub_id)
                if session.logon_subscription == sub_id:
                    session.logon_subscription = None
            else:
                raise errors.subscription_inactive()
            return {}, None
        # session.subscriptions
        p.check_all_read()
        return [{"subscriptionId": sid} for sid in sorted(session.subscriptions)], None

    # --- connections --------------------------------------------------------------------------------

    def broadcast_shutdown(self) -> None:
        payload = orjson.dumps({"event": {"e": "serverShutdown", "E": self.clock.server_ms()}})
        for session in list(self.sessions):
            session.send(payload)

    async def close_all(self, code: int = 1000, reason: str = "", abort: bool = False) -> int:
        sessions = list(self.sessions)
        for s in sessions:
            if abort:
                s.abort(reason or "closed by the simulator")
        if not abort:
            await asyncio.gather(*(s.close(code, reason) for s in sessions), return_exceptions=True)
        return len(sessions)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ip = request.remote or "?"
        try:
            self.limiter.charge(ip, CONNECT_WEIGHT)
        except BinanceError as exc:
            return web.json_response(exc.to_json(), status=exc.http_status)
        ws = new_response()
        await ws.prepare(request)
        session = WsApiSession(request, ws, kind="ws-api", ping_interval_s=self.ping_interval_s,
                               pong_timeout_s=self.pong_timeout_s,
                               return_rate_limits=request.query.get("returnRateLimits", "true").lower() != "false")
        self.sessions.add(session)
        session.start()
        tasks: set[asyncio.Task] = set()

        sock = session.sock

        def on_text(text: str) -> None:
            # arrival stamps now, before the request waits for its task to run
            arrived = (time.monotonic_ns(), sock.rx_ns if sock is not None else 0)
            task = asyncio.get_running_loop().create_task(self._handle(session, text, arrived))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        try:
            await read_loop(session, on_text)
        finally:
            self.sessions.discard(session)
            for sid in list(session.subscriptions):
                self._unsubscribe(session, sid)
        return ws
