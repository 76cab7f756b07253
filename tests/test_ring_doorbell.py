"""The rings' doorbell: consumers that wait with BLOCK sleep in the kernel and are woken by the
producer's next publish (``ring_layout.H_BELL``), across processes and in both implementations
(numba kernels, Cython ``Consumer``)."""
from __future__ import annotations

import multiprocessing as mp
import os
import threading

import numpy as np
import pytest

from ctrader.benchmarks.ring_workers import (TEST_RECORD, expected_checksum, run_blocking_consumer,
                                             run_burst_producer)
from ctrader.core import ring_layout as L
from ctrader.core.records import ORDER_INTENT
from ctrader.core.ring import Ring, wait_until
from ctrader.core.wait import BLOCK, BLOCK_SPINS, WaitStrategy, default_wait_strategy

CTX = mp.get_context("spawn")
pytestmark = pytest.mark.timeout(180)
BLOCKING = WaitStrategy(BLOCK, BLOCK_SPINS)


def _name(tag: str) -> str:
    return f"ctrader.test{os.getpid()}.{tag}"


def test_block_is_the_default_when_the_busy_processes_share_cores():
    assert default_wait_strategy(cores=2) == BLOCKING
    assert default_wait_strategy(cores=16).name == "spin"


def test_a_sleeping_consumer_is_woken_by_the_publish_and_deregisters():
    with Ring.create(_name("bell"), ORDER_INTENT, 64, "lossless", 1) as ring:
        ctl = ring.views.ctl
        consumer = ring.consumer(0, wait=BLOCKING)
        out = np.zeros(4, ORDER_INTENT)
        got = []
        reader = threading.Thread(target=lambda: got.append(consumer.read_batch(out, 60.0)))
        reader.start()
        # the reader announces itself on the doorbell before it sleeps
        assert wait_until(lambda: int(ctl[L.H_WAITERS]) == 1, 10.0)
        rec = np.zeros(1, ORDER_INTENT)
        rec["symbol_id"] = 7
        ring.producer(BLOCKING).write(rec)
        reader.join(10.0)
        assert not reader.is_alive() and got == [1]
        assert int(out[0]["symbol_id"]) == 7
        assert int(ctl[L.H_WAITERS]) == 0
        assert int(ctl[L.H_BELL_RINGS]) >= 1


def test_no_wake_call_while_nobody_sleeps():
    with Ring.create(_name("quiet"), ORDER_INTENT, 64, "broadcast", 2) as ring:
        ring.consumer(wait=BLOCKING)           # attached but not waiting
        producer = ring.producer(BLOCKING)
        for _ in range(10):
            producer.write(np.zeros(3, ORDER_INTENT))
        assert int(ring.views.ctl[L.H_BELL_RINGS]) == 0


def test_a_timed_out_sleeper_leaves_the_doorbell_clean():
    with Ring.create(_name("timeout"), ORDER_INTENT, 64, "lossless", 1) as ring:
        consumer = ring.consumer(0, wait=BLOCKING)
        assert consumer.read_batch(np.zeros(4, ORDER_INTENT), 0.05) == 0
        assert int(ring.views.ctl[L.H_WAITERS]) == 0


@pytest.mark.parametrize("kind", ["broadcast", "lossless"])
def test_bursts_with_pauses_reach_blocking_consumers_whole_and_in_order(kind):
    # The producer pauses after every few records, so both consumers (one in numba, one through
    # the Cython Consumer) fall asleep on the doorbell thousands of times; a lost wake-up would
    # stall a consumer until its 20 ms bound, a wrong one would lose or reorder records.
    n, burst, pause_us = 20_000, 4, 100
    with Ring.create(_name(f"burst{kind}"), TEST_RECORD, capacity=1 << 10, kind=kind, consumers=2) as ring:
        results = CTX.Queue()
        ready = [CTX.Event(), CTX.Event()]
        index = (lambda i: i) if kind == "lossless" else (lambda i: None)
        consumers = [CTX.Process(target=run_blocking_consumer, args=(ring.name, index(i), n, i == 0, ready[i], results),
                                 daemon=True) for i in (0, 1)]
        for p in consumers:
            p.start()
        assert all(e.wait(120) for e in ready)
        producer = CTX.Process(target=run_burst_producer, args=(ring.name, n, burst, pause_us, results), daemon=True)
        producer.start()
        got = [results.get(timeout=150) for _ in range(3)]
        for p in consumers + [producer]:
            p.join(30)
        ctl = ring.views.ctl
        assert int(ctl[L.H_WAITERS]) == 0
        assert int(ctl[L.H_BELL_RINGS]) > 0, "no consumer ever slept: the pauses are too short to test the bell"
    assert ("producer", 0) in got
    want = int(expected_checksum(n))
    for index_, seen, gaps, torn, checksum, last, lost, overruns in (r for r in got if r[0] != "producer"):
        assert (seen, gaps, torn, last, lost) == (n, 0, 0, n - 1, 0)
        assert checksum == want
