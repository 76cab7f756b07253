"""Exact decimal numbers for prices and quantities: integers of 1e-8 ("units").

Binance Spot quotes every price, quantity and filter value with at most 8 decimals
(``baseAssetPrecision`` / ``quotePrecision`` are 8), so one fixed scale represents all of them
exactly: ``"0.00100000"`` is ``100_000`` units. Whether a price is on its tick is then an integer
``%``, never a float comparison, and the wire format is always a plain decimal string (never
``1e-05``).

    >>> parse_units("0.001")
    100000
    >>> format_units(100000)
    '0.00100000'
"""
from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

SCALE = 8
ONE = 10 ** SCALE

# The pattern Binance names in its -1100 message for malformed decimal parameters.
DECIMAL_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)


class DecimalSyntaxError(ValueError):
    """The text is not a plain non-negative decimal (Binance answers -1100)."""


class DecimalPrecisionError(ValueError):
    """The value has more significant decimals than the scale allows (Binance answers -1111)."""


def parse_units(text: str, scale: int = SCALE) -> int:
    """``text`` as an exact integer of 10**-scale; trailing zeros beyond the scale are allowed."""
    match = _DECIMAL_RE.match(text)
    if match is None:
        raise DecimalSyntaxError(text)
    whole, frac = match.group(1), (match.group(2) or ".")[1:].rstrip("0")
    if len(frac) > scale:
        raise DecimalPrecisionError(text)
    return int(whole) * 10 ** scale + (int(frac.ljust(scale, "0")) if frac else 0)


def format_units(units: int, scale: int = SCALE) -> str:
    """Fixed-point text with exactly ``scale`` decimals, as Binance prints it ("0.00100000")."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10 ** scale)
    return f"{sign}{whole}.{frac:0{scale}d}"


def decimals_of(units: int, scale: int = SCALE) -> int:
    """How many decimals a step or tick needs: 1000 units (0.00001) -> 5; 0 -> 0."""
    if units <= 0:
        return 0
    n = scale
    while n > 0 and units % 10 == 0:
        units //= 10
        n -= 1
    return n


def format_trimmed(units: int, decimals: int, scale: int = SCALE) -> str:
    """``units`` printed with ``decimals`` places ("0.01" for a tick of 0.01); exact, no rounding."""
    text = format_units(units, scale)
    return text[: len(text) - (scale - decimals)].rstrip(".") if decimals < scale else text


_ROUNDING = {"floor": ROUND_FLOOR, "ceil": ROUND_CEILING, "nearest": ROUND_HALF_EVEN}


def to_step(value: float | str | Decimal, step_units: int, mode: str = "floor") -> int:
    """A number rounded to a multiple of ``step_units`` (``mode`` floor | ceil | nearest), in units.

    A float is read by its shortest repr (0.3 is 0.3, not 0.299999...), so ``to_step(0.3, 10**7)``
    is exactly 0.3 and a float computed in the arbitrage math lands on the step it looks like.
    """
    if step_units <= 0:
        raise ValueError("step must be positive")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    steps = (number * ONE / step_units).to_integral_value(rounding=_ROUNDING[mode])
    return int(steps) * step_units


def units_to_float(units: int) -> float:
    return units / ONE


def quote_amount(price_units: int, qty_units: int) -> int:
    """price * quantity in units, rounded down to the 8th decimal (the quote precision)."""
    return price_units * qty_units // ONE
