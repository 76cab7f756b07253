"""Rings in one process: the Python (Cython) API, the numba API on the same segment, attach
checks, stale-segment cleanup and wait strategies."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from ctrader.core import ring_numba as rn
from ctrader.core import shm
from ctrader.core.records import EXEC_EVENT, MD_EVENT, ORDER_INTENT
from ctrader.core.ring import Ring, RingError, cleanup_stale
from ctrader.core.ring_layout import OK, TIMEOUT
from ctrader.core.wait import SPIN, SPIN_YIELD, default_wait_strategy, wait_strategy

pytestmark = pytest.mark.timeout(60)
_counter = iter(range(10**6))


def _name() -> str:
    return f"ctrader.apitest{os.getpid()}.{next(_counter)}"


def test_broadcast_round_trip_and_overrun_accounting():
    with Ring.create(_name(), MD_EVENT, capacity=8) as ring:
        producer, consumer = ring.producer(), ring.consumer()
        events = np.zeros(20, MD_EVENT)
        events["seq"] = np.arange(20)
        producer.write(events[0])                  # a single record
        producer.write(events[1:4])                # a batch
        out = np.empty(16, MD_EVENT)
        assert consumer.read_batch(out) == 4 and list(out["seq"][:4]) == [0, 1, 2, 3]
        producer.write(events[4:20])               # laps the consumer: 16 records into 8 slots
        n = consumer.read_batch(out)
        seen = list(out["seq"][:n])
        assert seen == list(range(20 - n, 20))
        assert consumer.lost == 20 - 4 - n and consumer.overruns == 1
        assert consumer.read_batch(out) == 0


def test_lossless_producer_never_overwrites_unread_records():
    with Ring.create(_name(), ORDER_INTENT, capacity=4, kind="lossless", consumers=2) as ring:
        producer = ring.producer(timeout_s=0.05)
        a, b = ring.consumer(0), ring.consumer(1)
        intents = np.zeros(4, ORDER_INTENT)
        intents["group_id"] = [1, 2, 3, 4]
        producer.write(intents)
        out = np.empty(4, ORDER_INTENT)
        assert a.read_batch(out) == 4              # b has read nothing: the ring is still full
        with pytest.raises(RingError, match=r"consumer 1 \(pid \d+, alive\) is 4 records behind"):
            producer.write(intents[:1])
        assert b.read_batch(out) == 4 and list(out["group_id"]) == [1, 2, 3, 4]
        producer.write(intents[:1])                # room again


def test_peek_then_commit_survives_a_consumer_that_dies_before_committing():
    with Ring.create(_name(), ORDER_INTENT, capacity=8, kind="lossless", consumers=1) as ring:
        intents = np.zeros(3, ORDER_INTENT)
        intents["group_id"] = [7, 8, 9]
        ring.producer().write(intents)
        out = np.empty(8, ORDER_INTENT)
        assert ring.consumer(0).peek_batch(out) == 3       # "crashes" before commit
        again = ring.consumer(0)                           # the restarted consumer
        assert again.peek_batch(out) == 3 and list(out["group_id"][:3]) == [7, 8, 9]
        again.commit(2)
        assert ring.consumer(0).peek_batch(out) == 1 and out["group_id"][0] == 9
    with Ring.create(_name(), ORDER_INTENT, capacity=8) as bcast:
        with pytest.raises(RingError, match="lossless"):
            bcast.consumer().peek_batch(np.empty(1, ORDER_INTENT))


def test_attach_checks_layout_kind_and_capacity():
    with Ring.create(_name(), MD_EVENT, capacity=16, kind="lossless", consumers=1) as ring:
        with pytest.raises(RingError, match="record layout mismatch: expected order_intent"):
            Ring.attach(ring.name, ORDER_INTENT)
        with pytest.raises(RingError, match="kind mismatch: expected broadcast, found lossless"):
            Ring.attach(ring.name, MD_EVENT, kind="broadcast")
        with pytest.raises(RingError, match="capacity mismatch: expected 32, found 16"):
            Ring.attach(ring.name, MD_EVENT, capacity=32)
        other = Ring.attach(ring.name, MD_EVENT, kind="lossless", capacity=16)
        other.close()
        assert os.path.exists(f"/dev/shm/{ring.name}"), "an attacher must never unlink"
    with pytest.raises(shm.SegmentError, match="no shared memory named"):
        Ring.attach(_name(), MD_EVENT)


def test_create_rejects_bad_shapes():
    with pytest.raises(RingError, match="power of two"):
        Ring.create(_name(), MD_EVENT, capacity=1000)
    with pytest.raises(RingError, match="multiple of 64"):
        Ring.create(_name(), np.dtype([("x", np.int64)]), capacity=8)


def test_broadcast_consumer_slots_are_limited_and_reusable():
    with Ring.create(_name(), MD_EVENT, capacity=8, consumers=2) as ring:
        first, second = ring.consumer(), ring.consumer()
        with pytest.raises(RingError, match="already has 2 consumers"):
            ring.consumer()
        first.release()
        assert ring.consumer().index == first.index
        assert second.index != first.index


def test_attaching_process_exit_does_not_unlink_the_segment():
    # Python 3.11's resource tracker unlinks segments that multiprocessing.shared_memory merely
    # attached; our attach must not.
    with Ring.create(_name(), MD_EVENT, capacity=8) as ring:
        code = ("from ctrader.core.ring import Ring; from ctrader.core.records import MD_EVENT; "
                f"r = Ring.attach({ring.name!r}, MD_EVENT); r.consumer(); r.close()")
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        assert os.path.exists(f"/dev/shm/{ring.name}")
    assert not os.path.exists(f"/dev/shm/{ring.name}")


def test_stale_segment_of_a_dead_owner_is_cleaned_up():
    name = _name()
    code = ("import os; from ctrader.core.ring import Ring; from ctrader.core.records import MD_EVENT; "
            f"Ring.create({name!r}, MD_EVENT, capacity=8); os._exit(0)")  # dies without cleaning up
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert os.path.exists(f"/dev/shm/{name}")
    with Ring.create(_name(), MD_EVENT, capacity=8) as alive:
        removed = cleanup_stale()
        assert name in removed and alive.name not in removed
    assert not os.path.exists(f"/dev/shm/{name}")


@njit(cache=True)
def _numba_echo(views_in, views_out, n):
    """Read n exec events from one ring with numba and write them to another."""
    ctl, seqs, payload = views_in
    octl, oseqs, opayload = views_out
    rows = np.empty((16, payload.shape[1]), np.uint64)
    state = np.zeros(2, np.int64)
    moved = 0
    while moved < n:
        got = rn.read_rows_wait(ctl, seqs, payload, 0, rows, SPIN_YIELD, 10, 1_000_000_000)
        if got == 0:
            return -1
        if rn.write_rows(octl, oseqs, opayload, rows[:got], state, SPIN, 0, 1_000_000_000) != OK:
            return -2
        moved += got
    return moved


def test_python_and_numba_share_one_ring():
    with Ring.create(_name(), EXEC_EVENT, 64, "lossless", 1) as src, \
            Ring.create(_name(), EXEC_EVENT, 64, "lossless", 1) as dst:
        events = np.zeros(10, EXEC_EVENT)
        events["trade_id"] = np.arange(10)
        events["client_order_id"] = [f"ct-{i}".encode() for i in range(10)]
        src.producer().write(events)
        sv, dv = src.views, dst.views
        assert _numba_echo((sv.ctl, sv.seqs, sv.payload), (dv.ctl, dv.seqs, dv.payload), 10) == 10
        back = dst.consumer(0).poll(16)
        assert back.tobytes() == events.tobytes()


def test_numba_lossless_write_times_out_when_full():
    with Ring.create(_name(), EXEC_EVENT, 4, "lossless", 1) as ring:
        v = ring.views
        rows = np.zeros((6, EXEC_EVENT.itemsize // 8), np.uint64)
        state = np.zeros(2, np.int64)
        assert rn.write_rows(v.ctl, v.seqs, v.payload, rows, state, SPIN_YIELD, 10, 10_000_000) == TIMEOUT
        assert state[1] == 4


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**31 - 1), st.integers(-2**63, 2**63 - 1),
                          st.floats(allow_nan=False, width=64), st.binary(min_size=0, max_size=36)),
                min_size=1, max_size=40))
def test_records_round_trip_byte_exact(items):
    with Ring.create(_name(), ORDER_INTENT, 64, "lossless", 1) as ring:
        intents = np.zeros(len(items), ORDER_INTENT)
        for i, (sym, ticks, px, cid) in enumerate(items):
            intents[i]["symbol_id"], intents[i]["price_ticks"], intents[i]["price"] = sym, ticks, px
            intents[i]["client_order_id"] = cid.rstrip(b"\0")
        ring.producer().write(intents)
        back = ring.consumer(0).poll(64)
        assert back.tobytes() == intents.tobytes()


def test_wait_strategy_default_suits_the_core_count():
    assert default_wait_strategy(cores=2).name == "block"
    assert default_wait_strategy(cores=16).name == "spin"
    assert wait_strategy("sleep").name == "sleep"
    with pytest.raises(ValueError, match="unknown wait strategy"):
        wait_strategy("nap")
