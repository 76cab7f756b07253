"""The race: who reaches the venue first after a price opens an arbitrage.

A race is a seeded schedule of dislocations (``make_schedule``; the model's random ones are off
meanwhile), so that every contender, each in its own round against a fresh simulator with the
same seed, sees the same sequence. ``RaceTracker`` records, on the simulator's clock
(CLOCK_MONOTONIC ns):

* per dislocation and per connection, the moment the first frame that carries it (any stream of
  the dislocated symbol, after the step that opened it) was written to the socket: the kernel's
  TX stamp when ``kstamps`` has one, and the user-space stamp taken right after the ``send``;
* per order (WS API ``order.place``, REST ``POST /api/v3/order``) the moment it arrived: the
  kernel's RX stamp of the read that carried it, and the user-space stamp when the simulator
  took it up; with its account, API key, symbol, side, client order id and outcome;
* the books of the dislocated leg's triangles right after the step that opened it, from which
  ``available_profit`` computes what the dislocation offered.

Connections are grouped by *tag*: the listener they came in on (``SimServer.listen``), one per
contender, so that a contender's frames and orders pair up even when several are connected.
``attribute`` pairs them: an order answers a dislocation when it is the first order of that
account on a symbol of a triangle through the dislocated leg, arriving after the first frame of
the dislocation on its connection's tag and before the dislocation closed. Its reaction time is
``arrival - first frame``, kernel stamps on both ends when both exist.

What a dislocation offered (``available_profit``): the most a taker could make by running one of
the triangles through the dislocated leg once, walking the three books' depth as they stood when
the first frame went out, with the taker fee on every leg, valued in USDT at the assets' fair
values (which a dislocation does not move). An account's capture of a dislocation is the value,
at the same fair values, of the fills of its orders on those symbols from the dislocation's
first frame until the next dislocation opened (so unwinds count), minus commissions.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ctrader.sim.kstamps import TxStamp
from ctrader.sim.market import Dislocation, ScheduledDislocation
from ctrader.venue.decimals import ONE
from ctrader.venue.errors import BinanceError

if TYPE_CHECKING:
    from ctrader.sim.server import SimServer

DEPTH_SNAPSHOT = 25           # levels per side kept of each book at the first frame


def make_schedule(triangles: list[tuple[str, str, str]], seed: int, count: int, start_ms: int,
                  interval_ms: int, duration_ms: int, bps: float) -> list[ScheduledDislocation]:
    """``count`` dislocations every ``interval_ms`` from ``start_ms`` (elapsed market time): each on
    one leg of a triangle drawn with ``seed``, up or down by ``bps``. The same arguments give the
    same schedule."""
    if count < 1 or interval_ms <= duration_ms:
        raise ValueError("a race needs at least one dislocation, each closed before the next opens "
                         f"(interval_ms {interval_ms} <= duration_ms {duration_ms})")
    if not triangles:
        raise ValueError("the simulator's universe has no triangle to dislocate")
    rand = random.Random(seed)
    out = []
    for k in range(count):
        leg = rand.choice(rand.choice(triangles))
        sign = 1.0 if rand.random() < 0.5 else -1.0
        out.append(ScheduledDislocation(start_ms + k * interval_ms, leg, sign * bps, duration_ms))
    return out


@dataclass
class OrderArrival:
    """One order request that reached the simulator with a valid signature."""
    seq: int
    account: str
    api_key: str
    tag: str                       # the listener it came in on
    transport: str                 # ws | rest
    symbol: str
    side: str
    client_order_id: str
    arrived_user_ns: int           # when the simulator took the request up
    arrived_kernel_ns: int         # kernel RX stamp of the read that carried it (0: none)
    order_id: int = -1
    status: str = ""               # the order's status (at the last report), or REJECTED
    code: int = 0                  # Binance error code when refused

    @property
    def arrived_ns(self) -> int:
        return self.arrived_kernel_ns or self.arrived_user_ns


@dataclass
class RaceDislocation:
    id: int
    symbol: str
    bps: float
    symbols: frozenset[str]                 # every symbol of a triangle through the leg
    triangles: list[tuple[str, str, str]]
    opened_market_ms: int
    opened_ns: int
    asset_values: dict[str, float]          # fair USDT values at the open
    closed_market_ms: int | None = None
    closed_ns: int | None = None
    books: dict[str, tuple[list, list]] = field(default_factory=dict)   # symbol -> (bids, asks) best first
    available: tuple[float, list] | None = None       # available_profit, computed once after the race
    frames: dict[object, tuple[str, TxStamp]] = field(default_factory=dict)  # connection -> (tag, stamp)

    def first_frames(self) -> dict[str, TxStamp]:
        """Per tag, the earliest first frame over its connections (kernel and user taken apart)."""
        out: dict[str, TxStamp] = {}
        for tag, stamp in self.frames.values():
            if not stamp.user_ns:
                continue               # marked, but the write has not happened (yet)
            best = out.get(tag)
            if best is None:
                out[tag] = TxStamp(stamp.user_ns, stamp.kernel_ns)
            else:
                best.user_ns = min(best.user_ns, stamp.user_ns)
                if stamp.kernel_ns:
                    best.kernel_ns = min(best.kernel_ns or stamp.kernel_ns, stamp.kernel_ns)
        return out


def observed_place(handler: Callable[[Any], dict], call: Any, arrival: OrderArrival,
                   observers: list[Callable[[OrderArrival], None]]) -> dict:
    """Run an order endpoint and tell ``observers`` about ``arrival`` with its outcome."""
    try:
        result = handler(call)
    except BinanceError as exc:
        arrival.status, arrival.code = "REJECTED", exc.code
        for observe in observers:
            observe(arrival)
        raise
    placed = result.get("newOrderResponse") or result       # a cancel-replace: its new order
    arrival.order_id = int(placed.get("orderId", -1))
    arrival.status = str(placed.get("status", "ACCEPTED"))
    arrival.client_order_id = arrival.client_order_id or str(placed.get("clientOrderId", ""))
    for observe in observers:
        observe(arrival)
    return result


def new_arrival(params: dict, key: Any, tag: str, transport: str, user_ns: int, kernel_ns: int) -> OrderArrival:
    """An ``OrderArrival`` for a signed order request (``key``: the ``ApiKey`` it was signed with)."""
    return OrderArrival(seq=-1, account=key.account.name, api_key=key.key, tag=tag, transport=transport,
                        symbol=str(params.get("symbol", "")), side=str(params.get("side", "")),
                        client_order_id=str(params.get("newClientOrderId", "")), arrived_user_ns=user_ns,
                        arrived_kernel_ns=kernel_ns)


class RaceTracker:
    """Listens to the model (dislocations), the stream hub (frames) and the APIs (orders)."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.dislocations: list[RaceDislocation] = []
        self.orders: list[OrderArrival] = []
        self.active = False
        self._opened_this_step: list[RaceDislocation] = []
        self._start_balances: dict[str, dict[str, int]] = {}
        self._fill_marks: dict[str, int] = {}
        self.assets_of = {s.symbol: (s.base, s.quote) for s in server.universe.symbols}
        self._by_triangle_leg: dict[str, list[tuple[str, str, str]]] = {}
        for tri in server.model.triangles:
            for leg in tri:
                self._by_triangle_leg.setdefault(leg, []).append(tri)

    # --- starting -----------------------------------------------------------------------------

    def start(self, count: int, seed: int, interval_ms: int, duration_ms: int, bps: float,
              lead_ms: int) -> list[dict]:
        """Schedule the race: the first dislocation ``lead_ms`` of market time from now."""
        model = self.server.model
        start = model.clock.elapsed_ms + lead_ms
        schedule = make_schedule(model.triangles, seed, count, start, interval_ms, duration_ms, bps)
        model.set_schedule(schedule, random_dislocations=False)
        self.dislocations.clear()
        self.orders.clear()
        accounts = self.server.accounts.accounts
        self._start_balances = {name: {a: b.free + b.locked for a, b in acct.balances.items()}
                                for name, acct in accounts.items()}
        self._fill_marks = {name: len(self.server.engine.trades.get(acct, ())) for name, acct in accounts.items()}
        self.active = True
        epoch = model.clock.epoch_ms
        return [{"at_market_ms": epoch + s.at_ms, "symbol": s.symbol, "bps": s.bps, "duration_ms": s.duration_ms}
                for s in schedule]

    # --- the model ----------------------------------------------------------------------------

    def dislocation_opened(self, d: Dislocation) -> None:
        if not self.active:
            return
        triangles = self._by_triangle_leg.get(d.symbol, [])
        rec = RaceDislocation(
            id=d.id, symbol=d.symbol, bps=d.bps, symbols=frozenset(s for t in triangles for s in t),
            triangles=triangles, opened_market_ms=self.server.clock.epoch_ms + d.opened_ms,
            opened_ns=time.monotonic_ns(), asset_values=self.server.model.asset_values())
        self.dislocations.append(rec)
        self._opened_this_step.append(rec)
        self.server.hub.race_symbols[d.symbol] = rec

    def dislocation_closed(self, d: Dislocation) -> None:
        for rec in reversed(self.dislocations):
            if rec.id == d.id:
                rec.closed_market_ms = self.server.clock.epoch_ms + d.until_ms
                rec.closed_ns = time.monotonic_ns()
                if self.server.hub.race_symbols.get(d.symbol) is rec:
                    del self.server.hub.race_symbols[d.symbol]
                return

    def after_step(self) -> None:
        """Keep the books as the step that opened a dislocation left them (before any order)."""
        if not self._opened_this_step:
            return
        books = self.server.engine.books
        for rec in self._opened_this_step:
            for symbol in rec.symbols:
                book = books[symbol]
                rec.books[symbol] = (book.bids.top(DEPTH_SNAPSHOT), book.asks.top(DEPTH_SNAPSHOT))
        self._opened_this_step.clear()

    # --- the APIs -----------------------------------------------------------------------------

    def order_arrived(self, arrival: OrderArrival) -> None:
        if self.active:
            arrival.seq = len(self.orders)
            self.orders.append(arrival)

    # --- the report ---------------------------------------------------------------------------

    def pending(self) -> int:
        """Dislocations of the race not closed yet (scheduled or open); cheap enough to poll."""
        return len(self.server.model.schedule) + sum(1 for r in self.dislocations if r.closed_ns is None)

    def report(self) -> dict:
        """Everything the benchmark needs after a round (JSON-able). Call it once the race is over
        (``pending() == 0``): the available profits (a few ms each) are computed here, on the
        simulator's loop."""
        server = self.server
        for rec in self.dislocations:               # kernel TX stamps not read yet
            for _tag, stamp in rec.frames.values():
                if stamp.user_ns and not stamp.kernel_ns:
                    for conn in server.hub.connections:
                        if conn.sock is not None:
                            conn.sock.collect_tx_stamps()
                    break
        fee = {name: a.taker_rate / ONE for name, a in server.accounts.accounts.items()}
        default_fee = max(fee.values(), default=0.001)
        dislocations = []
        for rec in self.dislocations:
            frames = rec.first_frames()
            if rec.available is None and rec.closed_ns is not None:
                rec.available = available_profit(rec, self.assets_of, default_fee)
            profit, path = rec.available or (None, [])
            dislocations.append({
                "id": rec.id, "symbol": rec.symbol, "bps": rec.bps, "symbols": sorted(rec.symbols),
                "opened_market_ms": rec.opened_market_ms, "closed_market_ms": rec.closed_market_ms,
                "opened_ns": rec.opened_ns, "closed_ns": rec.closed_ns,
                "available_profit_usdt": profit, "available_path": path,
                "frames": {tag: {"user_ns": s.user_ns, "kernel_ns": s.kernel_ns} for tag, s in frames.items()},
            })
        for o in self.orders:              # the order's status now (an ACK answer carries none)
            order = server.engine.orders.get((o.symbol, o.order_id))
            if order is not None:
                o.status = order.status
        answers = attribute(self.dislocations, self.orders)
        values = server.model.asset_values()
        accounts = {}
        for name, acct in server.accounts.accounts.items():
            start = self._start_balances.get(name)
            if start is None:
                continue
            now = {a: b.free + b.locked for a, b in acct.balances.items()}
            delta = {a: now.get(a, 0) - start.get(a, 0) for a in set(now) | set(start)}
            fills = server.engine.trades.get(acct, [])[self._fill_marks.get(name, 0):]
            accounts[name] = {
                "pnl_usdt": sum(d / ONE * values.get(a, 0.0) for a, d in delta.items()),
                "orders": sum(1 for o in self.orders if o.account == name),
                "orders_accepted": sum(1 for o in self.orders if o.account == name and o.status != "REJECTED"),
                "fills": len(fills),
                "captured_usdt": captured_by_dislocation(self.dislocations, self.orders, name, fills,
                                                         self.assets_of),
            }
        return {
            "stamps": {"clock": "CLOCK_MONOTONIC ns",
                       "frame_out": "kernel TX (SO_TIMESTAMPING, loopback xmit)" if server.stamp_support.tx
                       else "user space, right after send()",
                       "order_in": "kernel RX (SO_TIMESTAMPING, segment entered the stack)"
                       if server.stamp_support.rx else "user space, when the simulator read the request"},
            "dislocations": dislocations,
            "orders": [vars(o) | {"arrived_ns": o.arrived_ns} for o in self.orders],
            "answers": answers,
            "accounts": accounts,
            "pending": self.pending(),
        }


