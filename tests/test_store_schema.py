"""The ClickHouse store on the embedded engine: migrations, the columnar round trip, the reader
API, ``db info`` and the one-process lock."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ctrader.core.records import BOOK_DEPTH, CANDIDATE, EXEC_EVENT, MD_EVENT, Decision, ExecKind, MdKind
from ctrader.store.columns import Names, candidates_to_arrow, executions_to_arrow, md_to_arrow
from ctrader.store.lock import StoreLock, StoreLockedError
from ctrader.store.migrations import MIGRATIONS, MIGRATIONS_TABLE, Migration, apply_migrations
from ctrader.store.store import Store

SYMBOLS = ["BTCUSDT", "ETHBTC", "ETHUSDT"]
T0 = 1_700_000_000_000_000_000


@pytest.fixture
def store(tmp_path):
    s = Store.open(f"chdb://{tmp_path}/store", "ctrader")
    yield s
    s.close()


def md_records(n: int, seed: int = 1, t0: int = T0, step_ns: int = 7_000_000) -> np.ndarray:
    """Book and trade records with ragged depth, as the feed writes them."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n, MD_EVENT)
    r["symbol_id"] = rng.integers(0, len(SYMBOLS), n)
    r["kind"] = rng.choice([MdKind.BOOK_TICKER, MdKind.DEPTH, MdKind.SNAPSHOT, MdKind.TRADE], n)
    r["flags"] = rng.integers(0, 4, n)
    r["seq"] = np.arange(n)
    r["recv_ts_ns"] = t0 + np.arange(n) * step_ns
    r["exch_ts_ns"] = r["recv_ts_ns"] - 1_000_000
    r["recv_mono_ns"] = 5_000_000 + np.arange(n) * step_ns
    book = r["kind"] != MdKind.TRADE
    r["n_bids"] = np.where(book, rng.integers(0, BOOK_DEPTH + 1, n), 0)
    r["n_asks"] = np.where(book, rng.integers(1, BOOK_DEPTH + 1, n), 0)
    for side in ("bid", "ask"):
        valid = np.arange(BOOK_DEPTH)[None, :] < r[f"n_{side}s"][:, None]
        r[f"{side}_px"] = np.where(valid, rng.uniform(1, 100, (n, BOOK_DEPTH)), 0)
        r[f"{side}_qty"] = np.where(valid, rng.uniform(0, 5, (n, BOOK_DEPTH)), 0)
    r["first_update_id"] = np.where(book, 1000 + np.arange(n) * 3, 77 + np.arange(n))
    r["last_update_id"] = np.where(book, 1002 + np.arange(n) * 3, 77 + np.arange(n))
    r["trade_px"] = np.where(book, 0, rng.uniform(1, 100, n))
    r["trade_qty"] = np.where(book, 0, rng.uniform(0, 1, n))
    return r


def join(chunks: list[np.ndarray]) -> np.ndarray:
    """Concatenate record arrays keeping their dtype (np.concatenate drops the cache-line padding)."""
    out = np.zeros(sum(len(c) for c in chunks), chunks[0].dtype)
    at = 0
    for c in chunks:
        out[at:at + len(c)] = c
        at += len(c)
    return out


def assert_same_records(got: np.ndarray, want: np.ndarray) -> None:
    """Field by field: same layout, same values."""
    assert got.dtype == want.dtype and len(got) == len(want)
    for name in want.dtype.names:
        assert np.array_equal(got[name], want[name]), name


