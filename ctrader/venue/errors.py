"""Binance Spot error codes and messages (``errors.md``), with the HTTP status each comes with.

The simulator raises these; the engine's REST/WS clients classify answers with
``execution_status_unknown``. Messages are Binance's own text so that a client's string matching
(ccxt matches "LOT_SIZE", "PRICE_FILTER", ...) behaves as against the real venue.
"""
from __future__ import annotations

from ctrader.venue.decimals import DECIMAL_PATTERN


class BinanceError(Exception):
    """A Binance ``{"code", "msg"}`` error; ``http_status`` is the REST status (also the WS API one)."""

    def __init__(self, code: int, msg: str, http_status: int = 400, retry_after_s: int | None = None,
                 data: dict | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.retry_after_s = retry_after_s   # for 429/418: seconds the client must wait
        self.data = data                     # error.data: cancel-replace outcomes; WS 429 serverTime/retryAfter

    def to_json(self) -> dict:
        doc = {"code": self.code, "msg": self.msg}
        if self.data is not None:
            doc["data"] = self.data
        return doc


RATE_LIMITED = (429, 418)      # too many requests / orders; IP banned (for sending after a 429)


def retry_after_s(http_status: int, header: str | None = None) -> float:
    """Seconds to wait after a 429/418: the ``Retry-After`` header (Binance always sends one),
    else 1 s for a 429 and 2 minutes, the shortest ban, for a 418."""
    try:
        return max(0.0, float(header)) if header else _DEFAULT_WAIT_S.get(http_status, 1.0)
    except ValueError:
        return _DEFAULT_WAIT_S.get(http_status, 1.0)


_DEFAULT_WAIT_S = {429: 1.0, 418: 120.0}


def execution_status_unknown(http_status: int, code: int | None) -> bool:
    """Binance: 5xx and -1006/-1007 mean the order may or may not have executed; reconcile."""
    return http_status >= 500 or code in (-1006, -1007)


# --- 10xx: server, network, limits ------------------------------------------------------------

def unknown() -> BinanceError:
    return BinanceError(-1000, "An unknown error occurred while processing the request.", 500)


def disconnected() -> BinanceError:
    return BinanceError(-1001, "Internal error; unable to process your request. Please try again.", 500)


def unauthorized() -> BinanceError:
    return BinanceError(-1002, "You are not authorized to execute this request.", 401)


def too_much_weight(limit: int, interval: str, retry_after_s: int) -> BinanceError:
    return BinanceError(-1003, f"Too much request weight used; current limit is {limit} request weight per "
                               f"{interval}. Please use WebSocket Streams for live updates to avoid polling the API.",
                        429, retry_after_s)


def too_many_requests(limit: int, interval: str, retry_after_s: int) -> BinanceError:
    return BinanceError(-1003, f"Too many requests; current limit of IP is {limit} requests per {interval}.",
                        429, retry_after_s)


def timeout() -> BinanceError:
    return BinanceError(-1007, "Timeout waiting for response from backend server. Send status unknown; "
                               "execution status unknown.", 503)


def server_busy() -> BinanceError:
    return BinanceError(-1008, "Server is currently overloaded with other requests. Please try again in a few "
                               "minutes.", 503)


def too_many_orders(limit: int, interval: str, retry_after_s: int) -> BinanceError:
    return BinanceError(-1015, f"Too many new orders; current limit is {limit} orders per {interval}.", 429,
                        retry_after_s)


def unsupported_operation() -> BinanceError:
    return BinanceError(-1020, "This operation is not supported.")


def timestamp_outside_recv_window() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def timestamp_ahead() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def invalid_signature() -> BinanceError:
    return BinanceError(-1022, "Signature for this request is not valid.")


# --- 11xx: request issues ---------------------------------------------------------------------

def illegal_chars(param: str, legal: str = DECIMAL_PATTERN) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{param}'; legal range is '{legal}'.")


def duplicate_param() -> BinanceError:
    return BinanceError(-1101, "Duplicate values for a parameter detected.")


def mandatory_missing(param: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def one_of_mandatory(first: str, second: str) -> BinanceError:
    return BinanceError(-1102, f"Param '{first}' or '{second}' must be sent, but both were empty/null!")


def value_too_large(param: str, maximum: str) -> BinanceError:
    return BinanceError(-1102, f"'{param}' contains unexpected value. Cannot be greater than '{maximum}'.")


def unread_params(read: int, sent: int) -> BinanceError:
    return BinanceError(-1104, f"Not all sent parameters were read; read '{read}' parameter(s) but was sent "
                               f"'{sent}'.")


def param_not_required(param: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{param}' sent when not required.")


def too_much_precision(param: str) -> BinanceError:
    return BinanceError(-1111, f"Parameter '{param}' has too much precision.")


def invalid_tif() -> BinanceError:
    return BinanceError(-1115, "Invalid timeInForce.")


def invalid_order_type() -> BinanceError:
    return BinanceError(-1116, "Invalid orderType.")


def invalid_side() -> BinanceError:
    return BinanceError(-1117, "Invalid side.")


def bad_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def invalid_param(param: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{param}' is not valid.")


def bad_recv_window() -> BinanceError:
    return BinanceError(-1131, "recvWindow must be less than 60000")


def invalid_json() -> BinanceError:
    return BinanceError(-1135, "Invalid JSON Request")


def filter_failure(filter_type: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {filter_type}")


# --- 20xx: matching engine and keys -----------------------------------------------------------

def new_order_rejected(msg: str) -> BinanceError:
    return BinanceError(-2010, msg)


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
MARKET_CLOSED = "Market is closed."
WOULD_TAKE = "Order would immediately match and take."
UNSUPPORTED_COMBINATION = "Unsupported order combination"
ICEBERG_UNSUPPORTED = "Iceberg orders are not supported for this symbol."
QUOTE_QTY_UNSUPPORTED = "Quote order qty market orders are not support for this symbol."
NO_LIQUIDITY = "Order book liquidity is less than symbol minimum quantity."
CANCEL_REPLACE_UNSUPPORTED = "Order cancel-replace is not supported for this symbol."
ORDER_TYPE_UNSUPPORTED = {
    "MARKET": "Market orders are not supported for this symbol.",
    "STOP_LOSS": "Stop loss orders are not supported for this symbol.",
    "STOP_LOSS_LIMIT": "Stop loss limit orders are not supported for this symbol.",
    "TAKE_PROFIT": "Take profit orders are not supported for this symbol.",
    "TAKE_PROFIT_LIMIT": "Take profit limit orders are not supported for this symbol.",
}


def cancel_rejected(msg: str = "Unknown order sent.") -> BinanceError:
    return BinanceError(-2011, msg)


def no_such_order() -> BinanceError:
    return BinanceError(-2013, "Order does not exist.")


def cancel_replace_partially_failed(data: dict) -> BinanceError:
    """One half of a cancel-replace failed (``data``: both halves); REST and the WS API answer 409."""
    return BinanceError(-2021, "Order cancel-replace partially failed.", 409, data=data)


def cancel_replace_failed(data: dict) -> BinanceError:
    """The cancel failed and the new order was not placed or failed too (``data``: both halves)."""
    return BinanceError(-2022, "Order cancel-replace failed.", 400, data=data)


def bad_api_key_format() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", 401)


def rejected_api_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def subscription_active() -> BinanceError:
    return BinanceError(-2035, "User Data Stream subscription already active.")


def subscription_inactive() -> BinanceError:
    return BinanceError(-2036, "User Data Stream subscription not active.")
