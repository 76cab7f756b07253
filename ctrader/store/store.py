"""The ClickHouse store: schema, inserts, ``db info`` and the reader API for replay and training.

    store = Store.open("chdb:///data/store", "ctrader")      # or Store.from_config(cfg)
    store.insert("md_book", arrow_table)                      # tables from ctrader.store.columns
    for chunk in store.read_md(["BTCUSDT", "ETHBTC"], start, end, chunk_rows=100_000):
        ...                                     # MD_EVENT arrays, time order (read ahead on a thread)
    cands = store.read_candidates("r1234")                    # CANDIDATE records of a run
    store.close()

Times are nanoseconds since the epoch (int), ``datetime`` or ISO strings. Symbol ids in what the
reader returns: ``read_md`` numbers symbols by their position in the ``symbols`` argument (or a
mapping you pass); ``read_candidates``/``read_executions`` restore the ids the run used, from the
symbol list saved in the ``runs`` table.
"""
from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from ctrader.core.prefetch import prefetched
from ctrader.core.records import CANDIDATE, EXEC_EVENT, MAX_FEATURES, MAX_LEGS
from ctrader.store import md_read
from ctrader.store.client import (
    NativeQuery,
    StoreUnavailable,
    describe,
    native_query,
    open_client,
    resolve_url,
)
from ctrader.store.migrations import MIGRATIONS_TABLE, applied_versions, apply_migrations, latest_version
from ctrader.store.native import read_native
from ctrader.store.retention import apply_ttls, retention_days

log = logging.getLogger(__name__)

MD_TABLES = ("md_book", "md_trade")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:#/-]+$")


def to_ns(t) -> int:
    """Nanoseconds since the epoch from an int (ns), a datetime (naive = UTC) or an ISO string."""
    if t is None:
        raise ValueError("a time is required")
    if isinstance(t, (int, np.integer)):
        return int(t)
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000
    raise TypeError(f"cannot read a time from {t!r}")


def _quote(name: str) -> str:
    if not _NAME_RE.match(name):
        raise ValueError(f"not a valid name for the store: {name!r}")
    return f"'{name}'"