def test_migrations_create_every_table_and_are_idempotent(store):
    tables = {r[0] for r in store.client.query(
        "SELECT name FROM system.tables WHERE database = 'ctrader'").result_rows}
    assert {"md_book", "md_trade", "candidates", "orders", "executions", "runs", MIGRATIONS_TABLE} <= tables
    assert store.migrate() == []                       # already applied by Store.open
    assert apply_migrations(store.client, "ctrader") == []
    assert store.schema_version() == max(m.version for m in MIGRATIONS)
    rows = store.client.query(f"SELECT count() FROM ctrader.{MIGRATIONS_TABLE}").result_rows[0][0]
    assert rows == len(MIGRATIONS)
    ddl = store.client.query("SHOW CREATE TABLE ctrader.md_book").result_rows[0][0]
    assert "PARTITION BY toDate(recv_ts)" in ddl and "ORDER BY (symbol, recv_ts)" in ddl
    assert "DoubleDelta" in ddl and "LowCardinality(String)" in ddl


def test_a_new_migration_is_applied_once(store):
    extra = MIGRATIONS + [Migration(999, "test column", (
        "ALTER TABLE {db}.runs ADD COLUMN IF NOT EXISTS note String DEFAULT ''",))]
    assert apply_migrations(store.client, "ctrader", extra) == [999]
    assert apply_migrations(store.client, "ctrader", extra) == []
    cols = [r[0] for r in store.client.query("DESCRIBE TABLE ctrader.runs").result_rows]
    assert "note" in cols


def test_migration_2_holds_the_replay_tables_and_takes_stores_that_already_had_them(tmp_path):
    from ctrader.replay.results import ReplayResults

    old = Store.open(f"chdb://{tmp_path}/old", "ctrader")
    try:
        tables = {r[0] for r in old.client.query("SELECT name FROM system.tables WHERE database = 'ctrader'")
                  .result_rows}
        assert {"replay_runs", "replay_fills", "replay_pnl"} <= tables and old.schema_version() >= 2
        # a store from before migration 2: version 1 recorded, replay tables made by ReplayResults
        old.client.command(f"ALTER TABLE ctrader.{MIGRATIONS_TABLE} DELETE WHERE version >= 2 "
                           "SETTINGS mutations_sync = 1")
        assert old.schema_version() == 1
        ReplayResults(old)                               # applies migration 2 over the existing tables
        assert old.schema_version() == max(m.version for m in MIGRATIONS)
        assert apply_migrations(old.client, "ctrader") == []
        assert ReplayResults(old).list_runs() == []
    finally:
        old.close()


def test_md_round_trip_is_exact_in_time_order_and_bounded_chunks(store):
    recs = md_records(5000)
    book, trades = md_to_arrow(recs, Names(SYMBOLS), "run-a")
    assert store.insert("md_book", book) + store.insert("md_trade", trades) == len(recs)
    chunks = list(store.read_md(SYMBOLS, T0, T0 + 10**12, chunk_rows=333))
    assert max(len(c) for c in chunks) <= 333
    got = join(chunks)
    assert_same_records(got, recs)                    # every field, every level, same order


def test_read_md_filters_symbols_and_time_and_renumbers_ids(store):
    recs = md_records(3000, seed=2)
    for table, data in zip(("md_book", "md_trade"), md_to_arrow(recs, Names(SYMBOLS), "run-a")):
        store.insert(table, data)
    start, end = int(recs["recv_ts_ns"][500]), int(recs["recv_ts_ns"][2500])
    got = join(list(store.read_md(["ETHUSDT"], start, end, chunk_rows=100)))
    want = recs[(recs["symbol_id"] == 2) & (recs["recv_ts_ns"] >= start) & (recs["recv_ts_ns"] < end)]
    assert len(got) == len(want) > 0
    assert (got["symbol_id"] == 0).all()              # ids follow the symbols argument
    assert np.array_equal(got["seq"], want["seq"])
    assert list(store.read_md(["NOPE"], start, end)) == []


def test_a_busy_second_is_paged(store):
    recs = md_records(2000, seed=3, step_ns=100_000)   # 2000 records within 0.2 s
    for table, data in zip(("md_book", "md_trade"), md_to_arrow(recs, Names(SYMBOLS), "run-a")):
        store.insert(table, data)
    chunks = list(store.read_md(SYMBOLS, T0, T0 + 10**10, chunk_rows=300))
    assert [len(c) for c in chunks] == [300] * 6 + [200]
    assert np.array_equal(join(chunks)["seq"], recs["seq"])


