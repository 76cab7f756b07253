"""``ctrader db migrate`` / ``ctrader db info`` against an embedded store in a temp directory,
and the error a second process gets while the store is held."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.store.columns import Names, md_to_arrow
from ctrader.store.migrations import latest_version
from ctrader.store.store import Store
from tests.test_store_schema import SYMBOLS, md_records

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CTRADER_DATA_DIR", str(tmp_path))
    return tmp_path


def test_db_migrate_is_idempotent(data_dir):
    first = runner.invoke(app, ["db", "migrate"])
    assert first.exit_code == 0, first.output
    assert "applied migrations 1, 2" in first.output
    again = runner.invoke(app, ["db", "migrate"])
    assert again.exit_code == 0 and f"schema up to date (version {latest_version()})" in again.output
    assert (data_dir / "store").is_dir()


def test_db_info_shows_tables_rows_and_symbol_ranges(data_dir):
    recs = md_records(2000, seed=11)
    with Store.open(f"chdb://{data_dir}/store", "ctrader") as store:
        book, trades = md_to_arrow(recs, Names(SYMBOLS), "run-cli")
        store.insert("md_book", book)
        store.insert("md_trade", trades)
    text = runner.invoke(app, ["db", "info"])
    assert text.exit_code == 0, text.output
    assert "md_book" in text.output and "ETHBTC" in text.output and f"schema version {latest_version()}" in text.output
    doc = json.loads(runner.invoke(app, ["db", "info", "--json"]).output)
    rows = {t["table"]: t["rows"] for t in doc["tables"]}
    assert rows["md_book"] + rows["md_trade"] == len(recs)
    assert sorted(s["symbol"] for s in doc["symbols"]) == sorted(SYMBOLS)


def test_db_info_while_another_process_holds_the_store(data_dir):
    with Store.open(f"chdb://{data_dir}/store", "ctrader"):
        result = subprocess.run([sys.executable, "-m", "ctrader.cli.main", "db", "info"], capture_output=True,
                                text=True, env={**os.environ, "CTRADER_DATA_DIR": str(data_dir)})
    assert result.returncode == 1
    assert f"in use by pid {os.getpid()}" in result.stderr
