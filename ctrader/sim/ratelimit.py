"""REQUEST_WEIGHT, RAW_REQUESTS (per IP) and ORDERS (per account) limits, as Binance counts them.

Windows are calendar-aligned ("a 1 MINUTE interval starts every minute; 10 SECOND resets at 00,
10, 20... seconds", web-socket-api.md), on the simulator's server clock. REST and the WS API share
the per-IP weight. The ORDERS count is the *unfilled* order count: +1 for each accepted order,
-1 in every interval when an order fills for the first time (faqs/order_count_decrement.md).
Since 2026-04-02 successful order requests weigh 0 and failed ones the documented weight
(CHANGELOG 2026-03-27): the caller charges up front and ``refund``s on success.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from ctrader.config.schema import SimLimitsConfig
from ctrader.sim.clock import SimClock
from ctrader.venue import errors

INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
INTERVAL_LETTER = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}


@dataclass(frozen=True)
class Rule:
    kind: str            # REQUEST_WEIGHT | RAW_REQUESTS | ORDERS
    interval: str        # SECOND | MINUTE | HOUR | DAY
    interval_num: int
    limit: int

    @property
    def window_ms(self) -> int:
        return INTERVAL_MS[self.interval] * self.interval_num

    @property
    def suffix(self) -> str:
        """The header suffix: 1M, 10S, 1D."""
        return f"{self.interval_num}{INTERVAL_LETTER[self.interval]}"

    @property
    def per(self) -> str:
        return f"{self.interval_num} {self.interval}"


class WindowCounter:
    """Counts per key within the current calendar-aligned window of one rule."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._counts: dict[Hashable, tuple[int, int]] = {}

    def get(self, key: Hashable, now_ms: int) -> int:
        window = now_ms // self.rule.window_ms
        entry = self._counts.get(key)
        return entry[1] if entry is not None and entry[0] == window else 0

    def add(self, key: Hashable, n: int, now_ms: int) -> int:
        count = max(0, self.get(key, now_ms) + n)
        self._counts[key] = (now_ms // self.rule.window_ms, count)
        return count

    def retry_after_s(self, now_ms: int) -> int:
        window_ms = self.rule.window_ms
        return max(1, -(-(window_ms - now_ms % window_ms) // 1000))


class RateLimiter:
    def __init__(self, limits: SimLimitsConfig, clock: SimClock) -> None:
        self.clock = clock
        self.weight = [WindowCounter(Rule("REQUEST_WEIGHT", "MINUTE", 1, limits.request_weight_per_minute))]
        self.raw = [WindowCounter(Rule("RAW_REQUESTS", "MINUTE", 5, limits.raw_requests_per_5m))]
        self.orders = [WindowCounter(Rule("ORDERS", "SECOND", 10, limits.orders_per_10s)),
                       WindowCounter(Rule("ORDERS", "DAY", 1, limits.orders_per_day))]

    def charge(self, ip: str, weight: int) -> None:
        """Count one request of ``weight`` from ``ip``; 429 -1003 if a limit is now exceeded."""
        now = self.clock.server_ms()
        for counter in self.raw:
            if counter.add(ip, 1, now) > counter.rule.limit:
                raise errors.too_many_requests(counter.rule.limit, counter.rule.per, counter.retry_after_s(now))
        for counter in self.weight:
            if counter.add(ip, weight, now) > counter.rule.limit:
                raise errors.too_much_weight(counter.rule.limit, counter.rule.per, counter.retry_after_s(now))

    def refund(self, ip: str, weight: int) -> None:
        now = self.clock.server_ms()
        for counter in self.weight:
            counter.add(ip, -weight, now)

    def check_orders(self, account: Hashable) -> None:
        """429 -1015 if ``account`` may not place another order in some interval now."""
        now = self.clock.server_ms()
        for counter in self.orders:
            if counter.get(account, now) >= counter.rule.limit:
                raise errors.too_many_orders(counter.rule.limit, counter.rule.per, counter.retry_after_s(now))

    def count_order(self, account: Hashable) -> None:
        now = self.clock.server_ms()
        for counter in self.orders:
            counter.add(account, 1, now)

    def order_filled(self, account: Hashable) -> None:
        """An order filled for the first time: it no longer counts as unfilled."""
        now = self.clock.server_ms()
        for counter in self.orders:
            counter.add(account, -1, now)

    def weight_headers(self, ip: str) -> dict[str, str]:
        now = self.clock.server_ms()
        headers = {}
        for counter in self.weight:
            used = str(counter.get(ip, now))
            headers[f"X-MBX-USED-WEIGHT-{counter.rule.suffix}"] = used
            if counter.rule.interval == "MINUTE" and counter.rule.interval_num == 1:
                headers["X-MBX-USED-WEIGHT"] = used   # the legacy 1-minute header
        return headers

    def order_headers(self, account: Hashable) -> dict[str, str]:
        now = self.clock.server_ms()
        return {f"X-MBX-ORDER-COUNT-{c.rule.suffix}": str(c.get(account, now)) for c in self.orders}

    def rate_limits_json(self, ip: str, account: Hashable | None = None) -> list[dict]:
        """The WS API ``rateLimits`` array: ORDERS first when an account is involved, then weight."""
        now = self.clock.server_ms()
        counters = (self.orders if account is not None else []) + self.weight
        return [{"rateLimitType": c.rule.kind, "interval": c.rule.interval, "intervalNum": c.rule.interval_num,
                 "limit": c.rule.limit, "count": c.get(account if c.rule.kind == "ORDERS" else ip, now)}
                for c in counters]
