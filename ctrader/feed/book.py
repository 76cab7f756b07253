"""A local order book for one symbol: price levels kept sorted, best first, for fast top-N reads.

Binance sends every level as a pair of decimal strings; a level is keyed by the float of its
price string (equal strings give equal floats, so a level is always found again). Each side
keeps a dict price -> quantity and a sorted list of keys (bids negated so both lists are best
first); ``bisect`` inserts are a memmove on a few hundred floats, far cheaper than re-sorting.

    book = LocalBook()
    book.replace([["100.5", "2"]], [["100.6", "1"]])     # a REST snapshot
    book.apply_bids([["100.5", "0"], ["100.4", "3"]])     # a diff: qty 0 removes the level
    book.best_bid(), book.best_ask()                      # 100.4, 100.6
    n = book.top_bids(px_out, qty_out)                    # fill numpy rows with up to len(px_out) levels
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from ctrader._ext.feed_parse import apply_side, parse_levels_fast

Levels = Iterable[Sequence]   # [[price_str, qty_str], ...] as Binance sends them


class BadLevel(ValueError):
    """A price or quantity that is not a finite non-negative number (the frame is malformed)."""


def _level(pair: Sequence) -> tuple[float, float]:
    try:
        price = float(pair[0])
        qty = float(pair[1])
    except (TypeError, ValueError, IndexError):
        raise BadLevel(f"bad level {pair!r}") from None
    # NaN fails every comparison, so these checks also reject NaN; inf is rejected explicitly.
    if not (price > 0.0 and qty >= 0.0) or math.isinf(price) or math.isinf(qty):
        raise BadLevel(f"bad level {pair!r}")
    return price, qty


def parse_levels(levels: Levels) -> list[tuple[float, float]]:
    """Validate a whole side of an update before any of it is applied (all or nothing).

    Plain decimal strings (all Binance sends) are converted in C; anything else goes through
    ``float()`` here, which accepts what Python accepts and raises BadLevel for the rest.
    """
    fast = parse_levels_fast(levels)
    if fast is not None:
        return fast
    try:
        return [_level(pair) for pair in levels]
    except TypeError:
        raise BadLevel(f"bad levels {levels!r}") from None


class BookSide:
    """One side: ``qty[price]`` and ``keys`` sorted best first (bids store ``-price``)."""
    __slots__ = ("keys", "qty", "sign")

    def __init__(self, is_bid: bool) -> None:
        self.sign = -1.0 if is_bid else 1.0
        self.qty: dict[float, float] = {}
        self.keys: list[float] = []

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        self.qty.clear()
        self.keys.clear()

    def replace(self, levels: list[tuple[float, float]]) -> None:
        self.qty = {p: q for p, q in levels if q > 0.0}
        sign = self.sign
        self.keys = sorted(sign * p for p in self.qty)

    def apply(self, levels: list[tuple[float, float]]) -> None:
        """Set each level's quantity (validated floats from ``parse_levels``); 0 removes it."""
        apply_side(self.keys, self.qty, self.sign, levels)

    def apply_py(self, levels: list[tuple[float, float]]) -> None:
        """The same in Python (the reference the C version is tested against)."""
        qty, keys, sign = self.qty, self.keys, self.sign
        for price, q in levels:
            if q > 0.0:
                if price not in qty:
                    k = sign * price
                    keys.insert(bisect_left(keys, k), k)
                qty[price] = q
            elif price in qty:
                del qty[price]
                k = sign * price
                del keys[bisect_left(keys, k)]

    def best(self) -> float:
        return self.sign * self.keys[0] if self.keys else math.nan

    def top(self, px_out, qty_out) -> int:
        """Write up to ``len(px_out)`` levels best first; returns how many."""
        n = min(len(px_out), len(self.keys))
        sign, qty = self.sign, self.qty
        for i in range(n):
            p = sign * self.keys[i]
            px_out[i] = p
            qty_out[i] = qty[p]
        return n

    def levels(self, n: int | None = None) -> list[tuple[float, float]]:
        keys = self.keys if n is None else self.keys[:n]
        return [(self.sign * k, self.qty[self.sign * k]) for k in keys]


class LocalBook:
    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def replace(self, bids: Levels, asks: Levels) -> None:
        """Set the book to a snapshot (raises BadLevel, leaving the book unchanged)."""
        b, a = parse_levels(bids), parse_levels(asks)
        self.bids.replace(b)
        self.asks.replace(a)

    def apply(self, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> None:
        """Apply validated levels (``parse_levels``): set each level's quantity, 0 removes it."""
        self.bids.apply(bids)
        self.asks.apply(asks)

    def best_bid(self) -> float:
        return self.bids.best()

    def best_ask(self) -> float:
        return self.asks.best()

    def crossed(self) -> bool:
        """Best bid at or above best ask: the book cannot be right (a missed update)."""
        return bool(self.bids.keys) and bool(self.asks.keys) and self.bids.best() >= self.asks.best()
