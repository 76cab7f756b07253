"""Shared-memory rings between ctrader processes.

Two kinds, one layout (``ring_layout.py``):

- **broadcast**: one producer, any number of consumers. The producer never waits; a consumer
  that falls a whole ring behind detects it, counts the records it lost and carries on from
  a slot that is still intact. Market data uses it: the feed must never stall.
- **lossless**: the consumers are declared when the ring is created, and the producer waits
  (with the wait strategy) while the slowest of them is a full ring behind, raising
  ``RingFullTimeout`` after ``timeout_s``. Intents and executions use it: an order is never
  dropped silently. A consumer that restarts resumes from its saved cursor.

Python callers go through the Cython extension; numba code uses ``ring.views`` with the
kernels in ``ring_numba.py``:

    ring = Ring.create("ctrader.demo.md", MD_EVENT, capacity=1 << 16, kind="broadcast")
    producer = ring.producer()
    producer.write(record)                       # a numpy record, a 1-element array or bytes
    other = Ring.attach("ctrader.demo.md", MD_EVENT)   # in another process
    consumer = other.consumer()
    batch = np.empty(256, MD_EVENT)
    n = consumer.read_batch(batch, timeout_s=0.1)      # records copied once, shm -> batch
    ring.close()                                 # the owner also unlinks the segment
"""
from __future__ import annotations

import atexit
import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from ctrader._ext._ring import RingCore
from ctrader.core import ring_layout as L
from ctrader.core import shm
from ctrader.core.records import RECORDS, fingerprint
from ctrader.core.wait import WaitStrategy, default_wait_strategy

log = logging.getLogger(__name__)


class RingError(RuntimeError):
    """A ring cannot be created or attached as asked."""


class RingFullTimeout(RingError):
    """A lossless ring stayed full: its slowest consumer stopped reading."""


@dataclass(frozen=True)
class RingViews:
    """numpy views of a ring segment for the numba kernels in ``ring_numba``."""
    ctl: np.ndarray       # uint64 header and consumer table
    seqs: np.ndarray      # uint64, one word per slot every SEQ_STRIDE words
    payload: np.ndarray   # uint64 2-D: one row of record_size / 8 words per slot


def _dtype_name(dtype: np.dtype) -> str:
    return next((n for n, d in RECORDS.items() if d == dtype), f"{dtype.itemsize}-byte record")


def cleanup_stale() -> list[str]:
    """Remove ring segments whose owner process is dead (a crashed run). Returns their names."""
    return shm.cleanup_stale(L.MAGIC)


