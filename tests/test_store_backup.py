"""Backups: the store to Parquet files and back, byte-checked, never over existing data unasked."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.core.records import EXEC_EVENT, MD_EVENT, ExecKind, MdKind
from ctrader.store.backup import MANIFEST, BackupError, backup, read_manifest, restore, verify
from ctrader.store.columns import Names, executions_to_arrow, md_to_arrow
from ctrader.store.store import Store

NOW = time.time_ns()
DAY = 86_400 * 1_000_000_000
TABLES = ("md_book", "executions", "runs")


def _fill_store(store) -> None:
    names = Names(["BTCUSDT", "ETHBTC"])
    md = np.zeros(1000, MD_EVENT)
    md["kind"], md["n_bids"], md["n_asks"] = MdKind.DEPTH, 3, 2
    md["symbol_id"] = np.arange(1000) % 2
    md["recv_ts_ns"] = md["exch_ts_ns"] = NOW - 2 * DAY + np.arange(1000) * (2 * DAY // 1000)   # over 3 days
    md["seq"] = np.arange(1000)
    md["bid_px"][:, :3] = [100.0, 99.5, 99.0]
    md["ask_px"][:, :2] = [100.5, 101.0]
    book, _ = md_to_arrow(md, names, "r1")
    store.insert("md_book", book)
    ex = np.zeros(3, EXEC_EVENT)
    ex["kind"], ex["recv_ts_ns"], ex["fee_asset_id"] = ExecKind.FILL, NOW - np.arange(3) * DAY, [0, -1, 0]
    ex["last_px"], ex["last_qty"], ex["fee"] = [100.0, 0.05, 101.0], [0.1, 2.0, 0.3], [1e-4, 0, 3e-4]
    ex["client_order_id"] = [b"a", b"b", b"c"]
    store.insert("executions", executions_to_arrow(ex, names, Names(["BTC"]), "r1"))
    store.write_run("r1", started_ns=NOW - 2 * DAY, ended_ns=NOW, symbols=["BTCUSDT", "ETHBTC"], mode="paper",
                    venue="sim")


def _dump(store, table) -> list[tuple]:
    order = {"md_book": "recv_ts, seq", "executions": "recv_ts", "runs": "run_id"}[table]
    final = " FINAL" if table == "runs" else ""
    return store.client.query(f"SELECT * FROM {store.db}.{table}{final} ORDER BY {order}").result_rows


@pytest.fixture
def stores(tmp_path):
    # chDB runs one engine directory per process: the two stores are two databases in it
    src = Store.open(f"chdb://{tmp_path}/store", "src")
    _fill_store(src)
    dst = Store.open(f"chdb://{tmp_path}/store", "dst")
    yield src, dst
    src.close()
    dst.close()


def test_backup_and_restore_give_the_same_rows(stores, tmp_path):
    src, dst = stores
    manifest = backup(src, tmp_path / "bk")
    assert (tmp_path / "bk" / MANIFEST).is_file() and not (tmp_path / "bk.partial").exists()
    assert manifest["schema_version"] == src.schema_version()
    assert manifest["tables"]["md_book"]["rows"] == 1000 and len(manifest["tables"]["md_book"]["files"]) >= 3
    assert manifest["tables"]["executions"]["rows"] == 3
    restored = restore(dst, tmp_path / "bk")
    assert restored["md_book"] == 1000 and restored["runs"] == 1
    for table in TABLES:
        assert _dump(dst, table) == _dump(src, table), table
    assert dst.read_md(["BTCUSDT", "ETHBTC"], NOW - 3 * DAY, NOW + 1)  # the reader takes restored rows


def test_restore_refuses_days_the_store_holds_unless_replace(stores, tmp_path):
    src, dst = stores
    backup(src, tmp_path / "bk")
    restore(dst, tmp_path / "bk")
    before = {t: _dump(dst, t) for t in TABLES}
    with pytest.raises(BackupError, match="already holds .*--replace"):
        restore(dst, tmp_path / "bk")
    assert {t: _dump(dst, t) for t in TABLES} == before          # nothing changed
    restore(dst, tmp_path / "bk", replace=True)
    assert {t: _dump(dst, t) for t in TABLES} == before          # replaced, not doubled


def test_damaged_incomplete_and_newer_backups_are_refused(stores, tmp_path):
    src, dst = stores
    backup(src, tmp_path / "bk")
    with pytest.raises(BackupError, match="new directory"):
        backup(src, tmp_path / "bk")
    part = next((tmp_path / "bk" / "md_book").glob("*.parquet"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(BackupError, match="damaged"):
        verify(tmp_path / "bk")
    with pytest.raises(BackupError, match="damaged"):
        restore(dst, tmp_path / "bk")
    assert _dump(dst, "executions") == []                         # checked before inserting anything
    (tmp_path / "half").mkdir()
    with pytest.raises(BackupError, match="not a complete ctrader backup"):
        read_manifest(tmp_path / "half")
    backup(src, tmp_path / "bk2", tables=["runs"])
    m = json.loads((tmp_path / "bk2" / MANIFEST).read_text())
    m["schema_version"] = 999
    (tmp_path / "bk2" / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BackupError, match="upgrade ctrader first"):
        restore(dst, tmp_path / "bk2")


def test_cli_backup_verify_restore(stores, tmp_path):
    src, dst = stores
    src.close()
    dst.close()
    run = CliRunner()
    res = run.invoke(app, ["--set", f"run.data_dir={tmp_path}", "--set", "store.database=src", "db", "backup",
                           str(tmp_path / "bk")])
    assert res.exit_code == 0, res.output
    assert "md_book" in res.output and "backup of src" in res.output
    res = run.invoke(app, ["db", "restore", "--verify", str(tmp_path / "bk")])
    assert res.exit_code == 0 and ": ok (" in res.output
    argv = ["--set", f"run.data_dir={tmp_path}", "--set", "store.database=dst"]
    res = run.invoke(app, argv + ["db", "restore", str(tmp_path / "bk")])
    assert res.exit_code == 0 and "restored 1,004 rows" in res.output
    res = run.invoke(app, argv + ["db", "restore", str(tmp_path / "bk")])
    assert res.exit_code == 1 and "--replace" in res.output
