"""Replay results in ClickHouse, so runs can be listed and compared.

A replay run is one row of ``replay_runs`` (config hash, code version, model version, data range,
headline figures, the whole summary as JSON), its fills in ``replay_fills`` (with the expected
price and slippage), its PnL samples in ``replay_pnl``; its candidates, intents and executions go
to the same ``candidates`` / ``orders`` / ``executions`` tables as a live session, under the
replay's run id (and a ``runs`` row with its symbols, so ``Store.read_candidates`` works on it).

    rs = ReplayResults(store)                         # creates the replay tables if missing
    sink = rs.sink(run_id, universe)                  # ReplayEngine(on_batch=sink.on_batch)
    ...; sink.close()
    rs.save_run(run_id, meta, result)
    rs.list_runs(); rs.compare("rA", "rB")

The replay tables follow the store's conventions (MergeTree by day, ordered by (run, time),
DoubleDelta/Gorilla codecs); their DDL is store migration 2 (``ctrader.store.migrations``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import numpy as np
import pyarrow as pa

import ctrader
from ctrader.store.columns import Names, candidates_to_arrow, executions_to_arrow, intents_to_arrow, ts_column
from ctrader.store.migrations import MIGRATIONS, apply_migrations

log = logging.getLogger(__name__)

# The DDL of the replay tables is store migration 2 (ctrader.store.migrations); kept under this
# name for callers that create the tables on a client of their own.
REPLAY_MIGRATION = next(m for m in MIGRATIONS if m.name.startswith("replay")).statements


@dataclass
class RunMeta:
    """What identifies a replay: how it was configured and on what data."""
    kind: str = "replay"                  # replay | sweep | eval | rank
    label: str = ""
    strategy: str = "triangular"
    config_hash: str = ""
    code_version: str = ""
    model_version: str = "none"
    data_start_ns: int = 0
    data_end_ns: int = 0
    symbols: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


def config_dict(cfg) -> dict:
    return asdict(cfg) if is_dataclass(cfg) else dict(cfg)


# Sections whose values change what a replay decides; run/venue/store/redis/rings do not.
_DECISION_SECTIONS = ("market", "strategy", "model", "execution", "risk", "replay")


def config_hash(cfg) -> str:
    d = config_dict(cfg)
    relevant = {k: d[k] for k in _DECISION_SECTIONS if k in d}
    text = json.dumps(relevant, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def code_version() -> str:
    """ctrader's version plus the checkout's commit when it is a git checkout (read, not run)."""
    version = ctrader.__version__
    root = pathlib.Path(ctrader.__file__).resolve().parent.parent / ".git"
    try:
        head = (root / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            path = root / ref
            if path.exists():
                head = path.read_text().strip()
            else:
                packed = (root / "packed-refs").read_text().splitlines()
                head = next(line.split()[0] for line in packed if line.endswith(" " + ref))
        return f"{version}+g{head[:12]}"
    except (OSError, StopIteration):
        return version


def new_run_id(kind: str = "replay") -> str:
    return f"{kind[:2]}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{time.time_ns() % 1_000_000:06d}"


class ReplaySink:
    """Buffers a replay's candidates, intents and executions and inserts them in large batches."""

    def __init__(self, store, run_id: str, universe, batch_rows: int = 50_000) -> None:
        self.store, self.run_id, self.batch_rows = store, run_id, batch_rows
        self.symbols = Names([s.name for s in universe.symbols])
        self.assets = Names(list(universe.assets))
        self._buf: dict[str, list[np.ndarray]] = {"candidates": [], "orders": [], "executions": []}
        self._rows = {k: 0 for k in self._buf}
        self.written = {k: 0 for k in self._buf}
        self._mono_to_wall = 0

    def on_batch(self, cands: np.ndarray, intents: np.ndarray, execs: np.ndarray) -> None:
        for table, recs in (("candidates", cands), ("orders", intents), ("executions", execs)):
            if len(recs):
                if table == "orders" and not self._mono_to_wall:
                    self._mono_to_wall = int(recs[0]["cause_recv_ts_ns"]) - int(recs[0]["cause_recv_mono_ns"])
                self._buf[table].append(recs)
                self._rows[table] += len(recs)
                if self._rows[table] >= self.batch_rows:
                    self._flush(table)

    def _flush(self, table: str) -> None:
        if not self._buf[table]:
            return
        parts = self._buf[table]
        recs = np.concatenate(parts, dtype=parts[0].dtype)      # dtype=: keeps the records' padding
        self._buf[table], self._rows[table] = [], 0
        if table == "candidates":
            data = candidates_to_arrow(recs, self.symbols, self.run_id)
        elif table == "orders":
            # replay intents are "created" when their cause event was seen: the market clock
            recs = recs.copy()
            recs["created_mono_ns"] = recs["cause_recv_mono_ns"]
            data = intents_to_arrow(recs, self.symbols, self.run_id, self._mono_to_wall)
        else:
            data = executions_to_arrow(recs, self.symbols, self.assets, self.run_id)
        self.written[table] += self.store.insert(table, data)

    def close(self) -> None:
        for table in self._buf:
            self._flush(table)