class Store:
    def __init__(self, client, database: str, url: str, lock=None, native: NativeQuery | None = None) -> None:
        """``native``: how bulk reads get Native bytes; by default chosen from ``url`` on first
        use (``client.native_query``)."""
        if not _NAME_RE.match(database) or "." in database:
            raise ValueError(f"not a valid database name: {database!r}")
        self.client = client
        self.db = database
        self.url = url
        self._lock = lock
        self._native = native
        self._native_lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, database: str = "ctrader", data_dir: str | None = None,
             migrate: bool = True) -> Store:
        url = resolve_url(url, data_dir)
        client, lock = open_client(url)
        store = cls(client, database, url, lock)
        try:
            if migrate:
                store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def from_config(cls, cfg, migrate: bool = True) -> Store:
        """The configured store; with ``migrate``, its schema brought up to date and each table's
        retention set as ``[store.retention]`` says (``ctrader.store.retention``)."""
        store = cls.open(cfg.store.url, cfg.store.database, cfg.run.data_dir, migrate)
        if migrate:
            try:
                apply_ttls(store, retention_days(cfg.store.retention))
            except BaseException:
                store.close()
                raise
        return store

    def close(self) -> None:
        if self._native is not None:
            self._native.close()
            self._native = None
        if self.client is not None:
            try:
                self.client.close()
            finally:
                self.client = None
                if self._lock is not None:
                    self._lock.release()
                    self._lock = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb://")

    # --- schema --------------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        return apply_migrations(self.client, self.db)

    def schema_version(self) -> int:
        versions = applied_versions(self.client, self.db)
        return max(versions) if versions else 0

    # --- writing -------------------------------------------------------------------------------

    def insert(self, table: str, data: pa.Table) -> int:
        """Insert an Arrow table (``ctrader.store.columns``) into ``table``; returns its rows.

        Any failure of the store raises ``StoreUnavailable`` (the recorder spills and retries).
        """
        if data.num_rows == 0:
            return 0
        try:
            self.client.insert_arrow(f"{self.db}.{table}", data)
        except Exception as exc:
            raise StoreUnavailable(f"insert into {self.db}.{table} at {describe(self.url)} failed: {exc}") from exc
        return data.num_rows

    def write_run(self, run_id: str, **fields) -> None:
        """Insert or update the row of a run (the newest ``updated_ts`` wins); see ``run_table``."""
        self.insert("runs", run_table(run_id, **fields))

    # --- reading -------------------------------------------------------------------------------

    def query_arrow(self, sql: str) -> pa.Table:
        return self.client.query_arrow(sql, use_strings=True)

    def run_info(self, run_id: str) -> dict | None:
        rows = self.client.query(
            f"SELECT run_id, started_ts, ended_ts, symbols, assets, counters, mode, venue "
            f"FROM {self.db}.runs FINAL WHERE run_id = {_quote(run_id)}").result_rows
        if not rows:
            return None
        r = rows[0]
        return {"run_id": r[0], "started": r[1], "ended": r[2], "symbols": list(r[3]), "assets": list(r[4]),
                "counters": json.loads(r[5] or "{}"), "mode": r[6], "venue": r[7]}

    def runs(self) -> list[dict]:
        rows = self.client.query(
            f"SELECT run_id, started_ts, ended_ts, mode, venue, length(symbols) "
            f"FROM {self.db}.runs FINAL ORDER BY started_ts").result_rows
        return [{"run_id": r[0], "started": r[1], "ended": r[2], "mode": r[3], "venue": r[4], "symbols": r[5]}
                for r in rows]

    def read_md(self, symbols: list[str], start, end, chunk_rows: int = 100_000,
                symbol_ids: dict[str, int] | None = None, prefetch: bool = True,
                first_rows: int = 0) -> Iterator[np.ndarray]:
        """MD_EVENT arrays of book and trade events of ``symbols`` in [start, end), in time order
        (receive time, then run and feed sequence), at most ``chunk_rows`` records each (more only
        when more events share one nanosecond).

        A first query counts events per second, then each query reads one window of time holding
        at most ``chunk_rows`` events (``ctrader.store.md_read``). With ``prefetch`` the next
        window is read and decoded on a thread while the caller works on the current one: at
        most three windows are in memory at a time (the caller's, one ready, one being read).
        ``first_rows`` caps the first window (each next one doubles, up to ``chunk_rows``), for
        a caller that would rather start on a small window than wait for a full one.
        """
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be >= 1")
        symbols = list(symbols)
        if not symbols:
            return iter(())
        ids = symbol_ids if symbol_ids is not None else {s: i for i, s in enumerate(symbols)}
        chunks = self._md_chunks(symbols, ids, to_ns(start), to_ns(end), chunk_rows, first_rows)
        return prefetched(chunks, depth=1, name="store-read-md") if prefetch else chunks

    def _md_chunks(self, symbols: list[str], ids: dict[str, int], start_ns: int, end_ns: int,
                   chunk_rows: int, first_rows: int) -> Iterator[np.ndarray]:
        def count(lo: int, hi: int, width: int):
            return self.client.query(md_read.count_sql(self.db, symbols, lo, hi, width)).result_rows

        reader = self._native_reader()
        for window in md_read.plan_windows(count, start_ns, end_ns, chunk_rows, first_rows):
            with reader.native(md_read.window_sql(self.db, symbols, ids, window)) as data:
                records = md_read.decode_window(read_native(data))
            if len(records):
                yield records

    def _native_reader(self) -> NativeQuery:
        with self._native_lock:          # read_md's threads may ask at once
            if self.client is None:
                raise StoreUnavailable(f"the store at {describe(self.url)} is closed")
            if self._native is None:
                self._native = native_query(self.url, self.client)
            return self._native

    def _run_ids(self, run_id: str, what: str) -> tuple[dict[str, int], dict[str, int]]:
        info = self.run_info(run_id)
        if info is None:
            log.warning("run %s has no row in %s.runs: %s get symbol ids in order of appearance",
                        run_id, self.db, what)
            return {}, {}
        return ({s: i for i, s in enumerate(info["symbols"])}, {a: i for i, a in enumerate(info["assets"])})

    def read_candidates(self, run_id: str) -> np.ndarray:
        """The CANDIDATE records a run journaled, in evaluation order, with the run's symbol ids."""
        tab = self.query_arrow(
            f"SELECT *, toInt8(decision) AS decision_code FROM {self.db}.candidates "
            f"WHERE run_id = {_quote(run_id)} ORDER BY event_recv_ts, eval_mono_ns, group_id")
        symbol_ids, _ = self._run_ids(run_id, "candidates")
        n = tab.num_rows
        out = np.zeros(n, CANDIDATE)
        if n == 0:
            return out
        for f in ("group_id", "triangle_id", "strategy_id", "event_recv_mono_ns", "eval_mono_ns", "edge",
                  "size_start", "expected_pnl", "score"):
            out[f] = tab.column(f).to_numpy()
        out["decision"] = tab.column("decision_code").to_numpy()
        out["event_recv_ts_ns"] = tab.column("event_recv_ts").to_numpy().view(np.int64)
        out["leg_symbol_id"] = _names_to_ids(_flat(tab, "leg_symbol"), symbol_ids).reshape(n, MAX_LEGS)
        out["leg_side"] = _flat(tab, "leg_side").reshape(n, MAX_LEGS)
        out["leg_px"] = _flat(tab, "leg_px").reshape(n, MAX_LEGS)
        out["leg_qty"] = _flat(tab, "leg_qty").reshape(n, MAX_LEGS)
        feats = tab.column("features").combine_chunks()
        lengths = np.diff(feats.offsets.to_numpy())
        out["n_features"] = lengths
        matrix = np.zeros((n, MAX_FEATURES), np.float32)
        mask = np.arange(MAX_FEATURES)[None, :] < lengths[:, None]
        matrix[mask] = feats.values.to_numpy()
        out["features"] = matrix
        return out

    def read_executions(self, run_id: str) -> np.ndarray:
        """The EXEC_EVENT records of a run in receive order, with the run's symbol and asset ids."""
        tab = self.query_arrow(
            f"SELECT *, toInt8(kind) AS kind_code, toInt8(side) AS side_code FROM {self.db}.executions "
            f"WHERE run_id = {_quote(run_id)} ORDER BY recv_ts, exchange_order_id, trade_id")
        symbol_ids, asset_ids = self._run_ids(run_id, "executions")
        n = tab.num_rows
        out = np.zeros(n, EXEC_EVENT)
        if n == 0:
            return out
        for f in ("group_id", "reject_code", "leg", "is_maker", "exchange_order_id", "trade_id", "last_px",
                  "last_qty", "cum_qty", "cum_quote", "fee", "cause_recv_mono_ns", "sent_mono_ns", "gated_mono_ns"):
            out[f] = tab.column(f).to_numpy()
        out["kind"] = tab.column("kind_code").to_numpy()
        out["side"] = tab.column("side_code").to_numpy()
        out["exch_ts_ns"] = tab.column("exch_ts").to_numpy().view(np.int64)
        out["recv_ts_ns"] = tab.column("recv_ts").to_numpy().view(np.int64)
        out["symbol_id"] = _names_to_ids(_strings(tab, "symbol"), symbol_ids)
        fee_assets = _strings(tab, "fee_asset")
        out["fee_asset_id"] = np.where(fee_assets == "", -1, _names_to_ids(fee_assets, asset_ids))
        out["client_order_id"] = np.array(_strings(tab, "client_order_id"), dtype=out.dtype["client_order_id"])
        return out

    # --- db info -------------------------------------------------------------------------------

    def info(self) -> dict:
        """Tables (rows, bytes on disk, time range), market-data time range per symbol, schema."""
        parts = {r[0]: r[1:] for r in self.client.query(
            f"SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
            f"WHERE database = {_quote(self.db)} AND active GROUP BY table").result_rows}
        names = [r[0] for r in self.client.query(
            f"SELECT name FROM system.tables WHERE database = {_quote(self.db)} ORDER BY name").result_rows]
        time_cols = {"md_book": "recv_ts", "md_trade": "recv_ts", "candidates": "event_recv_ts",
                     "orders": "created_ts", "executions": "recv_ts", "runs": "started_ts"}
        tables = []
        for name in names:
            rows, on_disk, raw = parts.get(name, (0, 0, 0))
            if name == "runs" and rows:     # one row per update until merged: count runs, not updates
                rows = self.client.query(f"SELECT count() FROM {self.db}.runs FINAL").result_rows[0][0]
            first = last = None
            if name in time_cols and rows:
                first, last = self.client.query(
                    f"SELECT min({time_cols[name]}), max({time_cols[name]}) FROM {self.db}.{name}").result_rows[0]
            tables.append({"table": name, "rows": int(rows), "bytes_on_disk": int(on_disk),
                           "uncompressed_bytes": int(raw), "first": first, "last": last})
        symbols: dict[str, dict] = {}
        for table, key in (("md_book", "book_rows"), ("md_trade", "trade_rows")):
            for sym, count, first, last in self.client.query(
                    f"SELECT symbol, count(), min(recv_ts), max(recv_ts) FROM {self.db}.{table} "
                    f"GROUP BY symbol ORDER BY symbol").result_rows:
                entry = symbols.setdefault(sym, {"symbol": sym, "book_rows": 0, "trade_rows": 0,
                                                 "first": first, "last": last})
                entry[key] = int(count)
                entry["first"] = min(entry["first"], first)
                entry["last"] = max(entry["last"], last)
        return {"url": describe(self.url), "database": self.db, "schema_version": self.schema_version(),
                "latest_version": latest_version(), "tables": tables,
                "symbols": [symbols[s] for s in sorted(symbols)]}


