"""Commission rates, for paper trading and replay: what each fill pays the venue.

``FeeModel`` is the seam: the rate for a maker or a taker fill, in exact 1e-8 units (0.1% is
100_000). ``FlatFees`` is the account's maker and taker rates (Binance's ``account.status``
``commissionRates``, or configured), with Binance's 25% discount when commission is paid in BNB.
The commission itself is computed by ``venue.fees`` (on the received asset, rounded up).

    fees = FlatFees(taker="0.001", maker="0.001", bnb_discount=True)
    fees.rate(is_maker=False)         # 75_000: 0.075%
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from ctrader.venue.fees import rate_units

BNB_DISCOUNT = (3, 4)        # paying commission in BNB: 25% off (Binance's spot fee schedule)


@runtime_checkable
class FeeModel(Protocol):
    def rate(self, is_maker: bool) -> int:
        """The commission rate of a fill, in 1e-8 units."""
        ...

    def describe(self) -> str:
        ...


class FlatFees:
    def __init__(self, taker: float | str = "0.001", maker: float | str = "0.001", bnb_discount: bool = False) -> None:
        num, den = BNB_DISCOUNT if bnb_discount else (1, 1)
        self.taker = rate_units(taker) * num // den
        self.maker = rate_units(maker) * num // den
        self.bnb_discount = bnb_discount

    def rate(self, is_maker: bool) -> int:
        return self.maker if is_maker else self.taker

    def describe(self) -> str:
        bnb = ", BNB discount" if self.bnb_discount else ""
        return f"maker {self.maker / 1e6:g}%, taker {self.taker / 1e6:g}%{bnb}"


__all__ = ["BNB_DISCOUNT", "FeeModel", "FlatFees"]
