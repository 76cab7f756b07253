"""The risk gate: every order passes here before anything leaves the executor.

``RiskGate.check(order, now_mono_ns)`` returns ``RefusalReason.NONE`` or the first limit the
order breaks, in this order: kill switch, a refused group, daily loss, stale book, exchange
filters (``SymbolRules.check``), price band, order notional, group notional, position, open
orders, order-rate budget. The rate budget is charged only when everything else passed, so a
refused order costs nothing.

    gate = RiskGate(RiskLimits(max_order_notional=1000), universe, books, valuer, accounting,
                    order_book, KillSwitch("~/.ctrader/KILL"))
    reason = gate.check(order, time.monotonic_ns())
    if reason: publish REFUSED(reason)

A group whose first leg is refused is refused whole: ``check`` remembers the group and refuses
its later legs with the same reason. Notionals and positions are valued in the valuation asset
(``accounting.Valuer``) at the current mid.
"""
from __future__ import annotations

import bisect
import logging
import math
import os
import signal
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ctrader.core.records import MdFlag, OrderType, RefusalReason, Side
from ctrader.execution.orders import Order, client_order_ids
from ctrader.execution.strategy_budgets import StrategyBudget, StrategyBudgets
from ctrader.execution.risk_kernel import _EXACT, OPEN_COLS, SURE, RiskTables, gate_batch
from ctrader.venue.decimals import ONE
from ctrader.venue.errors import BinanceError
from ctrader.venue.filters import OrderCheck

# Plain ints for the per-order checks: an enum member lookup (``OrderType.MARKET``) costs a
# Python-level ``__getattr__`` each time, and the gate runs on every order's critical path.
_MARKET = int(OrderType.MARKET)
_BUY = int(Side.BUY)
_STALE = int(MdFlag.STALE)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RiskLimits:
    """Limits in the valuation asset (notional, position, loss); counts; rates."""
    max_order_notional: float = 1000.0
    max_group_notional: float = 3000.0
    max_position: float = 5000.0          # |change of holdings| of any asset, valued, incl. open orders
    max_open_orders: int = 20
    orders_per_10s: int = 40              # Binance ORDERS is 50 / 10 s: stay below it
    orders_per_day: int = 150_000         # Binance: 160 000 / day
    weight_per_minute: int = 4_800        # Binance REQUEST_WEIGHT: 6 000 / min per IP
    daily_loss_limit: float = 500.0       # refuse new orders once today's PnL is below -this
    max_book_age_ms: float = 5_000.0      # a book older than this is stale
    price_band_pct: float = 5.0           # a LIMIT price further than this from mid is refused
    # each strategy's budget inside these ([risk.per_strategy]; ``strategy_budgets``)
    per_strategy: tuple[StrategyBudget, ...] = ()

    @classmethod
    def from_config(cls, risk_cfg: Any) -> RiskLimits:
        """From the [risk] config section (fields of the same names)."""
        fields = {f: getattr(risk_cfg, f) for f in cls.__dataclass_fields__ if hasattr(risk_cfg, f)}
        fields["per_strategy"] = tuple(StrategyBudgets.from_config(risk_cfg, risk_cfg.orders_per_10s).budgets.values())
        return cls(**fields)


class KillSwitch:
    """Engaged by a file (``ctrader kill`` writes ``{data_dir}/KILL``), SIGUSR1, or ``engage()``.

    Removing the file (``ctrader kill --clear``) releases a file kill; a signal or programmatic
    kill lasts until the process restarts.
    """

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = os.fspath(os.path.expanduser(path)) if path else None
        self._latched = ""

    def install_signal_handler(self) -> None:
        """SIGUSR1 engages the switch (main thread only, as Python requires for handlers)."""
        signal.signal(signal.SIGUSR1, self._on_signal)

    def _on_signal(self, _signum, _frame) -> None:
        # A handler only stores: no logging (its lock may be held by the code we interrupted).
        # The executor's next ``check_kill`` logs it and cancels the open orders.
        self._latched = self._latched or "SIGUSR1"

    def engage(self, reason: str = "manual") -> None:
        if not self._latched:
            log.warning("kill switch engaged (%s): no new orders, cancelling open ones", reason)
        self._latched = reason

    @property
    def engaged(self) -> bool:
        # os.access, not os.path.exists: no FileNotFoundError raised and caught when the file is
        # absent (the usual case, on every intent batch): 0.7 vs 1.35 µs back to back, 22 vs
        # 34 µs after 50 ms idle on the test VM
        return bool(self._latched) or (self.path is not None and os.access(self.path, os.F_OK))

    @property
    def reason(self) -> str:
        if self._latched:
            return self._latched
        return f"file {self.path}" if self.engaged else ""


