"""Readers of the run's rings for the monitor; neither can slow down the ring's producer.

``ExecWatcher`` follows the exec ring from an observer slot (``runtime.resources.OBSERVERS``):
the executor's slowest-consumer scan skips it, so the executor never waits for it, dead or
alive. ``MdWatcher`` is one more consumer of the broadcast md ring, which never waits for
anyone. Both only ever read with a zero timeout and never sleep on a ring's doorbell: a
registered sleeper would turn every publish of the producer into a wake-up system call. Lapped
by the producer (the monitor stalled for a whole ring), a reader counts the records it lost and
carries on from the newest ones.

    names = SymbolTable.from_universe(universe)
    fills = ExecWatcher(exec_ring.consumer(consumer_id("exec", "monitor")), names)
    new_fills, tick_to_order_ns = fills.poll()
    books = MdWatcher(md_ring.consumer(), len(names.symbols)); books.poll(); books.ages(now_mono_ns)
"""
from __future__ import annotations

import collections
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ctrader.core.records import EXEC_EVENT, MD_EVENT, ExecKind, MdFlag, MdKind, Side
from ctrader.core.ring import Consumer
from ctrader.venue.decimals import decimals_of, format_trimmed, quote_amount, to_step

_FILL_KINDS = (int(ExecKind.FILL), int(ExecKind.PARTIAL_FILL))


@dataclass(frozen=True)
class SymbolTable:
    """Symbol and asset names by the run's ids, and each symbol's tick and step (1e-8 units)."""
    symbols: tuple[str, ...]
    assets: tuple[str, ...]
    tick_units: tuple[int, ...]
    step_units: tuple[int, ...]

    @classmethod
    def from_universe(cls, universe: Any) -> SymbolTable:
        return cls(tuple(s.name for s in universe.symbols), tuple(universe.assets),
                   tuple(s.tick_units for s in universe.symbols), tuple(s.step_units for s in universe.symbols))

    def symbol(self, sid: int) -> str:
        return self.symbols[sid] if 0 <= sid < len(self.symbols) else f"#{sid}"

    def asset(self, aid: int) -> str:
        return self.assets[aid] if 0 <= aid < len(self.assets) else ""


def exact(value: float, unit: int) -> str:
    """``value`` (a float off a ring record) as the exact decimal it stands for: rounded to a
    multiple of ``unit`` (a tick, a step, or 1 for the 8th decimal) and printed with as many
    decimals as ``unit`` needs ("0.01" for a tick of 0.01), never in exponent form."""
    unit = max(int(unit), 1)
    return format_trimmed(to_step(float(value), unit, "nearest"), decimals_of(unit))


@dataclass(frozen=True)
class Fill:
    """One fill as the API and the dashboard show it; amounts are exact decimal strings."""
    id: int                  # 1, 2, ... in the order the monitor saw them
    time: float              # wall clock (s) when the executor learned of it
    symbol: str
    side: str
    price: str
    qty: str
    quote: str               # price x qty, to the 8th decimal
    fee: str
    fee_asset: str
    maker: bool
    kind: str                # "fill" (the order is complete) or "partial_fill"
    client_order_id: str
    group_id: str            # hex, as the executor logs it
    leg: int

    def to_dict(self) -> dict:
        return asdict(self)