class Ring:
    """One ring segment, as its owner (``create``) or as an attached user (``attach``)."""

    def __init__(self, segment: shm.Segment, dtype: np.dtype) -> None:
        self.segment = segment
        self.dtype = np.dtype(dtype)
        ctl = np.frombuffer(segment.buf, np.uint64, L.C_BASE)  # identity first: sizes come from it
        self.capacity = int(ctl[L.H_CAPACITY])
        self.max_consumers = int(ctl[L.H_MAX_CONSUMERS])
        self.kind = int(ctl[L.H_KIND])
        seqs_at, payload_at, _ = L.offsets(self.capacity, self.dtype.itemsize, self.max_consumers)
        words = self.dtype.itemsize // 8
        self.views = RingViews(
            ctl=np.frombuffer(segment.buf, np.uint64, L.ctl_words(self.max_consumers)),
            seqs=np.frombuffer(segment.buf, np.uint64, self.capacity * L.SEQ_STRIDE, seqs_at),
            payload=np.frombuffer(segment.buf, np.uint64, self.capacity * words, payload_at)
            .reshape(self.capacity, words),
        )
        self._core = RingCore(segment.buf, seqs_at, payload_at)
        self._closed = False

    @property
    def name(self) -> str:
        return self.segment.name

    # --- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def create(cls, name: str, dtype: np.dtype, capacity: int, kind: str = "broadcast",
               consumers: int = 8) -> "Ring":
        """Create a ring (the caller owns it and unlinks it on ``close``).

        ``consumers``: for a broadcast ring, how many may attach at once; for a lossless ring,
        exactly how many consumers there are (ids 0..consumers-1), all of which the producer
        waits for from the start, so none misses a record by starting late.
        """
        dtype = np.dtype(dtype)
        if kind not in ("broadcast", "lossless"):
            raise RingError(f"ring kind must be 'broadcast' or 'lossless', not {kind!r}")
        if capacity < 2 or capacity & (capacity - 1):
            raise RingError(f"ring capacity must be a power of two >= 2, not {capacity}")
        if dtype.itemsize % L.CACHE_LINE:
            raise RingError(f"record size {dtype.itemsize} is not a multiple of {L.CACHE_LINE} bytes")
        if consumers < 1:
            raise RingError("a ring needs room for at least one consumer")
        _, _, size = L.offsets(capacity, dtype.itemsize, consumers)
        segment = shm.create(name, size)
        ctl = np.frombuffer(segment.buf, np.uint64, L.ctl_words(consumers))
        ctl[L.H_VERSION] = L.LAYOUT_VERSION
        ctl[L.H_KIND] = L.LOSSLESS if kind == "lossless" else L.BROADCAST
        ctl[L.H_RECORD_SIZE] = dtype.itemsize
        ctl[L.H_CAPACITY] = capacity
        ctl[L.H_MAX_CONSUMERS] = consumers
        ctl[L.H_FINGERPRINT] = fingerprint(dtype)
        ctl[L.H_OWNER_PID] = os.getpid()
        if kind == "lossless":
            for c in range(consumers):
                ctl[L.C_BASE + c * L.C_STRIDE + L.C_ACTIVE] = 1
        ctl[L.H_MAGIC] = L.MAGIC   # last: an attacher that sees the magic sees a complete header
        del ctl
        ring = cls(segment, dtype)
        atexit.register(ring.close)
        return ring

    @classmethod
    def attach(cls, name: str, dtype: np.dtype, *, kind: str | None = None,
               capacity: int | None = None) -> "Ring":
        """Attach to an existing ring by name; any mismatch with what the caller expects fails
        with an error naming the field, the expected value and the value found."""
        dtype = np.dtype(dtype)
        segment = shm.attach(name)
        try:
            ctl = np.frombuffer(segment.buf, np.uint64, L.C_BASE)
            found = {field: int(ctl[idx]) for field, idx in L.IDENTITY_FIELDS.items()}
            del ctl
            expected = {"magic": L.MAGIC, "layout version": L.LAYOUT_VERSION,
                        "record layout": fingerprint(dtype), "record size": dtype.itemsize}
            if kind is not None:
                expected["kind"] = L.LOSSLESS if kind == "lossless" else L.BROADCAST
            if capacity is not None:
                expected["capacity"] = capacity
            for field, want in expected.items():
                if found[field] != want:
                    raise RingError(_mismatch(name, field, want, found[field], dtype))
            return cls(segment, dtype)
        except BaseException:
            segment.close()
            raise

    def close(self) -> None:
        """Drop this process's mapping; the owner also removes the segment from /dev/shm."""
        if self._closed:
            return
        self._closed = True
        self._core = None
        self.views = None
        self.segment.close()
        if self.segment.owner:
            self.segment.unlink()
            atexit.unregister(self.close)

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- endpoints -----------------------------------------------------------------------------

    def producer(self, wait: WaitStrategy | None = None, timeout_s: float = 5.0) -> "Producer":
        return Producer(self, wait or default_wait_strategy(), timeout_s)

    def consumer(self, index: int | None = None, wait: WaitStrategy | None = None) -> "Consumer":
        """A broadcast ring hands out a free consumer slot starting at the newest record; a
        lossless ring's consumer ``index`` resumes where that consumer last stopped."""
        ctl = self.views.ctl
        if self.kind == L.LOSSLESS:
            if index is None or not 0 <= index < self.max_consumers:
                raise RingError(f"lossless ring {self.name} has consumers 0..{self.max_consumers - 1}; "
                                f"pass index=")
        else:
            from ctrader.core.ring_numba import claim_consumer

            if index is not None:
                raise RingError("broadcast consumers are assigned, not chosen: call consumer()")
            index = int(claim_consumer(ctl, os.getpid()))
            if index < 0:
                raise RingError(f"broadcast ring {self.name} already has {self.max_consumers} consumers")
        if self.kind == L.LOSSLESS and self._core.forget_sleeper(index):
            log.info("ring %s: consumer %d's last process died asleep on the doorbell; its registration "
                     "taken back", self.name, index)
        ctl[L.C_BASE + index * L.C_STRIDE + L.C_PID] = os.getpid()
        return Consumer(self, index, wait or default_wait_strategy())

    def retire_consumer(self, index: int) -> None:
        """Stop waiting for lossless consumer ``index`` (a component absent from this run)."""
        self.views.ctl[L.C_BASE + index * L.C_STRIDE + L.C_ACTIVE] = 0

    def stats(self) -> dict:
        ctl = self.views.ctl
        head = int(ctl[L.H_HEAD])
        consumers = []
        for c in range(self.max_consumers):
            base = L.C_BASE + c * L.C_STRIDE
            if ctl[base + L.C_ACTIVE]:
                consumers.append({"id": c, "pid": int(ctl[base + L.C_PID]),
                                  "lag": head - int(ctl[base + L.C_CURSOR]),
                                  "overruns": int(ctl[base + L.C_OVERRUNS]),
                                  "lost": int(ctl[base + L.C_LOST]), "torn": int(ctl[base + L.C_TORN])})
        return {"name": self.name, "kind": L.KIND_NAMES[self.kind], "capacity": self.capacity,
                "record": _dtype_name(self.dtype), "head": head,
                "producer_waits": int(ctl[L.H_PRODUCER_WAITS]), "wake_calls": int(ctl[L.H_BELL_RINGS]),
                "announces": int(ctl[L.H_ANNOUNCES]), "consumers": consumers}