def attribute(dislocations: list[RaceDislocation], orders: list[OrderArrival]) -> list[dict]:
    """The first order of each account answering each dislocation, with its reaction time.

    An order answers dislocation ``d`` when it trades a symbol of a triangle through ``d``'s leg
    and arrives after ``d``'s first frame on the order's tag (its connection's listener) and
    before ``d`` closed. Reaction = arrival - first frame: kernel stamps when both ends have one
    (``stamps = "kernel"``), else user-space stamps on both ends.
    """
    out = []
    for d in dislocations:
        frames = d.first_frames()
        answered: set[str] = set()
        for o in orders:
            if o.account in answered or o.symbol not in d.symbols:
                continue
            frame = frames.get(o.tag)
            if frame is None or o.arrived_user_ns < frame.user_ns:
                continue
            if d.closed_ns is not None and o.arrived_user_ns > d.closed_ns:
                continue
            answered.add(o.account)
            kernel = bool(frame.kernel_ns and o.arrived_kernel_ns)
            reaction = (o.arrived_kernel_ns - frame.kernel_ns) if kernel else (o.arrived_user_ns - frame.user_ns)
            out.append({"dislocation": d.id, "account": o.account, "tag": o.tag, "order": o.seq,
                        "symbol": o.symbol, "side": o.side, "client_order_id": o.client_order_id,
                        "reaction_ns": reaction, "reaction_user_ns": o.arrived_user_ns - frame.user_ns,
                        "stamps": "kernel" if kernel else "user"})
    return out


