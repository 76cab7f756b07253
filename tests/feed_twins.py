"""Two FeedEngines fed the same frames: one as the links feed it (the C path first), one through the
Python path only. Whatever the frames, both must publish the same bytes and count the same.

    twins = Twins(["BTCUSDT", "ETHBTC"])
    twins.frame(data, recv_ts, recv_mono)        # to both
    twins.snapshot("BTCUSDT", doc)               # to both
    new = twins.check()                          # records since the last check: byte for byte; counters
"""
from __future__ import annotations

import functools

import numpy as np

from ctrader.config import load_config
from ctrader.core.records import MdKind
from ctrader.feed.engine import FeedEngine
from ctrader.market.universe import Universe
from ctrader.sim.universe import build_universe

CFG = load_config(env={}, overrides={"feed.streams": "bookTicker,depth@100ms,trade"})
DOC = build_universe(CFG.sim).exchange_info
# counters that depend on the clock, or say which path took a frame
NOT_COMPARED = {"stale_s", "recv_to_ring_us_p50", "recv_to_ring_us_p99"}


@functools.cache
def _universe(symbols: tuple[str, ...]) -> Universe:
    return Universe.from_exchange_info(DOC, symbols=list(symbols))


def make_engine(symbols) -> FeedEngine:
    out: list[np.ndarray] = []
    eng = FeedEngine(CFG, _universe(tuple(symbols)), lambda r: out.append(r.copy()))
    eng.out = out
    return eng


def published(eng: FeedEngine) -> np.ndarray:
    """The records written since the last call (snapshot receive times zeroed)."""
    eng.batch.flush()
    r = np.concatenate(eng.out) if eng.out else np.zeros(0, eng.batch.records.dtype)
    eng.out.clear()
    snap = r["kind"] == MdKind.SNAPSHOT
    r["recv_ts_ns"][snap] = 0                 # snapshots are stamped with the clock at arrival
    r["recv_mono_ns"][snap] = 0
    return r


def counters(eng: FeedEngine) -> dict:
    return {k: v for k, v in eng.stats().items() if k not in NOT_COMPARED}


class Twins:
    def __init__(self, symbols) -> None:
        self.c = make_engine(symbols)         # C path first, as the links call it
        self.py = make_engine(symbols)        # Python path only

    def frame(self, data: bytes, recv_ts: int = 5, recv_mono: int = 6) -> int:
        """Both engines take the frame; returns the C path's code (0: it went to Python)."""
        code = self.c.fast.handle(data, recv_ts, recv_mono)
        if not code:
            self.c._process_general(data, recv_ts, recv_mono)
        self.py._process_general(data, recv_ts, recv_mono)
        return code

    def snapshot(self, symbol: str, doc: dict) -> None:
        self.c._on_snapshot(symbol, doc)
        self.py._on_snapshot(symbol, doc)

    def check(self, counted: bool = True) -> np.ndarray:
        """The records both wrote since the last check (equal byte for byte), and unless
        ``counted`` is False (stats() takes percentiles: slow), all counters equal."""
        rc, rp = published(self.c), published(self.py)
        assert rc.tobytes() == rp.tobytes(), _first_difference(rc, rp)
        assert self.c.parse_errors == self.py.parse_errors
        if counted:
            assert counters(self.c) == counters(self.py)
        return rc


def _first_difference(a: np.ndarray, b: np.ndarray) -> str:
    if len(a) != len(b):
        return f"{len(a)} records from the C path, {len(b)} from the Python path"
    for i in range(len(a)):
        if a[i].tobytes() != b[i].tobytes():
            fields = [n for n in a.dtype.names if np.any(a[i][n] != b[i][n])]
            return f"record {i} differs in {fields}: C {a[i]} / Python {b[i]}"
    return "same"