def _mismatch(name: str, field: str, want: int, found: int, dtype: np.dtype) -> str:
    if field == "magic":
        return f"ring {name}: not a ctrader ring, or its owner has not finished creating it"
    if field == "record layout":
        return (f"ring {name}: record layout mismatch: expected {_dtype_name(dtype)} "
                f"(fingerprint {want:#x}), found fingerprint {found:#x}; "
                f"producer and consumer run different versions of ctrader.core.records")
    if field == "kind":
        return f"ring {name}: kind mismatch: expected {L.KIND_NAMES[want]}, found {L.KIND_NAMES.get(found, found)}"
    return f"ring {name}: {field} mismatch: expected {want}, found {found}"


class Producer:
    """Writes records into a ring (one producer per ring)."""

    def __init__(self, ring: Ring, wait: WaitStrategy, timeout_s: float) -> None:
        self.ring = ring
        self.wait = wait
        self.timeout_ns = int(timeout_s * 1e9)
        ring.views.ctl[L.H_PRODUCER_PID] = os.getpid()

    def write(self, records) -> None:
        """Publish one record or a contiguous array of them (numpy, or raw bytes).

        On a lossless ring that stays full for the timeout, raises ``RingFullTimeout`` naming
        the consumer that is stuck; the records before it were written.
        """
        core = self.ring._core
        if isinstance(records, np.ndarray) and not records.flags.c_contiguous:
            records = np.ascontiguousarray(records)
        n_given = getattr(records, "nbytes", None) or len(records)
        n_given //= self.ring.dtype.itemsize
        done = core.write(records, self.wait.kind, self.wait.param, self.timeout_ns)
        if done < n_given:
            self.ring.views.ctl[L.H_PRODUCER_TIMEOUTS] += 1
            raise RingFullTimeout(self._stuck_message(done, n_given))

    write_batch = write

    def announce(self) -> None:
        """Wake the consumers sleeping on this ring now, for records about to be written: they
        spin for them (up to ``ring_layout.ANNOUNCE_SPIN_NS``) instead of sleeping again, so the
        wake-up overlaps what is left to do before ``write``. Nearly free when nobody sleeps."""
        self.ring._core.announce()

    def _stuck_message(self, done: int, given: int) -> str:
        stats = self.ring.stats()
        slowest = max(stats["consumers"], key=lambda c: c["lag"])
        alive = "alive" if shm.pid_alive(slowest["pid"]) else "dead"
        return (f"ring {self.ring.name} full for {self.timeout_ns / 1e9:g}s: consumer {slowest['id']} "
                f"(pid {slowest['pid']}, {alive}) is {slowest['lag']} records behind; "
                f"wrote {done} of {given} records")