def captured_by_dislocation(dislocations: list[RaceDislocation], orders: list[OrderArrival], account: str,
                            fills: list, assets_of: dict[str, tuple[str, str]]) -> dict[int, float]:
    """USDT value (at the fair values of each dislocation's open) of ``account``'s fills on the
    dislocation's symbols, for orders that arrived from its first frame until the next one opened."""
    windows = []
    for i, d in enumerate(dislocations):
        starts = [f.user_ns for f in d.first_frames().values()]
        start = min(starts) if starts else d.opened_ns
        end = dislocations[i + 1].opened_ns if i + 1 < len(dislocations) else 1 << 62
        windows.append((d, start, end))
    by_order: dict[tuple[str, int], OrderArrival] = {(o.symbol, o.order_id): o for o in orders
                                                      if o.account == account and o.order_id >= 0}
    out: dict[int, float] = {d.id: 0.0 for d in dislocations}
    for record in fills:
        arrival = by_order.get((record.symbol, record.order.order_id))
        if arrival is None:
            continue
        for d, start, end in windows:
            if start <= arrival.arrived_user_ns < end and record.symbol in d.symbols:
                out[d.id] += fill_value(record, *assets_of[record.symbol], d.asset_values)
                break
    return out


def fill_value(record, base: str, quote: str, values: dict[str, float]) -> float:
    """What one fill (a ``TradeRecord``) changed in the account, in USDT at ``values``, commission included."""
    f = record.fill
    if record.is_buyer:
        delta = f.qty * values.get(base, 0.0) - f.quote * values.get(quote, 0.0)
    else:
        delta = f.quote * values.get(quote, 0.0) - f.qty * values.get(base, 0.0)
    return (delta - f.commission * values.get(f.commission_asset, 0.0)) / ONE


