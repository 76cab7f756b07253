"""What a replay produced, accumulated as it runs: counts, histograms, fills, PnL, digests.

Memory stays bounded for any length of history: candidates are counted and binned as they come
(the records themselves are kept only up to ``keep`` rows, for the report and the store), and PnL
is sampled at a fixed market-time interval. Intents and fills are few and kept whole.

    s = ReplaySummary(universe, "USDT", keep=1_000_000)
    s.on_candidates(cands); s.on_intents(intents); s.on_fill(order, update, now, feed_ns, order_ns)
    s.on_pnl(ts_ns, pnl, inventory)
    summary = s.finish(engine, group_pnl)      # a JSON-friendly dict
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import numpy as np
from numpy.lib.recfunctions import repack_fields

from ctrader.core.arrays import concat
from ctrader.core.records import (
    CANDIDATE,
    EXEC_EVENT,
    ORDER_INTENT,
    Decision,
    ExecKind,
    IntentAction,
    OrderType,
    Side,
)
from ctrader.venue.decimals import ONE

# edge histogram bins, basis points (edges outside land in the first/last bin)
EDGE_BINS_BPS = np.linspace(-50.0, 150.0, 401)

FILL = np.dtype([
    ("ts_ns", np.int64),            # market time of the match
    ("cause_ts_ns", np.int64),      # receive time of the md event that caused the intent
    ("group_id", np.uint64),
    ("triangle_id", np.int32),
    ("leg", np.int8),
    ("symbol_id", np.int32),
    ("side", np.int8),
    ("is_maker", np.int8),
    ("px", np.float64),
    ("qty", np.float64),
    ("quote", np.float64),
    ("fee", np.float64),
    ("fee_asset_id", np.int32),
    ("expected_px", np.float64),    # the candidate's walked average price of this leg
    ("slippage_bps", np.float64),   # positive = worse than expected
    ("latency_ns", np.int64),       # cause event -> match
    ("feed_ns", np.int64),          # sampled feed latency of this order
    ("order_ns", np.int64),         # sampled order latency
])


def _hash_records(h, recs: np.ndarray, skip: tuple[str, ...] = ()) -> None:
    """Fingerprint records row by row, their fields packed: padding bytes between fields are not
    data (a copy of a padded structured array leaves them undefined), and ``skip`` fields are
    compute-time clocks, not decisions. Row-major, so the fingerprint of the records is the same
    however they were split into calls (the replay's batch size)."""
    names = [name for name in recs.dtype.names if name not in skip]
    h.update(repack_fields(recs[names]).tobytes())


def _pct(values: np.ndarray, qs=(50, 90, 99)) -> dict[str, float | None]:
    if len(values) == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(values, qs))}


def resting_orders(intents: np.ndarray, fills: np.ndarray) -> dict[str, int]:
    """Resting orders placed (each group's LIMIT_MAKER order as first sent; a re-priced order is
    the same order) and how many of them filled at all, as a maker."""
    if len(intents) == 0:
        return {"placed": 0, "filled": 0}
    new = intents[(intents["order_type"] == OrderType.LIMIT_MAKER) & (intents["action"] == IntentAction.NEW)]
    placed = np.unique(new["group_id"])
    made = fills["group_id"][(fills["is_maker"] != 0) & np.isin(fills["group_id"], placed)] if len(fills) else []
    return {"placed": len(placed), "filled": len(np.unique(made))}