class ReplayResults:
    def __init__(self, store) -> None:
        self.store = store
        self.db = store.db
        # Store.open applied every migration; a store opened by older code, or a client opened
        # without Store.open, gets migration 2 (the replay tables) here. Idempotent.
        apply_migrations(store.client, self.db)

    def sink(self, run_id: str, universe, batch_rows: int = 50_000) -> ReplaySink:
        return ReplaySink(self.store, run_id, universe, batch_rows)

    # --- writing ---------------------------------------------------------------------------------

    def save_run(self, run_id: str, meta: RunMeta, result, universe) -> None:
        s = result.summary
        self.store.write_run(run_id, started_ns=meta.data_start_ns, ended_ns=meta.data_end_ns,
                             symbols=[x.name for x in universe.symbols], assets=list(universe.assets),
                             counters={"events": s["events"]}, mode=meta.kind, venue="replay")
        names = Names([x.name for x in universe.symbols])
        assets = Names(list(universe.assets))
        f = result.fills
        if len(f):
            self.store.insert("replay_fills", pa.table({
                "run_id": [run_id] * len(f),
                "ts": ts_column(f["ts_ns"]), "cause_ts": ts_column(f["cause_ts_ns"]),
                "group_id": f["group_id"], "triangle_id": f["triangle_id"], "leg": f["leg"].astype(np.uint8),
                "symbol": names.encode(f["symbol_id"]), "side": f["side"], "is_maker": f["is_maker"].astype(np.uint8),
                "px": f["px"], "qty": f["qty"], "quote": f["quote"], "fee": f["fee"],
                "fee_asset": assets.encode(f["fee_asset_id"]), "expected_px": f["expected_px"],
                "slippage_bps": f["slippage_bps"], "latency_ns": f["latency_ns"], "feed_ns": f["feed_ns"],
                "order_ns": f["order_ns"]}))
        p = result.pnl
        if len(p):
            inv = result.inventory
            self.store.insert("replay_pnl", pa.table({
                "run_id": [run_id] * len(p), "ts": ts_column(p["ts_ns"]), "pnl": p["pnl"],
                "assets": pa.array([sorted(d) for d in inv], pa.list_(pa.string())),
                "values": pa.array([[d[k] for k in sorted(d)] for d in inv], pa.list_(pa.float64()))}))
        self.store.insert("replay_runs", pa.table({
            "run_id": [run_id],
            "created_ts": pa.array([time.time_ns() // 1_000_000], pa.timestamp("ms", tz="UTC")),
            "kind": [meta.kind], "label": [meta.label], "strategy": [meta.strategy],
            "config_hash": [meta.config_hash], "code_version": [meta.code_version or code_version()],
            "model_version": [meta.model_version],
            "data_start": ts_column(np.array([meta.data_start_ns], np.int64)),
            "data_end": ts_column(np.array([meta.data_end_ns], np.int64)),
            "symbols": pa.array([list(meta.symbols)], pa.list_(pa.string())),
            "events": pa.array([s["events"]], pa.uint64()),
            "candidates": pa.array([s["candidates"]], pa.uint64()),
            "intents": pa.array([s["intents"]], pa.uint64()),
            "fills": pa.array([s["fills"]], pa.uint64()),
            "pnl": [float(s["pnl"])], "expected_pnl": [float(s["expected_pnl_taken"])],
            "wall_s": [float(meta.wall_s)],
            "params": [json.dumps(meta.params, sort_keys=True, default=str)],
            "config": [json.dumps(meta.config, sort_keys=True, default=str)],
            "summary": [json.dumps(s, sort_keys=True, default=_jsonable)],
        }))

    # --- reading ---------------------------------------------------------------------------------

    _COLS = ("run_id, created_ts, kind, label, strategy, config_hash, code_version, model_version, "
             "data_start, data_end, events, candidates, intents, fills, pnl, expected_pnl, wall_s, params")

    def list_runs(self, limit: int = 50, kind: str | None = None) -> list[dict]:
        where = f"WHERE kind = '{_safe(kind)}'" if kind else ""
        rows = self.store.client.query(
            f"SELECT {self._COLS} FROM {self.db}.replay_runs FINAL {where} "
            f"ORDER BY created_ts DESC, run_id DESC LIMIT {int(limit)}").result_rows
        return [self._row(r) for r in rows]

    def get_run(self, run_id: str) -> dict | None:
        rows = self.store.client.query(
            f"SELECT {self._COLS}, summary, config FROM {self.db}.replay_runs FINAL "
            f"WHERE run_id = '{_safe(run_id)}'").result_rows
        if not rows:
            return None
        out = self._row(rows[0][:-2])
        out["summary"] = json.loads(rows[0][-2] or "{}")
        out["config"] = json.loads(rows[0][-1] or "{}")
        return out

    def _row(self, r) -> dict:
        keys = [k.strip() for k in self._COLS.split(",")]
        d = dict(zip(keys, r))
        d["params"] = json.loads(d["params"] or "{}")
        return d

    def fills(self, run_id: str) -> pa.Table:
        return self.store.query_arrow(
            f"SELECT * FROM {self.db}.replay_fills WHERE run_id = '{_safe(run_id)}' ORDER BY ts, group_id, leg")

    def compare(self, a: str, b: str) -> dict:
        """Side by side: identity (config, code, model, data), headline figures and their deltas,
        whether decisions and fills are identical (digests), and the triangles that differ most."""
        ra, rb = self.get_run(a), self.get_run(b)
        missing = [x for x, r in ((a, ra), (b, rb)) if r is None]
        if missing:
            raise KeyError(f"no replay run {', '.join(missing)}")
        same = {k: ra[k] == rb[k] for k in ("config_hash", "code_version", "model_version", "data_start", "data_end")}
        figures = {}
        for k in ("events", "candidates", "intents", "fills", "pnl", "expected_pnl", "wall_s"):
            figures[k] = {"a": ra[k], "b": rb[k], "delta": rb[k] - ra[k]}
        for k in ("groups", "groups_complete"):
            va, vb = ra["summary"].get(k, 0), rb["summary"].get(k, 0)
            figures[k] = {"a": va, "b": vb, "delta": vb - va}
        da, db = ra["summary"].get("digests", {}), rb["summary"].get("digests", {})
        identical = {k: da.get(k) == db.get(k) for k in ("md", "candidates", "intents", "fills")}
        tri_a = {t["name"]: t["pnl"] for t in ra["summary"].get("triangles", [])}
        tri_b = {t["name"]: t["pnl"] for t in rb["summary"].get("triangles", [])}
        tri = sorted(({"triangle": n, "a": tri_a.get(n, 0.0), "b": tri_b.get(n, 0.0),
                       "delta": tri_b.get(n, 0.0) - tri_a.get(n, 0.0)} for n in set(tri_a) | set(tri_b)),
                     key=lambda e: -abs(e["delta"]))
        params = {"a": ra["params"], "b": rb["params"]}
        return {"a": a, "b": b, "same": same, "identical": identical, "figures": figures,
                "params": params, "triangles": tri[:10]}


def _safe(text: str) -> str:
    if not all(c.isalnum() or c in "-_.:" for c in text):
        raise ValueError(f"not a valid run id: {text!r}")
    return text


def _jsonable(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)