# --- what a dislocation offered ---------------------------------------------------------------

def _convert(amount: float, have: str, symbol: str, base: str, quote: str, bids: list, asks: list,
             fee: float) -> float:
    """Take ``amount`` of ``have`` through ``symbol``'s book (levels in 1e-8 units, best first);
    returns what comes out after the taker fee (0 if the book runs dry)."""
    left, out = amount, 0.0
    if have == base:                     # sell base into the bids
        for price, qty in bids:
            p, q = price / ONE, qty / ONE
            take = min(left, q)
            out += take * p
            left -= take
            if left <= 1e-15:
                break
    else:                                # buy base with quote from the asks
        for price, qty in asks:
            p, q = price / ONE, qty / ONE
            take = min(left / p, q)
            out += take
            left -= take * p
            if left <= 1e-15 * p:
                break
    if left > 1e-12 * max(amount, 1.0):
        return 0.0
    return out * (1.0 - fee)


def _cycles(triangle: tuple[str, str, str], specs: dict[str, tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Both directions of a triangle as [(asset held, symbol), ...] starting from each leg's asset."""
    assets = sorted({a for s in triangle for a in specs[s]})
    start = assets[0]
    out = []
    for first in triangle:
        if start not in specs[first]:
            continue
        path, have, used = [], start, set()
        sym = first
        while True:
            path.append((have, sym))
            used.add(sym)
            base, quote = specs[sym]
            have = quote if have == base else base
            nxt = [s for s in triangle if s not in used and have in specs[s]]
            if not nxt:
                break
            sym = nxt[0]
        if have == start and len(path) == 3:
            out.append(path)
    return out


def _run_profit(books: dict, path: list[tuple[str, str]], specs: dict, fee: float, value: float, x: float) -> float:
    """USDT made by taking ``x`` of the path's first asset once around ``path``."""
    amount = x
    for have, sym in path:
        bids, asks = books[sym]
        amount = _convert(amount, have, sym, *specs[sym], bids, asks, fee)
        if amount <= 0:
            return -x * value
    return (amount - x) * value


def _best_run(books: dict, path: list[tuple[str, str]], specs: dict, fee: float, value: float) -> float:
    """The most one run around ``path`` makes. The profit is concave in the size (each level is
    worse than the one before): a coarse scan from 1 USDT to 1 M USDT, then golden-section
    refinement around the best size."""
    def profit(x: float) -> float:
        return _run_profit(books, path, specs, fee, value, x)

    xs, usdt = [], 1.0
    while usdt <= 1e6:
        xs.append(usdt / value)
        usdt *= 1.25
    vals = [profit(x) for x in xs]
    i = max(range(len(xs)), key=vals.__getitem__)
    a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
    g = 0.618033988749895
    for _ in range(40):
        c, d = b - g * (b - a), a + g * (b - a)
        if profit(c) >= profit(d):
            b = d
        else:
            a = c
    return max(profit((a + b) / 2), vals[i])


def available_profit(rec: RaceDislocation, assets_of: dict[str, tuple[str, str]], fee: float) -> tuple[float, list]:
    """The best single run of a triangle through the dislocated leg, in USDT (see the module doc)."""
    best, best_path = 0.0, []
    specs = {s: assets_of[s] for s in rec.symbols}
    for tri in rec.triangles:
        if not all(s in rec.books for s in tri):
            continue
        for path in _cycles(tri, specs):
            value = rec.asset_values.get(path[0][0], 0.0)
            if value <= 0:
                continue
            p = _best_run(rec.books, path, specs, fee, value)
            if p > best:
                best, best_path = p, [sym for _, sym in path]
    return best, best_path

