"""``order.place`` frames for Binance's WebSocket API, built from templates.

An order's frame differs from the last one on the same symbol, side, type and time in force
only in its price, quantity, client order id, timestamp and request id (and, with HMAC, the
signature over them). ``OrderFrames`` renders each such combination once into two format
strings, the JSON frame and (HMAC) the signature payload, and fills in only what varies:

    frames = OrderFrames(signer, logged_on=True, recv_window_ms=5000)
    frame = frames.place(7, "BTCUSDT", "BUY", "LIMIT", "IOC", "65000.10", "0.00100", "ct1a2b-0", ts_ms)

``build_request`` is the plain version (any method, any params): the templates are tested to
give byte for byte what it gives, and it gives Binance's documented request and signature.

Signing: after an Ed25519 ``session.logon`` a request carries no signature at all (Binance
allows it), so an order costs no cryptography on the way out; with an HMAC key every order is
signed (a few microseconds); Ed25519 without a logon would sign every order (tens of
microseconds), which is why the live set-up recommends an Ed25519 key.
"""
from __future__ import annotations

import re
from typing import Any

import orjson

from ctrader.venue.signing import Signer, ws_api_payload

_SAFE = re.compile(r"^[A-Za-z0-9_.\-]*$")   # values written into a template unescaped


def build_request(req_id: int | str, method: str, params: dict, signer: Signer | None = None,
                  logged_on: bool = False) -> bytes:
    """A WS API request frame: ``params`` as given, plus ``apiKey`` and ``signature`` when the
    request must be signed and the session is not logged on (``signer`` given)."""
    if signer is not None and not logged_on:
        params = signer.signed_ws_params(params)
    return orjson.dumps({"id": req_id, "method": method, "params": params})


class OrderFrames:
    def __init__(self, signer: Signer, logged_on: bool, recv_window_ms: int = 0, resp_type: str = "FULL") -> None:
        self.signer = signer
        self.logged_on = logged_on
        self.recv_window_ms = recv_window_ms
        self.resp_type = resp_type
        self._templates: dict[tuple, tuple[str, str | None]] = {}

    def place(self, req_id: int, symbol: str, side: str, order_type: str, tif: str | None, price: str | None,
              qty: str, client_order_id: str, timestamp_ms: int) -> bytes:
        key = (symbol, side, order_type, tif, price is not None)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = self._render(symbol, side, order_type, tif, price is not None)
        frame_fmt, payload_fmt = template
        values = {"price": price, "qty": qty, "coid": client_order_id, "ts": timestamp_ms, "id": req_id}
        if payload_fmt is not None:
            values["sig"] = self.signer.sign(payload_fmt % values)
        return (frame_fmt % values).encode()

    def params(self, symbol: str, side: str, order_type: str, tif: str | None, price: str | None, qty: str,
               client_order_id: str, timestamp_ms: int) -> dict[str, Any]:
        """The same order's params in the order the frame writes them (for ``build_request``)."""
        out: dict[str, Any] = {"symbol": symbol, "side": side, "type": order_type}
        if tif is not None:
            out["timeInForce"] = tif
        if price is not None:
            out["price"] = price
        out.update(quantity=qty, newClientOrderId=client_order_id, newOrderRespType=self.resp_type)
        if self.recv_window_ms:
            out["recvWindow"] = self.recv_window_ms
        out["timestamp"] = timestamp_ms
        return out

    def _render(self, symbol: str, side: str, order_type: str, tif: str | None,
                has_price: bool) -> tuple[str, str | None]:
        """Two %-format strings (frame, signature payload or None) with named placeholders."""
        for value in (symbol, side, order_type, tif or "", self.resp_type):
            if not _SAFE.match(value):
                raise ValueError(f"cannot template the value {value!r}")
        placeholder = {"price": "%(price)s", "quantity": "%(qty)s", "newClientOrderId": "%(coid)s",
                       "timestamp": "%(ts)d"}
        params = self.params(symbol, side, order_type, tif, "P" if has_price else None, "Q", "C", 0)
        rendered: dict[str, str] = {}
        for name, value in params.items():
            if name in placeholder:
                rendered[name] = placeholder[name]
            else:
                rendered[name] = str(value).replace("%", "%%")
        numbers = {"recvWindow", "timestamp"}
        signed = not self.logged_on
        if signed:
            rendered["apiKey"] = self.signer.api_key.replace("%", "%%")
        json_params = ",".join(f'"{k}":{v}' if k in numbers else f'"{k}":"{v}"' for k, v in rendered.items())
        if signed:
            json_params += ',"signature":"%(sig)s"'
        frame = '{"id":%(id)d,"method":"order.place","params":{' + json_params + "}}"
        payload = ws_api_payload(rendered) if signed else None
        return frame, payload
