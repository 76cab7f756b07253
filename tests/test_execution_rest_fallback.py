"""While the WebSocket is down, orders go over REST without holding up the executor: a venue
that never answers one request delays neither the executor's loop nor the next request."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from ctrader.core.records import OrderType, Side, TimeInForce
from ctrader.execution.live import LiveVenue
from ctrader.execution.orders import Order
from ctrader.execution.ws_api_client import WsApiClient
from ctrader.venue.signing import Signer

pytestmark = pytest.mark.timeout(60)


class HangingVenue:
    """A TCP server that reads HTTP requests and answers each only when released."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received = threading.Semaphore(0)
        self.release = threading.Event()
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            self.requests.append(data.split(b"\r\n", 1)[0])
            self.received.release()
            self.release.wait(30)
            body = b'{"code":-1013,"msg":"Filter failure: test"}'
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)

    def close(self) -> None:
        self.release.set()
        self.sock.close()


class _Info:
    name, tick_units, step_units = "BTCUSDT", 1_000_000, 1_000


class _Universe:
    symbols = [_Info()]


def _order(coid: str) -> Order:
    return Order(client_order_id=coid, group_id=1, leg=0, n_legs=1, symbol_id=0, symbol="BTCUSDT",
                 side=int(Side.BUY), order_type=int(OrderType.LIMIT), tif=int(TimeInForce.IOC),
                 price=65_000 * 10**8, qty=10**5)


def test_an_unanswered_rest_order_does_not_hold_up_the_next():
    venue = HangingVenue()
    client = WsApiClient("ws://127.0.0.1:9/none", Signer("k", secret="s"), rest_url=venue.url)   # never connected
    live = LiveVenue(client, _Universe())
    try:
        assert live.place(_order("ct-a"), 0) == []          # returns at once: the request is on a worker
        assert venue.received.acquire(timeout=20)            # the venue holds the first request ...
        assert live.place(_order("ct-b"), 0) == []           # ... the next order still leaves
        assert venue.received.acquire(timeout=20)            # and reaches the venue meanwhile
        assert all(b"POST /api/v3/order?" in r for r in venue.requests) and live.rest_fallbacks == 2
        assert live.poll(0) == []                            # nothing answered yet: nothing to apply
        venue.release.set()
        answers = []
        deadline = time.monotonic() + 30
        while len(answers) < 2 and time.monotonic() < deadline:
            client.pump()
            while client.inbox:
                answers.append(client.inbox.popleft())
            time.sleep(0.01)
        assert sorted(tag for _, tag, _ in answers) == [("place", "ct-a"), ("place", "ct-b")]
        assert all(doc["error"]["code"] == -1013 for _, _, doc in answers)
    finally:
        client.close()
        venue.close()
