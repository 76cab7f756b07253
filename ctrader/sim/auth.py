"""Checks of SIGNED requests: API key, timestamp inside recvWindow, signature.

Binance's timing rule (rest-api.md -> Timing security)::

    if (timestamp < serverTime + 1000 && serverTime - timestamp <= recvWindow) process else reject

``timestamp`` may be milliseconds or microseconds; ``recvWindow`` defaults to 5000, allows three
decimals (microseconds) and may not exceed 60000. The signature payload is built by the
transport (REST: raw query + raw body; WS API: sorted params) and verified against the key's
HMAC secret or Ed25519 public key.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ctrader.sim.accounts import AccountRegistry, ApiKey
from ctrader.sim.clock import SimClock
from ctrader.sim.params import Params
from ctrader.venue import errors

DEFAULT_RECV_WINDOW_MS = Decimal(5000)
MAX_RECV_WINDOW_MS = Decimal(60000)
MICROSECOND_THRESHOLD = 10 ** 14      # a timestamp this large is in microseconds


class Authenticator:
    def __init__(self, accounts: AccountRegistry, clock: SimClock) -> None:
        self.accounts = accounts
        self.clock = clock

    def key(self, api_key: str | None) -> ApiKey:
        if not api_key:
            raise errors.bad_api_key_format()
        key = self.accounts.key(api_key)
        if key is None:
            raise errors.rejected_api_key()
        return key

    def check_timestamp(self, p: Params) -> None:
        timestamp = p.integer("timestamp", required=True)
        recv_text = p.text("recvWindow")
        if recv_text is None:
            recv_window = DEFAULT_RECV_WINDOW_MS
        else:
            try:
                recv_window = Decimal(recv_text)
            except InvalidOperation:
                raise errors.illegal_chars("recvWindow", r"^[0-9]{1,20}(\.[0-9]{1,3})?$") from None
            if recv_window.as_tuple().exponent < -3 or recv_window < 0:
                raise errors.illegal_chars("recvWindow", r"^[0-9]{1,20}(\.[0-9]{1,3})?$")
            if recv_window > MAX_RECV_WINDOW_MS:
                raise errors.bad_recv_window()
        ts_ms = Decimal(timestamp) / 1000 if timestamp >= MICROSECOND_THRESHOLD else Decimal(timestamp)
        now_ms = Decimal(self.clock.server_us()) / 1000
        if ts_ms >= now_ms + 1000:
            raise errors.timestamp_ahead()
        if now_ms - ts_ms > recv_window:
            raise errors.timestamp_outside_recv_window()

    @staticmethod
    def check_signature(key: ApiKey, payload: bytes, signature: str | None) -> None:
        if not signature:
            raise errors.mandatory_missing("signature")
        if not key.verify(payload, signature):
            raise errors.invalid_signature()
