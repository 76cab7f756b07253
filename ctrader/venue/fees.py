"""Commission math (``faqs/commission_faq.md``): commission = received amount x rate.

The received amount is the base quantity for a BUY and the quote amount for a SELL, and the
commission is taken from it, in that asset. Rates and amounts are exact 1e-8 units; the
commission is rounded up to the 8th decimal (Binance does not document its rounding; rounding
in the venue's favour never lets a paper fill look better than the venue's).
"""
from __future__ import annotations

from decimal import Decimal

from ctrader.venue.decimals import ONE, parse_units, quote_amount


def rate_units(rate: float | str) -> int:
    """A commission rate (0.001 = 0.1%) as exact units; a float is read by its shortest repr."""
    return parse_units(format(Decimal(repr(rate) if isinstance(rate, float) else rate), "f"))


def commission(received_units: int, rate: int) -> int:
    """Commission on ``received_units`` at ``rate`` (both units), rounded up to 1e-8."""
    return -(-received_units * rate // ONE)


def received_amounts(side: str, price: int, qty: int, rate: int) -> tuple[int, int, int]:
    """(quote amount, commission, net received) for one fill of ``qty`` at ``price`` on ``side``."""
    quote = quote_amount(price, qty)
    gross = qty if side == "BUY" else quote
    fee = commission(gross, rate)
    return quote, fee, gross - fee


def bps(rate: int) -> int:
    """A rate in basis points, as in /api/v3/account ``makerCommission`` (0.001 -> 10)."""
    return rate * 10_000 // ONE
