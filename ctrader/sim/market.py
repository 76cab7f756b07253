"""The seeded market model: fair values, books around the cross rates, trades, dislocations.

Each step advances the market clock by ``step_ms`` and:

1. moves every asset's fair value (in USDT) by a correlated Gaussian random walk: one common
   factor with weight ``correlation`` plus an idiosyncratic part, scaled by the asset's own
   volatility (stablecoins barely move, USDT is the numeraire);
2. moves every symbol's cross-rate *residual*: an Ornstein-Uhlenbeck process in log price with
   stationary stdev ``residual_bps`` and half-life ``residual_half_life_s`` (the small, slowly
   reverting gap between a pair's price and the rate its assets' fair values imply, as when
   ETHBTC lags ETHUSDT / BTCUSDT: what cross-rate statistical arbitrage trades);
3. gives every symbol a fair cross rate ``base/quote`` (times its residual and its dislocation
   offset) and a target best bid/ask around it, ``spread/2`` away, on the symbol's tick;
4. re-centres the books whose target moved or whose top was traded away: market makers pull
   the levels the fair value went through (users' orders left there get filled: the fair value
   moved through them) and quote at the new target; the depth is kept between ``book_levels``
   and ``book_levels + 10`` levels a side;
5. draws Poisson numbers of liquidity events (size added or canceled at a level near the top,
   a new level in a gap) and anonymous market orders that consume liquidity;
6. now and then opens a dislocation: one leg of a random triangle is shifted by
   ``dislocation_bps`` for ``dislocation_ms``, which opens a triangular arbitrage that closes
   when the leg snaps back (as competing arbitrageurs would make it). ``schedule`` replaces the
   random ones by a given list (the race benchmark's seeded schedule); ``dislocation_listeners``
   hear each one open (before the step's book updates) and close.

Randomness comes from a numpy Generator (vector draws) and a ``random.Random`` (scalar draws),
both derived from the seed, and the residuals from a generator of their own (so that turning
them off leaves every other draw as it was); nothing depends on wall time, so one seed gives
one stream.
Each event on a book ends with ``engine.commit`` and so becomes one book update.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ctrader.config.schema import SimMarketConfig
from ctrader.sim.book import Book, BookSide
from ctrader.sim.clock import SimClock
from ctrader.sim.matching import MatchingEngine
from ctrader.sim.universe import TIERS, Universe
from ctrader.venue.decimals import ONE

TOP_LEVELS = 20          # liquidity events happen within the top 20 levels


@dataclass
class Dislocation:
    symbol: str
    offset: float        # log-price shift applied to the symbol's fair cross rate
    until_ms: int        # market time at which arbitrageurs have closed it
    bps: float = 0.0
    opened_ms: int = 0   # market time (elapsed) at which it opened
    id: int = 0          # 1, 2, ... in the order they opened


@dataclass(frozen=True)
class ScheduledDislocation:
    """A dislocation the model opens at a given market time instead of at random."""
    at_ms: int           # elapsed market time
    symbol: str
    bps: float
    duration_ms: int


class DislocationListener(Protocol):
    def dislocation_opened(self, d: Dislocation) -> None: ...

    def dislocation_closed(self, d: Dislocation) -> None: ...


class MarketModel:
    def __init__(self, universe: Universe, engine: MatchingEngine, clock: SimClock, cfg: SimMarketConfig,
                 seed: int) -> None:
        self.universe = universe
        self.engine = engine
        self.clock = clock
        self.cfg = cfg
        seeds = np.random.SeedSequence(seed).spawn(3)
        self.rng = np.random.default_rng(seeds[0])
        self.rand = random.Random(int(seeds[1].generate_state(1)[0]))
        self.residual_rng = np.random.default_rng(seeds[2])
        self.step_ms = cfg.step_ms
        self.books: list[Book] = [engine.books[s.symbol] for s in universe.symbols]
        self.index = {s.symbol: i for i, s in enumerate(universe.symbols)}
        self.triangles = universe.triangles()

        assets = universe.assets
        asset_index = {a: i for i, a in enumerate(assets)}
        dt = cfg.step_ms / 1000.0
        self.log_price = np.log(np.array([universe.asset_prices[a] for a in assets]))
        self.sigma = np.array([universe.asset_vol[a] for a in assets]) * cfg.volatility_bps * 1e-4 * math.sqrt(dt)
        self.rho = cfg.correlation
        self.base = np.array([asset_index[s.base] for s in universe.symbols])
        self.quote = np.array([asset_index[s.quote] for s in universe.symbols])
        n = len(universe.symbols)
        self.tick = [s.tick for s in universe.symbols]
        self.step_units = [s.step for s in universe.symbols]
        self.min_qty = [max(s.rules.min_qty, s.step) for s in universe.symbols]
        self.ticks_per_unit = np.array([ONE / s.tick for s in universe.symbols])
        spread_bps = np.array([TIERS[s.tier][0] for s in universe.symbols]) * cfg.spread_scale
        self.half_spread = spread_bps * 0.5e-4
        share = np.array([TIERS[s.tier][3] for s in universe.symbols])
        self.lam_liquidity = share * cfg.book_events_per_s * dt
        self.lam_trades = share * cfg.trades_per_s * dt
        self.offset = np.zeros(n)
        # Cross-rate residuals (log price), an exact OU discretisation: each step keeps ``decay``
        # of the residual and adds the noise that holds its stdev at ``residual_bps``. They start
        # drawn from that stationary spread, not at zero (a short session would otherwise spend
        # its first half-lives with a calmer market than asked for).
        self.residual = cfg.residual_bps * 1e-4 * self.residual_rng.standard_normal(n)
        self.residual_decay = 0.5 ** (dt / cfg.residual_half_life_s)
        self.residual_noise = cfg.residual_bps * 1e-4 * math.sqrt(1.0 - self.residual_decay ** 2)
        self.dislocations: list[Dislocation] = []
        self.dirty = np.zeros(n, dtype=bool)      # top traded away: re-centre even if the target held
        fair = self._fair()
        self.bid_target = np.zeros(n, dtype=np.int64)
        self.ask_target = np.zeros(n, dtype=np.int64)
        self.gap = []
        self.level_qty = []
        for i, s in enumerate(universe.symbols):
            fair_ticks = fair[i] * self.ticks_per_unit[i]
            self.gap.append(max(1, round(TIERS[s.tier][1] * cfg.spread_scale * 1e-4 * fair_ticks)))
            notional_usdt = TIERS[s.tier][2] * cfg.level_scale
            self.level_qty.append(notional_usdt / universe.asset_prices[s.base])
        self.max_levels = cfg.book_levels + 10
        self.events = 0
        self.trade_events = 0
        self.dislocations_opened = 0
        self.random_dislocations = True
        self.schedule: list[ScheduledDislocation] = []      # sorted by at_ms, consumed as they open
        self.dislocation_listeners: list[DislocationListener] = []
        self._seed_books(fair)

    # --- state --------------------------------------------------------------------------------

    def _fair(self) -> np.ndarray:
        return np.exp(self.log_price[self.base] - self.log_price[self.quote] + self.residual + self.offset)

    def _targets(self, fair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = fair * self.ticks_per_unit
        return (np.floor(x * (1.0 - self.half_spread)).astype(np.int64),
                np.ceil(x * (1.0 + self.half_spread)).astype(np.int64))

    def fair_prices(self) -> dict[str, float]:
        """Current fair cross rates, residuals and dislocations included (for tests and the control API)."""
        fair = self._fair()
        return {s.symbol: float(fair[i]) for i, s in enumerate(self.universe.symbols)}

    def residuals_bps(self) -> dict[str, float]:
        """Each symbol's cross-rate residual now, in bps of its implied rate (dislocations apart)."""
        return {s.symbol: float(np.expm1(self.residual[i]) * 1e4) for i, s in enumerate(self.universe.symbols)}

    def _size(self, i: int, scale: float = 1.0) -> int:
        qty = self.level_qty[i] * scale * self.rand.lognormvariate(0.0, 0.5)
        step = self.step_units[i]
        return max(self.min_qty[i], int(qty * ONE) // step * step)

    def _seed_books(self, fair: np.ndarray) -> None:
        bid_t, ask_t = self._targets(fair)
        for i, book in enumerate(self.books):
            book.update_id = int(self.rng.integers(10_000_000, 90_000_000))
            tick, gap = self.tick[i], self.gap[i]
            for k in range(self.cfg.book_levels):
                if bid_t[i] - k * gap > 0:
                    book.bids.add((int(bid_t[i]) - k * gap) * tick, self._size(i))
                book.asks.add((int(ask_t[i]) + k * gap) * tick, self._size(i))
            book.bids.touched.clear()
            book.asks.touched.clear()
        self.bid_target, self.ask_target = bid_t, ask_t

    # --- one step -----------------------------------------------------------------------------

    def step(self) -> None:
        self.clock.elapsed_ms += self.step_ms
        z = self.rng.standard_normal(len(self.log_price) + 1)
        self.log_price += self.sigma * (self.rho * z[0] + math.sqrt(1.0 - self.rho ** 2) * z[1:])
        if self.residual_noise > 0.0:
            self.residual *= self.residual_decay
            self.residual += self.residual_noise * self.residual_rng.standard_normal(len(self.residual))
        self._update_dislocations()
        bid_t, ask_t = self._targets(self._fair())
        moved = (bid_t != self.bid_target) | (ask_t != self.ask_target) | self.dirty
        self.bid_target, self.ask_target = bid_t, ask_t
        self.dirty[:] = False
        n_liquidity = self.rng.poisson(self.lam_liquidity)
        n_trades = self.rng.poisson(self.lam_trades)
        active = np.flatnonzero(moved | (n_liquidity > 0) | (n_trades > 0))
        for i in active.tolist():
            if moved[i]:
                self._recenter(i, int(bid_t[i]), int(ask_t[i]))
            for _ in range(int(n_trades[i])):
                self._market_trade(i)
            for _ in range(int(n_liquidity[i])):
                self._liquidity_event(i)

    def _recenter(self, i: int, bid_tick: int, ask_tick: int) -> None:
        book, engine, tick = self.books[i], self.engine, self.tick[i]
        bid_px, ask_px = bid_tick * tick, ask_tick * tick
        bids, asks = book.bids, book.asks
        while bids.prices and bids.prices[-1] > bid_px:
            engine.sweep_level(bids, book, bids.prices[-1])
        while asks.prices and asks.prices[0] < ask_px:
            engine.sweep_level(asks, book, asks.prices[0])
        if bid_px > 0 and (not bids.prices or bids.prices[-1] < bid_px):
            bids.add(bid_px, self._size(i))
        if not asks.prices or asks.prices[0] > ask_px:
            asks.add(ask_px, self._size(i))
        self._keep_depth(i, bids, bid_px)
        self._keep_depth(i, asks, ask_px)
        self._commit(book)

    def _keep_depth(self, i: int, side: BookSide, anchor: int) -> None:
        """Between book_levels and book_levels + 10 levels: refill the far end, trim beyond it."""
        tick, gap = self.tick[i], self.gap[i]
        while len(side) < self.cfg.book_levels:
            far = side.worst()
            nxt = anchor if far is None else far + (-gap * tick if side.is_bid else gap * tick)
            if nxt <= 0:
                break
            side.add(nxt, self._size(i))
        if len(side) > self.max_levels:
            excess = len(side) - self.cfg.book_levels
            far_first = side.prices[:excess] if side.is_bid else side.prices[::-1][:excess]
            for price in far_first:
                side.cancel_anonymous(price, side.levels[price])

    def _market_trade(self, i: int) -> None:
        book = self.books[i]
        taker_is_buy = self.rand.random() < 0.5
        side = book.asks if taker_is_buy else book.bids
        best = side.best()
        if best is None:
            return
        step = self.step_units[i]
        qty = int(side.levels[best] * (0.05 + 1.2 * self.rand.random())) // step * step
        if qty <= 0:
            return
        self.engine.anonymous_market(book, taker_is_buy, qty)
        self.trade_events += 1
        self.dirty[i] = True
        self._commit(book)

    def _liquidity_event(self, i: int) -> None:
        book = self.books[i]
        side = book.bids if self.rand.random() < 0.5 else book.asks
        depth = len(side)
        if depth == 0:
            return
        rank = int(self.rand.random() ** 2 * min(depth, TOP_LEVELS))
        price = side.price_at(rank)
        action = self.rand.random()
        if action < 0.45:
            side.add(price, self._size(i, 0.3))
        elif action < 0.9:
            anonymous = side.anonymous_qty(price)
            cut = int(anonymous * self.rand.random()) // self.step_units[i] * self.step_units[i]
            if cut:
                side.cancel_anonymous(price, cut)
                if rank == 0 and price not in side.levels:
                    self.dirty[i] = True
        elif rank + 1 < depth:
            nxt = side.price_at(rank + 1)
            ticks_between = abs(nxt - price) // self.tick[i]
            if ticks_between > 1:
                offset = self.rand.randrange(1, ticks_between) * self.tick[i]
                side.add(price - offset if side.is_bid else price + offset, self._size(i, 0.5))
        self._commit(book)

    def _commit(self, book: Book) -> None:
        if book.bids.touched or book.asks.touched:
            self.events += 1
        self.engine.commit(book)

    # --- dislocations -------------------------------------------------------------------------

    def _update_dislocations(self) -> None:
        now = self.clock.elapsed_ms
        if self.dislocations:
            for d in [d for d in self.dislocations if d.until_ms <= now]:
                self.offset[self.index[d.symbol]] -= d.offset
                self.dislocations.remove(d)
                for listener in self.dislocation_listeners:
                    listener.dislocation_closed(d)
        while self.schedule and self.schedule[0].at_ms <= now:
            s = self.schedule.pop(0)
            self.dislocate(s.symbol, s.bps, s.duration_ms)
        # The random draw happens either way, so that a schedule leaves the rest of the market's
        # random stream (book events, trades) as it would have been.
        rate = self.cfg.dislocations_per_min * self.step_ms / 60_000.0
        if rate > 0 and self.triangles and self.rand.random() < rate:
            leg = self.rand.choice(self.rand.choice(self.triangles))
            sign = 1.0 if self.rand.random() < 0.5 else -1.0
            if self.random_dislocations:
                self.dislocate(leg, sign * self.cfg.dislocation_bps, self.cfg.dislocation_ms)

    def dislocate(self, symbol: str, bps: float, duration_ms: int) -> Dislocation:
        """Shift ``symbol``'s fair cross rate by ``bps`` for ``duration_ms`` of market time."""
        now = self.clock.elapsed_ms
        self.dislocations_opened += 1
        d = Dislocation(symbol, math.log1p(bps * 1e-4), now + duration_ms, bps, now, self.dislocations_opened)
        self.offset[self.index[symbol]] += d.offset
        self.dislocations.append(d)
        for listener in self.dislocation_listeners:
            listener.dislocation_opened(d)
        return d

    def set_schedule(self, schedule: list[ScheduledDislocation], random_dislocations: bool = False) -> None:
        """Open these dislocations at their times (and, unless ``random_dislocations``, no others)."""
        unknown = sorted({s.symbol for s in schedule} - set(self.index))
        if unknown:
            raise ValueError(f"unknown symbols in the dislocation schedule: {unknown}")
        self.schedule = sorted(schedule, key=lambda s: s.at_ms)
        self.random_dislocations = random_dislocations

    def asset_values(self) -> dict[str, float]:
        """Every asset's fair value in USDT (the numeraire); dislocations shift symbols, not assets."""
        return {a: float(v) for a, v in zip(self.universe.assets, np.exp(self.log_price))}
