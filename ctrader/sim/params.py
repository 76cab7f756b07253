"""Request parameters, read with Binance's checks and errors (shared by REST and the WS API).

``Params`` wraps the request's parameters (strings from a query/body, or JSON values from a WS API
request) and remembers which ones an endpoint read: a parameter nobody read is answered with
-1104, as Binance does. Decimals are parsed exactly (-1100 for bad syntax, -1111 for too many
decimals); enums answer their own codes (-1115, -1116, -1117).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from ctrader.sim.orders import OrderRequest
from ctrader.venue import errors
from ctrader.venue.decimals import DecimalPrecisionError, DecimalSyntaxError, parse_units
from ctrader.venue.errors import BinanceError
from ctrader.venue.signing import param_text

INT_PATTERN = r"^-?[0-9]{1,20}$"
CLIENT_ID_PATTERN = r"^[a-zA-Z0-9-_]{1,36}$"
_INT_RE = re.compile(INT_PATTERN)
_CLIENT_ID_RE = re.compile(CLIENT_ID_PATTERN)

SIDES = ("BUY", "SELL")
ORDER_TYPES = ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT",
               "LIMIT_MAKER")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
RESP_TYPES = ("ACK", "RESULT", "FULL")
CANCEL_RESTRICTIONS = ("ONLY_NEW", "ONLY_PARTIALLY_FILLED")
# Accepted by the new-order endpoints; read (so no -1104) although the simulator has no use for them.
ORDER_PASSIVE_PARAMS = ("selfTradePreventionMode", "pegPriceType", "pegOffsetValue", "pegOffsetType")


class Params:
    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = {k: param_text(v) if v is not None else "" for k, v in items.items()}
        self._read: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return bool(self._items.get(name))

    def raw(self, name: str) -> str | None:
        self._read.add(name)
        value = self._items.get(name)
        return value if value else None    # empty means not sent, as Binance treats it

    def text(self, name: str, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None and required:
            raise errors.mandatory_missing(name)
        return value

    def integer(self, name: str, required: bool = False) -> int | None:
        value = self.text(name, required)
        if value is None:
            return None
        if not _INT_RE.match(value):
            raise errors.illegal_chars(name, INT_PATTERN)
        return int(value)

    def decimal(self, name: str, required: bool = False) -> int | None:
        """A decimal parameter in exact 1e-8 units."""
        value = self.text(name, required)
        if value is None:
            return None
        try:
            return parse_units(value)
        except DecimalSyntaxError:
            raise errors.illegal_chars(name) from None
        except DecimalPrecisionError:
            raise errors.too_much_precision(name) from None

    def enum(self, name: str, choices: tuple[str, ...], invalid: Callable[[], BinanceError],
             required: bool = False) -> str | None:
        value = self.text(name, required)
        if value is not None and value not in choices:
            raise invalid()
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            raise errors.illegal_chars(name, "true, false")
        return value.lower() == "true"

    def read(self, *names: str) -> None:
        """Mark parameters as read that an endpoint accepts but does not use."""
        self._read.update(names)

    def check_all_read(self) -> None:
        sent = set(self._items)
        unread = sent - self._read
        if unread:
            raise errors.unread_params(len(sent - unread), len(sent))


def parse_order(p: Params, symbols: Mapping[str, Any]) -> OrderRequest:
    """A new-order request's parameters, with Binance's parameter errors (not its filters)."""
    symbol = p.text("symbol", required=True)
    if symbol not in symbols:
        raise errors.bad_symbol()
    side = p.enum("side", SIDES, errors.invalid_side, required=True)
    order_type = p.enum("type", ORDER_TYPES, errors.invalid_order_type, required=True)
    tif = p.enum("timeInForce", TIME_IN_FORCE, errors.invalid_tif)
    quantity = p.decimal("quantity")
    quote_qty = p.decimal("quoteOrderQty")
    price = p.decimal("price")
    client_id = p.text("newClientOrderId")
    if client_id is not None and not _CLIENT_ID_RE.match(client_id):
        raise errors.illegal_chars("newClientOrderId", CLIENT_ID_PATTERN)
    resp_type = p.enum("newOrderRespType", RESP_TYPES, lambda: errors.illegal_chars("newOrderRespType",
                                                                                      ", ".join(RESP_TYPES)))
    strategy_id = p.integer("strategyId")
    strategy_type = p.integer("strategyType")
    if strategy_type is not None and strategy_type < 1_000_000:
        raise BinanceError(-1134, "`strategyType` was less than 1000000.")
    p.read(*ORDER_PASSIVE_PARAMS)
    if "icebergQty" in p:
        p.read("icebergQty")
        raise errors.new_order_rejected(errors.ICEBERG_UNSUPPORTED)
    if "stopPrice" in p or "trailingDelta" in p:
        p.read("stopPrice", "trailingDelta")
        if order_type in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise errors.param_not_required("stopPrice" if "stopPrice" in p else "trailingDelta")

    if order_type == "LIMIT":
        for name, value in (("timeInForce", tif), ("quantity", quantity), ("price", price)):
            if value is None:
                raise errors.mandatory_missing(name)
        if quote_qty is not None:
            raise errors.param_not_required("quoteOrderQty")
    elif order_type == "LIMIT_MAKER":
        for name, value in (("quantity", quantity), ("price", price)):
            if value is None:
                raise errors.mandatory_missing(name)
        if tif is not None:
            raise errors.param_not_required("timeInForce")
        if quote_qty is not None:
            raise errors.param_not_required("quoteOrderQty")
    elif order_type == "MARKET":
        if quantity is None and quote_qty is None:
            raise errors.one_of_mandatory("quantity", "quoteOrderQty")
        if quantity is not None and quote_qty is not None:
            raise errors.param_not_required("quoteOrderQty")
        if price is not None:
            raise errors.param_not_required("price")
        if tif is not None:
            raise errors.param_not_required("timeInForce")
    default_resp = "FULL" if order_type in ("LIMIT", "MARKET") else "ACK"
    return OrderRequest(symbol=symbol, side=side, type=order_type, time_in_force=tif, quantity=quantity,
                        quote_order_qty=quote_qty, price=price, client_order_id=client_id,
                        resp_type=resp_type or default_resp, strategy_id=strategy_id, strategy_type=strategy_type)


def cancel_restriction(p: Params, name: str = "cancelRestrictions") -> str | None:
    """``cancelRestrictions``: cancel only a NEW or only a PARTIALLY_FILLED order (-1145 otherwise)."""
    return p.enum(name, CANCEL_RESTRICTIONS,
                  lambda: BinanceError(-1145, "`cancelRestrictions` has to be either `ONLY_NEW` or "
                                              "`ONLY_PARTIALLY_FILLED`."))
