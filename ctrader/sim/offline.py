"""The simulator's market model driven in-process: MD_EVENT arrays with no network and no wall clock.

Model training, tests and benchmarks need realistic market data fast and reproducibly. This
module runs the same seeded ``MarketModel`` the simulator serves, steps it as fast as Python
allows, and turns what changed into the records the feed would write to the md ring: after each
model step (``sim.market.step_ms`` of market time), one DEPTH record with the top
``BOOK_DEPTH`` levels of every book that changed in the step, and one TRADE record per trade::

    market = OfflineMarket(cfg.sim, seed=7)
    uni = Universe.from_exchange_info(market.exchange_info, start_assets=("USDT", "BTC"))
    market.map_symbols(uni.by_name)                # symbol ids of the strategy's universe
    engine.on_md(market.snapshots())               # SNAPSHOT of every book first
    for batch in market.run(seconds=60):           # one array per model step
        engine.on_md(batch)

Timestamps are market time: ``exch_ts_ns`` is the market clock, ``recv_*`` add ``latency_ms``;
``recv_mono_ns`` counts from ``MONO_BASE_NS`` so it is positive and identical for one seed.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from ctrader.config.schema import SimConfig
from ctrader.core.records import BOOK_DEPTH, MD_EVENT, MdFlag, MdKind
from ctrader.sim.accounts import AccountRegistry
from ctrader.sim.book import Book
from ctrader.sim.clock import SimClock
from ctrader.sim.market import MarketModel
from ctrader.sim.matching import MatchingEngine
from ctrader.sim.universe import build_universe
from ctrader.venue.decimals import ONE

DEFAULT_EPOCH_MS = 1_700_000_000_000
MONO_BASE_NS = 1_000_000_000_000      # market time 0 on the "monotonic" clock of offline records


class _Collector:
    """A MarketSink: remembers which books changed in this step and the trades that happened."""

    def __init__(self) -> None:
        self.dirty: dict[str, Book] = {}
        self.trades: list[tuple[str, int, int, int, bool]] = []

    def book_update(self, book: Book, bids, asks) -> None:
        self.dirty[book.symbol] = book

    def trade(self, symbol: str, trade_id: int, price: int, qty: int, buyer_is_maker: bool, time_ms: int) -> None:
        self.trades.append((symbol, trade_id, price, qty, buyer_is_maker))


class OfflineMarket:
    def __init__(self, sim_cfg: SimConfig, seed: int | None = None, latency_ms: float = 1.0,
                 epoch_ms: int | None = None) -> None:
        self.universe = build_universe(sim_cfg)
        self.clock = SimClock(epoch_ms or sim_cfg.market.epoch_ms or DEFAULT_EPOCH_MS)
        self.engine = MatchingEngine(self.universe, AccountRegistry(()), self.clock, sim_cfg.seed if seed is None else seed)
        self._sink = _Collector()
        self.engine.market_sinks.append(self._sink)
        self.model = MarketModel(self.universe, self.engine, self.clock, sim_cfg.market,
                                 sim_cfg.seed if seed is None else seed)
        self.latency_ns = int(latency_ms * 1_000_000)
        self.ids = {name: i for i, name in enumerate(sorted(self.universe.by_name))}
        self._seq = 0

    @property
    def exchange_info(self) -> dict:
        return self.universe.exchange_info

    def map_symbols(self, ids: Mapping[str, object]) -> None:
        """Use these symbol ids (name -> id, or name -> object with ``.id``); others are dropped."""
        self.ids = {name: int(getattr(v, "id", v)) for name, v in ids.items()}

    def now_ms(self) -> int:
        return self.clock.elapsed_ms

    # --- records --------------------------------------------------------------------------------

    def _stamp(self, rec: np.ndarray, kind: MdKind) -> None:
        exch = self.clock.market_ms() * 1_000_000
        self._seq += 1
        rec["kind"] = kind
        rec["seq"] = self._seq
        rec["exch_ts_ns"] = exch
        rec["recv_ts_ns"] = exch + self.latency_ns
        rec["recv_mono_ns"] = MONO_BASE_NS + self.clock.elapsed_ms * 1_000_000 + self.latency_ns

    def _book_record(self, rec: np.ndarray, book: Book, kind: MdKind) -> None:
        self._stamp(rec, kind)
        rec["symbol_id"] = self.ids[book.symbol]
        bids, asks = book.bids.top(BOOK_DEPTH), book.asks.top(BOOK_DEPTH)
        rec["n_bids"], rec["n_asks"] = len(bids), len(asks)
        for i, (p, q) in enumerate(bids):
            rec["bid_px"][i], rec["bid_qty"][i] = p / ONE, q / ONE
        for i, (p, q) in enumerate(asks):
            rec["ask_px"][i], rec["ask_qty"][i] = p / ONE, q / ONE
        rec["first_update_id"] = rec["last_update_id"] = book.update_id
        if bids and asks and bids[0][0] >= asks[0][0]:
            rec["flags"] = MdFlag.CROSSED

    def snapshots(self) -> np.ndarray:
        """A SNAPSHOT record of every mapped book as it is now."""
        books = [b for name, b in sorted(self.engine.books.items()) if name in self.ids]
        out = np.zeros(len(books), MD_EVENT)
        for i, book in enumerate(books):
            self._book_record(out[i], book, MdKind.SNAPSHOT)
        return out

    def step(self) -> np.ndarray:
        """Advance the model one step; the records of what changed (possibly none)."""
        sink = self._sink
        self.model.step()
        books = [b for name, b in sorted(sink.dirty.items()) if name in self.ids]
        trades = [t for t in sink.trades if t[0] in self.ids]
        sink.dirty.clear()
        sink.trades.clear()
        out = np.zeros(len(trades) + len(books), MD_EVENT)
        for i, (symbol, trade_id, price, qty, buyer_is_maker) in enumerate(trades):
            rec = out[i]
            self._stamp(rec, MdKind.TRADE)
            rec["symbol_id"] = self.ids[symbol]
            rec["first_update_id"] = rec["last_update_id"] = trade_id
            rec["trade_px"], rec["trade_qty"] = price / ONE, qty / ONE
            rec["flags"] = MdFlag.BUYER_MAKER if buyer_is_maker else MdFlag.NONE
        for j, book in enumerate(books):
            self._book_record(out[len(trades) + j], book, MdKind.DEPTH)
        return out

    def run(self, seconds: float) -> Iterator[np.ndarray]:
        """One record array per model step for ``seconds`` of market time (empty steps skipped)."""
        end_ms = self.clock.elapsed_ms + int(seconds * 1000)
        while self.clock.elapsed_ms < end_ms:
            batch = self.step()
            if len(batch):
                yield batch


def offline_sim_config(base: SimConfig, **market_overrides) -> SimConfig:
    """``base`` with some ``sim.market`` fields replaced (e.g. dislocations_per_min=0)."""
    import dataclasses

    return dataclasses.replace(base, market=dataclasses.replace(base.market, **market_overrides))
