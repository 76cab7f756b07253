"""The executor in one object: intents in, risk gate, venue (paper or live), exec events out.

``Executor`` knows nothing of rings or processes: ``process.py`` feeds it from the rings,
tests and single-process mode call it directly.

    ex = Executor(universe, venue, journal, sink=exec_records.append, limits=RiskLimits(...))
    ex.recover()                       # after a restart: journal + venue reconcile, before trading
    ex.on_md(md_batch, n)              # keeps the books (risk, valuation, paper fills)
    ex.on_intents(intent_batch, n)     # risk -> journal (fsync) -> send; REFUSED events
    ex.poll()                          # venue answers -> order state -> journal -> exec events
    ex.close()                         # cancel open orders, flush

Every order state change becomes one EXEC_EVENT (``sink`` receives 1-element arrays). When a
multi-leg group ends with a leg that did not fill completely, the unwind policy runs: "market"
sends MARKET orders converting what the group left back to the asset it started from, "hold"
keeps it; either way the group's PnL at current mids is counted (``accounting``).
"""
from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numba
import numpy as np

from ctrader.core.records import (
    EXEC_EVENT,
    ORDER_INTENT,
    STRATEGY_IDS,
    ExecKind,
    IntentAction,
    MdFlag,
    MdKind,
    OrderType,
    RefusalReason,
    Side,
    TimeInForce,
)
from ctrader.execution.accounting import Accounting, Valuer
from ctrader.execution.bookview import BookView
from ctrader.execution.journal import Journal
from ctrader.execution.orders import (
    FILLED,
    PENDING,
    REFUSED,
    REJECTED,
    Order,
    OrderBook,
    VenueUpdate,
    client_order_ids,
    exec_record,
)
from ctrader.execution.risk import KillSwitch, RiskGate, RiskLimits
from ctrader.execution.strategy_budgets import StrategyBudgets
from ctrader.execution.venue import Venue
from ctrader.market.books import BookCache, apply_all, apply_md
from ctrader.venue.decimals import ONE, decimals_of, format_trimmed

log = logging.getLogger(__name__)

UNWIND_POLICIES = ("market", "hold")
NO_SUCH_ORDER = -2013      # the venue never had it: an order that did not leave
UNWIND_ATTEMPTS = 5
UNWIND_RETRY_NS = 1_000_000_000
CANCEL_REPLACE_FAILED = -2022     # Binance: "Order cancel-replace failed."

# refusals that pass with time: an unwind refused for one of these is tried again
RETRYABLE = frozenset({int(RefusalReason.RATE_BUDGET), int(RefusalReason.STALE_BOOK),
                       int(RefusalReason.MAX_OPEN_ORDERS), int(RefusalReason.KILL_SWITCH)})


@dataclass
class Group:
    """The legs of one multi-leg trade, and what the executor did about it."""
    group_id: int
    n_legs: int
    start_asset: str
    legs: dict[int, Order] = field(default_factory=dict)
    unwind_orders: list[Order] = field(default_factory=list)
    replaced: list[Order] = field(default_factory=list)    # legs a cancel-replace put another order in place of
    settled: bool = False
    broken: bool = False
    submitting: bool = False       # unwind orders being sent: their fills must not settle it early
    unwind_attempts: int = 0
    retry_at_ns: int = 0           # an unwind the gate refused for a passing reason is retried then
    strategy_id: int = 0           # the strategy that sent it (its unwind orders count for it too)

    def all_terminal(self) -> bool:
        return ((len(self.legs) >= self.n_legs or self.lead_ended_unfilled())
                and all(not o.is_open for o in self.legs.values())
                and all(not o.is_open for o in self.unwind_orders) and all(not o.is_open for o in self.replaced))

    def resting_lead(self) -> Order | None:
        """Leg 0 when it is a resting (LIMIT_MAKER) order whose fills the other legs follow
        (``maker_triangular``: the hedges are sent for what it filled), else None."""
        lead = self.legs.get(0)
        return lead if lead is not None and lead.order_type == OrderType.LIMIT_MAKER and self.n_legs > 1 else None

    def lead_ended_unfilled(self) -> bool:
        """A resting lead that ended with nothing filled: no other leg will come."""
        lead = self.resting_lead()
        return (lead is not None and len(self.legs) == 1 and not lead.is_open and not self.traded())

    def traded(self) -> bool:
        """Whether any of its legs traded, a replaced one included."""
        return any(o.cum_qty for o in self.legs.values()) or any(o.cum_qty for o in self.replaced)


@numba.njit(cache=True)
def has_actions(recs: np.ndarray, n: int) -> bool:
    """Whether any of ``recs[:n]`` (ORDER_INTENT) is a CANCEL or REPLACE rather than a NEW order."""
    for i in range(n):
        if recs[i].action != 0:
            return True
    return False