def test_candidates_and_executions_round_trip_with_run_ids(store):
    cands = np.zeros(50, CANDIDATE)
    cands["group_id"] = np.arange(50, dtype=np.uint64) + np.uint64(1 << 63)   # full uint64 range
    cands["triangle_id"] = np.arange(50) % 7
    cands["decision"] = np.where(np.arange(50) % 3 == 0, Decision.TAKEN, Decision.SKIP_EDGE)
    cands["n_features"] = np.arange(50) % 9
    cands["event_recv_ts_ns"] = T0 + np.arange(50) * 1000
    cands["eval_mono_ns"] = np.arange(50)
    cands["edge"] = np.linspace(-0.01, 0.01, 50)
    cands["leg_symbol_id"] = np.array([[0, 1, 2]] * 50)
    cands["leg_side"] = np.array([[1, 2, 2]] * 50)
    cands["leg_px"] = np.random.default_rng(1).uniform(1, 2, (50, 3))
    feats = np.random.default_rng(2).uniform(-1, 1, (50, 32)).astype(np.float32)
    cands["features"] = np.where(np.arange(32)[None, :] < cands["n_features"][:, None], feats, 0)
    execs = np.zeros(20, EXEC_EVENT)
    execs["group_id"] = np.arange(20)
    execs["symbol_id"] = np.arange(20) % 3
    execs["kind"] = np.where(np.arange(20) % 2, ExecKind.FILL, ExecKind.ACK)
    execs["side"] = 1
    execs["fee_asset_id"] = np.where(np.arange(20) % 2, 1, -1)
    execs["recv_ts_ns"] = T0 + np.arange(20) * 1000
    execs["exchange_order_id"] = np.arange(20)
    execs["last_px"] = 1.5
    execs["client_order_id"] = [f"ct-{i}".encode() for i in range(20)]
    assets = ["BTC", "ETH", "USDT"]
    store.write_run("run-x", started_ns=T0, symbols=SYMBOLS, assets=assets)
    store.insert("candidates", candidates_to_arrow(cands, Names(SYMBOLS), "run-x"))
    store.insert("executions", executions_to_arrow(execs, Names(SYMBOLS), Names(assets), "run-x"))
    assert_same_records(store.read_candidates("run-x"), cands)
    assert_same_records(store.read_executions("run-x"), execs)
    assert len(store.read_candidates("other")) == 0
    assert store.run_info("run-x")["symbols"] == SYMBOLS


def test_info_reports_tables_rows_sizes_and_symbol_ranges(store):
    recs = md_records(1000, seed=4)
    for table, data in zip(("md_book", "md_trade"), md_to_arrow(recs, Names(SYMBOLS), "run-a")):
        store.insert(table, data)
    info = store.info()
    tables = {t["table"]: t for t in info["tables"]}
    is_trade = recs["kind"] == MdKind.TRADE
    assert tables["md_book"]["rows"] == int((~is_trade).sum())
    assert tables["md_trade"]["rows"] == int(is_trade.sum())
    assert tables["md_book"]["bytes_on_disk"] > 0
    assert tables["candidates"]["rows"] == 0
    by_symbol = {s["symbol"]: s for s in info["symbols"]}
    assert set(by_symbol) == set(SYMBOLS)
    for sid, name in enumerate(SYMBOLS):
        mine = recs[recs["symbol_id"] == sid]
        assert by_symbol[name]["book_rows"] + by_symbol[name]["trade_rows"] == len(mine)
        first = by_symbol[name]["first"]
        assert int(first.timestamp() * 1e6) == int(mine["recv_ts_ns"].min()) // 1000


HOLD = textwrap.dedent("""
    import sys, time
    from ctrader.store.lock import StoreLock
    StoreLock.acquire(sys.argv[1])
    print("locked", flush=True)
    time.sleep(60)
""")


