"""The matching engine: users' orders against the simulated books, with balances and fees.

One engine owns every book. Two kinds of participants trade on them:

* users (accounts with API keys): MARKET, LIMIT (GTC/IOC/FOK) and LIMIT_MAKER orders. Funds are
  reserved when an order is accepted, taker orders walk the book level by level (and move it),
  the remainder of a GTC order rests in the level's FIFO queue, fills settle both sides with
  maker/taker commission taken in the received asset;
* the market model: anonymous liquidity it adds and cancels directly on the books, and anonymous
  market orders (``anonymous_market``, ``sweep_level``) that also fill users' resting orders.

Every change ends with ``commit(book)``: the touched levels become one book update (one
``update_id``) for the market-data sinks, and changed balances become one
``outboundAccountPosition`` per account for the user sinks. Filters and parameter checks happen
before the engine is called (``ctrader.sim.api``); the engine raises only what the matching
engine itself decides (-2010, -2011, -2013).
"""
from __future__ import annotations

import random
import string
from typing import Callable, Protocol

from ctrader.sim.accounts import Account, AccountRegistry
from ctrader.sim.book import Book, BookSide
from ctrader.sim.clock import SimClock
from ctrader.sim.orders import (CANCELED, EXPIRED, FILLED, NEW, PARTIALLY_FILLED, Fill, Order, OrderRequest,
                                TradeRecord)
from ctrader.sim.universe import SymbolSpec, Universe
from ctrader.venue import errors
from ctrader.venue.decimals import ONE, quote_amount
from ctrader.venue.fees import commission