class _Charge:
    """One order's charge in one ORDERS window: counted from ``t`` until it leaves the window
    or, once the order filled for the first time, from ``credit_ns`` on (``RateBudget.credit``)."""
    __slots__ = ("amount", "client_order_id", "credit_ns", "live", "t")

    def __init__(self, t: int, amount: int, client_order_id: str | None) -> None:
        self.t = t
        self.amount = amount
        self.credit_ns: int | None = None     # set once: counts no more from then on
        self.live = True                      # still in its window's deque
        self.client_order_id = client_order_id


class RateBudget:
    """Sliding-window counts of orders (10 s, 1 day) and request weight (1 min), kept below the
    venue's limits so that a burst is refused here instead of banned there.

    The ORDERS windows count *unfilled* orders, as Binance does: every new order adds 1, and
    "when an order fills for the first time (partially or fully), the unfilled count is
    decremented by 1 for all ORDERS intervals" (faqs/order_count_decrement). ``charge`` records
    an order under its client order id; ``credit(client_order_id, at_ns)`` (its first fill)
    makes that charge stop counting from ``at_ns`` on. Orders that fill keep only the request
    weight busy; resting and expired-unfilled orders hold their ORDERS slot for the window.

    When the venue says back off all the same (429 / 418 with a retry time: another client on
    the same IP or account, limits lower than configured), ``back_off`` closes the budget until
    then: Binance bans an IP that keeps sending after a 429."""

    WINDOWS_NS: ClassVar[dict[str, int]] = {"orders_10s": 10 * 10**9, "orders_day": 86_400 * 10**9, "weight_min": 60 * 10**9}
    ORDER_WINDOWS: ClassVar[tuple[str, ...]] = ("orders_10s", "orders_day")
    # How far before the latest time asked a later question may look (a replay asks at the
    # session's gate times, a little ahead of or behind its market time): credits older than
    # this are settled, and the day window forgets its credited charges after it, so that a day
    # of orders that fill (only the request weight limits them) does not pile up in memory.
    SETTLED_NS: ClassVar[int] = 10 * 10**9
    COMPACT_MIN: ClassVar[int] = 1024

    def __init__(self, orders_per_10s: int, orders_per_day: int, weight_per_minute: int) -> None:
        self.limits = {"orders_10s": orders_per_10s, "orders_day": orders_per_day,
                       "weight_min": weight_per_minute}
        # in time order: (time, amount) for the weight, a _Charge for each order in an ORDERS window
        self.events: dict[str, deque] = {k: deque() for k in self.limits}
        # what each window's events hold, less the credited charges (whatever their credit time)
        self.used: dict[str, int] = dict.fromkeys(self.limits, 0)
        # ORDERS windows: (credit time, charge) of the credited charges, in credit time order
        self._credits: dict[str, deque] = {k: deque() for k in self.ORDER_WINDOWS}
        self._by_id: dict[str, tuple[_Charge, ...]] = {}     # charges not yet credited
        self._n_credited: dict[str, int] = dict.fromkeys(self.ORDER_WINDOWS, 0)   # credited, still in events
        self._compact_at: dict[str, int] = dict.fromkeys(self.ORDER_WINDOWS, self.COMPACT_MIN)
        self.credited = 0                  # orders whose first fill freed their ORDERS slot
        self.closed_until_ns = 0           # the venue's retry time (monotonic), see back_off
        # ``used`` is each window's use at any time from ``_latest_ns`` (the latest charge or
        # credit) until ``_next_expiry_ns`` (when the oldest event leaves its window): in
        # between, ``_expire`` has nothing to do. A burst of orders asks at one time, and each
        # pass over the windows cost microseconds on the order path.
        self._latest_ns = 0
        self._next_expiry_ns = 0
        # charges of orders admitted but not yet recorded (``charge_later``): recorded before the
        # budget is next read or changed, which is after the batch's orders are out
        self._later: list[tuple[int, str]] = []

    def back_off(self, until_ns: int) -> None:
        """Allow nothing before ``until_ns`` (monotonic ns): the venue's 429/418 retry time. An
        earlier time never shortens the wait already set."""
        self.closed_until_ns = max(self.closed_until_ns, until_ns)

    def _expire(self, now_ns: int) -> dict[str, int]:
        """Drop what left the windows by ``now_ns``; returns each window's use at ``now_ns``:
        the charges at times <= ``now_ns`` still in the window and not credited at or before
        ``now_ns``.

        An order charged at a time after ``now_ns`` does not count yet. A live or paper
        executor's clock never goes back, so that never happens there; a replay of a recorded
        session charges each order when the session sent it, which can be after the replay's
        market time (an unwind the session's loop sent late): a budget at ``now_ns`` holds
        what was sent by then, as the session's did. Likewise a credit at a time after
        ``now_ns`` does not free the slot yet."""
        if self._later:
            self._charge_admitted()
        if self._latest_ns <= now_ns < self._next_expiry_ns:
            return self.used
        used = self.used
        ahead = False
        for key, events in self.events.items():
            horizon = now_ns - self.WINDOWS_NS[key]
            if key == "weight_min":
                while events and events[0][0] <= horizon:
                    used[key] -= events.popleft()[1]
                ahead = ahead or bool(events and events[-1][0] > now_ns)
                continue
            while events and events[0].t <= horizon:
                c = events.popleft()
                c.live = False
                if c.credit_ns is not None:
                    self._n_credited[key] -= 1
                else:
                    used[key] -= c.amount
                    if key == "orders_day" and c.client_order_id is not None \
                            and self._by_id.get(c.client_order_id, (None,))[-1] is c:
                        del self._by_id[c.client_order_id]     # never filled: no credit to come
            settled = now_ns - min(self.WINDOWS_NS[key], self.SETTLED_NS)
            credits = self._credits[key]
            while credits and credits[0][0] <= settled:
                credits.popleft()
            n_credited = self._n_credited[key]
            if n_credited > self._compact_at[key] and 2 * n_credited > len(events):
                events = self._compact(key, settled)
            ahead = ahead or bool(events and events[-1].t > now_ns) or bool(credits and credits[-1][0] > now_ns)
        self._next_expiry_ns = min((self._first_ns(key) + w for key, w in self.WINDOWS_NS.items()
                                    if self.events[key]), default=_NEVER)
        if not ahead:
            return used
        used = dict(used)
        for key, events in self.events.items():
            if key == "weight_min":
                for t, amount in reversed(events):
                    if t <= now_ns:
                        break
                    used[key] -= amount
                continue
            for c in reversed(events):           # charged after now_ns: not yet counted
                if c.t <= now_ns:
                    break
                used[key] -= c.amount
            for t, c in reversed(self._credits[key]):    # credited after now_ns: counted still
                if t <= now_ns:
                    break
                if c.live:
                    used[key] += c.amount
        return used

    def _first_ns(self, key: str) -> int:
        head = self.events[key][0]
        return head[0] if key == "weight_min" else head.t

    def _compact(self, key: str, settled_ns: int) -> deque:
        """Drop from ``key``'s window the charges credited by ``settled_ns``: they count at no
        later time (their amount left ``used`` when they were credited). Returns the window."""
        keep: deque = deque()
        for c in self.events[key]:
            if c.credit_ns is not None and c.credit_ns <= settled_ns:
                c.live = False
                self._n_credited[key] -= 1
            else:
                keep.append(c)
        self.events[key] = keep
        # amortised: the next pass once as many again were credited
        self._compact_at[key] = 2 * self._n_credited[key] + self.COMPACT_MIN
        return keep

    def allows(self, now_ns: int, orders: int = 1, weight: int = 1, reserve: int = 0) -> bool:
        """Room for ``orders`` more while keeping ``reserve`` orders of the 10 s window free."""
        used = self._expire(now_ns)
        if now_ns < self.closed_until_ns:
            return False
        return (used["orders_10s"] + orders + reserve <= self.limits["orders_10s"]
                and used["orders_day"] + orders <= self.limits["orders_day"]
                and used["weight_min"] + weight <= self.limits["weight_min"])

    def room(self, now_ns: int, reserve: int = 0) -> int:
        """How many more orders of weight 1 ``allows(now_ns, reserve=reserve)`` would let
        through, one after the other."""
        used = self._expire(now_ns)
        if now_ns < self.closed_until_ns:
            return 0
        return max(0, min(self.limits["orders_10s"] - used["orders_10s"] - reserve,
                          self.limits["orders_day"] - used["orders_day"],
                          self.limits["weight_min"] - used["weight_min"]))

    def usage(self, now_ns: int) -> dict[str, dict[str, int]]:
        """Each window's use and limit at ``now_ns`` (for the stats file)."""
        used = self._expire(now_ns)
        return {k: {"used": used[k], "limit": self.limits[k]} for k in self.limits}

    def charge(self, now_ns: int, orders: int = 1, weight: int = 1, client_order_id: str | None = None) -> None:
        """Count what was sent at ``now_ns``; the windows stay in time order (a replay may
        charge a time earlier than the last one: see ``_expire``). ``client_order_id`` names
        the order, for ``credit`` when it first fills (an order charged without one is never
        credited)."""
        if self._later:
            self._charge_admitted()
        self._latest_ns = max(self._latest_ns, now_ns)
        self._next_expiry_ns = min(self._next_expiry_ns, now_ns + self.WINDOWS_NS["orders_10s"])
        if weight:
            events = self.events["weight_min"]
            if events and events[-1][0] > now_ns:
                bisect.insort(events, (now_ns, weight))
            else:
                events.append((now_ns, weight))
            self.used["weight_min"] += weight
        if not orders:
            return
        charges = []
        for key in self.ORDER_WINDOWS:
            c = _Charge(now_ns, orders, client_order_id)
            events = self.events[key]
            if events and events[-1].t > now_ns:
                bisect.insort(events, c, key=_charge_time)
            else:
                events.append(c)
            self.used[key] += orders
            charges.append(c)
        if client_order_id is not None:
            self._by_id[client_order_id] = tuple(charges)

    def charge_later(self, now_ns: int, client_order_id: str) -> None:
        """``charge(now_ns, client_order_id=...)`` for an order of weight 1 that leaves now:
        recorded when the budget is next read or changed (the gate admits a batch, its orders
        go out, then their answers credit them), not on the order path."""
        self._later.append((now_ns, client_order_id))

    def _charge_admitted(self) -> None:
        later, self._later = self._later, []
        for now_ns, client_order_id in later:
            self.charge(now_ns, client_order_id=client_order_id)

    def credit(self, client_order_id: str, at_ns: int) -> bool:
        """The order ``client_order_id`` filled for the first time at ``at_ns``: its ORDERS
        charge counts no more at times >= ``at_ns`` (never before its own charge time); the
        request weight it cost stays. An order unknown (not charged here, charged before a
        restart, or gone from the day window) or credited already changes nothing: False."""
        if self._later:
            self._charge_admitted()
        charges = self._by_id.pop(client_order_id, None)
        if charges is None:
            return False
        for key, c in zip(self.ORDER_WINDOWS, charges):
            if not c.live or c.credit_ns is not None:
                continue
            c.credit_ns = max(at_ns, c.t)
            self._latest_ns = max(self._latest_ns, c.credit_ns)
            self.used[key] -= c.amount
            self._n_credited[key] += 1
            credits = self._credits[key]
            if credits and credits[-1][0] > c.credit_ns:
                bisect.insort(credits, (c.credit_ns, c), key=_credit_time)
            else:
                credits.append((c.credit_ns, c))
        self.credited += 1
        return True