def test_second_process_gets_an_error_naming_the_holder(tmp_path):
    directory = str(tmp_path / "store")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, directory, "--marker-arg"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError) as err:
            Store.open(f"chdb://{directory}", "ctrader")
        assert err.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(err.value) and "--marker-arg" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock is taken over, though the file still names it
    s = Store.open(f"chdb://{directory}", "ctrader")
    try:
        with open(os.path.join(directory, ".ctrader-store.lock")) as f:
            assert f.readline().strip() == str(os.getpid())
    finally:
        s.close()


def test_lock_is_shared_within_a_process(tmp_path):
    a = StoreLock.acquire(str(tmp_path))
    b = StoreLock.acquire(str(tmp_path))
    assert a is b
    a.release()
    code = f"from ctrader.store.lock import StoreLock; StoreLock.acquire({str(tmp_path)!r})"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode != 0  # still held
    b.release()
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_migration_3_rebuilds_market_data_in_small_granules_keeping_every_row(tmp_path):
    old = Store.open(f"chdb://{tmp_path}/old", "ctrader", migrate=False)
    try:
        apply_migrations(old.client, "ctrader", [m for m in MIGRATIONS if m.version < 3])
        recs = md_records(3000, seed=4)
        book, trades = md_to_arrow(recs, Names(SYMBOLS), "run-a")
        old.insert("md_book", book)
        old.insert("md_trade", trades)
        assert "index_granularity = 8192" in old.client.command("SHOW CREATE TABLE ctrader.md_book")
        assert old.migrate() == [3, 4]
        for table in ("md_book", "md_trade"):
            assert "index_granularity = 1024" in old.client.command(f"SHOW CREATE TABLE ctrader.{table}")
        assert_same_records(join(list(old.read_md(SYMBOLS, T0, T0 + 10**12))), recs)
        # interrupted and run again: still every row, once
        (m3,) = [m for m in MIGRATIONS if m.version == 3]
        for stmt in m3.statements:
            old.client.command(stmt.replace("{db}", "ctrader"))
        assert_same_records(join(list(old.read_md(SYMBOLS, T0, T0 + 10**12))), recs)
        tables = {r[0] for r in old.client.query("SELECT name FROM system.tables WHERE database = 'ctrader'")
                  .result_rows}
        assert not [t for t in tables if t.endswith("_regranulate")]
    finally:
        old.close()


def test_migration_4_adds_the_gate_time_to_executions_and_old_rows_read_as_zero(tmp_path):
    """A store recorded before the gate time was: its executions read back with 0 there (a
    replay of such a session charges its rate budget at the send times instead)."""
    import numpy as np

    from ctrader.core.records import EXEC_EVENT
    from ctrader.store.columns import executions_to_arrow

    old = Store.open(f"chdb://{tmp_path}/old", "ctrader", migrate=False)
    try:
        apply_migrations(old.client, "ctrader", [m for m in MIGRATIONS if m.version < 4])
        recs = np.zeros(2, EXEC_EVENT)
        recs["group_id"], recs["kind"], recs["sent_mono_ns"], recs["gated_mono_ns"] = 7, 1, 123, 120
        recs["recv_ts_ns"] = T0
        recs["client_order_id"] = [b"a", b"b"]
        table = executions_to_arrow(recs, Names(SYMBOLS), Names(["BTC", "USDT"]), "run-a")
        old.insert("executions", table.drop(["gated_mono_ns"]))
        assert old.migrate() == [4]
        old.insert("executions", executions_to_arrow(recs[:1], Names(SYMBOLS), Names(["BTC", "USDT"]), "run-a"))
        got = old.read_executions("run-a")
        assert sorted(got["gated_mono_ns"].tolist()) == [0, 0, 120]
        assert got["sent_mono_ns"].tolist() == [123, 123, 123]
    finally:
        old.close()
