"""What an order reserves from the account's free balance, as Binance checks it on arrival.

A LIMIT (or LIMIT_MAKER) BUY locks price x quantity of the quote asset, rounded up; a SELL locks
its quantity of the base asset; a MARKET BUY locks what walking the book would cost now. An
order whose reserve exceeds the free balance is refused with -2010 "Account has insufficient
balance for requested action." The simulator and the paper account both apply this rule.

    asset, amount = reserve("BUY", "LIMIT", price=6_500_000_000_000, qty=100_000, base="BTC", quote="USDT",
                            market_buy_cost=lambda: 0)
"""
from __future__ import annotations

from collections.abc import Callable

from ctrader.venue.decimals import ONE


def reserve(side: str, order_type: str, price: int, qty: int, base: str, quote: str,
            market_buy_cost: Callable[[], int]) -> tuple[str, int]:
    """(asset, amount in 1e-8 units) that the order locks while it is open."""
    if side == "BUY":
        if order_type == "MARKET":
            return quote, market_buy_cost()
        return quote, -(-price * qty // ONE)
    return base, qty


__all__ = ["reserve"]
