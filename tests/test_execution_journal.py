"""The executor's journal file: written through a memory map that runs ahead in zero-filled
chunks. A crashed run leaves those zeros (and maybe a torn line); the next run appends after the
last line and ``load`` reads every whole line back."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from ctrader.core.records import OrderType, Side, TimeInForce
from ctrader.execution import journal as journal_module
from ctrader.execution.journal import Journal, JournalInUse
from ctrader.execution.orders import NEW, Order, VenueUpdate


def _order(k: int) -> Order:
    return Order(f"ct{k:x}-0", k, 0, 1, 0, "BTCUSDT", int(Side.BUY), int(OrderType.LIMIT), int(TimeInForce.IOC),
                 60_000 * 10**8, 10**5 + k)


def _crashing_run(path, n: int) -> None:
    """A process journals ``n`` intents and dies by SIGKILL: no close, no trim."""
    code = (f"import os, signal, sys\nsys.path.insert(0, {os.getcwd()!r})\n"
            "from tests.test_execution_journal import _order\n"
            "from ctrader.execution.journal import Journal\n"
            f"j = Journal({str(path)!r}, sync=False, run_id='crashed')\n"
            f"for k in range({n}):\n    j.intent(_order(k))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == -9


def _data(path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def test_a_crashed_run_leaves_zeros_and_the_next_run_appends_after_its_last_line(tmp_path):
    path = tmp_path / "executor.jsonl"
    _crashing_run(path, 3)
    assert os.path.getsize(path) == journal_module._CHUNK           # the map's zeros are still there
    orders, _ = Journal.load(path)
    assert sorted(orders) == ["ct0-0", "ct1-0", "ct2-0"]            # every line made it: page cache

    j = Journal(path, sync=False, run_id="second")
    order = _order(7)
    j.intent(order)
    order.status = NEW                      # the venue acknowledged it
    j.state(order)
    j.close()
    data = _data(path)
    assert b"\0" not in data and data.endswith(b"\n")                # close trims the zeros
    assert [line.count(b'"k":"run"') for line in data.splitlines()].count(1) == 2
    orders, _ = Journal.load(path)
    assert sorted(orders) == ["ct0-0", "ct1-0", "ct2-0", "ct7-0"] and orders["ct7-0"].status == NEW


def test_a_line_torn_by_a_crash_is_skipped_and_what_follows_is_read(tmp_path, caplog):
    path = tmp_path / "executor.jsonl"
    _crashing_run(path, 2)
    end = len(_data(path).rstrip(b"\0"))
    with open(path, "r+b") as fh:           # the crash hit mid-copy: a head, zeros, then a tail
        fh.seek(end)
        fh.write(b'{"k":"intent","client_order_id":"ct9' + b"\0" * 40 + b'0,"qty":1}')
    j = Journal(path, sync=True, run_id="after")
    j.intent(_order(3))
    j.close()
    with caplog.at_level(logging.WARNING, logger="ctrader.execution.journal"):
        orders, _ = Journal.load(path)
    assert sorted(orders) == ["ct0-0", "ct1-0", "ct3-0"]
    assert "unreadable line" in caplog.text


def test_the_map_grows_past_its_chunk_and_a_syncing_journal_syncs_once_per_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "_CHUNK", 1 << 16)            # 64 KiB chunks: grow often
    path = tmp_path / "executor.jsonl"
    j = Journal(path, sync=True, run_id="big")
    syncs = j.syncs
    for k in range(600):                                             # ~200 KB of lines
        o = _order(k)
        j.intent(o, durable=False)
        j.fill(o, VenueUpdate(o.client_order_id, "FILLED", k, last_qty=o.qty, last_px=o.price,
                              last_quote=6 * 10**9, fee=10, fee_asset="BTC", trade_id=k), durable=False)
        j.commit()
        j.prepare()                                                  # what the executor does when idle
    assert j.syncs - syncs == 600
    assert os.path.getsize(path) > 3 * (1 << 16)
    j.close()
    orders, fills = Journal.load(path)
    assert len(orders) == 600 and len(fills) == 600
    assert all(o.trade_ids == {k} and o.fees == {"BTC": 10} for k, o in enumerate(orders.values()))


def _session(path, run_id: str, statuses: list[str]) -> None:
    j = Journal(path, sync=False, run_id=run_id)
    for k, status in enumerate(statuses):
        order = _order(k)
        j.intent(order)
        order.status = status
        j.state(order)
    j.close()


def test_a_new_session_archives_a_journal_whose_orders_all_ended(tmp_path):
    path = tmp_path / "executor-sim-paper.jsonl"
    _session(path, "run1", ["FILLED", "EXPIRED"])
    assert Journal.archive_if_finished(path, "run1") is None       # a restart of run1: the journal stays
    archived = Journal.archive_if_finished(path, "run2")
    assert archived is not None and not path.exists()
    assert os.path.basename(archived).startswith("executor-sim-paper.") and archived.endswith(".jsonl")
    assert sorted(Journal.load(archived)[0]) == ["ct0-0", "ct1-0"]   # kept whole
    _session(path, "run2", ["FILLED"])
    assert Journal.runs(path) == ["run2"] and sorted(Journal.load(path)[0]) == ["ct0-0"]
    assert Journal.archive_if_finished(path, "run3") != archived     # a second archive, its own name


def test_a_journal_with_an_unfinished_order_is_kept_for_its_reconciliation(tmp_path):
    path = tmp_path / "executor-sim-live.jsonl"
    _session(path, "run1", ["FILLED", NEW])                          # a GTC order still resting
    assert Journal.archive_if_finished(path, "run2") is None and path.exists()
    assert Journal.archive_if_finished(tmp_path / "none.jsonl", "run2") is None


def test_a_journal_has_one_writer_and_an_open_one_is_never_archived(tmp_path):
    path = tmp_path / "executor-sim-paper.jsonl"
    _session(path, "run1", ["FILLED"])
    writer = Journal(path, sync=False, run_id="run2")
    try:
        with pytest.raises(JournalInUse, match="open in another executor"):
            Journal(path, sync=False, run_id="run3")
        assert Journal.archive_if_finished(path, "run3") is None and path.exists()
    finally:
        writer.close()
    assert Journal.archive_if_finished(path, "run3") is not None


def test_a_background_journal_syncs_on_its_own_thread_and_close_waits_for_it(tmp_path, monkeypatch):
    """journal_fsync = after_send: commit returns at once; the sync thread makes it durable."""
    import threading

    from ctrader.execution import journal as jmod

    synced_by = []
    real = os.fdatasync
    monkeypatch.setattr(jmod.os, "fdatasync", lambda fd: (synced_by.append(threading.current_thread().name),
                                                          real(fd)))
    j = Journal(tmp_path / "j.jsonl", sync=True, background=True)
    j.day_start(1, 0.0)
    j.commit()
    j.close()                          # stops the thread once what was asked is synced
    assert synced_by and set(synced_by) == {"journal-sync"} and j.syncs >= 1


def test_a_journal_written_by_a_newer_version_is_read_without_the_fields_it_adds(tmp_path):
    """Rolling back after an upgrade: lines carrying a field this version does not know (a
    newer Order or VenueUpdate) are read with the fields it does know."""
    import orjson

    from ctrader.execution.journal import Journal

    path = tmp_path / "j.jsonl"
    intent = {"k": "intent", "client_order_id": "n1", "group_id": 1, "leg": 0, "n_legs": 1, "symbol_id": 0,
              "symbol": "BTCUSDT", "side": 1, "order_type": 1, "tif": 2, "price": 6000000000000,
              "qty": 1000000, "a_field_from_the_future": 7}
    fill = {"k": "fill", "client_order_id": "n1", "status": "FILLED", "last_qty": 1000000, "trade_id": 5,
            "venue_mono_ns": 123, "another_new_field": "x"}
    path.write_bytes(orjson.dumps(intent) + b"\n" + orjson.dumps(fill) + b"\n")
    orders, fills = Journal.load(path)
    assert orders["n1"].qty == 1000000 and orders["n1"].trade_ids == {5}
    assert [u.trade_id for _, u in fills] == [5]