class Consumer:
    """Reads records from a ring in order, into caller-owned numpy arrays."""

    def __init__(self, ring: Ring, index: int, wait: WaitStrategy) -> None:
        self.ring = ring
        self.index = index
        self.wait = wait
        self._base = L.C_BASE + index * L.C_STRIDE

    def read_batch(self, out: np.ndarray, timeout_s: float = 0.0) -> int:
        """Copy up to ``len(out)`` records into ``out``; wait up to ``timeout_s`` for the first.

        Returns the number copied (0 on timeout). Records are copied once, from the shared
        slots straight into ``out``.
        """
        if out.dtype != self.ring.dtype:
            raise TypeError(f"out has dtype {out.dtype}, the ring carries {_dtype_name(self.ring.dtype)}")
        return self.ring._core.read(self.index, out, self.wait.kind, self.wait.param, int(timeout_s * 1e9))

    def peek_batch(self, out: np.ndarray, timeout_s: float = 0.0) -> int:
        """Like ``read_batch`` but the records stay claimed until ``commit(n)`` (lossless rings).

        For consumers that must not lose a record when they crash mid-way: peek, make the
        records durable (journal them), then commit. A consumer restarted after a crash peeks
        the same records again.
        """
        if self.ring.kind != L.LOSSLESS:
            raise RingError("peek/commit is for lossless rings; a broadcast consumer cannot hold the producer")
        if out.dtype != self.ring.dtype:
            raise TypeError(f"out has dtype {out.dtype}, the ring carries {_dtype_name(self.ring.dtype)}")
        return self.ring._core.read(self.index, out, self.wait.kind, self.wait.param, int(timeout_s * 1e9),
                                    False)

    def commit(self, n: int) -> None:
        """Release ``n`` records returned by ``peek_batch``."""
        self.ring._core.commit(self.index, n)

    def poll(self, max_records: int = 1024, timeout_s: float = 0.0) -> np.ndarray:
        """Convenience: a new array with whatever is available (allocates; not for hot loops)."""
        out = np.empty(max_records, self.ring.dtype)
        return out[: self.read_batch(out, timeout_s)]

    @property
    def overruns(self) -> int:
        return int(self.ring.views.ctl[self._base + L.C_OVERRUNS])

    @property
    def lost(self) -> int:
        """Records this consumer never saw because the producer lapped it (broadcast only)."""
        return int(self.ring.views.ctl[self._base + L.C_LOST])

    @property
    def lag(self) -> int:
        ctl = self.ring.views.ctl
        return int(ctl[L.H_HEAD]) - int(ctl[self._base + L.C_CURSOR])

    def release(self) -> None:
        """Give a broadcast consumer slot back (lossless consumers stay declared)."""
        if self.ring.kind == L.BROADCAST:
            self.ring.views.ctl[self._base + L.C_ACTIVE] = 0


def wait_until(predicate, timeout_s: float, interval_s: float = 0.001) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes (for tests and supervisors)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
