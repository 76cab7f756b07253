"""Paper fills: orders matched against the locally kept books, deterministically.

``PaperFillModel`` is pure: it owns no clock, no thread and no I/O, so replay drives it exactly
as the executor does. An order submitted at ``t`` is due at ``t + latency``; it is matched
against the books with every market-data record received by then applied, and no later one:
the executor calls ``before_md(t)`` before it applies a record received at ``t`` (orders due
earlier match first) and ``on_book(symbol, t)`` after (orders due by ``t`` match). In a quiet
market the venue's ``poll`` matches an order once ``quiet_ns`` passed after its due time with no
later record (the feed may still be writing one received before it). Matching therefore
depends on the market data's receive times, never on when the executor's loop got round to it,
so a replay of the recorded data matches every order on the same book state as the session did.

Matching walks the visible levels of the opposite side best first, up to the LIMIT price (a
MARKET order to the end of the visible book), taking at most each level's quantity; what one
order took from a level stays taken until that symbol's book changes, so two orders never fill
against the same liquidity. IOC and MARKET remainders expire (exec kind CANCELED), FOK fills
whole or expires, a LIMIT_MAKER that would take is rejected (-2010) as on Binance. GTC
remainders and LIMIT_MAKER orders rest at the back of their price level: they fill as makers
when trades at their price have consumed the quantity ahead of them (``queue``: how cancelled
quantity ahead counts is the queue model's choice), or when the book moves through their price.
Commission is the fee model's rate on the received asset, rounded up to 1e-8 (``venue.fees``).

With an ``account`` (``paper_account.PaperAccount``) an arriving order locks its reserve from
the free balance (``venue.balances``) or is refused -2010 "insufficient balance", as Binance
refuses it; fills move balances, and an order that ends releases its lock. Without one the
balances are not modelled (benchmarks, tests of matching alone).

    model = PaperFillModel(books, universe, taker_rate=0.001, maker_rate=0.001, latency_ns=0)
    updates = model.submit(order, now_ns)        # orders.VenueUpdate list (empty while in flight)
    updates += model.on_book(symbol_id, now_ns)  # after books were updated from an md record
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctrader.core.records import MdKind, OrderType, Side, TimeInForce
from ctrader.execution.fee_model import FeeModel, FlatFees
from ctrader.execution.latency import LatencyModel
from ctrader.execution.match_points import RecordedMatch
from ctrader.execution.orders import (
    CANCELED,
    EXPIRED,
    FILLED,
    NEW,
    PARTIALLY_FILLED,
    REJECTED,
    Order,
    VenueUpdate,
)
from ctrader.execution.paper_account import PaperAccount
from ctrader.execution.queue import QueueModel, QueuePos, RiskAverseQueue
from ctrader.venue.balances import reserve
from ctrader.venue.decimals import ONE, quote_amount
from ctrader.venue.fees import received_amounts

WOULD_TAKE = -2010   # "Order would immediately match and take." (LIMIT_MAKER)
INSUFFICIENT_BALANCE = -2010   # "Account has insufficient balance for requested action."
CANCEL_REPLACE_FAILED = -2022   # "Order cancel-replace failed." (the new order was not attempted)


@dataclass
class _Working:
    order: Order
    due_ns: int
    order_id: int
    cum_qty: int = 0
    resting: bool = False
    queue: QueuePos | None = None     # resting: where it stands in its price level
    level_qty: int = 0                # resting: the level's visible quantity when last looked at
    queue_filled: int = 0             # resting: what the queue model let through so far


class PaperFillModel:
    def __init__(self, books: Any, universe: Any, taker_rate: float | str = 0.001,
                 maker_rate: float | str = 0.001, latency_ns: int = 0, account: PaperAccount | None = None,
                 fees: FeeModel | None = None, queue: QueueModel | None = None) -> None:
        self.books = books
        self.universe = universe
        self.account = account
        self.fees = fees or FlatFees(taker_rate, maker_rate)
        self.queue = queue or RiskAverseQueue()
        self.latency_ns = int(latency_ns)
        self.in_flight: list[_Working] = []          # submitted, not yet due (kept in due order)
        self.resting: dict[str, _Working] = {}       # GTC / LIMIT_MAKER orders on the book
        self._consumed: dict[int, dict[tuple[int, int], int]] = {}   # symbol -> (side, px) -> taken
        self._next_order_id = 1
        self._next_trade_id = 1
        # called with each order as it reaches the matching (a session logs where that was in
        # the market data: ``match_points``); None: nobody asks
        self.on_arrive: Callable[[Order], None] | None = None

    # --- orders in ------------------------------------------------------------------------------

    def submit(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        return self.submit_at(order, now_ns + self.latency_ns, now_ns)

    def submit_at(self, order: Order, due_ns: int, now_ns: int) -> list[VenueUpdate]:
        """``order`` reaches the venue at ``due_ns`` (replay: its own latency, not the model's)."""
        work = _Working(order, due_ns, self._next_order_id)
        self._next_order_id += 1
        self.in_flight.append(work)
        self.in_flight.sort(key=lambda w: w.due_ns)   # stable: equal due times keep submit order
        return self.advance(now_ns) if due_ns <= now_ns else []

    def next_due(self) -> int | None:
        """When the first order in flight reaches the venue (None: none in flight)."""
        return self.in_flight[0].due_ns if self.in_flight else None

    def cancel(self, client_order_id: str, now_ns: int) -> list[VenueUpdate]:
        """Cancel a resting or in-flight order (an in-flight one never reaches the book)."""
        work = self.resting.pop(client_order_id, None)
        if work is None:
            for i, w in enumerate(self.in_flight):
                if w.order.client_order_id == client_order_id:
                    work = self.in_flight.pop(i)
                    break
        if work is None:
            return []
        self._release(work)
        return [VenueUpdate(client_order_id, CANCELED, work.order_id, exch_ts_ms=now_ns // 1_000_000)]

    # --- time and books --------------------------------------------------------------------------

    def on_book(self, symbol_id: int, now_ns: int) -> list[VenueUpdate]:
        """After the books changed for ``symbol_id`` at ``now_ns``: its liquidity is fresh again,
        due orders match, and resting orders on that symbol fill if the book now crosses them."""
        self._consumed.pop(symbol_id, None)
        out = self.advance(now_ns)
        for work in [w for w in self.resting.values() if w.order.symbol_id == symbol_id]:
            if self._available(work):           # the book moved through its price
                out += self._match(work, now_ns, as_maker=True)
            else:
                after = self._level_qty(work)
                if after != work.level_qty:
                    self.queue.level_changed(work.queue, work.level_qty, after)
                    work.level_qty = after
        return out

    def on_trade(self, symbol_id: int, price: int, qty: int, buyer_maker: bool, now_ns: int) -> list[VenueUpdate]:
        """A market trade: resting orders passive on that side at that price move up their
        queue (and fill once the quantity ahead has traded); at a worse price than theirs, the
        trade went through them (price priority): it reaches them whole."""
        out: list[VenueUpdate] = []
        for work in [w for w in self.resting.values() if w.order.symbol_id == symbol_id]:
            o = work.order
            buy = o.side == Side.BUY
            if buy != buyer_maker:
                continue                          # the trade took the other side of the book
            if price == o.price:
                self.queue.traded(work.queue, qty)
                reached = self.queue.filled(work.queue) - work.queue_filled
            elif (price < o.price) if buy else (price > o.price):
                reached = qty
            else:
                continue
            if reached > 0:
                out += self._fill_resting(work, reached, now_ns)
        return out

    def quiet_prefix(self, recs: np.ndarray, n: int) -> int:
        """How many leading md records of ``recs[:n]`` would change nothing here but make their
        symbols' consumed liquidity fresh (no order due by then, none resting). That effect is
        taken now; the caller applies those records to the books in one call instead of
        calling ``on_book`` after each, with the same outcome."""
        if self.resting or n == 0:
            return 0
        k = n
        if self.in_flight:
            due = recs["recv_mono_ns"][:n] >= self.in_flight[0].due_ns
            if due.any():
                k = int(np.argmax(due))
        if k and self._consumed:
            sids = recs["symbol_id"][:k]
            fresh = sids[(recs["kind"][:k] != MdKind.TRADE) & (sids >= 0) & (sids < len(self.universe.symbols))]
            for sid in set(fresh.tolist()):
                self._consumed.pop(sid, None)
        return k

    def before_md(self, recv_ns: int) -> list[VenueUpdate]:
        """A market-data record received at ``recv_ns`` is about to change the books: orders
        that reached the venue before it match on the books as they are."""
        if self.in_flight and self.in_flight[0].due_ns < recv_ns:
            return self.advance(recv_ns - 1)
        return []

    def advance(self, now_ns: int) -> list[VenueUpdate]:
        """Match every order due by ``now_ns`` against the current books."""
        out: list[VenueUpdate] = []
        while self.in_flight and self.in_flight[0].due_ns <= now_ns:
            out += self._arrive(self.in_flight.pop(0), now_ns)
        return out

    # --- matching ------------------------------------------------------------------------------

    def _arrive(self, work: _Working, now_ns: int) -> list[VenueUpdate]:
        o = work.order
        if self.on_arrive is not None:
            self.on_arrive(o)
        if o.order_type == OrderType.LIMIT_MAKER and self._available(work):
            return [VenueUpdate(o.client_order_id, REJECTED, reject_code=WOULD_TAKE,
                                exch_ts_ms=now_ns // 1_000_000)]
        if self.account is not None and not self._lock(work):
            return [VenueUpdate(o.client_order_id, REJECTED, reject_code=INSUFFICIENT_BALANCE,
                                exch_ts_ms=now_ns // 1_000_000)]
        if o.order_type == OrderType.LIMIT_MAKER:
            return self._rest(work, now_ns)
        if o.tif == TimeInForce.FOK and sum(q for _, q in self._available(work)) < o.qty:
            self._release(work)
            return [VenueUpdate(o.client_order_id, EXPIRED, work.order_id, exch_ts_ms=now_ns // 1_000_000)]
        out = self._match(work, now_ns, as_maker=False)
        if work.cum_qty < o.qty:
            if o.order_type == OrderType.MARKET or o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._release(work)
                out.append(VenueUpdate(o.client_order_id, EXPIRED, work.order_id, exch_ts_ms=now_ns // 1_000_000))
            else:
                out += self._rest(work, now_ns, announce=not out)
        return out

    def _lock(self, work: _Working) -> bool:
        """Reserve what the order needs from the account's free balance (False: -2010)."""
        o = work.order
        info = self.universe.symbols[o.symbol_id]
        buy = o.side == Side.BUY

        def market_buy_cost() -> int:
            return sum(quote_amount(px, q) for px, q in self._walk(work))

        asset, amount = reserve("BUY" if buy else "SELL", "MARKET" if o.order_type == OrderType.MARKET else "LIMIT",
                                o.price, o.qty, info.base, info.quote, market_buy_cost)
        return self.account.lock(o.client_order_id, asset, amount)

    def _walk(self, work: _Working) -> list[tuple[int, int]]:
        """(price, quantity) a taker would trade now for the order's whole quantity."""
        left, out = work.order.qty, []
        for px, q in self._available(work):
            take = min(q, left)
            out.append((px, take))
            left -= take
            if left <= 0:
                break
        return out

    def _release(self, work: _Working) -> None:
        if self.account is not None:
            self.account.release(work.order.client_order_id)

    def _rest(self, work: _Working, now_ns: int, announce: bool = True) -> list[VenueUpdate]:
        work.resting = True
        work.level_qty = self._level_qty(work)
        work.queue = self.queue.join(work.level_qty)
        self.resting[work.order.client_order_id] = work
        return [VenueUpdate(work.order.client_order_id, NEW, work.order_id,
                            exch_ts_ms=now_ns // 1_000_000)] if announce else []

    def _level_qty(self, work: _Working) -> int:
        """The visible quantity at the order's own price on its own side of the book."""
        o, b, s = work.order, self.books, work.order.symbol_id
        px_arr, qty_arr, n = (b.bid_px, b.bid_qty, b.n_bids) if o.side == Side.BUY else (b.ask_px, b.ask_qty, b.n_asks)
        for i in range(int(n[s])):
            if round(float(px_arr[s, i]) * ONE) == o.price:
                return round(float(qty_arr[s, i]) * ONE)
        return 0

    def _fill_resting(self, work: _Working, qty: int, now_ns: int) -> list[VenueUpdate]:
        """``qty`` of trades reached a resting order: it fills as maker at its own price."""
        o = work.order
        qty = min(qty, o.qty - work.cum_qty)
        if qty <= 0:
            return []
        work.queue_filled += qty
        return [self._fill(work, o.price, qty, True, now_ns)]

    def _fill(self, work: _Working, px: int, qty: int, as_maker: bool, now_ns: int) -> VenueUpdate:
        """One fill of ``qty`` at ``px``: commission, balances, the update."""
        o = work.order
        info = self.universe.symbols[o.symbol_id]
        buy = o.side == Side.BUY
        quote, fee, _ = received_amounts("BUY" if buy else "SELL", px, qty, self.fees.rate(as_maker))
        work.cum_qty += qty
        if self.account is not None:
            if buy:
                self.account.fill(o.client_order_id, spent=(info.quote, quote), received=(info.base, qty - fee))
            else:
                self.account.fill(o.client_order_id, spent=(info.base, qty), received=(info.quote, quote - fee))
        status = FILLED if work.cum_qty == o.qty else PARTIALLY_FILLED
        # matched when: an arriving order at its due time (whenever ``advance`` got to it: a
        # record's receive time less 1, a poll), a resting one at the market event that reached it
        venue_ns = now_ns if work.resting else work.due_ns
        update = VenueUpdate(o.client_order_id, status, work.order_id, last_qty=qty, last_px=px, last_quote=quote,
                             fee=fee, fee_asset=info.base if buy else info.quote, trade_id=self._next_trade_id,
                             is_maker=as_maker, exch_ts_ms=now_ns // 1_000_000, venue_mono_ns=venue_ns)
        self._next_trade_id += 1
        if work.cum_qty == o.qty:
            self.resting.pop(o.client_order_id, None)
            self._release(work)
        return update

    def _available(self, work: _Working) -> list[tuple[int, int]]:
        """(price, quantity not yet taken) of the opposite levels the order may trade with."""
        o, b, s = work.order, self.books, work.order.symbol_id
        buy = o.side == Side.BUY
        px_arr, qty_arr, n = (b.ask_px, b.ask_qty, b.n_asks) if buy else (b.bid_px, b.bid_qty, b.n_bids)
        taken = self._consumed.get(s, {})
        side = 2 if buy else 1           # the side of the book being consumed
        levels = []
        for i in range(int(n[s])):
            px = round(float(px_arr[s, i]) * ONE)
            if o.order_type != OrderType.MARKET and (px > o.price if buy else px < o.price):
                break
            qty = round(float(qty_arr[s, i]) * ONE) - taken.get((side, px), 0)
            if qty > 0:
                levels.append((px, qty))
        return levels

    def _match(self, work: _Working, now_ns: int, as_maker: bool) -> list[VenueUpdate]:
        o = work.order
        buy = o.side == Side.BUY
        taken = self._consumed.setdefault(o.symbol_id, {})
        side = 2 if buy else 1
        out = []
        for px, avail in self._available(work):
            qty = min(o.qty - work.cum_qty, avail)
            if qty <= 0:
                break
            taken[(side, px)] = taken.get((side, px), 0) + qty
            # A resting order trades at its own price (it was there first); a taker at the level's.
            out.append(self._fill(work, o.price if as_maker else px, qty, as_maker, now_ns))
            if work.cum_qty == o.qty:
                break
        return out


class PaperVenue:
    """The executor's venue in paper mode: ``PaperFillModel`` behind ``venue.Venue``."""

    mode = "paper"
    backoff_until_ns = 0       # the paper venue never asks to back off (see LiveVenue)

    def __init__(self, model: PaperFillModel, quiet_ns: int = 0) -> None:
        self.model = model
        # poll() matches an order this long after its due time when no later md record came:
        # a record received before the due time may still be on its way through the feed
        self.quiet_ns = quiet_ns

    def place(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        return self.model.submit(order, now_ns)

    def cancel(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        return self.model.cancel(order.client_order_id, now_ns)

    def cancel_replace(self, old: Order, new: Order, now_ns: int, allow_failure: bool = False) -> list[VenueUpdate]:
        """As the simulator does it: ``old`` is cancelled, then ``new`` placed (with this venue's
        latency: ``place``). When ``old`` is no longer there to cancel (filled, gone), ``new``
        is REJECTED -2022 without being attempted (STOP_ON_FAILURE) or placed all the same
        (``allow_failure``); ``old``'s own end was reported when it happened."""
        cancelled = self.model.cancel(old.client_order_id, now_ns)
        if not cancelled and not allow_failure:
            return [VenueUpdate(new.client_order_id, REJECTED, reject_code=CANCEL_REPLACE_FAILED,
                                exch_ts_ms=now_ns // 1_000_000)]
        return cancelled + self.place(new, now_ns)

    def before_md(self, recv_ns: int) -> list[VenueUpdate]:
        return self.model.before_md(recv_ns)

    def on_book(self, symbol_id: int, now_ns: int) -> list[VenueUpdate]:
        return self.model.on_book(symbol_id, now_ns)

    def on_trade(self, symbol_id: int, price: int, qty: int, buyer_maker: bool, now_ns: int) -> list[VenueUpdate]:
        return self.model.on_trade(symbol_id, price, qty, buyer_maker, now_ns)

    def wants_books(self) -> bool:
        """Whether ``on_book`` must see every book update now: only while orders are in flight or
        resting, or fills have consumed liquidity that a book update makes fresh again."""
        m = self.model
        return bool(m.in_flight or m.resting or m._consumed)

    def quiet_prefix(self, recs: np.ndarray, n: int) -> int:
        return self.model.quiet_prefix(recs, n)

    def poll(self, now_ns: int) -> list[VenueUpdate]:
        """Orders due ``quiet_ns`` ago or earlier that no market data has matched yet."""
        return self.model.advance(now_ns - self.quiet_ns)

    def balances(self) -> dict[str, dict[str, float]] | None:
        """The paper account's balances (None when they are not modelled)."""
        return self.model.account.snapshot() if self.model.account is not None else None

    def account_check(self) -> None:
        return None          # the account is ours: nothing to check it against

    def stats(self) -> dict:
        account = self.model.account
        return {"resting": len(self.model.resting), "in_flight": len(self.model.in_flight),
                "balance_refusals": account.refusals if account is not None else 0}

    def reconcile(self, orders: list[Order]) -> list[VenueUpdate]:
        """After a restart: paper orders lived in the dead process's memory, so they are gone."""
        return [VenueUpdate(o.client_order_id, CANCELED) for o in orders]

    def close(self) -> None:
        pass


class ReplayVenue(PaperVenue):
    """The paper venue in replay's time (the recorded CLOCK_MONOTONIC of the history): an order
    reaches the matching ``latency`` after the market event that caused it, where ``latency`` is
    what the recorded session measured for that very order (``recorded(group, leg)``: sent -
    cause, plus the paper venue's own latency) or else a draw of the latency model. Orders with
    no cause event (the executor's unwinds) reach it that latency after they were sent: with a
    recorded session, the session's paper latency after the session sent that unwind
    (``recorded_unwind_sent``; the replay's executor sends it a little earlier in market time,
    as it is never late reading the market data).

    A session that logged where each order met the market (``execution.match_points``) is
    followed exactly instead: ``recorded_match(group, leg, nth)`` gives, for the ``nth`` order
    placed with that group and leg (a cancel-replace keeps them), the md record its executor
    had applied last, as (recv_mono_ns, seq), and when the order got there. The order reaches
    the matching at that time, and until it has, the replay's executor applies no md record
    after that one (``md_cap``: the driver holds the rest back). In the session those records
    were received but still on their way to the executor (it matched a due order after its quiet
    wait, or was busy); time alone cannot tell a replay that.

    ``latencies`` keeps each order's (feed, order) latency for the replay's report."""

    mode = "replay"

    def __init__(self, model: PaperFillModel, order_latency: LatencyModel, feed_latency: LatencyModel,
                 recorded: Callable[[int, int], int | None] | None = None, send_latency_ns: int = 0,
                 recorded_unwind_sent: Callable[[int, int], int | None] | None = None,
                 recorded_match: Callable[[int, int, int], RecordedMatch | None] | None = None) -> None:
        super().__init__(model)
        self.recorded_unwind_sent = recorded_unwind_sent
        self.order_latency = order_latency
        self.feed_latency = feed_latency
        self.recorded = recorded
        self.send_latency_ns = send_latency_ns      # an unwind: sent -> matched (the paper latency)
        self.latencies: dict[str, tuple[int, int]] = {}
        self.recorded_match = recorded_match
        self._caps: dict[str, tuple[int, int]] = {}   # in flight: client order id -> its md point
        self._placed_of: dict[tuple[int, int], int] = {}    # (group, leg) -> orders placed so far
        self.matched_at_points = 0                  # orders that reached the matching as recorded
        model.on_arrive = self._arrived

    def place(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        cause = order.cause_recv_mono_ns
        if not cause:                    # an unwind: from when the session sent it, or from now
            latency = self.send_latency_ns if self.recorded is not None else self.order_latency.sample_ns()
            sent = self.recorded_unwind_sent(order.group_id, order.leg) if self.recorded_unwind_sent else None
            due = max(sent or 0, now_ns) + latency
            venue_latency_ns = latency
            self.latencies[order.client_order_id] = (0, latency)
        else:
            live = self.recorded(order.group_id, order.leg) if self.recorded is not None else None
            if live is not None:
                feed_ns, order_ns = 0, live
            else:
                feed_ns, order_ns = self.feed_latency.sample_ns(), self.order_latency.sample_ns()
            due = cause + feed_ns + order_ns
            venue_latency_ns = self.send_latency_ns
            self.latencies[order.client_order_id] = (feed_ns, order_ns)
        # sent when the session sent it: what the venue's own latency leaves of the order latency
        order.sent_mono_ns = max(now_ns, due - venue_latency_ns)
        match = self._recorded_match(order)
        if match is not None:
            self.matched_at_points += 1
            due = match.arrived_mono_ns
            # no record after the point until then; a point already behind the executor (it read
            # on before it placed the order) holds it where it is: the nearest book it can give
            self._caps[order.client_order_id] = match.point
        return self.model.submit_at(order, max(due, now_ns), now_ns)

    def _recorded_match(self, order: Order) -> RecordedMatch | None:
        if self.recorded_match is None:
            return None
        key = (order.group_id, order.leg)
        nth = self._placed_of.get(key, 0)
        self._placed_of[key] = nth + 1
        return self.recorded_match(order.group_id, order.leg, nth)

    def _arrived(self, order: Order) -> None:
        self._caps.pop(order.client_order_id, None)

    def md_cap(self) -> tuple[int, int] | None:
        """The last md record, (recv_mono_ns, seq), the executor may apply before the orders in
        flight reach the matching (None: any)."""
        if not self._caps:
            return None
        # an order that left the flight without arriving (cancelled, replaced) caps nothing
        flying = {w.order.client_order_id for w in self.model.in_flight}
        self._caps = {cid: point for cid, point in self._caps.items() if cid in flying}
        return min(self._caps.values()) if self._caps else None

    def next_due(self) -> int | None:
        return self.model.next_due()

    def has_resting(self) -> bool:
        """Whether an order rests on the book: any market event may fill it."""
        return bool(self.model.resting)

    def poll(self, now_ns: int) -> list[VenueUpdate]:
        """Replay's clock stops at a due time only when the recorded data holds nothing before
        it: the order matches at once."""
        return self.model.advance(now_ns)

    def stats(self) -> dict:
        return {**super().stats(), "replay": True, "matched_at_points": self.matched_at_points}

