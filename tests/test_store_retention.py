"""Retention: a TTL per table from [store.retention], and `db prune` removing old rows now."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.core.records import EXEC_EVENT, MD_EVENT, ExecKind, MdKind
from ctrader.store.columns import Names, executions_to_arrow, md_to_arrow
from ctrader.store.retention import DAY_NS, apply_ttls, current_ttl, prune, retention_days
from ctrader.store.store import Store

NOW = time.time_ns()                     # TTLs count from the real clock: the rows' ages are real
H = 3_600 * 1_000_000_000
MD_TIMES = [NOW - 40 * DAY_NS, NOW - 40 * DAY_NS + H, NOW - 10 * DAY_NS - 3 * H, NOW - 10 * DAY_NS + 3 * H, NOW]


def _md(times) -> np.ndarray:
    r = np.zeros(len(times), MD_EVENT)
    r["kind"], r["n_bids"], r["n_asks"] = MdKind.BOOK_TICKER, 1, 1
    r["recv_ts_ns"] = r["exch_ts_ns"] = times
    r["seq"] = np.arange(len(times))
    r["bid_px"][:, 0], r["ask_px"][:, 0] = 100.0, 101.0
    return r


def _fills(times) -> np.ndarray:
    r = np.zeros(len(times), EXEC_EVENT)
    r["kind"], r["recv_ts_ns"], r["fee_asset_id"] = ExecKind.FILL, times, -1
    r["last_qty"], r["last_px"] = 1.0, 100.0
    return r


@pytest.fixture
def cfg_store(tmp_path):
    cfg = load_config(overrides={"run.data_dir": str(tmp_path), "store.retention.md_book": "90",
                                 "store.retention.candidates": "30"}, env={})
    store = Store.from_config(cfg)
    names = Names(["BTCUSDT"])
    # md: 40 days old (2 rows), 10 days old +- 3 h (either side of a 10-day cut), now
    book, _ = md_to_arrow(_md(MD_TIMES), names, "r1")
    store.insert("md_book", book)
    store.insert("executions", executions_to_arrow(_fills([NOW - 400 * DAY_NS, NOW]), names, Names(["USDT"]), "r1"))
    yield cfg, store
    store.close()


def _count(store, table):
    return store.client.query(f"SELECT count() FROM {store.db}.{table}").result_rows[0][0]


def test_ttls_follow_the_config_and_are_set_only_when_they_change(cfg_store):
    cfg, store = cfg_store
    days = retention_days(cfg.store.retention)
    assert days == {"md_book": 90, "md_trade": 0, "candidates": 30, "orders": 0, "executions": 0}
    assert retention_days(load_config(env={}).store.retention) == dict.fromkeys(days, 0)   # by default: for ever
    assert current_ttl(store, "md_book") == "toDateTime(recv_ts) + toIntervalDay(90)"   # set on open
    assert current_ttl(store, "executions") is None                                     # kept for ever
    assert apply_ttls(store, days) == []                                                # nothing to change
    assert apply_ttls(store, dict(days, md_book=7, executions=365)) == ["md_book", "executions"]
    assert current_ttl(store, "executions") == "toDateTime(recv_ts) + toIntervalDay(365)"
    assert apply_ttls(store, dict(days, executions=0)) == ["md_book", "executions"]
    assert current_ttl(store, "executions") is None and current_ttl(store, "md_book").endswith("(90)")


def test_prune_removes_exactly_the_rows_past_retention(cfg_store):
    _, store = cfg_store
    cut = NOW - 10 * DAY_NS
    day = lambda ns: datetime.fromtimestamp(ns / 1e9, UTC).date()
    whole_days = len({day(t) for t in MD_TIMES if day(t) < day(cut)})     # partitions dropped whole
    dry = prune(store, {"md_book": 10, "executions": 0}, now_ns=NOW, dry_run=True)
    assert [(p.table, p.rows, p.partitions) for p in dry] == [("md_book", 3, whole_days)]   # executions: for ever
    assert _count(store, "md_book") == 5
    done = prune(store, {"md_book": 10}, now_ns=NOW)
    assert done[0].rows == 3 and done[0].bytes_on_disk > 0
    left = store.client.query(f"SELECT toUnixTimestamp64Nano(recv_ts) FROM {store.db}.md_book ORDER BY recv_ts")
    assert [r[0] for r in left.result_rows] == [NOW - 10 * DAY_NS + 3 * H, NOW]
    assert prune(store, {"md_book": 10}, now_ns=NOW)[0].rows == 0                         # idempotent
    assert _count(store, "executions") == 2


def test_cli_prune_and_info(cfg_store, tmp_path):
    cfg, store = cfg_store
    store.close()
    runner = CliRunner()
    argv = ["--set", f"run.data_dir={tmp_path}"]
    res = runner.invoke(app, argv + ["--set", "store.retention.md_book=90", "db", "info"])
    assert res.exit_code == 0 and "for ever" in res.output and "90 days" in res.output
    res = runner.invoke(app, argv + ["db", "prune", "--older-than", "30", "--table", "executions", "--dry-run",
                                     "--json"])
    assert res.exit_code == 0, res.output
    (p,) = json.loads(res.stdout)
    assert (p["table"], p["days"], p["rows"]) == ("executions", 30, 1)
    res = runner.invoke(app, argv + ["--set", "store.retention.md_book=20", "db", "prune"])
    assert res.exit_code == 0 and "md_book" in res.output and "removed" in res.output
    with Store.from_config(cfg) as again:
        assert _count(again, "md_book") == 3 and _count(again, "executions") == 2
    res = runner.invoke(app, argv + ["db", "prune", "--older-than", "5"])
    assert res.exit_code != 0 and "--older-than needs --table" in res.output
    res = runner.invoke(app, argv + ["db", "prune", "--table", "nosuch"])
    assert res.exit_code != 0 and "choose from" in res.output
