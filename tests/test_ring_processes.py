"""Rings across real processes: millions of records, slow consumers, torn reads, dead consumers."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal

import numpy as np
import pytest

from ctrader.core import shm
from ctrader.core.ring import Ring, RingFullTimeout
from ctrader.benchmarks.ring_workers import TEST_RECORD, expected_checksum, fill_row, run_consumer, run_producer

CTX = mp.get_context("spawn")
pytestmark = pytest.mark.timeout(120)


def _name(tag: str) -> str:
    return f"ctrader.test{os.getpid()}.{tag}"


def _start(target, *args):
    proc = CTX.Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


def _results(queue, count, timeout=90):
    return [queue.get(timeout=timeout) for _ in range(count)]


def test_lossless_two_consumers_see_every_record_in_order():
    n = 2_000_000
    with Ring.create(_name("lossless"), TEST_RECORD, capacity=1 << 12, kind="lossless", consumers=2) as ring:
        results, ready = CTX.Queue(), CTX.Event()
        consumers = [_start(run_consumer, ring.name, i, n, 256, 30.0, 0, ready, results) for i in (0, 1)]
        producer = _start(run_producer, ring.name, n, 64, 30.0, results)
        got = _results(results, 3)
        for p in consumers + [producer]:
            p.join(30)
    assert ("producer", 0) in got
    want = int(expected_checksum(n))
    per_consumer = sorted(r for r in got if r[0] != "producer")
    assert len(per_consumer) == 2
    for index, seen, gaps, torn, checksum, last, lost, overruns in per_consumer:
        assert (seen, gaps, torn, last) == (n, 0, 0, n - 1)
        assert checksum == want
        assert (lost, overruns) == (0, 0)


def test_broadcast_slow_consumer_gap_equals_its_overrun_count():
    n = 1_000_000
    with Ring.create(_name("bcast"), TEST_RECORD, capacity=1 << 10, kind="broadcast", consumers=4) as ring:
        results = CTX.Queue()
        fast_ready, slow_ready = CTX.Event(), CTX.Event()
        fast = _start(run_consumer, ring.name, None, n, 256, 30.0, 0, fast_ready, results)
        slow = _start(run_consumer, ring.name, None, n, 64, 30.0, 50, slow_ready, results)
        assert fast_ready.wait(60) and slow_ready.wait(60)
        producer = _start(run_producer, ring.name, n, 64, 5.0, results)
        got = _results(results, 3)
        for p in (fast, slow, producer):
            p.join(30)
    consumers = [r for r in got if r[0] != "producer"]
    lossy = [r for r in consumers if r[6] > 0]
    assert lossy, "the deliberately slow consumer was never lapped; slow it down further"
    for index, seen, gaps, torn, checksum, last, lost, overruns in consumers:
        assert torn == 0, "a torn record was accepted"
        assert gaps == lost, f"consumer {index}: gap {gaps} != counted loss {lost}"
        assert seen + lost == n and last == n - 1


def test_torn_reads_are_detected_under_a_flat_out_producer():
    # A tiny ring and a producer that never waits: consumers are lapped constantly, often in the
    # middle of copying a record. Every record they accept must still be whole.
    n = 2_000_000
    with Ring.create(_name("torn"), TEST_RECORD, capacity=16, kind="broadcast", consumers=2) as ring:
        results, ready = CTX.Queue(), CTX.Event()
        # the consumer's wait for the first record covers the producer's start-up (a spawned
        # process loading numba's cache): 2 s was too short on a loaded machine (0 records seen)
        consumer = _start(run_consumer, ring.name, None, n, 4, 30.0, 0, ready, results)
        assert ready.wait(60)
        producer = _start(run_producer, ring.name, n, 1, 2.0, results)
        got = _results(results, 2)
        consumer.join(30), producer.join(30)
    (index, seen, gaps, torn, checksum, last, lost, overruns), = [r for r in got if r[0] != "producer"]
    assert torn == 0
    assert gaps == lost and seen + lost == n
    assert overruns > 0


def test_killed_consumer_makes_lossless_producer_fail_loudly_not_hang():
    with Ring.create(_name("stuck"), TEST_RECORD, capacity=64, kind="lossless", consumers=1) as ring:
        results, ready = CTX.Queue(), CTX.Event()
        victim = _start(run_consumer, ring.name, 0, 10**9, 8, 60.0, 0, ready, results)
        assert ready.wait(60)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        producer = ring.producer(timeout_s=0.5)
        records = np.zeros(200, TEST_RECORD)
        with pytest.raises(RingFullTimeout, match=rf"consumer 0 \(pid {victim.pid}, dead\) is 64 records behind"):
            producer.write(records)
        # A restarted consumer resumes from the saved cursor: nothing is lost.
        resumed = ring.consumer(0)
        out = np.empty(64, TEST_RECORD)
        assert resumed.read_batch(out) == 64


def test_numba_consumer_spinning_in_another_process_sees_new_records():
    # The hoisted-load hang: a consumer spinning on shared memory must notice records that
    # arrive after it started waiting.
    with Ring.create(_name("spin"), TEST_RECORD, capacity=64, kind="lossless", consumers=1) as ring:
        results, ready = CTX.Queue(), CTX.Event()
        consumer = _start(run_consumer, ring.name, 0, 3, 8, 20.0, 0, ready, results)
        assert ready.wait(60)
        producer = ring.producer()
        records = np.zeros(3, TEST_RECORD)
        for seq, row in enumerate(records.view(np.uint64).reshape(3, -1)):
            fill_row(row, seq)
        producer.write(records)
        index, seen, gaps, torn, checksum, last, lost, overruns = results.get(timeout=60)
        consumer.join(10)
    assert (seen, last, torn) == (3, 2, 0)


def test_no_segment_left_behind():
    assert not [n for n in shm.list_segments() if n.startswith(f"ctrader.test{os.getpid()}.")]
