"""Cancel-replace (``order.cancelReplace``, ``POST /api/v3/order/cancelReplace``): its parameters
and the shape of its answer. ``SimApi.cancel_replace`` runs it with the simulator's own cancel
and order-placement code.

Sources: binance/binance-spot-api-docs (commit a5e0bc3, 2026-07-21): ``web-socket-api.md`` ->
"Cancel and replace order (TRADE)", ``rest-api.md`` -> "Cancel an Existing Order and Send a New
Order (TRADE)" and "HTTP Return Codes" (409), ``errors.md`` (-2021, -2022, "Order cancel-replace
is not supported for this symbol." among the -2010 messages), ``CHANGELOG.md`` 2026-03-27
(successful order requests, cancelReplace included, weigh 0). What the simulator does:

* Parameters: those of a new order (``symbol``, ``side``, ``type``, ``timeInForce``, ``price``,
  ``quantity``, ``newClientOrderId``, ``newOrderRespType``, ...) plus ``cancelReplaceMode``
  (mandatory: ``STOP_ON_FAILURE`` | ``ALLOW_FAILURE``), ``cancelOrderId`` or
  ``cancelOrigClientOrderId`` (one is mandatory; with both, the order found by id must carry
  that client id), ``cancelNewClientOrderId`` (the cancel's own client id), ``cancelRestrictions``
  and ``orderRateLimitExceededMode`` (``DO_NOTHING`` by default | ``CANCEL_ONLY``).
* Before anything changes: the symbol must allow it (exchangeInfo ``cancelReplaceAllowed``, else
  -2010 "Order cancel-replace is not supported for this symbol."), then the new order's filters
  ("Filters and Order Count are evaluated before the processing of the cancellation and order
  placement occurs"): a failure is a plain error and the old order stays.
* Unfilled order count: +1 per request, also when the new order is not attempted. Over the
  limit, ``DO_NOTHING`` answers 429 -1015 and cancels nothing; ``CANCEL_ONLY`` cancels and
  reports the new order as failed with the -1015.
* ``STOP_ON_FAILURE``: a failed cancel means the new order is not attempted. ``ALLOW_FAILURE``:
  the new order is placed anyway. The two are not a transaction: a cancel that succeeded stays.
* The answer: both succeeded -> 200 ``{cancelResult, newOrderResult, cancelResponse,
  newOrderResponse}`` (``order.cancel``'s and ``order.place``'s formats); one failed -> 409
  -2021 "Order cancel-replace partially failed."; the cancel failed and the new order was not
  placed -> 400 -2022 "Order cancel-replace failed.". Both come with that same object in
  ``data``, a failed half as its ``{code, msg}``, ``NOT_ATTEMPTED`` as ``newOrderResponse: null``.
* The user data stream gets the executionReports of both halves (CANCELED, then NEW and any
  trades), as for ``order.cancel`` and ``order.place``.

DOC INCONSISTENCY: the docs' table gives status 429 for some ``CANCEL_ONLY`` rows over the
limit, while the example answer for that case is 409 -2021; the simulator follows the examples
(409 when one half succeeded, 400 when neither did).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ctrader.sim.orders import OrderRequest
from ctrader.sim.params import Params, cancel_restriction, parse_order
from ctrader.venue import errors
from ctrader.venue.errors import BinanceError

STOP_ON_FAILURE, ALLOW_FAILURE = "STOP_ON_FAILURE", "ALLOW_FAILURE"
DO_NOTHING, CANCEL_ONLY = "DO_NOTHING", "CANCEL_ONLY"
MODES = (STOP_ON_FAILURE, ALLOW_FAILURE)
RATE_LIMIT_MODES = (DO_NOTHING, CANCEL_ONLY)
SUCCESS, FAILURE, NOT_ATTEMPTED = "SUCCESS", "FAILURE", "NOT_ATTEMPTED"


@dataclass(frozen=True)
class CancelReplaceRequest:
    order: OrderRequest                 # the new order
    mode: str                           # STOP_ON_FAILURE | ALLOW_FAILURE
    rate_limit_mode: str                # DO_NOTHING | CANCEL_ONLY
    cancel_order_id: int | None
    cancel_client_id: str | None
    cancel_new_client_id: str | None
    cancel_restriction: str | None

    @property
    def stop_on_failure(self) -> bool:
        return self.mode == STOP_ON_FAILURE


def _enum_error(name: str, choices: tuple[str, ...]):
    return lambda: errors.illegal_chars(name, ", ".join(choices))


def parse_cancel_replace(p: Params, symbols: Mapping[str, Any]) -> CancelReplaceRequest:
    """A cancel-replace request's parameters, with Binance's parameter errors (not its filters)."""
    order = parse_order(p, symbols)
    mode = p.enum("cancelReplaceMode", MODES, _enum_error("cancelReplaceMode", MODES), required=True)
    rate_limit_mode = p.enum("orderRateLimitExceededMode", RATE_LIMIT_MODES,
                             _enum_error("orderRateLimitExceededMode", RATE_LIMIT_MODES))
    order_id = p.integer("cancelOrderId")
    client_id = p.text("cancelOrigClientOrderId")
    if order_id is None and client_id is None:
        raise errors.one_of_mandatory("cancelOrigClientOrderId", "cancelOrderId")
    return CancelReplaceRequest(order=order, mode=mode, rate_limit_mode=rate_limit_mode or DO_NOTHING,
                                cancel_order_id=order_id, cancel_client_id=client_id,
                                cancel_new_client_id=p.text("cancelNewClientOrderId"),
                                cancel_restriction=cancel_restriction(p))


def _half(outcome: dict | BinanceError | None) -> tuple[str, dict | None]:
    if outcome is None:
        return NOT_ATTEMPTED, None
    if isinstance(outcome, BinanceError):
        return FAILURE, {"code": outcome.code, "msg": outcome.msg}
    return SUCCESS, outcome


def outcome(cancel: dict | BinanceError, placed: dict | BinanceError | None) -> dict:
    """The answer for the cancel's outcome and the new order's (None: not attempted): the result
    when both succeeded, else the -2021 / -2022 error carrying both halves in ``data``."""
    cancel_result, cancel_response = _half(cancel)
    new_result, new_response = _half(placed)
    body = {"cancelResult": cancel_result, "newOrderResult": new_result,
            "cancelResponse": cancel_response, "newOrderResponse": new_response}
    if cancel_result == SUCCESS and new_result == SUCCESS:
        return body
    if SUCCESS in (cancel_result, new_result):
        raise errors.cancel_replace_partially_failed(body)
    raise errors.cancel_replace_failed(body)