def run_table(run_id: str, *, started_ns: int, ended_ns: int | None = None, symbols: list[str] = (),
              assets: list[str] = (), counters: dict | None = None, config: dict | None = None,
              mode: str = "", venue: str = "") -> pa.Table:
    """One row of the ``runs`` table (the recorder writes one at start and one at stop)."""
    ms = pa.timestamp("ms", tz="UTC")
    return pa.table({
        "run_id": [run_id],
        "updated_ts": pa.array([time.time_ns() // 1_000_000], ms),
        "started_ts": pa.array([started_ns // 1_000_000], ms),
        "ended_ts": pa.array([None if ended_ns is None else ended_ns // 1_000_000], ms),
        "host": [socket.gethostname()],
        "pid": pa.array([os.getpid()], pa.uint32()),
        "mode": [mode], "venue": [venue],
        "symbols": pa.array([list(symbols)], pa.list_(pa.string())),
        "assets": pa.array([list(assets)], pa.list_(pa.string())),
        "counters": [json.dumps(counters or {}, sort_keys=True, default=str)],
        "config": [json.dumps(config or {}, sort_keys=True, default=str)],
    })


def _flat(tab: pa.Table, column: str) -> np.ndarray:
    arr = tab.column(column).combine_chunks()
    values = arr.values
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values.to_numpy(zero_copy_only=False)


def _strings(tab: pa.Table, column: str) -> np.ndarray:
    arr = tab.column(column).combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object).astype(str)


def _names_to_ids(names: np.ndarray, ids: dict[str, int]) -> np.ndarray:
    """Map names to ids; names a run did not list get the next free ids in order of appearance."""
    uniq, codes = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
    ids = dict(ids)
    nxt = max(ids.values(), default=-1) + 1
    lookup = np.empty(len(uniq), np.int32)
    for i, name in enumerate(uniq):
        if name not in ids:
            ids[name] = nxt
            nxt += 1
        lookup[i] = ids[name]
    return lookup[codes]


__all__ = ["MD_TABLES", "MIGRATIONS_TABLE", "Store", "StoreUnavailable", "to_ns"]
