"""Ring benchmarks, each beside a baseline measured in the same run.

- the physical limit: two processes bouncing one cache line with atomics (one-way ns);
- ring one-hop latency: a numba producer and a numba consumer in two processes bouncing a
  256-byte record through two rings; one-way = round trip / 2, timed per round trip exactly
  like the ping-pong, so the two distributions are comparable;
- ring throughput of 256-byte records, numba -> numba and Python (Cython API) -> numba, beside
  ``multiprocessing.Queue`` moving the same records one per ``put``.

Latency runs busy-spin on both sides (one core each); they are meaningful only on an otherwise
idle machine with at least two cores. One hop moves at least two cache lines (the slot's
sequence word and the payload) where the ping-pong moves one, so ~2x the ping-pong is the
floor for a ring hop; the 64-byte record shows it, the 448-byte market-data record adds the
cost of its extra lines.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
from numba import njit

from ctrader.benchmarks.ring_workers import TEST_RECORD
from ctrader.core import ring_numba as rn
from ctrader.core import shm
from ctrader.core.atomics import cpu_relax, load_acquire, monotonic_ns, store_release
from ctrader.core.records import MD_EVENT
from ctrader.core.ring import Ring
from ctrader.core.ring_layout import OK
from ctrader.core.wait import SPIN

CTX = mp.get_context("spawn")
RECORD_BYTES = TEST_RECORD.itemsize


def _name(tag: str) -> str:
    return f"ctrader.bench{os.getpid()}.{tag}"


def _percentiles(one_way_ns: np.ndarray) -> dict:
    p50, p99, p999 = np.percentile(one_way_ns, [50, 99, 99.9])
    return {"p50": float(p50), "p99": float(p99), "p99.9": float(p999)}


# --- ping-pong of one cache line: the floor for any cross-process hand-off ----------------------

@njit(cache=True)
def _pingpong_initiator(line, n):
    """Write i to word 0, wait for the echo in word 8 (another cache line); time each trip."""
    samples = np.empty(n, np.int64)
    for i in range(1, n + 1):
        t0 = monotonic_ns()
        store_release(line, 0, i)
        while load_acquire(line, 8) != i:
            cpu_relax()
        samples[i - 1] = monotonic_ns() - t0
    store_release(line, 0, 0xFFFFFFFFFFFFFFFF)
    return samples


@njit(cache=True)
def _pingpong_echo(line):
    last = np.uint64(0)
    while True:
        seen = load_acquire(line, 0)
        if seen == np.uint64(0xFFFFFFFFFFFFFFFF):
            return
        if seen != last:
            store_release(line, 8, seen)
            last = seen
        else:
            cpu_relax()


def _pingpong_child(name: str) -> None:
    seg = shm.attach(name)
    line = np.frombuffer(seg.buf, np.uint64, 16)
    _pingpong_echo(line)
    del line
    seg.close()


def bench_pingpong(n: int) -> dict:
    seg = shm.create(_name("pingpong"), 4096)
    try:
        line = np.frombuffer(seg.buf, np.uint64, 16)
        _pingpong_initiator(np.zeros(16, np.uint64), 0)     # compile before the child starts
        child = CTX.Process(target=_pingpong_child, args=(seg.name,), daemon=True)
        child.start()
        samples = _pingpong_initiator(line, n)
        child.join(30)
        del line
    finally:
        seg.close()
        seg.unlink()
    return _percentiles(samples[n // 10:] / 2.0)              # drop the warm-up tenth


# --- ring one-hop latency -----------------------------------------------------------------------

@njit(cache=True)
def _ring_initiator(out_v, back_v, n):
    octl, oseqs, opay = out_v
    bctl, bseqs, bpay = back_v
    row = np.zeros(opay.shape[1], np.uint64)
    got = np.empty((1, bpay.shape[1]), np.uint64)
    state = np.zeros(2, np.int64)
    samples = np.empty(n, np.int64)
    for i in range(n):
        t0 = monotonic_ns()
        row[0] = i
        rn.write_row(octl, oseqs, opay, row, state, SPIN, 0, 10_000_000_000)
        while rn.read_rows(bctl, bseqs, bpay, 0, got) == 0:
            cpu_relax()
        samples[i] = monotonic_ns() - t0
    row[0] = 0xFFFFFFFFFFFFFFFF
    rn.write_row(octl, oseqs, opay, row, state, SPIN, 0, 10_000_000_000)
    return samples


@njit(cache=True)
def _ring_echo(in_v, back_v):
    ictl, iseqs, ipay = in_v
    bctl, bseqs, bpay = back_v
    rows = np.empty((1, ipay.shape[1]), np.uint64)
    state = np.zeros(2, np.int64)
    while True:
        if rn.read_rows(ictl, iseqs, ipay, 0, rows) == 0:
            cpu_relax()
            continue
        if rows[0, 0] == np.uint64(0xFFFFFFFFFFFFFFFF):
            return
        rn.write_row(bctl, bseqs, bpay, rows[0], state, SPIN, 0, 10_000_000_000)


def _views(ring: Ring):
    return ring.views.ctl, ring.views.seqs, ring.views.payload


def _ring_echo_child(out_name: str, back_name: str, dtype: np.dtype) -> None:
    out_ring, back_ring = Ring.attach(out_name, dtype), Ring.attach(back_name, dtype)
    _ring_echo(_views(out_ring), _views(back_ring))
    out_ring.close()
    back_ring.close()


def bench_ring_latency(n: int, dtype: np.dtype) -> dict:
    with Ring.create(_name("lat-out"), dtype, 1024, "lossless", 1) as out_ring, \
            Ring.create(_name("lat-back"), dtype, 1024, "lossless", 1) as back_ring:
        child = CTX.Process(target=_ring_echo_child, args=(out_ring.name, back_ring.name, dtype),
                            daemon=True)
        child.start()
        samples = _ring_initiator(_views(out_ring), _views(back_ring), n)
        child.join(30)
    return _percentiles(samples[n // 10:] / 2.0)


# --- throughput ---------------------------------------------------------------------------------

@njit(cache=True)
def _stream_out(ctl, seqs, payload, n, batch):
    """The producer side of the throughput run: sequence numbers in otherwise fixed records."""
    rows = np.zeros((batch, payload.shape[1]), np.uint64)
    state = np.zeros(2, np.int64)
    for start in range(0, n, batch):
        k = min(batch, n - start)
        for i in range(k):
            rows[i, 0] = start + i
        if rn.write_rows(ctl, seqs, payload, rows[:k], state, SPIN, 0, 30_000_000_000) != OK:
            return False
    return True


@njit(cache=True)
def _stream_in(ctl, seqs, payload, n, batch):
    """The consumer side: read until n records arrived.

    Returns (records in order, size of the first batch, clock after the first batch, clock at
    the end). The clock starts after the first batch so that neither side's start-up counts.
    """
    out = np.empty((batch, payload.shape[1]), np.uint64)
    in_order = 0
    first_batch = 0
    first_ns = 0
    while in_order < n:
        got = rn.read_rows_wait(ctl, seqs, payload, 0, out, SPIN, 0, 10_000_000_000)
        if got == 0:
            break
        for i in range(got):
            if out[i, 0] == np.uint64(in_order):
                in_order += 1
        if first_ns == 0:
            first_batch = got
            first_ns = monotonic_ns()
    return in_order, first_batch, first_ns, monotonic_ns()


def _throughput_consumer(name: str, n: int, ready, results) -> None:
    ring = Ring.attach(name, TEST_RECORD)
    v = ring.views
    _stream_in(v.ctl, v.seqs, v.payload, 0, 256)                 # compile (cached) before timing
    ready.set()
    results.put(_stream_in(v.ctl, v.seqs, v.payload, n, 256))
    ring.close()


def _run_throughput(n: int, python_producer: bool) -> float:
    with Ring.create(_name("tput"), TEST_RECORD, 1 << 14, "lossless", 1) as ring:
        ready, results = CTX.Event(), CTX.Queue()
        child = CTX.Process(target=_throughput_consumer, args=(ring.name, n, ready, results), daemon=True)
        child.start()
        ready.wait(120)
        v = ring.views
        _stream_out(v.ctl, v.seqs, v.payload, 0, 64)               # load the kernel before timing
        if python_producer:
            batch = np.zeros(64, TEST_RECORD)
            producer = ring.producer(timeout_s=30)
            rows = batch.view(np.uint64).reshape(64, -1)
            for seq in range(0, n, 64):                     # sequences only: content is not checked
                rows[:, 0] = np.arange(seq, seq + 64, dtype=np.uint64)
                producer.write(batch[: min(64, n - seq)])
        else:
            if not _stream_out(v.ctl, v.seqs, v.payload, n, 64):
                raise RuntimeError("throughput producer timed out")
        seen, first_batch, first_ns, last_ns = results.get(timeout=120)
        child.join(30)
    if seen != n:
        raise RuntimeError(f"throughput consumer saw {seen} of {n} records")
    return (n - first_batch) / ((last_ns - first_ns) / 1e9)


def _queue_consumer(queue, n: int, results) -> None:
    t0 = None
    for i in range(n):
        item = queue.get()
        if t0 is None:
            t0 = time.perf_counter()
    results.put(time.perf_counter() - t0)


def bench_queue(n: int) -> float:
    """multiprocessing.Queue moving the same 256-byte records, one per put."""
    queue, results = CTX.Queue(maxsize=1 << 14), CTX.Queue()
    child = CTX.Process(target=_queue_consumer, args=(queue, n, results), daemon=True)
    child.start()
    record = np.zeros(1, TEST_RECORD)
    for i in range(n):
        record["seq"] = i
        queue.put(record.tobytes())
    seconds = results.get(timeout=300)
    child.join(30)
    return (n - 1) / seconds


# --- the suite ----------------------------------------------------------------------------------

LINE_RECORD = np.dtype([("words", np.uint64, (8,))])   # one cache line, like the ping-pong


def run(quick: bool = False) -> list[dict]:
    n_lat = 200_000 if quick else 1_000_000
    n_tput = 5_000_000 if quick else 20_000_000
    n_queue = 50_000 if quick else 200_000
    ping = bench_pingpong(n_lat)
    hops = {"64 B": bench_ring_latency(n_lat, LINE_RECORD),
            "md_event 448 B": bench_ring_latency(n_lat // 2, MD_EVENT)}
    queue_rate = bench_queue(n_queue)
    numba_rate = _run_throughput(n_tput, python_producer=False)
    python_rate = _run_throughput(n_tput // 4, python_producer=True)
    results = []
    for label, hop in hops.items():
        for pct in ("p50", "p99", "p99.9"):
            results.append({"name": f"ring one-hop {label} {pct}", "value": hop[pct], "unit": "ns",
                            "baseline_name": f"cache-line ping-pong {pct}", "baseline_value": ping[pct],
                            "ratio": hop[pct] / ping[pct], "note": "numba->numba across processes"})
    results.append({"name": "ring throughput numba->numba", "value": numba_rate, "unit": "records/s",
                    "baseline_name": "multiprocessing.Queue", "baseline_value": queue_rate,
                    "ratio": numba_rate / queue_rate, "note": "256 B records, lossless ring, batches of 64"})
    results.append({"name": "ring throughput python->numba", "value": python_rate, "unit": "records/s",
                    "baseline_name": "multiprocessing.Queue", "baseline_value": queue_rate,
                    "ratio": python_rate / queue_rate, "note": "Cython write of 64-record numpy batches"})
    return results


def check_regressions(results: list[dict]) -> list[str]:
    """Gross regressions of same-run ratios only (absolute times differ between machines)."""
    problems = []
    for r in results:
        if r["name"] == "ring one-hop 64 B p50" and r["ratio"] > 10:
            problems.append(f"ring p50 {r['value']:.0f} ns is {r['ratio']:.1f}x the ping-pong (limit 10x)")
        if r["name"].startswith("ring throughput") and r["ratio"] < 10:
            problems.append(f"{r['name']} only {r['ratio']:.1f}x multiprocessing.Queue (limit 10x)")
    return problems
