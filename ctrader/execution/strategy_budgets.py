"""Each strategy's budget inside the global risk limits (``[risk.per_strategy]``).

With several strategies in one session (``[strategy] names``) the executor gates every new
group twice: against the strategy's own budget here, then against the global limits
(``risk.RiskGate``). A strategy over its budget is refused with a reason of its own
(``RefusalReason.STRATEGY_*``), whole group at once, while the others keep trading:

    budgets = StrategyBudgets.from_config(cfg.risk, orders_per_10s=40)
    reason = budgets.check(strategy_id, legs, now_ns, open_orders, valuer, accounting)

The budget of a strategy: the notional of its open orders (the group's own legs included), its
open orders, its share of the 10 s order budget, and the loss its fills made today (valued at the
current mids, as the global daily loss is). A strategy not named has the global limits alone.
Unwind orders (closing what a broken group left) are never refused here: they reduce risk.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from ctrader.core.records import STRATEGY_IDS, OrderType, RefusalReason
from ctrader.venue.decimals import ONE

WINDOW_NS = 10_000_000_000          # the order budget's window (Binance ORDERS: 10 s)
_MARKET = int(OrderType.MARKET)


@dataclass(frozen=True)
class StrategyBudget:
    strategy_id: int
    name: str
    max_open_notional: float = math.inf
    max_open_orders: int = 1 << 30
    orders_per_10s: int = 1 << 30       # its share of risk.orders_per_10s, as a count
    daily_loss_limit: float = math.inf


def _named_amounts(items, what: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, amount = item.partition("=")
        name = name.strip()
        if name not in STRATEGY_IDS:
            raise ValueError(f"risk.per_strategy.{what}: unknown strategy {name!r}; known: {', '.join(STRATEGY_IDS)}")
        out[name] = float(amount)
    return out


class StrategyBudgets:
    """Per-strategy budgets and what each strategy has used of them."""

    def __init__(self, budgets: list[StrategyBudget]) -> None:
        self.budgets = {b.strategy_id: b for b in budgets}
        self._sent: dict[int, deque[int]] = {b.strategy_id: deque() for b in budgets}
        self._day = -1
        self._day_start: dict[int, float] = {}
        self.refusals: dict[str, dict[str, int]] = {}       # strategy -> reason -> count

    @classmethod
    def from_config(cls, risk_cfg: Any, orders_per_10s: int) -> StrategyBudgets:
        per = getattr(risk_cfg, "per_strategy", None)
        if per is None:
            return cls([])
        notional = _named_amounts(per.max_open_notional, "max_open_notional")
        open_orders = _named_amounts(per.max_open_orders, "max_open_orders")
        share = _named_amounts(per.order_share_pct, "order_share_pct")
        loss = _named_amounts(per.daily_loss_limit, "daily_loss_limit")
        budgets = []
        for name in sorted(set(notional) | set(open_orders) | set(share) | set(loss)):
            budgets.append(StrategyBudget(
                strategy_id=STRATEGY_IDS[name], name=name,
                max_open_notional=notional.get(name, math.inf),
                max_open_orders=int(open_orders[name]) if name in open_orders else 1 << 30,
                orders_per_10s=int(orders_per_10s * share[name] / 100.0) if name in share else 1 << 30,
                daily_loss_limit=loss.get(name, math.inf)))
        return cls(budgets)

    def __bool__(self) -> bool:
        return bool(self.budgets)

    def applies(self, strategy_id: int) -> bool:
        return strategy_id in self.budgets

    def check(self, strategy_id: int, legs: list[Any], now_ns: int, open_orders: list[Any], valuer: Any,
              accounting: Any, day: int) -> RefusalReason:
        """The first budget the new ``legs`` (``orders.Order``, one group's) would break, or NONE.
        ``open_orders``: every open order of the executor (those of this strategy count)."""
        b = self.budgets.get(strategy_id)
        if b is None:
            return RefusalReason.NONE
        mine = [o for o in open_orders if o.strategy_id == strategy_id]
        if len(mine) + len(legs) > b.max_open_orders:
            return self._refused(b, RefusalReason.STRATEGY_OPEN_ORDERS)
        if math.isfinite(b.max_open_notional):
            used = sum(self._notional(o, valuer) for o in mine) + sum(self._notional(o, valuer) for o in legs)
            if not used <= b.max_open_notional:       # nan (no price) refuses too: unknown exposure
                return self._refused(b, RefusalReason.STRATEGY_NOTIONAL)
        sent = self._sent[strategy_id]
        while sent and now_ns - sent[0] >= WINDOW_NS:
            sent.popleft()
        if len(sent) + len(legs) > b.orders_per_10s:
            return self._refused(b, RefusalReason.STRATEGY_RATE)
        if math.isfinite(b.daily_loss_limit) and self.daily_pnl(strategy_id, valuer, accounting, day) < -b.daily_loss_limit:
            return self._refused(b, RefusalReason.STRATEGY_DAILY_LOSS)
        return RefusalReason.NONE

    def on_admitted(self, strategy_id: int, now_ns: int, count: int = 1) -> None:
        """Orders of the strategy passed both gates: they use its share of the order budget."""
        sent = self._sent.get(strategy_id)
        if sent is not None:
            sent.extend([now_ns] * count)

    def daily_pnl(self, strategy_id: int, valuer: Any, accounting: Any, day: int) -> float:
        """What the strategy's fills made since the first look of UTC ``day`` (nan: unpriced)."""
        if day != self._day:
            self._day = day
            self._day_start = {sid: accounting.strategy_pnl(sid, valuer) for sid in self.budgets}
        now = accounting.strategy_pnl(strategy_id, valuer)
        return now - self._day_start.get(strategy_id, 0.0)

    def _refused(self, b: StrategyBudget, reason: RefusalReason) -> RefusalReason:
        counts = self.refusals.setdefault(b.name, {})
        counts[reason.name] = counts.get(reason.name, 0) + 1
        return reason

    @staticmethod
    def _notional(order: Any, valuer: Any) -> float:
        """The unfilled part of ``order`` in the valuation asset (a MARKET order at the mid)."""
        info = valuer.universe.symbols[order.symbol_id]
        px = order.price / ONE if order.order_type != _MARKET else valuer.mid(order.symbol_id)
        return px * (order.qty - order.cum_qty) / ONE * valuer.price(info.quote_id)

    def usage(self, open_orders: list[Any], valuer: Any, now_ns: int) -> dict[str, dict]:
        """Each budgeted strategy's use of its budget now (stats, the monitor)."""
        out = {}
        for sid, b in self.budgets.items():
            mine = [o for o in open_orders if o.strategy_id == sid]
            sent = self._sent[sid]
            out[b.name] = {"open_orders": len(mine), "max_open_orders": b.max_open_orders if b.max_open_orders < 1 << 30 else None,
                           "open_notional": sum(self._notional(o, valuer) for o in mine),
                           "max_open_notional": b.max_open_notional if math.isfinite(b.max_open_notional) else None,
                           "orders_10s": sum(1 for t in sent if now_ns - t < WINDOW_NS),
                           "orders_per_10s": b.orders_per_10s if b.orders_per_10s < 1 << 30 else None,
                           "daily_loss_limit": b.daily_loss_limit if math.isfinite(b.daily_loss_limit) else None,
                           "refusals": dict(self.refusals.get(b.name, {}))}
        return out


__all__ = ["StrategyBudget", "StrategyBudgets"]