class MarketSink(Protocol):
    def book_update(self, book: Book, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None: ...

    def trade(self, symbol: str, trade_id: int, price: int, qty: int, buyer_is_maker: bool,
              time_ms: int) -> None: ...


class UserSink(Protocol):
    def execution_report(self, order: Order, exec_type: str, fill: Fill | None, time_ms: int,
                         cancel_client_id: str | None = None) -> None: ...

    def account_position(self, account: Account, assets: list[str], time_ms: int) -> None: ...


class PriceStats:
    """Per-minute volume-weighted trade prices, for the average price filters refer to."""
    __slots__ = ("buckets", "last_price", "last_time")

    def __init__(self) -> None:
        self.buckets: dict[int, list[int]] = {}   # minute -> [sum price*qty, sum qty]
        self.last_price = 0
        self.last_time = 0

    def add(self, time_ms: int, price: int, qty: int) -> None:
        minute = time_ms // 60_000
        bucket = self.buckets.get(minute)
        if bucket is None:
            for old in [m for m in self.buckets if m < minute - 60]:
                del self.buckets[old]
            bucket = self.buckets[minute] = [0, 0]
        bucket[0] += price * qty
        bucket[1] += qty
        self.last_price = price
        self.last_time = time_ms

    def average(self, now_ms: int, mins: int) -> int | None:
        """VWAP over the last ``mins`` minutes (the current one included); last price if ``mins`` is 0."""
        if mins <= 0:
            return self.last_price or None
        first = now_ms // 60_000 - mins + 1
        pq = q = 0
        for minute, (bpq, bq) in self.buckets.items():
            if minute >= first:
                pq += bpq
                q += bq
        return pq // q if q else (self.last_price or None)


_ID_ALPHABET = string.ascii_letters + string.digits


class MatchingEngine:
    def __init__(self, universe: Universe, accounts: AccountRegistry, clock: SimClock, seed: int = 0) -> None:
        self.universe = universe
        self.accounts = accounts
        self.clock = clock
        self.specs: dict[str, SymbolSpec] = universe.by_name
        self.books: dict[str, Book] = {s.symbol: Book(s.symbol) for s in universe.symbols}
        self.stats: dict[str, PriceStats] = {s.symbol: PriceStats() for s in universe.symbols}
        self.market_sinks: list[MarketSink] = []
        self.user_sinks: list[UserSink] = []
        self.first_fill_hooks: list[Callable[[Account], None]] = []
        self._trade_ids = {s.symbol: 0 for s in universe.symbols}
        self._order_ids = {s.symbol: 0 for s in universe.symbols}
        self.orders: dict[tuple[str, int], Order] = {}                    # (symbol, orderId)
        self.open_orders: dict[Account, dict[tuple[str, int], Order]] = {}
        self.client_ids: dict[tuple[Account, str, str], Order] = {}       # latest order per client id
        self.trades: dict[Account, list[TradeRecord]] = {}
        self._touched: dict[Account, set[str]] = {}
        # Client order ids come from their own generator: user activity must not shift the
        # market model's random stream.
        self._ids = random.Random(seed ^ 0x5EED)

    # --- events -------------------------------------------------------------------------------

    def commit(self, book: Book) -> None:
        """End one event on ``book``: publish its touched levels as one update, flush balances."""
        bids, asks = book.bids, book.asks
        if bids.touched or asks.touched:
            book.update_id += 1
            bid_levels = [(p, bids.levels.get(p, 0)) for p in bids.touched]
            ask_levels = [(p, asks.levels.get(p, 0)) for p in asks.touched]
            bids.touched.clear()
            asks.touched.clear()
            for sink in self.market_sinks:
                sink.book_update(book, bid_levels, ask_levels)
        if self._touched:
            self._flush_positions()

    def _flush_positions(self) -> None:
        now = self.clock.server_ms()
        touched, self._touched = self._touched, {}
        for account, assets in touched.items():
            account.update_time = now
            for sink in self.user_sinks:
                sink.account_position(account, sorted(assets), now)

    def _report(self, order: Order, exec_type: str, fill: Fill | None = None,
                cancel_client_id: str | None = None) -> None:
        now = self.clock.server_ms()
        for sink in self.user_sinks:
            sink.execution_report(order, exec_type, fill, now, cancel_client_id)

    def _touch(self, account: Account, *assets: str) -> None:
        self._touched.setdefault(account, set()).update(assets)

    def reference_price(self, symbol: str) -> int | None:
        """The average price the PERCENT_PRICE and market NOTIONAL filters compare with."""
        spec = self.specs[symbol]
        avg = self.stats[symbol].average(self.clock.market_ms(), spec.rules.avg_price_mins)
        return avg if avg is not None else self.books[symbol].mid()

    # --- trades -------------------------------------------------------------------------------

    def _execute(self, book: Book, spec: SymbolSpec, price: int, qty: int, taker: Order | None,
                 maker: Order | None, taker_is_buy: bool) -> Fill | None:
        """One trade between a taker and a maker (either may be anonymous); returns the taker's fill."""
        symbol = book.symbol
        self._trade_ids[symbol] += 1
        trade_id = self._trade_ids[symbol]
        market_time = self.clock.market_ms()
        self.stats[symbol].add(market_time, price, qty)
        for sink in self.market_sinks:
            # buyer is the maker when the taker sells
            sink.trade(symbol, trade_id, price, qty, not taker_is_buy, market_time)
        quote = quote_amount(price, qty)
        if maker is not None:
            self._settle(maker, spec, price, qty, quote, True, trade_id)
        if taker is not None:
            return self._settle(taker, spec, price, qty, quote, False, trade_id)
        return None

    def _settle(self, order: Order, spec: SymbolSpec, price: int, qty: int, quote: int, is_maker: bool,
                trade_id: int) -> Fill:
        account = order.account
        rate = account.maker_rate if is_maker else account.taker_rate
        if order.side == "BUY":
            account.spend_locked(spec.quote, quote)
            order.locked -= quote
            fee, fee_asset = commission(qty, rate), spec.base
            account.credit(spec.base, qty - fee)
        else:
            account.spend_locked(spec.base, qty)
            order.locked -= qty
            fee, fee_asset = commission(quote, rate), spec.quote
            account.credit(spec.quote, quote - fee)
        self._touch(account, spec.base, spec.quote)
        now = self.clock.server_ms()
        order.executed_qty += qty
        order.cum_quote += quote
        order.update_time = now
        order.status = FILLED if order.orig_qty and order.executed_qty >= order.orig_qty else PARTIALLY_FILLED
        if not order.filled_once:
            order.filled_once = True
            for hook in self.first_fill_hooks:
                hook(account)
        fill = Fill(trade_id, price, qty, quote, fee, fee_asset, is_maker, now)
        self.trades.setdefault(account, []).append(TradeRecord(order.symbol, order, fill, order.side == "BUY"))
        self._report(order, "TRADE", fill)
        if is_maker and order.status == FILLED:
            self._close(order)
        return fill

    def _close(self, order: Order) -> None:
        """Order is done (filled, canceled, expired): release what it still reserves."""
        if order.locked:
            order.account.unlock(order.locked_asset, order.locked)
            self._touch(order.account, order.locked_asset)
            order.locked = 0
        order.is_working = False
        self.open_orders.get(order.account, {}).pop((order.symbol, order.order_id), None)

    # --- the market model's trading -------------------------------------------------------------

    def anonymous_market(self, book: Book, taker_is_buy: bool, qty: int, max_levels: int = 3) -> int:
        """An anonymous market order of ``qty`` (at most ``max_levels`` deep); returns the filled qty."""
        spec = self.specs[book.symbol]
        side = book.asks if taker_is_buy else book.bids
        remaining, levels = qty, 0
        while remaining > 0 and side.prices and levels < max_levels:
            price = side.best()
            take = min(remaining, side.levels[price])
            for maker, q in side.take(price, take):
                self._execute(book, spec, price, q, None, maker, taker_is_buy)
            remaining -= take
            levels += 1
        return qty - remaining

    def sweep_level(self, side: BookSide, book: Book, price: int) -> None:
        """The model pulls its liquidity at ``price``; users' orders left there are traded through
        by an anonymous taker (the fair value moved through them)."""
        side.cancel_anonymous(price, side.levels[price])
        if price in side.levels:
            spec = self.specs[book.symbol]
            for maker, q in side.take(price, side.levels[price]):
                self._execute(book, spec, price, q, None, maker, not side.is_bid)

    # --- users' orders ------------------------------------------------------------------------

    def _new_client_id(self) -> str:
        return "".join(self._ids.choice(_ID_ALPHABET) for _ in range(22))

    def _walk_cost(self, side: BookSide, is_buy: bool, limit: int | None, qty: int | None,
                   budget: int | None, step: int) -> tuple[int, int]:
        """(quantity, quote) a taker would trade walking ``side`` now, without trading."""
        filled = spent = 0
        for price in side.best_first():
            if limit is not None and (price > limit if is_buy else price < limit):
                break
            level = side.levels[price]
            if budget is not None:
                want = (budget - spent) * ONE // price // step * step
            else:
                want = qty - filled
            take = min(want, level)
            if take <= 0:
                break
            filled += take
            spent += quote_amount(price, take)
            if take < level:
                break
        return filled, spent

    def _reserve(self, spec: SymbolSpec, book: Book, req: OrderRequest) -> tuple[str, int]:
        """What the order must lock: (asset, amount)."""
        is_buy = req.side == "BUY"
        if req.type != "MARKET":
            if is_buy:
                return spec.quote, -(-req.price * req.quantity // ONE)
            return spec.base, req.quantity
        side = book.asks if is_buy else book.bids
        if req.quote_order_qty is not None:
            if is_buy:
                return spec.quote, req.quote_order_qty
            qty, _ = self._walk_cost(side, False, None, None, req.quote_order_qty, spec.step)
            return spec.base, qty
        if is_buy:
            _, cost = self._walk_cost(side, True, None, req.quantity, None, spec.step)
            return spec.quote, cost
        return spec.base, req.quantity

    def place(self, account: Account, req: OrderRequest) -> tuple[Order, list[Fill]]:
        """Accept, match and (for GTC/LIMIT_MAKER) rest a validated order."""
        spec = self.specs[req.symbol]
        book = self.books[req.symbol]
        is_buy = req.side == "BUY"
        opposite = book.asks if is_buy else book.bids
        if req.client_order_id:
            previous = self.client_ids.get((account, req.symbol, req.client_order_id))
            if previous is not None and previous.is_open:
                raise errors.new_order_rejected(errors.DUPLICATE_ORDER)
        best = opposite.best()
        if req.type == "LIMIT_MAKER" and best is not None and (best <= req.price if is_buy else best >= req.price):
            raise errors.new_order_rejected(errors.WOULD_TAKE)
        if req.type == "MARKET" and best is None:
            raise errors.new_order_rejected(errors.NO_LIQUIDITY)
        asset, amount = self._reserve(spec, book, req)
        if not account.lock(asset, amount):
            raise errors.new_order_rejected(errors.INSUFFICIENT_BALANCE)
        self._touch(account, asset)
        now = self.clock.server_ms()
        self._order_ids[req.symbol] += 1
        order = Order(
            symbol=req.symbol, order_id=self._order_ids[req.symbol],
            client_order_id=req.client_order_id or self._new_client_id(), account=account, side=req.side,
            type=req.type, time_in_force=req.time_in_force or "GTC", price=req.price or 0,
            orig_qty=req.quantity or 0, orig_quote_qty=req.quote_order_qty or 0, time=now,
            strategy_id=req.strategy_id, strategy_type=req.strategy_type, update_time=now, working_time=now,
            locked_asset=asset, locked=amount)
        self.orders[(order.symbol, order.order_id)] = order
        self.open_orders.setdefault(account, {})[(order.symbol, order.order_id)] = order
        self.client_ids[(account, order.symbol, order.client_order_id)] = order
        # A GTC limit order is working from acceptance (executionReport "w": true); a taker-only
        # order (MARKET, IOC, FOK) never is.
        order.is_working = req.type == "LIMIT_MAKER" or (req.type == "LIMIT" and req.time_in_force == "GTC")
        self._report(order, "NEW")

        fills: list[Fill] = []
        limit = req.price if req.type != "MARKET" else None
        if req.time_in_force == "FOK":
            fillable, _ = self._walk_cost(opposite, is_buy, limit, req.quantity, None, spec.step)
            if fillable < req.quantity:
                self._expire(order, "UNFILLED_FOK_ORDER_EXPIRED")
                self.commit(book)
                return order, fills
        book_ran_out = self._take(book, spec, order, opposite, is_buy, limit, req.quote_order_qty, fills)
        if order.status != FILLED:
            if req.type == "MARKET" and req.quote_order_qty is not None:
                order.orig_qty = order.executed_qty
                if order.executed_qty and not book_ran_out:
                    order.status = FILLED
                    self._close(order)
                else:
                    self._expire(order, "INSUFFICIENT_LIQUIDITY")
            elif req.type == "MARKET":
                self._expire(order, "INSUFFICIENT_LIQUIDITY")
            elif req.time_in_force in ("IOC", "FOK"):
                self._expire(order, "UNFILLED_IOC_QUANTITY_EXPIRED")
            else:
                self._rest(book, spec, order)
        else:
            self._close(order)
        self.commit(book)
        return order, fills

    def _take(self, book: Book, spec: SymbolSpec, order: Order, opposite: BookSide, is_buy: bool,
              limit: int | None, budget: int | None, fills: list[Fill]) -> bool:
        """Walk the opposite side for a user's taker order; True if the book ran out first."""
        step = spec.step
        while True:
            price = opposite.best()
            if price is None:
                return True
            if limit is not None and (price > limit if is_buy else price < limit):
                return False
            if budget is not None:
                want = (budget - order.cum_quote) * ONE // price // step * step
            else:
                want = order.remaining
            if want <= 0:
                return False
            take = min(want, opposite.levels[price])
            for maker, q in opposite.take(price, take):
                fills.append(self._execute(book, spec, price, q, order, maker, is_buy))
            if order.status == FILLED:
                return False

    def _rest(self, book: Book, spec: SymbolSpec, order: Order) -> None:
        side = book.bids if order.side == "BUY" else book.asks
        if order.side == "BUY":
            needed = -(-order.price * order.remaining // ONE)
            excess = order.locked - needed
            if excess > 0:   # a price improvement left more reserved than the rest needs
                order.account.unlock(spec.quote, excess)
                order.locked = needed
                self._touch(order.account, spec.quote)
        side.add(order.price, order.remaining, order)
        order.is_working = True

    def _expire(self, order: Order, reason: str) -> None:
        order.status = EXPIRED
        order.expiry_reason = reason
        order.update_time = self.clock.server_ms()
        self._close(order)
        self._report(order, "EXPIRED")

    def cancel(self, account: Account, symbol: str, order_id: int | None, orig_client_id: str | None,
               new_client_id: str | None = None) -> tuple[Order, str]:
        """Cancel an open order; returns it and the cancel's client id. -2011 if it is not open."""
        order = self.find(account, symbol, order_id, orig_client_id)
        if order is None or not order.is_open:
            raise errors.cancel_rejected()
        if order.is_working:
            book = self.books[symbol]
            book.side(order.side == "BUY").remove_order(order.price, order)
        order.status = CANCELED
        order.update_time = self.clock.server_ms()
        self._close(order)
        cancel_id = new_client_id or self._new_client_id()
        self._report(order, "CANCELED", cancel_client_id=cancel_id)
        self.commit(self.books[symbol])
        return order, cancel_id

    def find(self, account: Account, symbol: str, order_id: int | None, client_id: str | None) -> Order | None:
        if order_id is not None:
            order = self.orders.get((symbol, order_id))
            if order is None or order.account is not account:
                return None
            if client_id is not None and order.client_order_id != client_id:
                return None
            return order
        return self.client_ids.get((account, symbol, client_id))

    def query(self, account: Account, symbol: str, order_id: int | None, client_id: str | None) -> Order:
        order = self.find(account, symbol, order_id, client_id)
        if order is None:
            raise errors.no_such_order()
        return order

    def open_orders_of(self, account: Account, symbol: str | None = None) -> list[Order]:
        orders = self.open_orders.get(account, {}).values()
        return sorted((o for o in orders if symbol is None or o.symbol == symbol),
                      key=lambda o: (o.time, o.symbol, o.order_id))

    def trades_of(self, account: Account, symbol: str) -> list[TradeRecord]:
        return [t for t in self.trades.get(account, ()) if t.symbol == symbol]


__all__ = ["MatchingEngine", "MarketSink", "UserSink", "PriceStats", "NEW", "PARTIALLY_FILLED", "FILLED",
           "CANCELED", "EXPIRED"]