class ReplaySummary:
    def __init__(self, universe, valuation_asset: str, keep: int = 2_000_000, valuer=None) -> None:
        self.universe = universe
        self.valuer = valuer
        tris = universe.triangles() if hasattr(universe, "triangles") else []
        self._tri_start = [t.start_asset_id for t in tris] if tris else None
        self.valuation_asset = valuation_asset
        self.keep = keep
        self.decisions: dict[int, int] = defaultdict(int)
        self.hist_taken = np.zeros(len(EDGE_BINS_BPS) - 1, np.int64)
        self.hist_skipped = np.zeros(len(EDGE_BINS_BPS) - 1, np.int64)
        self.n_candidates = 0
        self._cands: list[np.ndarray] = []
        self._kept = 0
        self._intents: list[np.ndarray] = []
        self._execs: list[np.ndarray] = []
        self._fills: list[tuple] = []
        self.taken: dict[int, tuple[int, np.ndarray, float, float]] = {}   # group -> (tri, leg_px, edge, pnl)
        self.pnl_ts: list[int] = []
        self.pnl_val: list[float] = []
        self.inventory: list[dict[str, float]] = []
        self._h = {k: hashlib.blake2b(digest_size=16) for k in ("candidates", "intents", "fills")}

    # --- events ------------------------------------------------------------------------------------

    def _start_price(self, triangle_id: int) -> float:
        """Value of one unit of the triangle's start asset in the valuation asset, now."""
        if self.valuer is None or self._tri_start is None or not 0 <= triangle_id < len(self._tri_start):
            return 1.0
        p = self.valuer.price(self._tri_start[triangle_id])
        return 0.0 if np.isnan(p) else p

    def on_taken(self, c: np.ndarray) -> None:
        """Remember what the TAKEN candidates expected, before their orders can fill."""
        for j in np.flatnonzero(c["decision"] == Decision.TAKEN):
            r = c[j]
            # expected PnL in the valuation asset, at the prices of the moment it was taken
            self.taken[int(r["group_id"])] = (int(r["triangle_id"]), r["leg_px"].copy(), float(r["edge"]),
                                              float(r["expected_pnl"]) * self._start_price(int(r["triangle_id"])))

    def on_candidates(self, c: np.ndarray) -> None:
        """Count, bin, fingerprint and keep a batch of candidates."""
        self.n_candidates += len(c)
        dec = c["decision"].astype(np.int64)
        for d, n in enumerate(np.bincount(dec)):
            if n:
                self.decisions[d] += int(n)
        lo, hi, nb = EDGE_BINS_BPS[0], EDGE_BINS_BPS[-1], len(EDGE_BINS_BPS) - 1
        idx = np.clip(((c["edge"] * 1e4 - lo) * (nb / (hi - lo))).astype(np.int64), 0, nb - 1)
        taken = dec == Decision.TAKEN
        self.hist_taken += np.bincount(idx[taken], minlength=nb)
        self.hist_skipped += np.bincount(idx[~taken], minlength=nb)
        _hash_records(self._h["candidates"], c, ("eval_mono_ns",))
        if self._kept < self.keep:
            part = c[: self.keep - self._kept]
            self._cands.append(part.copy())
            self._kept += len(part)

    def on_intents(self, intents: np.ndarray) -> None:
        _hash_records(self._h["intents"], intents, ("created_mono_ns",))
        self._intents.append(intents.copy())

    def on_execs(self, execs: np.ndarray) -> None:
        self._execs.append(execs)

    def on_fill(self, order, f, now: int, feed_ns: int, order_ns: int) -> None:
        tri, leg_px, _, _ = self.taken.get(order.group_id, (-1, None, 0.0, 0.0))
        px = f.last_px / ONE
        exp = float(leg_px[order.leg]) if leg_px is not None and order.leg < len(leg_px) else np.nan
        if exp and exp > 0:
            slip = (px - exp) / exp * 1e4 if order.side == Side.BUY else (exp - px) / exp * 1e4
        else:
            slip = np.nan
        fee_asset = self.universe.asset_id(f.fee_asset) if f.fee_asset else -1
        row = (now, order.cause_recv_ts_ns, order.group_id, tri, order.leg, order.symbol_id, order.side,
               int(f.is_maker), px, f.last_qty / ONE, f.last_quote / ONE, f.fee / ONE, fee_asset, exp, slip,
               now - order.cause_recv_ts_ns, feed_ns, order_ns)
        self._fills.append(row)
        self._h["fills"].update(repr(row).encode())

    def on_pnl(self, ts: int, pnl: float, inventory: dict[str, float]) -> None:
        self.pnl_ts.append(ts)
        self.pnl_val.append(pnl)
        self.inventory.append(inventory)

    # --- results ---------------------------------------------------------------------------------

    def candidates(self) -> np.ndarray:
        return concat(self._cands, CANDIDATE)

    def intents(self) -> np.ndarray:
        return concat(self._intents, ORDER_INTENT)

    def execs(self) -> np.ndarray:
        return concat(self._execs, EXEC_EVENT)

    def fills(self) -> np.ndarray:
        return np.array(self._fills, dtype=FILL) if self._fills else np.zeros(0, FILL)

    def pnl_series(self) -> np.ndarray:
        return np.array(list(zip(self.pnl_ts, self.pnl_val)), dtype=[("ts_ns", np.int64), ("pnl", np.float64)])

    def digests(self) -> dict[str, str]:
        return {k: h.hexdigest() for k, h in self._h.items()}

    def finish(self, eng, group_pnl: dict[int, float]) -> dict[str, Any]:
        uni = self.universe
        fills = self.fills()
        execs = self.execs()
        intents = self.intents()
        groups = {int(g) for g in intents["group_id"]} if len(intents) else set()
        # a group is complete when every leg is completely filled
        legs_filled: dict[int, int] = defaultdict(int)
        n_legs: dict[int, int] = {int(r["group_id"]): int(r["n_legs"]) for r in intents}
        for r in execs[execs["kind"] == ExecKind.FILL] if len(execs) else []:
            legs_filled[int(r["group_id"])] += 1
        complete = sum(1 for g in groups if legs_filled.get(g, 0) >= n_legs.get(g, 3))
        per_tri: dict[int, dict[str, float]] = {}
        for g, pnl in group_pnl.items():
            tri = self.taken.get(g, (-1,))[0]
            e = per_tri.setdefault(tri, {"triangle_id": tri, "groups": 0, "pnl": 0.0, "expected_pnl": 0.0})
            e["groups"] += 1
            e["pnl"] += pnl
            e["expected_pnl"] += self.taken.get(g, (0, None, 0.0, 0.0))[3]
        tri_names = {t.id: t.name(uni) for t in uni.triangles()} if hasattr(uni, "triangles") else {}
        for e in per_tri.values():
            e["name"] = tri_names.get(e["triangle_id"], str(e["triangle_id"]))
        acct = eng.acct
        valued = acct.snapshot(eng.valuer)
        slip = fills["slippage_bps"][~np.isnan(fills["slippage_bps"])] if len(fills) else np.zeros(0)
        return {
            "events": eng.events,
            "batches": eng.batches,
            "first_ts_ns": eng.first_ts_ns,
            "last_ts_ns": eng.last_ts_ns,
            "candidates": self.n_candidates,
            "decisions": {Decision(d).name.lower(): n for d, n in sorted(self.decisions.items())},
            "intents": len(intents),
            "groups": len(groups),
            "groups_complete": complete,
            "resting_orders": resting_orders(intents, fills),
            "fills": len(fills),
            "rejects": {str(k): v for k, v in acct.rejects.items()},
            "cancels": acct.cancels,
            "valuation_asset": self.valuation_asset,
            "pnl": float(acct.pnl(eng.valuer)),
            "groups_traded": len(group_pnl),            # groups whose orders traded (hit rate)
            "groups_won": sum(1 for v in group_pnl.values() if v > 0),
            "expected_pnl_taken": float(sum(v[3] for v in self.taken.values())),
            "positions": valued["positions"],
            "fees": valued["fees"],
            "latency_ms": {
                "tick_to_match": {k: (None if v is None else v / 1e6)
                                  for k, v in _pct(fills["latency_ns"] if len(fills) else np.zeros(0)).items()},
                "feed": eng.opt.feed_latency.describe(),
                "order": eng.opt.order_latency.describe(),
                "exec": eng.opt.exec_latency.describe(),
            },
            "slippage_bps": dict(_pct(slip), mean=float(slip.mean()) if len(slip) else None),
            "triangles": sorted(per_tri.values(), key=lambda e: -e["pnl"]),
            "edge_hist": {"bins_bps": [float(EDGE_BINS_BPS[0]), float(EDGE_BINS_BPS[-1]), len(EDGE_BINS_BPS) - 1],
                          "taken": self.hist_taken.tolist(), "skipped": self.hist_skipped.tolist()},
        }