class ExecWatcher:
    """Fills and tick-to-order latencies from the exec ring, as they happen."""

    def __init__(self, consumer: Consumer, names: SymbolTable, batch: int = 1024, max_batches: int = 16) -> None:
        self.consumer = consumer
        self.names = names
        self.buf = np.empty(batch, EXEC_EVENT)
        self.max_batches = max_batches      # per poll: a huge backlog is read over several polls
        self.records = 0
        self.fills = 0
        # client order ids whose tick-to-order was taken (an order has several events)
        self._timed: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    @property
    def lost(self) -> int:
        """Records the producer overwrote before this reader got to them."""
        return self.consumer.lost

    def poll(self) -> tuple[list[Fill], list[int]]:
        """Read what is waiting: (new fills, tick-to-order ns of orders seen for the first time)."""
        fills: list[Fill] = []
        latencies: list[int] = []
        for _ in range(self.max_batches):
            n = self.consumer.read_batch(self.buf, 0.0)
            if not n:
                break
            self.records += n
            for rec in self.buf[:n]:
                self._one(rec, fills, latencies)
            if n < len(self.buf):
                break
        return fills, latencies

    def _one(self, rec: np.void, fills: list[Fill], latencies: list[int]) -> None:
        coid = bytes(rec["client_order_id"]).rstrip(b"\0")
        sent, cause = int(rec["sent_mono_ns"]), int(rec["cause_recv_mono_ns"])
        if sent > 0 and cause > 0 and coid not in self._timed:
            self._timed[coid] = None
            if len(self._timed) > 65536:
                self._timed.popitem(last=False)
            latencies.append(sent - cause)
        if int(rec["kind"]) not in _FILL_KINDS or rec["last_qty"] <= 0:
            return
        sid = int(rec["symbol_id"])
        tick = self.names.tick_units[sid] if 0 <= sid < len(self.names.tick_units) else 1
        step = self.names.step_units[sid] if 0 <= sid < len(self.names.step_units) else 1
        price_units = to_step(float(rec["last_px"]), max(tick, 1), "nearest")
        qty_units = to_step(float(rec["last_qty"]), max(step, 1), "nearest")
        self.fills += 1
        fills.append(Fill(
            id=self.fills, time=int(rec["recv_ts_ns"]) / 1e9 or time.time(), symbol=self.names.symbol(sid),
            side=Side(int(rec["side"])).name if int(rec["side"]) in (1, 2) else "?",
            price=format_trimmed(price_units, decimals_of(max(tick, 1))),
            qty=format_trimmed(qty_units, decimals_of(max(step, 1))),
            quote=format_trimmed(quote_amount(price_units, qty_units), 8),
            fee=exact(float(rec["fee"]), 1), fee_asset=self.names.asset(int(rec["fee_asset_id"])),
            maker=bool(rec["is_maker"]), kind=ExecKind(int(rec["kind"])).name.lower(),
            client_order_id=coid.decode(errors="replace"), group_id=f"{int(rec['group_id']):x}",
            leg=int(rec["leg"])))


class MdWatcher:
    """Per symbol: when its book last changed (CLOCK_MONOTONIC, as the feed stamps records) and
    whether the feed marks it stale, and since when."""

    def __init__(self, consumer: Consumer, n_symbols: int, batch: int = 4096, max_batches: int = 16) -> None:
        self.consumer = consumer
        self.buf = np.empty(batch, MD_EVENT)
        self.max_batches = max_batches
        self.last_mono = np.zeros(n_symbols, np.int64)       # 0: no book record seen yet
        self.stale = np.zeros(n_symbols, np.bool_)
        self.stale_since = np.zeros(n_symbols, np.int64)     # monotonic ns, while stale
        self.records = 0

    @property
    def lost(self) -> int:
        return self.consumer.lost

    def poll(self) -> int:
        """Read what is waiting (only the newest records matter: older ones are skipped when lapped)."""
        total = 0
        for _ in range(self.max_batches):
            n = self.consumer.read_batch(self.buf, 0.0)
            if not n:
                break
            self._apply(self.buf[:n])
            total += n
            if n < len(self.buf):
                break
        self.records += total
        return total

    def _apply(self, recs: np.ndarray) -> None:
        books = recs[recs["kind"] != MdKind.TRADE]
        books = books[(books["symbol_id"] >= 0) & (books["symbol_id"] < len(self.last_mono))]
        if not len(books):
            return
        # the last record of each symbol in the batch decides its state
        sids_rev = books["symbol_id"][::-1]
        sids, first_rev = np.unique(sids_rev, return_index=True)
        last = books[len(books) - 1 - first_rev]
        mono = last["recv_mono_ns"].astype(np.int64)
        stale_now = (last["flags"] & MdFlag.STALE) != 0
        became = stale_now & ~self.stale[sids]
        self.stale_since[sids[became]] = mono[became]
        self.stale_since[sids[~stale_now]] = 0
        self.stale[sids] = stale_now
        self.last_mono[sids] = mono

    def ages(self, now_mono_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """(seconds since each book last changed, NaN if never; seconds it has been stale, 0 if not)."""
        age = np.where(self.last_mono > 0, (now_mono_ns - self.last_mono) / 1e9, np.nan)
        stale_for = np.where(self.stale, (now_mono_ns - self.stale_since) / 1e9, 0.0)
        return age, stale_for


__all__ = ["ExecWatcher", "Fill", "MdWatcher", "SymbolTable", "exact"]
