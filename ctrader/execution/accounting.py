"""What the executor's trading did: positions, fees, PnL, counters and latency.

Positions are per-asset changes since the executor started, in exact 1e-8 units, after fees
(the commission is taken from the asset received, as Binance does). PnL in the valuation asset
(the first start asset, e.g. USDT) values every position at the current mid, so inventory left
by a failed leg shows up as what it is worth now, never hidden:

    acct = Accounting(universe)
    acct.on_fill(order, update)                 # an orders.VenueUpdate with a fill
    acct.pnl(valuer)                            # in the valuation asset
    stats = acct.snapshot(valuer)               # -> StatsFile

``Valuer`` prices an asset in the valuation asset from book mids: directly (ETHUSDT), inverted
(USDTTRY), or through one bridge asset (SOL -> BTC -> USDT).
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

from ctrader.core.records import RefusalReason, Side
from ctrader.venue.decimals import ONE

LATENCY_SAMPLES = 1 << 16


class Valuer:
    """Price of each asset in ``valuation_asset`` from the mids of a book cache."""

    def __init__(self, universe: Any, books: Any, valuation_asset: str) -> None:
        self.universe = universe
        self.books = books
        self.valuation_asset = valuation_asset
        self.val_id = universe.asset_id(valuation_asset) if valuation_asset in universe.assets else -1
        pairs: dict[tuple[int, int], int] = {}
        for s in universe.symbols:
            pairs[(s.base_id, s.quote_id)] = s.id
        self.routes: list[list[tuple[int, bool]]] = []    # per asset: [(symbol, inverted), ...]
        for a in range(len(universe.assets)):
            self.routes.append(self._route(a, pairs))

    def _route(self, a: int, pairs: dict[tuple[int, int], int]) -> list[tuple[int, bool]]:
        v = self.val_id
        if a == v or v < 0:
            return []
        if (a, v) in pairs:
            return [(pairs[(a, v)], False)]
        if (v, a) in pairs:
            return [(pairs[(v, a)], True)]
        for b in range(len(self.universe.assets)):
            first = [(pairs[(a, b)], False)] if (a, b) in pairs else [(pairs[(b, a)], True)] if (b, a) in pairs else None
            if first is None:
                continue
            if (b, v) in pairs:
                return first + [(pairs[(b, v)], False)]
            if (v, b) in pairs:
                return first + [(pairs[(v, b)], True)]
        return [(-1, False)]   # no route: never valued (nan)

    def mid(self, symbol_id: int) -> float:
        b = self.books
        if b.n_bids[symbol_id] == 0 or b.n_asks[symbol_id] == 0:
            return math.nan
        return (float(b.bid_px[symbol_id, 0]) + float(b.ask_px[symbol_id, 0])) / 2.0

    def price(self, asset_id: int) -> float:
        """Value of one unit of ``asset_id`` in the valuation asset (nan when unknown)."""
        value = 1.0
        for symbol_id, inverted in self.routes[asset_id]:
            if symbol_id < 0:
                return math.nan
            m = self.mid(symbol_id)
            value *= (1.0 / m) if inverted else m
        return value

    def value(self, asset_id: int, units: int) -> float:
        return units / ONE * self.price(asset_id)


class LatencyLog:
    """Tick-to-order latencies (ns) in a fixed ring; percentiles over the most recent samples."""

    def __init__(self, size: int = LATENCY_SAMPLES) -> None:
        self.samples = np.zeros(size, np.int64)
        self.count = 0

    def add(self, ns: int) -> None:
        self.samples[self.count % len(self.samples)] = ns
        self.count += 1

    def percentiles(self) -> dict[str, float | None]:
        n = min(self.count, len(self.samples))
        if n == 0:
            return {"p50_us": None, "p99_us": None, "n": 0}
        p50, p99 = np.percentile(self.samples[:n], [50, 99])
        return {"p50_us": round(p50 / 1e3, 1), "p99_us": round(p99 / 1e3, 1), "n": self.count}


class Accounting:
    def __init__(self, universe: Any) -> None:
        self.universe = universe
        self.positions: dict[str, int] = defaultdict(int)     # asset -> units, net of fees
        self.fees: dict[str, int] = defaultdict(int)
        self.group_flows: dict[int, dict[str, int]] = {}      # group -> asset -> units
        # per strategy (its intents' strategy_id; an unwind counts for its group's strategy)
        self.strategy_flows: dict[int, dict[str, int]] = {}   # strategy -> asset -> units, fees included
        self.strategy_fees: dict[int, dict[str, int]] = {}
        self.strategy_counts: dict[int, dict[str, int]] = {}  # strategy -> orders_sent / fills / refusals
        self.fills = 0
        self.orders_sent = 0
        self.rejects: dict[int, int] = defaultdict(int)       # Binance code -> count
        self.refusals: dict[str, int] = defaultdict(int)      # RefusalReason name -> count
        self.cancels = 0
        self.unwinds = 0
        self.unwind_pnl = 0.0      # valuation asset: what unwinding cost (negative) or made
        self.latency = LatencyLog()
        # where tick-to-order goes: feed+strategy (tick -> intent built), the intents ring hop
        # (built -> read by the executor) and the executor's own path (read -> handed to the venue)
        self.stages = {"tick_to_intent": LatencyLog(), "intent_hop": LatencyLog(), "executor_path": LatencyLog()}
        self.day_start_pnl = 0.0
        self.day = -1
        self.on_day_start: Callable[[int, float], None] | None = None

    # --- events ---------------------------------------------------------------------------------

    def _counts(self, strategy_id: int) -> dict[str, int]:
        counts = self.strategy_counts.get(strategy_id)
        if counts is None:
            counts = self.strategy_counts[strategy_id] = {"orders_sent": 0, "fills": 0, "refusals": 0}
        return counts

    def on_sent(self, order: Any) -> None:
        self.orders_sent += 1
        self._counts(order.strategy_id)["orders_sent"] += 1
        if order.cause_recv_mono_ns:
            self.latency.add(order.sent_mono_ns - order.cause_recv_mono_ns)
            if order.created_mono_ns and order.seen_mono_ns:
                self.stages["tick_to_intent"].add(order.created_mono_ns - order.cause_recv_mono_ns)
                self.stages["intent_hop"].add(order.seen_mono_ns - order.created_mono_ns)
                self.stages["executor_path"].add(order.sent_mono_ns - order.seen_mono_ns)

    def on_fill(self, order: Any, fill: Any) -> None:
        """Apply one fill of ``order`` (an ``orders.Order``; ``fill`` an ``orders.VenueUpdate``)."""
        info = self.universe.symbols[order.symbol_id]
        if order.side == Side.BUY:
            deltas = {info.base: fill.last_qty, info.quote: -fill.last_quote}
        else:
            deltas = {info.base: -fill.last_qty, info.quote: fill.last_quote}
        sid = order.strategy_id
        if fill.fee:
            deltas[fill.fee_asset] = deltas.get(fill.fee_asset, 0) - fill.fee
            self.fees[fill.fee_asset] += fill.fee
            fees = self.strategy_fees.setdefault(sid, defaultdict(int))
            fees[fill.fee_asset] += fill.fee
        flows = self.group_flows.setdefault(order.group_id, defaultdict(int))
        by_strategy = self.strategy_flows.setdefault(sid, defaultdict(int))
        for asset, units in deltas.items():
            self.positions[asset] += units
            flows[asset] += units
            by_strategy[asset] += units
        self.fills += 1
        self._counts(sid)["fills"] += 1

    def on_refused(self, reason: RefusalReason, strategy_id: int = 0) -> None:
        self.refusals[RefusalReason(reason).name] += 1
        self._counts(strategy_id)["refusals"] += 1

    def on_rejected(self, code: int) -> None:
        self.rejects[code] += 1

    # --- valuation --------------------------------------------------------------------------------

    def pnl(self, valuer: Valuer) -> float:
        """Every position valued at the current mid, in the valuation asset (nan-valued assets skipped)."""
        total = 0.0
        for asset, units in self.positions.items():
            if units and asset in self.universe.assets:
                v = valuer.value(self.universe.asset_id(asset), units)
                if not math.isnan(v):
                    total += v
        return total

    def group_pnl(self, group_id: int, valuer: Valuer) -> float:
        return self._flows_value(self.group_flows.get(group_id, {}), valuer)

    def strategy_pnl(self, strategy_id: int, valuer: Valuer) -> float:
        """What the strategy's fills (fees included) are worth at the current mids."""
        return self._flows_value(self.strategy_flows.get(strategy_id, {}), valuer)

    def _flows_value(self, flows: dict[str, int], valuer: Valuer) -> float:
        total = 0.0
        for asset, units in flows.items():
            if units:
                v = valuer.value(self.universe.asset_id(asset), units)
                total += 0.0 if math.isnan(v) else v
        return total

    def by_strategy(self, valuer: Valuer, names: dict[int, str]) -> dict[str, dict]:
        """Each strategy's orders, fills, refusals, fees, positions and PnL (``names``: id -> name;
        an id with no name is shown as its number, 0 as "none": orders no strategy sent)."""
        out = {}
        for sid in sorted(set(self.strategy_counts) | set(self.strategy_flows)):
            name = names.get(sid, "none" if sid == 0 else str(sid))
            flows = self.strategy_flows.get(sid, {})
            out[name] = {**self.strategy_counts.get(sid, {"orders_sent": 0, "fills": 0, "refusals": 0}),
                         "fees": {a: u / ONE for a, u in sorted(self.strategy_fees.get(sid, {}).items()) if u},
                         "positions": {a: u / ONE for a, u in sorted(flows.items()) if u},
                         "pnl": self.strategy_pnl(sid, valuer)}
        return out

    def valued(self, valuer: Valuer) -> bool:
        """Every asset held has a price (the books of its routes are known)."""
        return all(not units or asset not in self.universe.assets
                   or not math.isnan(valuer.value(self.universe.asset_id(asset), units))
                   for asset, units in self.positions.items())

    def daily_pnl(self, valuer: Valuer, day: int) -> float:
        """PnL since the start of UTC ``day`` (days since 1970). The first call of a day sets the
        day's starting PnL, but only from a full valuation: right after a restart the books are
        empty, and a baseline from the assets that happen to be priced (the valuation asset
        alone) would be wrong all day. While a position has no price the day's PnL is nan:
        unknown, which breaches no limit (no loss is known from part of the books). The baseline goes to ``on_day_start`` (the executor
        journals it: a restart keeps it)."""
        if not self.valued(valuer):
            return math.nan
        total = self.pnl(valuer)
        if day != self.day:
            self.day, self.day_start_pnl = day, total
            if self.on_day_start is not None:
                self.on_day_start(day, total)
        return total - self.day_start_pnl

    def daily_pnl_so_far(self, valuer: Valuer, day: int) -> float:
        """``daily_pnl`` without starting a day: 0 before the gate's first look of ``day`` (the
        day's PnL counts from there), so reporting it never moves the daily loss limit's base."""
        return self.pnl(valuer) - self.day_start_pnl if day == self.day else 0.0

    def _in_start_assets(self, valuer: Valuer) -> dict[str, float]:
        """The PnL expressed in each start asset (e.g. USDT and BTC), at current mids."""
        total = self.pnl(valuer)
        out = {}
        for asset in getattr(self.universe, "start_assets", ()):
            if asset in self.universe.assets:
                price = valuer.price(self.universe.asset_id(asset))
                if price and not math.isnan(price):
                    out[asset] = total / price
        return out

    def snapshot(self, valuer: Valuer) -> dict:
        """Counters for the run's StatsFile (JSON-friendly)."""
        prices = {a: valuer.price(self.universe.asset_id(a)) for a in self.positions if a in self.universe.assets}
        return {
            "orders_sent": self.orders_sent,
            "fills": self.fills,
            "cancels": self.cancels,
            "refusals": dict(self.refusals),
            "rejects": {str(k): v for k, v in self.rejects.items()},
            "positions": {a: u / ONE for a, u in sorted(self.positions.items()) if u},
            "fees": {a: u / ONE for a, u in sorted(self.fees.items()) if u},
            "pnl_by_asset": {a: (u / ONE * prices[a]) for a, u in sorted(self.positions.items())
                             if u and a in prices and not math.isnan(prices[a])},
            "pnl": self.pnl(valuer),
            "valuation_asset": valuer.valuation_asset,
            "pnl_in_start_assets": self._in_start_assets(valuer),
            "unwinds": self.unwinds,
            "unwind_pnl": self.unwind_pnl,
            "tick_to_order": self.latency.percentiles(),
            "tick_to_order_stages": {k: v.percentiles() for k, v in self.stages.items()},
        }
