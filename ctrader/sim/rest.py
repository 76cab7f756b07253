"""REST: Binance Spot's ``/api/v3/*`` paths over aiohttp.

Per request: parameters from the raw query string and the form body (a repeated name is -1101);
weight charged per IP (429 + ``Retry-After`` and -1003 over the limit); scripted failures (5xx,
answered before or after executing); for SIGNED endpoints the ``X-MBX-APIKEY`` key, the
timestamp/recvWindow and the signature over the raw query + raw body as sent; order faults
(delay, time-out after execution); then the endpoint. Every answer carries
``X-MBX-USED-WEIGHT-1M`` (and the legacy ``X-MBX-USED-WEIGHT``); successful orders also carry
``X-MBX-ORDER-COUNT-10S`` / ``-1D``. Errors are ``{"code","msg"}`` with Binance's HTTP status
(a cancel-replace's also carry ``data``, and 409 when one half succeeded).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from ctrader.sim.api import Call, Endpoint, SimApi
from ctrader.sim.auth import Authenticator
from ctrader.sim.faults import Faults
from ctrader.sim.kstamps import socket_of
from ctrader.sim.params import Params
from ctrader.sim.race import OrderArrival, new_arrival, observed_place
from ctrader.sim.ratelimit import RateLimiter
from ctrader.venue import errors
from ctrader.venue.errors import BinanceError
from ctrader.venue.signing import split_rest_signature

log = logging.getLogger(__name__)

# (HTTP method, path) -> endpoint name in SimApi.endpoints()
ROUTES = {
    ("GET", "/api/v3/ping"): "ping",
    ("GET", "/api/v3/time"): "time",
    ("GET", "/api/v3/exchangeInfo"): "exchangeInfo",
    ("GET", "/api/v3/depth"): "depth",
    ("GET", "/api/v3/avgPrice"): "avgPrice",
    ("GET", "/api/v3/ticker/bookTicker"): "ticker.book",
    ("GET", "/api/v3/account"): "account",
    ("POST", "/api/v3/order"): "order.place",
    ("POST", "/api/v3/order/test"): "order.test",
    ("GET", "/api/v3/order"): "order.status",
    ("DELETE", "/api/v3/order"): "order.cancel",
    ("POST", "/api/v3/order/cancelReplace"): "order.cancelReplace",
    ("GET", "/api/v3/openOrders"): "openOrders.status",
    ("DELETE", "/api/v3/openOrders"): "openOrders.cancelAll",
    ("GET", "/api/v3/myTrades"): "myTrades",
    ("GET", "/sapi/v1/asset/tradeFee"): "tradeFee",
}


def json_response(body, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def error_response(exc: BinanceError, headers: dict) -> web.Response:
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(exc.retry_after_s)
    return json_response(exc.to_json(), exc.http_status, headers)


class RestApi:
    def __init__(self, api: SimApi, auth: Authenticator, limiter: RateLimiter, faults: Faults) -> None:
        self.api = api
        self.auth = auth
        self.limiter = limiter
        self.faults = faults
        self.endpoints = api.endpoints()
        self.requests = 0
        self.order_observers: list[Callable[[OrderArrival], None]] = []   # the race tracker

    def routes(self) -> list[web.RouteDef]:
        out = []
        for (method, path), name in ROUTES.items():
            endpoint = self.endpoints[name]

            async def handler(request: web.Request, endpoint: Endpoint = endpoint) -> web.Response:
                return await self.dispatch(request, endpoint)
            out.append(web.route(method, path, handler))
        return out

    async def dispatch(self, request: web.Request, endpoint: Endpoint) -> web.Response:
        self.requests += 1
        observed = endpoint.places_order and bool(self.order_observers)
        if observed:        # arrival stamps before anything else: (user space, kernel RX of its last read)
            sock = socket_of(request.transport)
            arrived = (time.monotonic_ns(), sock.rx_ns if sock is not None else 0)
            tag = sock.tag if sock is not None else "main"
        ip = request.remote or "?"
        headers: dict[str, str] = {}
        account = None
        try:
            # The request target exactly as received: yarl normalises percent-encoding (%42 -> B),
            # and the signature covers the bytes the client sent.
            raw_query = request.raw_path.partition("?")[2]
            raw_body = (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
            items = parse_qsl(raw_query, keep_blank_values=True) + parse_qsl(raw_body, keep_blank_values=True)
            params = Params(dict(items))
            weight = endpoint.weight_of(params)
            self.limiter.charge(ip, weight)
            if len({k for k, _ in items}) != len(items):
                raise errors.duplicate_param()
            failure = self.faults.request_failure(request.path)
            if failure is not None and not failure.execute:
                raise BinanceError(failure.code, failure.msg, failure.status)
            key = None
            if endpoint.signed:
                key = self.auth.key(request.headers.get("X-MBX-APIKEY"))
                params.read("signature")
                self.auth.check_timestamp(params)
                payload, signature = split_rest_signature(raw_query, raw_body)
                self.auth.check_signature(key, payload.encode(), signature)
                account = key.account
            if endpoint.places_order:
                delay = self.faults.order_delay_s()
                if delay:
                    await asyncio.sleep(delay)
            if observed and key is not None:
                arrival = new_arrival(dict(items), key, tag, "rest", *arrived)
                result = observed_place(endpoint.handler, Call(params, ip, account), arrival, self.order_observers)
            else:
                result = endpoint.handler(Call(params, ip, account))
            if endpoint.places_order:
                self.limiter.refund(ip, weight)
                headers.update(self.limiter.order_headers(account))
                timeout = self.faults.order_timeout()
                if timeout is not None:
                    await asyncio.sleep(timeout)
                    raise errors.timeout()
            if failure is not None:
                raise BinanceError(failure.code, failure.msg, failure.status)
            headers.update(self.limiter.weight_headers(ip))
            return json_response(result, 200, headers)
        except BinanceError as exc:
            headers.update(self.limiter.weight_headers(ip))
            return error_response(exc, headers)
