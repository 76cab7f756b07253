"""``ctrader record``: the simulator, the real feed and the recorder in one session; every record
the feed wrote is in the store, under the universe's symbol names."""
from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.runtime.session import run_session
from ctrader.store.store import Store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_record_session_stores_every_feed_record(tmp_path, processes):
    cfg = load_config(overrides={"run.data_dir": str(tmp_path), "sim.port": str(_free_port()),
                                 "feed.streams": "bookTicker,depth@100ms,trade"}, env={})
    summary = run_session(cfg, ["sim", "feed", "recorder"], duration_s=4, processes=processes)
    assert summary["failed"] == []
    feed, rec = summary["stats"]["feed"], summary["stats"]["recorder"]
    assert feed["records"] > 100
    assert rec["md_lost"] == 0 and rec["read_md"] == feed["records"]
    assert rec["rows_md_book"] + rec.get("rows_md_trade", 0) == feed["records"]
    with Store.from_config(cfg) as store:
        info = store.info()
        run = store.run_info(summary["run_id"])
    assert sum(s["book_rows"] + s["trade_rows"] for s in info["symbols"]) == feed["records"]
    assert {s["symbol"] for s in info["symbols"]} <= set(run["symbols"])
    assert "BTCUSDT" in run["symbols"] and run["ended"] is not None


def test_record_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CTRADER_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["--set", f"sim.port={_free_port()}", "record", "--duration", "3"])
    assert result.exit_code == 0, result.output
    assert "recorded md_book" in result.output and "md records lost 0" in result.output
