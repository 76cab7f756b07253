"""A recorder killed with SIGKILL loses nothing of the lossless rings, and its successor picks
up the md ring where the stored batches ended (or counts what the ring no longer holds)."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import uuid

import numpy as np
import pytest

from ctrader.core.records import MD_EVENT
from ctrader.core.ring import Ring
from ctrader.runtime.resources import RING_SPECS
from ctrader.store.recorder import RecorderEngine
from ctrader.store.store import Store
from tests.test_recorder_e2e import ASSETS, counts, executions, write_in_batches
from tests.test_store_schema import SYMBOLS, md_records

pytestmark = pytest.mark.timeout(180)


def _rings(capacity_md: int = 1 << 14) -> dict[str, Ring]:
    tag = uuid.uuid4().hex[:8]
    made = {}
    for key, capacity in (("md", capacity_md), ("exec", 1 << 12)):
        dtype, kind, _, consumers = RING_SPECS[key]
        count = consumers if isinstance(consumers, int) else len(consumers)
        made[key] = Ring.create(f"ctrader.test-rrs-{tag}.{key}", dtype, capacity, kind, count)
    return made


def _record_forever(names: dict[str, str], store_url: str, spill_dir: str, ready) -> None:
    """A recorder in its own process whose batches never come due (batch_ms 10 min): it reads
    and holds. Says when it has read everything."""
    rings = {k: Ring.attach(n, RING_SPECS[k][0]) for k, n in names.items()}
    engine = RecorderEngine(rings, "run-k", lambda: Store.open(store_url), spill_dir, SYMBOLS, ASSETS,
                            batch_ms=600_000)
    while engine.records_read < 300:
        engine.step()
        time.sleep(0.001)
    ready.set()
    while True:
        engine.step()
        time.sleep(0.01)


def test_exec_records_read_by_a_killed_recorder_reach_the_store_through_the_next(tmp_path):
    rings = _rings()
    store_url = f"chdb://{tmp_path}/store"
    try:
        rings["exec"].retire_consumer(RING_SPECS["exec"][3].index("strategy"))   # only the recorder reads
        rings["exec"].producer().write(executions(300))
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        child = ctx.Process(target=_record_forever, args=({k: r.name for k, r in rings.items()}, store_url,
                                                          str(tmp_path / "spill"), ready))
        child.start()
        assert ready.wait(120), "the first recorder never read the records"
        os.kill(child.pid, signal.SIGKILL)          # with the 300 records read, none stored
        child.join(30)

        second = RecorderEngine(rings, "run-k", lambda: Store.open(store_url), tmp_path / "spill", SYMBOLS, ASSETS,
                                rewind_md=False)
        stats = second.close()
        assert stats["read_exec"] == 300
        assert counts(store_url)["executions"] == 300
    finally:
        for ring in rings.values():
            ring.close()


def test_a_restarted_recorder_continues_md_where_the_stored_batches_ended(tmp_path):
    rings = {"md": _rings()["md"]}
    store_url = f"chdb://{tmp_path}/store"
    position = tmp_path / "recorder.md_position"
    md = md_records(3000, seed=11)
    try:
        first = RecorderEngine(rings, "run-m", lambda: Store.open(store_url), tmp_path / "spill", SYMBOLS,
                               batch_rows=500, md_position_file=position)
        write_in_batches(rings["md"].producer(), md[:1000])
        first.close()               # everything it read is stored, its position saved
        assert int(position.read_text()) == 1000
        rings["md"].producer().write(md[1000:])       # written while no recorder runs
        second = RecorderEngine(rings, "run-m", lambda: Store.open(store_url), tmp_path / "spill", SYMBOLS,
                                batch_rows=500, rewind_md=False, md_position_file=position)
        stats = second.close()
        assert stats["md_restart_gap"] == 0 and stats["read_md"] == 2000
        with Store.open(store_url) as s:
            seqs = np.sort(np.concatenate([c["seq"] for c in s.read_md(SYMBOLS, 0, 2**62)]))
        assert np.array_equal(seqs, md["seq"])     # every record once: none skipped, none twice
    finally:
        for ring in rings.values():
            ring.close()


def test_md_the_ring_no_longer_holds_is_counted_as_lost_on_restart(tmp_path):
    name = f"ctrader.test-rrs-{uuid.uuid4().hex[:8]}.md"
    position = tmp_path / "recorder.md_position"
    position.write_text("100\n")                 # the last recorder stored records up to 100
    with Ring.create(name, MD_EVENT, 1024, "broadcast", 8) as ring:
        write_in_batches(ring.producer(), md_records(5000, seed=12))    # the feed lapped the ring since
        engine = RecorderEngine({"md": ring}, "run-g", lambda: Store.open(f"chdb://{tmp_path}/store"),
                                tmp_path / "spill", SYMBOLS, rewind_md=False, md_position_file=position)
        stats = engine.close()
    oldest_kept = 5000 - 1024 // 2
    assert stats["md_restart_gap"] == oldest_kept - 100
    assert stats["md_lost"] == stats["md_restart_gap"] and stats["read_md"] == 5000 - oldest_kept
