"""One symbol's order book: price levels with FIFO queues where users' orders rest.

Most liquidity belongs to the market model and is anonymous: a level is just a total quantity.
When a user's order rests at a price, that level also keeps a FIFO queue of
``[order, qty]`` entries (``None`` = anonymous liquidity) so that fills respect price-time
priority: liquidity already at the level trades before the user's order, liquidity added
later trades after it. The model only ever adds or cancels anonymous quantity; users' orders
leave a level by trading or by being canceled.

Every change records the touched price in ``side.touched``; ``MatchingEngine.commit`` turns the
touched prices of one event into one book update (one ``update_id``) for the streams.
Prices and quantities are integer 1e-8 units.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any, Iterator


class BookSide:
    __slots__ = ("is_bid", "levels", "prices", "queues", "touched")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.levels: dict[int, int] = {}            # price -> total quantity
        self.prices: list[int] = []                 # ascending, for both sides
        self.queues: dict[int, list[list]] = {}     # price -> [[order | None, qty], ...] where users rest
        self.touched: set[int] = set()

    def __len__(self) -> int:
        return len(self.prices)

    def best(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.is_bid else self.prices[0]

    def worst(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[0] if self.is_bid else self.prices[-1]

    def price_at(self, rank: int) -> int:
        """The price ``rank`` levels away from the best (0 = best)."""
        return self.prices[-1 - rank] if self.is_bid else self.prices[rank]

    def best_first(self) -> Iterator[int]:
        return reversed(self.prices) if self.is_bid else iter(self.prices)

    def top(self, n: int) -> list[tuple[int, int]]:
        prices = self.prices[-n:][::-1] if self.is_bid else self.prices[:n]
        levels = self.levels
        return [(p, levels[p]) for p in prices]

    def anonymous_qty(self, price: int) -> int:
        queue = self.queues.get(price)
        if queue is None:
            return self.levels.get(price, 0)
        return sum(q for owner, q in queue if owner is None)

    def has_orders(self, price: int) -> bool:
        return price in self.queues

    # --- changes ------------------------------------------------------------------------------

    def _set(self, price: int, qty: int) -> None:
        self.touched.add(price)
        if qty > 0:
            self.levels[price] = qty
            return
        del self.levels[price]
        del self.prices[bisect_left(self.prices, price)]
        self.queues.pop(price, None)

    def add(self, price: int, qty: int, order: Any = None) -> None:
        """Add ``qty`` at ``price``: anonymous liquidity, or a user's order at the back of the queue."""
        total = self.levels.get(price)
        if total is None:
            insort(self.prices, price)
            total = 0
        queue = self.queues.get(price)
        if order is not None:
            if queue is None:
                queue = self.queues[price] = [[None, total]] if total else []
            queue.append([order, qty])
        elif queue is not None:
            if queue and queue[-1][0] is None:
                queue[-1][1] += qty
            else:
                queue.append([None, qty])
        self.levels[price] = total + qty
        self.touched.add(price)

    def cancel_anonymous(self, price: int, qty: int) -> int:
        """Remove up to ``qty`` of anonymous liquidity at ``price``, newest first; returns how much."""
        total = self.levels.get(price, 0)
        if not total or qty <= 0:
            return 0
        queue = self.queues.get(price)
        if queue is None:
            cut = min(qty, total)
        else:
            cut = 0
            for entry in reversed(queue):
                if entry[0] is None and cut < qty:
                    c = min(entry[1], qty - cut)
                    entry[1] -= c
                    cut += c
            queue[:] = [e for e in queue if e[1] > 0]
        self._set(price, total - cut)
        return cut

    def remove_order(self, price: int, order: Any) -> int:
        """Take a user's order off the level (cancel); returns the quantity it had left."""
        queue = self.queues[price]
        for i, entry in enumerate(queue):
            if entry[0] is order:
                del queue[i]
                break
        else:
            raise KeyError(f"order not at {price}")
        if all(owner is None for owner, _ in queue):
            del self.queues[price]
        self._set(price, self.levels[price] - entry[1])
        return entry[1]

    def take(self, price: int, qty: int) -> list[tuple[Any, int]]:
        """Trade up to ``qty`` at ``price`` in FIFO order: [(maker order or None, qty), ...]."""
        total = self.levels[price]
        queue = self.queues.get(price)
        if queue is None:
            taken = min(qty, total)
            self._set(price, total - taken)
            return [(None, taken)]
        fills = []
        remaining = qty
        while queue and remaining:
            entry = queue[0]
            c = min(entry[1], remaining)
            entry[1] -= c
            remaining -= c
            fills.append((entry[0], c))
            if entry[1] == 0:
                queue.pop(0)
        if all(owner is None for owner, _ in queue):
            self.queues.pop(price, None)
        self._set(price, total - (qty - remaining))
        return fills


class Book:
    __slots__ = ("symbol", "bids", "asks", "update_id")

    def __init__(self, symbol: str, update_id: int = 0) -> None:
        self.symbol = symbol
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.update_id = update_id

    def side(self, is_bid: bool) -> BookSide:
        return self.bids if is_bid else self.asks

    def top(self) -> tuple[int, int, int, int]:
        """(best bid, its qty, best ask, its qty); 0 for an empty side."""
        b = self.bids.prices[-1] if self.bids.prices else 0
        a = self.asks.prices[0] if self.asks.prices else 0
        return b, self.bids.levels.get(b, 0), a, self.asks.levels.get(a, 0)

    def snapshot(self, limit: int | None = None) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """(update_id, bids best first, asks best first), at most ``limit`` levels a side."""
        n = limit if limit is not None else max(len(self.bids), len(self.asks))
        return self.update_id, self.bids.top(n), self.asks.top(n)

    def mid(self) -> int | None:
        b, a = self.bids.best(), self.asks.best()
        if b is None or a is None:
            return b or a
        return (b + a) // 2