class Executor:
    def __init__(self, universe: Any, venue: Venue, journal: Journal | None, sink: Callable[[np.ndarray], None],
                 limits: RiskLimits | None = None, kill: KillSwitch | None = None,
                 valuation_asset: str = "USDT", unwind: str = "market",
                 clock: Callable[[], int] = time.monotonic_ns, books: BookCache | None = None,
                 sync_before_send: bool = False, wall_clock: Callable[[], int] = time.time_ns,
                 on_fill: Callable[[Order, VenueUpdate], None] | None = None,
                 gated_at: Callable[[int, int], int | None] | None = None) -> None:
        """``gated_at(group, leg)``: replay of a recorded session only: when the session's risk
        gate looked at that order. The replay's gate looks at it at that instant too, in the
        batches the session's executor read (not at the replay's market time: a few hundred µs
        earlier for an intent, the session's loop lag earlier for an unwind), so a rate budget
        that was tight refuses the same orders."""
        if unwind not in UNWIND_POLICIES:
            raise ValueError(f"unwind policy must be one of {UNWIND_POLICIES}, not {unwind!r}")
        self.universe = universe
        self.venue = venue
        self.journal = journal
        self.sink = sink
        self.clock = clock                  # CLOCK_MONOTONIC ns (replay: the history's, as recorded)
        self.gated_at = gated_at
        self.wall_clock = wall_clock        # wall ns, for exec records (replay: the history's)
        self.on_fill = on_fill              # every fill, once accounted (replay's report)
        self.unwind_policy = unwind
        # A syncing journal syncs a batch before its orders leave (True) or right after (False:
        # every line still reaches the page cache first, which a crash of the process keeps)
        self.sync_before_send = sync_before_send
        self.cache = books or BookCache(len(universe.symbols))
        self.books = BookView(self.cache.books)
        self.valuer = Valuer(universe, self.books, valuation_asset)
        self.accounting = Accounting(universe)
        if journal is not None:
            self.accounting.on_day_start = journal.day_start
        self.orders = OrderBook()
        self.kill = kill or KillSwitch()
        self.gate = RiskGate(limits or RiskLimits(), universe, self.books, self.valuer, self.accounting,
                             self.orders, self.kill)
        self.budgets = StrategyBudgets(list(self.gate.limits.per_strategy))
        self.strategy_names = {sid: name for name, sid in STRATEGY_IDS.items()}
        # strategies seen sending orders; with two or more, each admitted order is compared with
        # the open orders of the others: opposite sides of one symbol at once are counted (the
        # executor nets nothing: both orders go out), per "a/b" pair of strategy names
        self._strategies_seen: set[int] = set()
        self.opposite_sides: dict[str, int] = {}
        self.groups: dict[int, Group] = {}
        self.duplicates = 0            # intents seen again after a restart (already journaled)
        self.events = 0
        self._kill_handled = False
        self._outbox: list[tuple[Order, np.ndarray]] = []   # exec events waiting for the journal's fsync
        self._retry: list[int] = []            # groups whose unwind waits for a retry
        self._started_ns = clock()
        self._fee_asset_ids = {a: i for i, a in enumerate(universe.assets)}
        self.rehearsals = 0
        self.balance_mismatches = 0
        self._balance_mismatch_seen: set[str] = set()
        self._next_balance_check = 0
        self._rehearsal_intent = np.zeros(1, ORDER_INTENT)
        self._rehearsal_event = np.zeros(1, EXEC_EVENT)
        # (good_till_mono_ns, client_order_id) of orders placed with an expiry: the soonest first,
        # so poll looks at one element while none is due
        self._expiries: list[tuple[int, str]] = []
        self.expired = 0                # resting orders cancelled because their time passed
        self.cancels_of_unknown = 0     # CANCEL intents naming no open order: ignored, counted
        # The last md record applied to the books, as (recv_mono_ns, seq): kept only while
        # ``track_md_position`` (a paper session logs where each order met the market; see
        # ``match_points``), as reading it costs a little on every batch
        self.track_md_position = False
        self.md_position = (0, 0)
        # Called after each batch of NEW intents has been gated and sent, with (intents, n, gate
        # time): a paper session logs the md position its gate judged them at (``match_points``)
        self.on_gated: Callable[[np.ndarray, int, int], None] | None = None

    # --- market data --------------------------------------------------------------------------

    def on_md(self, recs: np.ndarray, n: int) -> None:
        """Apply md records to the books; paper orders due by then match against them.

        While the venue has nothing to match (``wants_books`` false: always in live mode, and in
        paper mode with no order in flight) the batch goes through one compiled call; the
        per-record loop below costs microseconds a record, during which an intent would wait."""
        track = self.track_md_position
        if not self.venue.wants_books():
            apply_all(self.cache.books, recs, n)
            self.events += n
            if track:
                self.md_position = (int(recs["recv_mono_ns"][n - 1]), int(recs["seq"][n - 1]))
            return
        books = self.cache.books
        updates: list[VenueUpdate] = []
        i = 0
        while i < n:
            # Records before the next paper order falls due only refresh consumed liquidity: one
            # compiled call for them (a batch took 83 µs p50, 600 µs at worst, one by one); the
            # record an order falls due at goes one by one, then the rest is looked at again
            rest = recs[i:] if i else recs
            quiet = self.venue.quiet_prefix(rest, n - i)
            if quiet:
                apply_all(books, rest, quiet)
                i += quiet
                if track:
                    self.md_position = (int(recs["recv_mono_ns"][i - 1]), int(recs["seq"][i - 1]))
                if i == n:
                    break
            r = recs[i]
            updates += self.venue.before_md(int(r["recv_mono_ns"]))
            sid = apply_md(books, recs, i)
            i += 1
            if track:
                self.md_position = (int(r["recv_mono_ns"]), int(r["seq"]))
            if sid < 0:
                continue
            if r["kind"] != MdKind.TRADE:
                updates += self.venue.on_book(sid, int(r["recv_mono_ns"]))
            else:          # resting paper orders move up their queue
                updates += self.venue.on_trade(sid, round(float(r["trade_px"]) * ONE), round(float(r["trade_qty"]) * ONE),
                                               bool(r["flags"] & MdFlag.BUYER_MAKER), int(r["recv_mono_ns"]))
        self.events += n
        if updates:
            self._apply(updates)

    # --- intents ------------------------------------------------------------------------------

    def on_intents(self, recs: np.ndarray, n: int) -> None:
        """Act on ``recs[:n]``: NEW intents are gated, journaled and sent (``_on_new_intents``),
        CANCEL intents cancel the open order they name, REPLACE intents cancel it and place
        theirs in its stead (``cancel_order``, ``replace_order``). A batch of NEW intents only (every
        strategy until resting orders) costs one compiled test more (~0.2 µs; a numpy test of the
        action column cost 1.2 µs warm, several cold, on the order path)."""
        seen = self.clock()          # the executor has the batch: the intent hop ends here
        if not has_actions(recs, n):
            self._on_new_intents(recs, n, seen)
            return
        actions = recs["action"][:n]
        i = 0
        while i < n:
            j = i
            while j < n and actions[j] == IntentAction.NEW:
                j += 1
            if j > i:
                self._on_new_intents(recs[i:j], j - i, seen if i == 0 else self.clock())
            if j < n:
                self._on_action(recs[j])
            i = j + 1

    def _on_action(self, rec) -> None:
        action = int(rec["action"])
        target = rec["target_client_order_id"].rstrip(b"\0").decode()
        if action == IntentAction.CANCEL:
            self.cancel_order(target)
        elif action == IntentAction.REPLACE:
            self.replace_order(target, rec)
        else:
            raise ValueError(f"intent action {action} is not handled by this executor")
        self.events += 1

    def cancel_order(self, client_order_id: str, why: str = "intent") -> bool:
        """Ask the venue to cancel the open order ``client_order_id``. An order unknown, ended
        already (a fill or expiry won the race: normal for a resting order) or not yet sent is
        left alone and counted in ``cancels_of_unknown``; False then."""
        order = self.orders.get(client_order_id)
        if order is None or not order.is_open or (order.status == PENDING and not order.sent_mono_ns):
            self.cancels_of_unknown += 1
            log.info("cancel (%s) of %s: no such open order, ignored", why, client_order_id)
            return False
        now = self.clock()
        self.gate.rate.charge(now, orders=0, weight=1)
        updates = self.venue.cancel(order, now)
        if updates:
            self._apply(updates)
        return True

    def replace_order(self, target: str, rec) -> bool:
        """Cancel the open order ``target`` and place the order ``rec`` describes, in one venue
        request (cancelReplace, STOP_ON_FAILURE). The new order passes the gate like any NEW
        one, with the old order's unfilled exposure, open-order slot and group notional released
        (the venue cancels it first); refused, it leaves the old order resting and the leg to it;
        placed, the leg is the new order's and the old one's fills stay in the group's maths
        (``Group.replaced``). A target not open is left alone, the
        new order is not placed, and ``cancels_of_unknown`` counts it; False then."""
        old = self.orders.get(target)
        if old is None or not old.is_open or (old.status == PENDING and not old.sent_mono_ns):
            self.cancels_of_unknown += 1
            log.info("replace of %s: no such open order, the new order is not placed", target)
            self._reject_unplaced(rec)
            return False
        new = self._order_from_intent(rec)
        new.seen_mono_ns = self.clock()
        verdict = self._admit(new, replacing=old)
        self._commit()
        if verdict is not True:
            if verdict is False:
                self._check_group(self.groups[new.group_id])
            return False
        now = self.clock()
        self.gate.rate.charge(now, orders=0, weight=1)     # the cancel half; the gate charged the order
        new.sent_mono_ns = now
        updates = self.venue.cancel_replace(old, new, now)
        self.accounting.on_sent(new)
        if updates:
            self._apply(updates)
        if new.good_till_mono_ns and new.is_open:
            heapq.heappush(self._expiries, (new.good_till_mono_ns, new.client_order_id))
        return True

    def _reject_unplaced(self, rec) -> None:
        """The order of a REPLACE whose target was not open is reported REJECTED (-2022, as
        Binance answers a cancelReplace whose cancel failed: newOrderResult NOT_ATTEMPTED), so
        the strategy knows it never rests."""
        new = self._order_from_intent(rec)
        if self.orders.get(new.client_order_id) is not None:
            return
        new.seen_mono_ns = self.clock()
        self.orders.add(new)
        self.orders.settle(new, REJECTED)
        new.reject_code = CANCEL_REPLACE_FAILED
        if self.journal is not None:
            self.journal.intent(new, durable=False)
        self._publish(new, ExecKind.REJECTED, reject_code=CANCEL_REPLACE_FAILED)
        self._commit()

    def next_expiry(self) -> int | None:
        """When the soonest resting order's ``good_till_mono_ns`` passes (None: no order has
        one). The live loop polls often enough; a replay makes it a due time (``poll`` then
        cancels it), so that an order expires when it would have in the session."""
        while self._expiries:
            _, coid = self._expiries[0]
            order = self.orders.get(coid)
            if order is not None and order.is_open:
                return self._expiries[0][0]
            heapq.heappop(self._expiries)       # ended before its time: nothing to expire
        return None

    def _expire_due(self, now: int) -> None:
        """Cancel the resting orders whose ``good_till_mono_ns`` passed."""
        while self._expiries and self._expiries[0][0] <= now:
            _, coid = heapq.heappop(self._expiries)
            order = self.orders.get(coid)
            if order is not None and order.is_open:
                self.expired += 1
                self.cancel_order(coid, why="expired")

    def _on_new_intents(self, recs: np.ndarray, n: int, seen: int) -> None:
        """Gate, journal and send ``recs[:n]``; on return every intent is journaled, so the
        caller may commit them on the ring.

        The whole batch is gated first (one compiled call). Each order leaves as soon as its
        journal line is in the page cache (survives a crash of the process); a syncing journal
        then makes the batch durable with one sync once its orders are out, or, with
        ``sync_before_send``, before the first leaves (group commit: a sync on the order path).
        Venue answers are handled once every order of the batch is out."""
        if self.gated_at is None:
            self._on_intent_batch(recs, n, seen)
            return
        for lo, hi, at in self._recorded_batches(recs, n):
            self._on_intent_batch(recs[lo:hi], hi - lo, at)

    def _recorded_batches(self, recs: np.ndarray, n: int) -> list[tuple[int, int, int]]:
        """(first, end, gate time) of the runs of ``recs[:n]`` the recorded session gated
        together (``gated_at``); an intent it has no time for goes with the one before it."""
        runs: list[tuple[int, int, int]] = []
        for i in range(n):
            at = self.gated_at(int(recs[i]["group_id"]), int(recs[i]["leg"]))
            if runs and (at is None or at == runs[-1][2]):
                runs[-1] = (runs[-1][0], i + 1, runs[-1][2])
            else:
                runs.append((i, i + 1, self.clock() if at is None else at))
        return runs

    def _on_intent_batch(self, recs: np.ndarray, n: int, seen: int) -> None:
        killed = self.check_kill()
        group_commit = self.journal is not None and self.journal.sync and self.sync_before_send
        waiting: list[Order] = []
        refused: list[Order] = []
        updates: list[VenueUpdate] = []
        # the whole batch through the gate in one compiled call (None: gate each order below);
        # each order object is built just before it is admitted: leg 0 leaves without waiting
        # for the others'
        coids = client_order_ids(recs, n)
        skip = self._seen_before(coids)
        budget = self._budget_verdicts(recs, n, skip, seen) if self.budgets else None
        if budget is not None:           # refused by its strategy's budget: not gated again
            skip = [s or bool(b) for s, b in zip(skip, budget)]
        verdicts = self.gate.check_batch(recs, n, skip, seen, killed=killed, client_ids=coids)
        for i in range(n):
            order = self._order_from_intent(recs[i])
            order.seen_mono_ns = seen
            reason = None if verdicts is None else verdicts[i]
            if budget is not None and budget[i]:
                reason = budget[i]
            verdict = self._admit(order, reason=reason)
            if verdict is True:
                if budget is not None:
                    self.budgets.on_admitted(order.strategy_id, seen)
                if group_commit:
                    waiting.append(order)
                else:
                    if self.journal is not None:
                        self.journal.flush()      # write-ahead: its intent line is written before it leaves
                    updates += self._place(order)
            elif verdict is False:
                refused.append(order)
        self._commit()
        for order in waiting:
            updates += self._place(order)
        if updates:
            self._apply(updates)
        for order in refused:
            self._check_group(self.groups[order.group_id])
        self._note_opposite_sides(recs, n, coids)
        good_till = recs["good_till_mono_ns"][:n]
        if good_till.any():
            for i in np.flatnonzero(good_till):
                order = self.orders.get(coids[i])
                if order is not None and order.is_open:
                    heapq.heappush(self._expiries, (int(good_till[i]), coids[i]))
        self.events += n
        if self.on_gated is not None:
            self.on_gated(recs, n, seen)

    def _budget_verdicts(self, recs: np.ndarray, n: int, skip: list[bool], now_ns: int) -> list[int] | None:
        """Per intent, the strategy budget its group breaks (0: none), judged per group on the
        legs of it in this batch, groups in batch order, each passing group's legs counted as
        open for the next; None when no intent's strategy has a budget."""
        sids = recs["strategy_id"][:n].tolist()
        if not any(self.budgets.applies(s) for s in set(sids)):
            return None
        gids = recs["group_id"][:n].tolist()
        open_now = self.orders.open_orders()
        day = int(time.time() // 86_400)
        decided: dict[int, int] = {}
        out = [0] * n
        for i in range(n):
            gid = gids[i]
            if gid not in decided:
                reason = 0
                if self.budgets.applies(sids[i]) and gid not in self.gate.refused_groups:
                    legs = [self._order_from_intent(recs[j]) for j in range(i, n) if gids[j] == gid and not skip[j]]
                    reason = int(self.budgets.check(sids[i], legs, now_ns, open_now, self.valuer, self.accounting,
                                                    day)) if legs else 0
                    if reason:
                        self.gate.refused_groups[gid] = RefusalReason(reason)   # its later legs too
                    else:
                        open_now = open_now + legs
                decided[gid] = reason
            out[i] = decided[gid]
        return out

    def _note_opposite_sides(self, recs: np.ndarray, n: int, coids: list[str]) -> None:
        """Count orders just placed that face an open order of another strategy on the same
        symbol (one buys what the other sells): both went out, nothing was netted."""
        sids = set(recs["strategy_id"][:n].tolist())
        if sids <= self._strategies_seen and len(self._strategies_seen) < 2:
            return
        self._strategies_seen |= sids
        if len(self._strategies_seen) < 2:
            return
        open_now = self.orders.open_orders()
        for coid in coids:
            order = self.orders.get(coid)
            if order is None or not order.is_open:
                continue
            for other in open_now:
                if (other.symbol_id == order.symbol_id and other.side != order.side
                        and other.strategy_id != order.strategy_id and other is not order):
                    a, b = sorted((self.strategy_names.get(order.strategy_id, str(order.strategy_id)),
                                   self.strategy_names.get(other.strategy_id, str(other.strategy_id))))
                    key = f"{a}/{b}"
                    if key not in self.opposite_sides:
                        log.warning("strategies %s and %s hold opposite sides of %s at once (both orders sent, "
                                    "nothing netted; counted in opposite_sides)", a, b, order.symbol)
                    self.opposite_sides[key] = self.opposite_sides.get(key, 0) + 1
                    break

    def rehearse(self) -> None:
        """A dry run of ``on_intents``' path for a made-up order, changing nothing: the intent is
        turned into an order, gated (``RiskGate.check_batch`` with ``record=False``: no budget
        charged), its journal line encoded (not written) and its exec event built (not published).

        Why: on a machine whose cores other processes share, code and data not touched for a
        millisecond fall out of the caches, and the first real order after a quiet spell ran
        3-5x slower than the next ones. The executor loop calls this when no order went through
        for ``[rings] keep_warm_us``."""
        rec = self._rehearsal_intent
        sid = self.rehearsals % len(self.universe.symbols)   # a different book each time
        info = self.universe.symbols[sid]
        r = rec[0]
        r["symbol_id"], r["side"], r["leg"], r["n_legs"] = sid, Side.BUY, 0, 3
        r["order_type"], r["tif"] = OrderType.LIMIT, TimeInForce.IOC
        ask = float(self.cache.books[sid]["ask_px"][0])
        r["price_ticks"] = max(round(ask * ONE / info.tick_units), 1) if ask > 0 else 1
        r["qty_steps"] = 1
        r["client_order_id"] = b"rehearsal"
        has_actions(rec, 1)
        order = self._order_from_intent(r)
        self.gate.check_batch(rec, 1, [False], self.clock(), record=False)
        Journal.intent_doc(order)
        exec_record(order, ExecKind.ACK, out=self._rehearsal_event)
        self.rehearsals += 1

    BALANCE_CHECK_NS: ClassVar[int] = 5_000_000_000

    def on_idle(self) -> None:
        """While nothing waits: touch the journal's next page, so that no order takes the page
        fault of its line; now and then, check the venue's balances against our accounting."""
        if self.journal is not None:
            self.journal.prepare()
        now = self.clock()
        if now >= self._next_balance_check:
            self._next_balance_check = now + self.BALANCE_CHECK_NS
            self.check_balances()

    def check_balances(self) -> list[str]:
        """With no order open, each asset the venue reported on must hold its start balance plus
        our position (live: ``outboundAccountPosition``). A difference is logged once and
        counted (``balance_mismatches``): a fill we missed, or another client on the account."""
        account = self.venue.account_check()
        if account is None or self.orders.open_count():
            return []
        start, seen = account
        off = []
        for asset, (free, locked) in seen.items():
            expected = start.get(asset, 0) + self.accounting.positions.get(asset, 0)
            if free + locked != expected:
                off.append(f"{asset} venue {(free + locked) / ONE} ours {expected / ONE}")
        fresh = set(off) - self._balance_mismatch_seen
        if fresh:
            self.balance_mismatches += len(fresh)
            log.warning("balances differ from our accounting: %s", "; ".join(sorted(fresh)))
        self._balance_mismatch_seen = set(off)
        return off

    def _seen_before(self, client_ids: list[str]) -> list[bool]:
        """Which of ``client_ids`` repeat one already known (journaled) or earlier in the batch:
        duplicates, never gated nor sent (``_admit`` says so)."""
        ids: set[str] = set()
        out = []
        for coid in client_ids:
            out.append(coid in ids or self.orders.get(coid) is not None)
            ids.add(coid)
        return out

    def warm_up(self) -> None:
        """Load (or compile, after a source change: seconds) the gate's kernel before the first
        intent needs it."""
        self.rehearse()
        self.rehearsals = 0

    def _order_from_intent(self, rec) -> Order:
        info = self.universe.symbols[int(rec["symbol_id"])]
        return Order.from_intent(rec, info.name, info.tick_units, info.step_units)

    def submit(self, order: Order, unwind: bool = False) -> bool:
        """One order through the gate to the venue; False if it was refused or a duplicate."""
        verdict = self._admit(order, unwind)
        self._commit()
        if verdict is True:
            self._send(order)
            return True
        if verdict is False:
            self._check_group(self.groups[order.group_id])
        return False

    def _admit(self, order: Order, unwind: bool = False, reason: int | None = None,
               replacing: Order | None = None) -> bool | None:
        """Gate (unless ``reason`` is the gate's verdict already) and journal (not yet synced)
        one order: True to send, False refused, None duplicate."""
        if self.orders.get(order.client_order_id) is not None:
            self.duplicates += 1
            log.warning("intent %s seen before (journaled): not sent again", order.client_order_id)
            return None
        order.is_unwind = unwind
        group = self._group_of(order)
        if reason is None:
            recorded = self.gated_at(order.group_id, order.leg) if self.gated_at is not None else None
            order.gated_mono_ns = self.clock() if recorded is None else recorded
            reason = self.gate.check(order, order.gated_mono_ns, unwind=unwind, replacing=replacing)
        else:
            order.gated_mono_ns = order.seen_mono_ns      # the batch's gate time
            if reason == RefusalReason.FILTER:
                self.gate.log_filter_refusal(order, self.clock())     # which filter: the batch gate does not say
        self.orders.add(order)
        if unwind:
            group.unwind_orders.append(order)
        elif replacing is None:
            group.legs[order.leg] = order
        elif not reason:                  # the replacement takes the leg; the old one's fills stay counted
            group.replaced.append(replacing)
            group.legs[order.leg] = order
        # (a refused replacement leaves the leg to the old order, which still rests)
        if reason:
            self.orders.settle(order, REFUSED)
            order.reject_code = int(reason)
            self.accounting.on_refused(reason, order.strategy_id)
            self._publish(order, ExecKind.REFUSED, reject_code=int(reason))   # sent after the commit
        if self.journal is not None:
            self.journal.intent(order, durable=False)
        return not reason

    def _send(self, order: Order) -> None:
        updates = self._place(order)
        if updates:
            self._apply(updates)

    def _place(self, order: Order) -> list[VenueUpdate]:
        """Hand ``order`` to the venue (tick-to-order ends here); the caller applies the answers."""
        order.sent_mono_ns = self.clock()
        updates = self.venue.place(order, order.sent_mono_ns)
        self.accounting.on_sent(order)
        return updates

    def _commit(self) -> None:
        """Make the journal durable, then publish what waited for it (never the other way round)."""
        if self.journal is not None:
            self.journal.commit()
        outbox, self._outbox = self._outbox, []
        if self.journal is None:
            for _, rec in outbox:
                self.sink(rec)
            return
        # An order is marked published right after its last event of the batch reaches the ring:
        # a crash between the two republishes that one order's events on restart, not the batch's.
        last = {id(order): i for i, (order, _) in enumerate(outbox)}
        for i, (order, rec) in enumerate(outbox):
            self.sink(rec)
            if last[id(order)] == i:
                self.journal.published(order)

    def _group_of(self, order: Order) -> Group:
        """The order's group, made on its first order. Its start asset is what leg 0 pays: set
        when leg 0 is seen, which need not be first (the strategy sends the contested leg first)."""
        group = self.groups.get(order.group_id)
        if group is None:
            group = self.groups[order.group_id] = Group(order.group_id, max(order.n_legs, 1), "",
                                                        strategy_id=order.strategy_id)
        if not group.start_asset and (order.leg == 0 or order.n_legs <= 1) and not order.is_unwind:
            info = self.universe.symbols[order.symbol_id]
            group.start_asset = info.quote if order.side == Side.BUY else info.base
        return group

    # --- venue answers ----------------------------------------------------------------------------

    def poll(self) -> int:
        """Drain the venue (answers, user data, due paper orders); returns updates applied."""
        self.check_kill()
        if self._retry:
            self._retry_unwinds()
        now = self.clock()
        if self._expiries and self._expiries[0][0] <= now:
            self._expire_due(now)
        updates = self.venue.poll(now)
        if updates:
            self._apply(updates)
        self.gate.rate.back_off(self.venue.backoff_until_ns)    # the venue's 429/418 retry time, if any
        return len(updates)

    def _apply(self, updates: list[VenueUpdate]) -> None:
        """Venue updates -> order states; journaled with one fsync, then published, then the
        groups whose orders ended are looked at (which may send unwind orders)."""
        ended: list[Order] = []
        for u in updates:
            tr = self.orders.apply(u)
            if tr is None:
                continue
            order = tr.order
            if self.journal is not None:
                if tr.fill is not None:
                    self.journal.fill(order, tr.fill, durable=False)
                self.journal.state(order, durable=False)
            if tr.fill is not None:
                if order.cum_qty == tr.fill.last_qty:
                    # its first fill: Binance's unfilled order count (ORDERS) drops it from then
                    # on; at the venue's match time when it says (paper and replay: the same
                    # time in both), else when we learn of it (live)
                    self.gate.rate.credit(order.client_order_id, tr.fill.venue_mono_ns or self.clock())
                self.accounting.on_fill(order, tr.fill)
                if self.on_fill is not None:
                    self.on_fill(order, tr.fill)
            for kind in tr.kinds:
                if kind == ExecKind.REJECTED:
                    self.accounting.on_rejected(order.reject_code)
                    log.warning("order %s %s rejected: %d", order.client_order_id, order.symbol, order.reject_code)
                elif kind == ExecKind.CANCELED:
                    self.accounting.cancels += 1
                fill = tr.fill if kind in (ExecKind.FILL, ExecKind.PARTIAL_FILL) else None
                fee_asset = self._fee_asset_ids.get(fill.fee_asset, -1) if fill is not None else -1
                before = None
                if kind == ExecKind.ACK and tr.fill is not None:    # the ack came with a fill: as before it
                    before = (order.cum_qty - tr.fill.last_qty, order.cum_quote - tr.fill.last_quote)
                self._publish(order, kind, fill=fill, fee_asset_id=fee_asset, cum=before)
            if not order.is_open:
                ended.append(order)
        self._commit()
        for order in ended:
            group = self.groups.get(order.group_id)
            if group is not None:
                self._check_group(group)

    def _publish(self, order: Order, kind: ExecKind, **kw) -> None:
        """Queue an exec event; ``_commit`` sends it once the journal holds what it reports."""
        self._outbox.append((order, exec_record(order, kind, recv_ts_ns=self.wall_clock(), **kw)))

    # --- groups and unwinding ---------------------------------------------------------------------

    def _settle(self, group: Group) -> None:
        group.settled = True
        # the gate's per-group state is no longer needed once every leg has arrived and ended
        self.gate.group_notional.pop(group.group_id, None)
        self.gate.refused_groups.pop(group.group_id, None)

    def _check_group(self, group: Group) -> None:
        """Once every order of a group has ended: done if it completed (or never traded);
        otherwise it is broken and the unwind policy runs, retrying while the gate refuses the
        unwind for a passing reason (rate budget, stale book), at most UNWIND_ATTEMPTS times."""
        if group.settled or group.submitting or not group.all_terminal():
            return
        if group.retry_at_ns and self.clock() < group.retry_at_ns:
            return
        group.retry_at_ns = 0
        if not group.broken:
            legs_ok = all(o.status == FILLED for o in group.legs.values())
            if not legs_ok and group.resting_lead() is not None:
                # a resting lead canceled after a partial fill, its hedges sized on that fill and
                # filled: complete, unless it filled more before the cancel (then unwound)
                lead = group.resting_lead()
                legs_ok = (all(o.status == FILLED for k, o in group.legs.items() if k != lead.leg)
                           and not any(self._unwind_order(group, k, a, u)
                                       for k, (a, u) in enumerate(sorted(self._residual(group).items()))))
            # a one-order group holds what it traded on purpose (a position the strategy keeps
            # and closes itself): no legs to net against each other, nothing to unwind
            if legs_ok or not group.traded() or group.n_legs == 1:
                self._settle(group)       # complete, or nothing traded: nothing to unwind
                return
            group.broken = True
            self.accounting.unwinds += 1
            log.warning("group %x broke (%s); leftover %s; unwind policy %s", group.group_id,
                        ", ".join(f"leg {k} {o.status}" for k, o in sorted(group.legs.items())),
                        {a: u / ONE for a, u in self._residual(group).items()}, self.unwind_policy)
        if self.unwind_policy == "market" and group.unwind_attempts < UNWIND_ATTEMPTS:
            orders = [o for k, (asset, units) in enumerate(sorted(self._residual(group).items()))
                      if (o := self._unwind_order(group, k, asset, units)) is not None]
            if orders:
                group.unwind_attempts += 1
                group.submitting = True
                try:
                    sent = [self.submit(o, unwind=True) for o in orders]
                finally:
                    group.submitting = False
                if not group.all_terminal():
                    return            # unwind orders in flight: looked at again when they end
                if not all(sent) and any(o.status == REFUSED and o.reject_code in RETRYABLE for o in orders):
                    group.retry_at_ns = self.clock() + UNWIND_RETRY_NS
                    self._retry.append(group.group_id)
                    return
                if any(o.cum_qty for o in orders):
                    self._check_group(group)      # see what is left (dust below a step: nothing)
                    return
        self._settle(group)
        pnl = self.accounting.group_pnl(group.group_id, self.valuer)
        self.accounting.unwind_pnl += pnl
        left = self._residual(group)
        log.warning("group %x settled: %.8f %s%s", group.group_id, pnl, self.valuer.valuation_asset,
                    f", holding {({a: u / ONE for a, u in left.items()})}" if left else "")

    def _residual(self, group: Group) -> dict[str, int]:
        """What the group left in assets other than the one it started from (units)."""
        return {a: u for a, u in self.accounting.group_flows.get(group.group_id, {}).items()
                if u and a != group.start_asset}

    def _retry_unwinds(self) -> None:
        now = self.clock()
        due = [g for g in self._retry if self.groups[g].retry_at_ns <= now]
        if due:
            self._retry = [g for g in self._retry if g not in due]
            for g in due:
                self._check_group(self.groups[g])

    def _unwind_order(self, group: Group, k: int, asset: str, units: int) -> Order | None:
        """A MARKET order turning ``units`` of ``asset`` (negative: owed) back into the start asset."""
        start = group.start_asset
        pair = self.universe.pair(asset, start) if units > 0 else self.universe.pair(start, asset)
        if pair is None:
            log.warning("no symbol between %s and %s: holding %s", asset, start, units / ONE)
            return None
        info, side = pair
        amount = abs(units)
        if info.base != asset:           # the asset is the quote: size in base at the mid
            mid = self.valuer.mid(info.id)
            if math.isnan(mid) or mid <= 0:
                return None
            amount = int(amount / mid)
        qty = amount // info.step_units * info.step_units if info.step_units else amount
        mid = self.valuer.mid(info.id)
        if qty <= 0 or qty < info.min_qty_units or (not math.isnan(mid) and qty / ONE * mid < info.min_notional):
            return None           # dust the venue would refuse: held, and counted at mid
        return Order(client_order_id=f"uw{group.group_id:x}-{group.unwind_attempts}-{k}", group_id=group.group_id,
                     leg=min(group.n_legs + k, 255), n_legs=group.n_legs, symbol_id=info.id, symbol=info.name,
                     side=int(side), order_type=int(OrderType.MARKET), tif=int(TimeInForce.NONE), price=0,
                     qty=qty, is_unwind=True, strategy_id=group.strategy_id)

    # --- kill switch --------------------------------------------------------------------------------

    def check_kill(self) -> bool:
        """Once the switch is engaged: cancel every open order (new ones are refused by the gate).
        Returns whether it is engaged."""
        engaged = self.kill.engaged
        if engaged and not self._kill_handled:
            self._kill_handled = True
            log.warning("kill switch engaged (%s): new orders refused", self.kill.reason)
            self.cancel_all(f"kill switch: {self.kill.reason}")
        elif not engaged:
            self._kill_handled = False
        return engaged

    def cancel_all(self, why: str = "") -> int:
        open_orders = [o for o in self.orders.open_orders() if o.status != PENDING or o.sent_mono_ns]
        if open_orders:
            log.warning("cancelling %d open orders (%s)", len(open_orders), why)
        now = self.clock()
        for o in open_orders:
            self.gate.rate.charge(now, orders=0, weight=1)
            updates = self.venue.cancel(o, now)
            if updates:
                self._apply(updates)
        return len(open_orders)

    # --- recovery and shutdown -------------------------------------------------------------------

    def recover(self, journal_path: str | None = None) -> int:
        """Rebuild orders and positions from a journal and settle the unfinished ones with the
        venue before any new order; returns how many orders needed reconciling."""
        path = journal_path or (self.journal.path if self.journal is not None else None)
        if path is None:
            return 0
        orders, fills = Journal.load(path)
        for order in orders.values():
            self.orders.add(order)
            group = self._group_of(order)
            if order.is_unwind:
                group.unwind_orders.append(order)
            else:
                group.legs[order.leg] = order
        this_run = self.journal.run_id if self.journal is not None else ""
        for run_id, u in fills:
            order = orders.get(u.client_order_id)
            if order is not None and run_id == this_run:      # positions count from this run's start
                self.accounting.on_fill(order, u)
        day_start = Journal.day_start_of(path, this_run) if this_run else None
        if day_start is not None:       # the loss limit keeps counting from the same baseline
            self.accounting.day, self.accounting.day_start_pnl = day_start
        self._republish(orders, fills)
        unfinished = [o for o in orders.values() if o.is_open]
        if unfinished:
            log.warning("journal %s: %d unfinished orders; reconciling with the venue", path, len(unfinished))
            self._apply(self.venue.reconcile(unfinished))
        # expiries of the orders still resting (the journal keeps good_till_mono_ns; CLOCK_MONOTONIC
        # holds across a restart of the process, not across a reboot of the machine)
        for order in unfinished:
            if order.is_open and order.good_till_mono_ns:
                heapq.heappush(self._expiries, (order.good_till_mono_ns, order.client_order_id))
        for group in self.groups.values():
            if group.all_terminal():
                group.settled = True       # history: no unwinding of the past on restart
        if this_run:     # orders this run's earlier incarnations sent (a SIGKILL loses no count)
            self.accounting.orders_sent = sum(
                1 for coid in Journal.orders_of_run(path, this_run)
                if coid in orders and orders[coid].status != REFUSED
                and not (orders[coid].status == REJECTED and orders[coid].reject_code == NO_SUCH_ORDER))
        return len(unfinished)

    _STATUS_KIND: ClassVar[dict[str, ExecKind]] = {"NEW": ExecKind.ACK, "PARTIALLY_FILLED": ExecKind.PARTIAL_FILL, "FILLED": ExecKind.FILL,
                    "CANCELED": ExecKind.CANCELED, "EXPIRED": ExecKind.CANCELED, "EXPIRED_IN_MATCH": ExecKind.CANCELED,
                    "REJECTED": ExecKind.REJECTED, "REFUSED": ExecKind.REFUSED}

    def _republish(self, orders: dict[str, Order], fills: list) -> None:
        """States the journal holds but the exec ring may not (the process died between the
        fsync and the publish): published again, so consumers see every outcome at least once."""
        last_fill = {u.client_order_id: u for _, u in fills}
        for order in orders.values():
            kind = self._STATUS_KIND.get(order.status)
            if kind is None or order.published == (order.status, order.cum_qty):
                continue
            fill = last_fill.get(order.client_order_id) if kind in (ExecKind.FILL, ExecKind.PARTIAL_FILL) else None
            fee_asset = self._fee_asset_ids.get(fill.fee_asset, -1) if fill is not None else -1
            log.warning("order %s: publishing its %s again (not known to have reached the exec ring)",
                        order.client_order_id, order.status)
            self._publish(order, kind, fill=fill, fee_asset_id=fee_asset,
                          reject_code=order.reject_code)
        self._commit()

    def stats(self) -> dict:
        snap = self.accounting.snapshot(self.valuer)
        now = self.clock()
        rate = self.gate.rate
        snap.update({"mode": self.venue.mode, "open_orders": self.orders.open_count(),
                     "open_order_list": self.open_order_list(now),
                     "kill_switch": self.kill.reason, "duplicates": self.duplicates, "events": self.events,
                     "rehearsals": self.rehearsals, "balance_mismatches": self.balance_mismatches,
                     "daily_pnl": self.accounting.daily_pnl_so_far(self.valuer, int(time.time() // 86_400)),
                     "daily_loss_limit": self.gate.limits.daily_loss_limit,
                     "rate_budget": rate.usage(now),
                     "rate_credits": rate.credited,
                     "backoff_s": max(0.0, (rate.closed_until_ns - now) / 1e9),
                     "journal_records": self.journal.records if self.journal is not None else 0,
                     "journal_syncs": self.journal.syncs if self.journal is not None else 0})
        snap["by_strategy"] = self.accounting.by_strategy(self.valuer, self.strategy_names)
        if self.budgets:
            snap["strategy_budgets"] = self.budgets.usage(self.orders.open_orders(), self.valuer, now)
        snap["opposite_sides"] = dict(self.opposite_sides)
        snap["venue"] = self.venue.stats()
        balances = self.venue.balances()
        if balances is not None:
            snap["balances"] = balances
        return snap

    def open_order_list(self, now_ns: int | None = None, limit: int = 100) -> list[dict]:
        """The open orders for people (``ctrader status``, the monitor): exact decimal strings."""
        now_ns = self.clock() if now_ns is None else now_ns
        out = []
        for o in self.orders.open_orders()[:limit]:
            info = self.universe.symbols[o.symbol_id]
            out.append({"client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side_name,
                        "type": o.type_name, "tif": o.tif_name, "status": o.status,
                        "price": format_trimmed(o.price, decimals_of(info.tick_units)) if o.price else None,
                        "qty": format_trimmed(o.qty, decimals_of(info.step_units)),
                        "filled": format_trimmed(o.cum_qty, decimals_of(info.step_units)),
                        "group_id": f"{o.group_id:x}", "leg": o.leg, "unwind": o.is_unwind,
                        "age_s": round((now_ns - o.sent_mono_ns) / 1e9, 3) if o.sent_mono_ns else None})
        return out

    RECANCEL_S: ClassVar[float] = 0.5    # while stopping: cancel orders still open again this often

    def close(self, answer_wait_s: float = 3.0) -> None:
        """Cancel open orders and wait up to ``answer_wait_s`` for the answers, then close the
        venue and the journal. Orders still open are cancelled again every ``RECANCEL_S``: a
        cancel that reached the venue before its order (still in flight) was refused, and the
        order rests once it lands. What is still open at the end is named in the log."""
        deadline = time.monotonic() + answer_wait_s
        why = "executor stopping"
        while self.cancel_all(why) and time.monotonic() < deadline:
            why = "executor stopping: still open"
            next_round = min(deadline, time.monotonic() + self.RECANCEL_S)
            while self.orders.open_count() and time.monotonic() < next_round:
                if not self.poll():
                    time.sleep(0.005)
        still_open = [o.client_order_id for o in self.orders.open_orders()]
        if still_open:
            log.error("stopping with %d orders not known to be closed at the venue: %s", len(still_open),
                      ", ".join(still_open))
        self.venue.close()
        if self.journal is not None:
            self.journal.close()
