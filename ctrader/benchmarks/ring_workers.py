"""Producer and consumer bodies that ring tests and benchmarks run in child processes.

They live in an importable module (not the test file) because children are started with the
``spawn`` method, which imports the target by name.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ctrader.core import ring_numba as rn
from ctrader.core.ring import Ring
from ctrader.core.ring_layout import OK
from ctrader.core.atomics import sleep_us
from ctrader.core.wait import BLOCK, BLOCK_SPINS, SPIN_YIELD, WaitStrategy

# A 256-byte test record: word 0 is the sequence, every other word is derived from it, so a
# consumer can tell a whole record from a torn one.
TEST_RECORD = np.dtype([("seq", np.uint64), ("words", np.uint64, (31,))])
MIX = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True)
def fill_row(row, seq):
    row[0] = seq
    for w in range(1, row.shape[0]):
        row[w] = (np.uint64(seq) * MIX) ^ np.uint64(w)


@njit(cache=True)
def row_is_whole(row):
    seq = row[0]
    for w in range(1, row.shape[0]):
        if row[w] != (seq * MIX) ^ np.uint64(w):
            return False
    return True


@njit(cache=True)
def produce(ctl, seqs, payload, n, batch, timeout_ns):
    """Write records 0..n-1 in batches; returns OK or the first non-OK status."""
    rows = np.empty((batch, payload.shape[1]), np.uint64)
    state = np.zeros(2, np.int64)
    seq = 0
    while seq < n:
        k = min(batch, n - seq)
        for i in range(k):
            fill_row(rows[i], seq + i)
        status = rn.write_rows(ctl, seqs, payload, rows[:k], state, SPIN_YIELD, 100, timeout_ns)
        if status != OK:
            return status
        seq += k
    return OK


@njit(cache=True)
def produce_bursts(ctl, seqs, payload, n, burst, pause_us):
    """Write records 0..n-1 one at a time, ``burst`` back to back, then pause: consumers that
    block fall asleep in every pause and must be woken by the next publish."""
    row = np.empty(payload.shape[1], np.uint64)
    state = np.zeros(2, np.int64)
    for seq in range(n):
        fill_row(row, seq)
        status = rn.write_row(ctl, seqs, payload, row, state, SPIN_YIELD, 100, 10_000_000_000)
        if status != OK:
            return status
        if (seq + 1) % burst == 0:
            sleep_us(pause_us)
    return OK


@njit(cache=True)
def consume(ctl, seqs, payload, consumer, n_expected, batch, timeout_ns, slow_every, wait_kind=SPIN_YIELD,
            wait_param=100):
    """Read until the last sequence arrives (or a read times out).

    Returns (records seen, gaps in sequence summed, torn records accepted, checksum, last seq).
    ``slow_every``: every that many records, dawdle, to make a broadcast consumer fall behind.
    """
    out = np.empty((batch, payload.shape[1]), np.uint64)
    seen = 0
    gaps = 0
    torn = 0
    checksum = np.uint64(0)
    expect = np.uint64(0)
    last = np.uint64(0)
    while True:
        got = rn.read_rows_wait(ctl, seqs, payload, consumer, out, wait_kind, wait_param, timeout_ns)
        if got == 0:
            break
        for i in range(got):
            row = out[i]
            if not row_is_whole(row):
                torn += 1
            if row[0] != expect:
                gaps += np.int64(row[0] - expect)
            expect = row[0] + np.uint64(1)
            checksum = checksum * np.uint64(31) + row[0] + row[31]
            seen += 1
            last = row[0]
            if slow_every > 0 and seen % slow_every == 0:
                acc = 0.0
                for j in range(20000):
                    acc += j * 1e-9
                if acc < 0:
                    return -1, 0, 0, checksum, last
        if last == np.uint64(n_expected - 1):
            break
    return seen, gaps, torn, checksum, last


@njit(cache=True)
def expected_checksum(n):
    row = np.empty(32, np.uint64)
    checksum = np.uint64(0)
    for seq in range(n):
        fill_row(row, seq)
        checksum = checksum * np.uint64(31) + row[0] + row[31]
    return checksum


def run_producer(name, n, batch, timeout_s, result_queue):
    ring = Ring.attach(name, TEST_RECORD)
    v = ring.views
    status = produce(v.ctl, v.seqs, v.payload, n, batch, int(timeout_s * 1e9))
    result_queue.put(("producer", int(status)))
    ring.close()


def run_consumer(name, index, n, batch, timeout_s, slow_every, ready, result_queue):
    ring = Ring.attach(name, TEST_RECORD)
    consumer = ring.consumer(index)          # index None: a broadcast slot is claimed
    ready.set()
    v = ring.views
    seen, gaps, torn, checksum, last = consume(v.ctl, v.seqs, v.payload, consumer.index, n, batch,
                                               int(timeout_s * 1e9), slow_every)
    result_queue.put((consumer.index, int(seen), int(gaps), int(torn), int(checksum), int(last),
                      consumer.lost, consumer.overruns))
    ring.close()


def run_burst_producer(name, n, burst, pause_us, result_queue):
    ring = Ring.attach(name, TEST_RECORD)
    v = ring.views
    status = produce_bursts(v.ctl, v.seqs, v.payload, n, burst, pause_us)
    result_queue.put(("producer", int(status)))
    ring.close()


def run_blocking_consumer(name, index, n, in_numba, ready, result_queue):
    """A consumer that waits with BLOCK: through the numba kernels or the Cython ``Consumer``."""
    ring = Ring.attach(name, TEST_RECORD)
    consumer = ring.consumer(index, wait=WaitStrategy(BLOCK, BLOCK_SPINS))
    ready.set()
    if in_numba:
        v = ring.views
        seen, gaps, torn, checksum, last = consume(v.ctl, v.seqs, v.payload, consumer.index, n, 64,
                                                   30_000_000_000, 0, BLOCK, BLOCK_SPINS)
    else:
        out = np.empty(64, TEST_RECORD)
        seen = gaps = torn = checksum = last = 0
        expect = 0
        while last != n - 1 or seen == 0:
            got = consumer.read_batch(out, 30.0)
            if got == 0:
                break
            for row in out[:got].view(np.uint64).reshape(got, -1):
                seq = int(row[0])
                torn += not row_is_whole(row)
                gaps += seq - expect
                expect = seq + 1
                checksum = (checksum * 31 + seq + int(row[31])) % (1 << 64)
                seen += 1
                last = seq
    result_queue.put((consumer.index, int(seen), int(gaps), int(torn), int(checksum), int(last),
                      consumer.lost, consumer.overruns))