_NEVER = 1 << 62


def _charge_time(c: _Charge) -> int:
    return c.t


def _credit_time(entry: tuple[int, _Charge]) -> int:
    return entry[0]


class RiskGate:
    def __init__(self, limits: RiskLimits, universe: Any, books: Any, valuer: Any, accounting: Any,
                 order_book: Any, kill: KillSwitch | None = None) -> None:
        self.limits = limits
        self.universe = universe
        self.books = books
        self.valuer = valuer
        self.accounting = accounting
        self.order_book = order_book
        self.kill = kill or KillSwitch()
        self.rate = RateBudget(limits.orders_per_10s, limits.orders_per_day, limits.weight_per_minute)
        # New trades leave this much of the 10 s order budget to unwinds: closing a broken
        # group must not wait behind the strategy's next opportunities.
        self.unwind_reserve = limits.orders_per_10s // 5
        self.refused_groups: dict[int, RefusalReason] = {}
        self.group_notional: dict[int, float] = {}
        self._replacing: Order | None = None     # set during check(): see its ``replacing``
        self.tables = RiskTables.build(universe, valuer.routes) if hasattr(valuer, "routes") else None
        self._limits_vec = np.array([limits.max_order_notional, limits.max_group_notional, limits.max_position,
                                     limits.price_band_pct, limits.max_book_age_ms * 1e6], np.float64)
        self._held = np.zeros(len(universe.assets), np.float64)
        self._held_order = np.zeros(len(universe.assets), np.int64)
        self._asset_ids = {name: i for i, name in enumerate(universe.assets)}
        self.batches = {"compiled": 0, "reference": 0}    # how check_batch decided
        self._scratch = (np.zeros(0, np.int32),) * 4 + (np.zeros((0, OPEN_COLS), np.int64),)

    # --- the gate -------------------------------------------------------------------------------

    def check(self, order: Order, now_mono_ns: int, unwind: bool = False,
              replacing: Order | None = None) -> RefusalReason:
        """The first limit ``order`` breaks, or NONE (then the rate budget is charged).

        ``unwind`` orders (closing inventory a failed group left) skip the notional, position and
        loss limits, which exist to stop new risk, but not the kill switch, book, filter and rate checks.
        ``replacing``: the open order ``order`` takes the place of (a cancel-replace): its unfilled
        part's exposure, its open-order slot and its share of the group's notional are released
        for the check, as the venue cancels it before placing ``order``.
        """
        self._replacing = replacing
        try:
            reason = self._first_breach(order, now_mono_ns, unwind)
        finally:
            self._replacing = None
        if reason:
            if order.leg == 0 and not unwind and replacing is None:
                self.refused_groups[order.group_id] = reason
            return reason
        self.rate.charge(now_mono_ns, client_order_id=order.client_order_id)
        return RefusalReason.NONE

    def _open_orders(self) -> list[Order]:
        """The open orders that count against a check (all but the one being replaced)."""
        orders = self.order_book.open_orders()
        return orders if self._replacing is None else [o for o in orders if o is not self._replacing]

    def check_batch(self, intents: np.ndarray, n: int, skip: list[bool], now_mono_ns: int,
                    record: bool = True, killed: bool | None = None,
                    client_ids: list[str] | None = None) -> list[int] | None:
        """``check`` for each of ``intents[:n]`` (ORDER_INTENT records, none an unwind) as if
        called one after the other at ``now_mono_ns``, each passing intent counted as an open
        order for the ones after it, in one compiled call (``risk_kernel``). ``skip[i]``: not
        gated (a duplicate), -1 in the answer. With ``record`` the state changes ``check``
        makes (rate budget, group notional, refused groups) are made. ``killed``: the kill
        switch as the caller just read it (the file check is a system call: once per batch).
        ``client_ids``: the intents' client order ids, if the caller has them (the rate budget
        charges each passing order under its id, to credit it on its first fill).

        None when the kernel cannot decide the batch exactly (an amount too large for float64,
        a comparison too close to call, a symbol whose filters are not in the tables): then
        gate the orders with ``check`` one by one."""
        tables = self.tables
        books = getattr(self.books, "books", None)      # the BookCache array behind the view
        if tables is None or books is None or n == 0:
            return None
        scratch = self._scratch_for(n, self.order_book.open_count() + n)
        pre, group_before, reasons, totals, rows = scratch
        kill = self.kill.engaged if killed is None else killed
        gids = intents["group_id"][:n].tolist()
        sids = intents["symbol_id"][:n].tolist()
        gated = False
        for i in range(n):
            gid = gids[i]
            group_before[i] = 0.0
            if skip[i]:
                pre[i] = -1
            elif kill:
                pre[i] = RefusalReason.KILL_SWITCH
            elif gid in self.refused_groups:
                pre[i] = self.refused_groups[gid]
            elif not tables.compiled[sids[i]]:
                return self._declined()
            else:
                pre[i] = 0
                group_before[i] = self.group_notional.get(gid, 0.0)
                gated = True
        lim = self.limits
        acct = self.accounting
        day = int(time.time() // 86_400)
        if not gated:
            daily_known = 0
        elif day != acct.day:         # the first look of a day sets its starting PnL: as check does
            # (a rehearsal, ``record`` false, changes nothing: a new day's PnL starts at zero loss)
            daily_known = int(acct.daily_pnl(self.valuer, day) < -lim.daily_loss_limit) if record else 0
        else:
            daily_known = -1          # the kernel values the positions when an intent needs it
        open_now = self.order_book.open_orders()
        for k, o in enumerate(open_now):
            remaining = o.qty - o.cum_qty
            if not (0 <= o.price < _EXACT and 0 <= remaining < _EXACT):
                return self._declined()
            rows[k] = (o.symbol_id, o.side, o.order_type == _MARKET, o.price, remaining)
        held, held_order = self._held, self._held_order
        held[:] = 0.0
        n_held = 0
        for name, units in acct.positions.items():
            asset_id = self._asset_ids.get(name)
            if units and asset_id is not None:
                held[asset_id] = units / ONE
                held_order[n_held] = asset_id
                n_held += 1
        room = self.rate.room(now_mono_ns, self.unwind_reserve)
        status = gate_batch(intents, n, pre, group_before, daily_known, acct.day_start_pnl, lim.daily_loss_limit,
                            books, tables.filters, tables.symbols, tables.routes, rows, len(open_now), held,
                            held_order, n_held, self._limits_vec, lim.max_open_orders, room, self.valuer.val_id,
                            now_mono_ns, reasons, totals)
        if status != SURE:
            return self._declined()
        self.batches["compiled"] += 1
        out = reasons[:n].tolist()
        if record:
            coids = None
            for i, reason in enumerate(out):
                if reason == 0:
                    if coids is None:
                        coids = client_ids if client_ids is not None else client_order_ids(intents, n)
                    self.rate.charge_later(now_mono_ns, coids[i])
                    self.group_notional[gids[i]] = float(totals[i])
                elif reason > 0 and intents[i]["leg"] == 0:
                    self.refused_groups[gids[i]] = RefusalReason(reason)
        return out

    def log_filter_refusal(self, order: Order, now_mono_ns: int) -> None:
        """Log which exchange filter ``order`` breaks, as ``check`` does (``check_batch`` only
        says FILTER)."""
        mid = self._fresh_mid(order.symbol_id, now_mono_ns)
        if mid is not None:
            self._passes_filters(order, self.universe.symbols[order.symbol_id], mid)

    def _declined(self) -> None:
        """Count a batch left to the reference (``check_batch`` returns None)."""
        self.batches["reference"] += 1

    def _scratch_for(self, n: int, n_rows: int) -> tuple[np.ndarray, ...]:
        """The kernel's work arrays, reused across batches (grown when a batch needs more)."""
        pre, rows = self._scratch[0], self._scratch[-1]
        if len(pre) < n or len(rows) < n_rows:
            size = max(2 * len(pre), n)
            self._scratch = (np.zeros(size, np.int32), np.zeros(size, np.float64), np.zeros(size, np.int32),
                             np.zeros(size, np.float64), np.zeros((max(2 * len(rows), n_rows), OPEN_COLS), np.int64))
        return self._scratch

    def dry_check(self, order: Order, now_mono_ns: int) -> RefusalReason:
        """What ``check`` would say, recording nothing (no budget charged, no group notional):
        the benchmark's reference for ``check_batch``."""
        return self._first_breach(order, now_mono_ns, False, record=False)

    def _first_breach(self, order: Order, now_ns: int, unwind: bool, record: bool = True) -> RefusalReason:
        lim = self.limits
        if self.kill.engaged:
            return RefusalReason.KILL_SWITCH
        if not unwind and order.group_id in self.refused_groups:
            return self.refused_groups[order.group_id]
        if not unwind and self.accounting.daily_pnl(self.valuer, int(time.time() // 86_400)) < -lim.daily_loss_limit:
            return RefusalReason.DAILY_LOSS
        mid = self._fresh_mid(order.symbol_id, now_ns)
        if mid is None:
            return RefusalReason.STALE_BOOK
        info = self.universe.symbols[order.symbol_id]
        if not self._passes_filters(order, info, mid):
            return RefusalReason.FILTER
        if (order.order_type != _MARKET and lim.price_band_pct > 0
                and abs(order.price / ONE / mid - 1.0) * 100.0 > lim.price_band_pct):
            return RefusalReason.PRICE_BAND
        if not unwind:
            quote_value = self.valuer.price(info.quote_id)
            if math.isnan(quote_value):
                return RefusalReason.STALE_BOOK     # cannot value the order: no usable book
            px = order.price / ONE if order.order_type != _MARKET else mid
            notional = px * order.qty / ONE * quote_value
            if notional > lim.max_order_notional:
                return RefusalReason.MAX_ORDER_NOTIONAL
            group_total = self.group_notional.get(order.group_id, 0.0) + notional - self._replaced_notional()
            if group_total > lim.max_group_notional:
                return RefusalReason.MAX_GROUP_NOTIONAL
            if self._position_breach(order, info, px):
                return RefusalReason.MAX_POSITION
        open_count = self.order_book.open_count() if self._replacing is None else len(self._open_orders())
        if open_count >= lim.max_open_orders:
            return RefusalReason.MAX_OPEN_ORDERS
        if not self.rate.allows(now_ns, reserve=0 if unwind else self.unwind_reserve):
            return RefusalReason.RATE_BUDGET
        if record and not unwind:
            self.group_notional[order.group_id] = group_total
        return RefusalReason.NONE

    # --- pieces -------------------------------------------------------------------------------------

    def _replaced_notional(self) -> float:
        """The unfilled part of the order being replaced, valued as its admission was."""
        old = self._replacing
        if old is None or old.order_type == _MARKET:
            return 0.0
        info = self.universe.symbols[old.symbol_id]
        quote_value = self.valuer.price(info.quote_id)
        if math.isnan(quote_value):
            return 0.0
        return old.price / ONE * (old.qty - old.cum_qty) / ONE * quote_value

    def _fresh_mid(self, symbol_id: int, now_ns: int) -> float | None:
        b = self.books
        if b.flags[symbol_id] & _STALE or b.n_bids[symbol_id] == 0 or b.n_asks[symbol_id] == 0:
            return None
        if now_ns - int(b.last_recv_mono_ns[symbol_id]) > self.limits.max_book_age_ms * 1e6:
            return None
        return (float(b.bid_px[symbol_id, 0]) + float(b.ask_px[symbol_id, 0])) / 2.0

    def _passes_filters(self, order: Order, info: Any, mid: float) -> bool:
        rules = info.rules
        is_market = order.order_type == _MARKET
        open_now = self._open_orders()
        open_here = sum(1 for o in open_now if o.symbol_id == order.symbol_id)
        check = OrderCheck(side=order.side_name, order_type=order.type_name,
                           price=None if is_market else order.price, quantity=order.qty,
                           reference_price=round(mid * ONE), open_orders=open_here,
                           exchange_open_orders=len(open_now))
        try:
            rules.check(check)
        except BinanceError as exc:
            log.info("refused %s %s: %s", order.client_order_id, order.symbol, exc.msg)
            return False
        return order.qty > 0 and (is_market or order.price > 0)

    def _position_breach(self, order: Order, info: Any, px: float) -> bool:
        """Would the base or quote holdings change, counting open orders, exceed the limit?"""
        exposure = {info.base_id: 0.0, info.quote_id: 0.0}
        for o in self._open_orders() + [order]:
            other = self.universe.symbols[o.symbol_id]
            sign = 1.0 if o.side == _BUY else -1.0
            o_px = o.price / ONE if o.order_type != _MARKET else px
            remaining = (o.qty - o.cum_qty) / ONE
            if other.base_id in exposure:
                exposure[other.base_id] += sign * remaining
            if other.quote_id in exposure:
                exposure[other.quote_id] -= sign * remaining * o_px
        for asset_id, pending in exposure.items():
            if asset_id == self.valuer.val_id:
                continue     # the valuation asset is what positions are measured in
            name = self.universe.assets[asset_id]
            held = self.accounting.positions.get(name, 0) / ONE
            value = abs(held + pending) * self.valuer.price(asset_id)
            if value > self.limits.max_position:
                return True
        return False
