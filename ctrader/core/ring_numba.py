"""Ring operations as numba kernels, callable inside any ``@njit`` loop.

The segment is seen through three numpy views (``RingViews``, built by ``ring.py``):
``ctl`` (uint64 header + consumer table), ``seqs`` (a uint64 per slot, one cache line apart) and ``payload``
(uint64 2-D, one row per slot). Records are passed as uint64 rows too
(``records.view(np.uint64).reshape(n, -1)``), so one kernel moves any record type.

Protocol (a per-slot seqlock, Disruptor style). Slot ``i`` holds sequence ``s`` when
``seqs[i * SEQ_STRIDE] == s + 1`` (written ``seqs[i]`` below); 0 means "empty or being written".

  producer: seqs[i] = 0 (relaxed); release fence; copy payload; seqs[i] = s + 1 (release);
            head = s + 1 (release)
  consumer: a = seqs[i] (acquire); if a == want + 1: copy payload; acquire fence;
            b = seqs[i]; b == a -> the copy is whole, else the producer lapped us mid-copy.

Doorbell (wait kind BLOCK): after publishing, the producer issues a full fence and reads
``H_WAITERS``; only if a consumer sleeps does it bump ``H_BELL`` and make the futex wake call.
A consumer about to sleep reads ``H_BELL``, adds itself to ``H_WAITERS`` (a full barrier),
re-checks its slot, and sleeps only while ``H_BELL`` is unchanged. Either the producer sees the
waiter (and wakes it) or the consumer's re-check sees the record: no wake-up is lost.

Every shared load or store goes through ``ctrader.core.atomics``: a plain load in a spin loop
may be hoisted out of the loop by LLVM and spin for ever.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ctrader.core.atomics import (cas, cpu_relax, fence_acquire, fence_release, fence_seq_cst, fetch_add, futex_wait,
                                  futex_wake, load_acquire, monotonic_ns, store_relaxed, store_release)
from ctrader.core.ring_layout import (ANNOUNCE_SPIN_NS, BROADCAST, C_ACTIVE, C_BASE, C_CURSOR, C_LOST,
                                      C_OVERRUNS, C_PID, C_SLEEPING, C_STRIDE, C_TORN, H_ANNOUNCES, H_BELL,
                                      H_BELL_RINGS, H_CAPACITY, H_HEAD, H_KIND, H_MAX_CONSUMERS,
                                      H_PRODUCER_WAITS, H_WAITERS, OK, SEQ_STRIDE, TIMEOUT)
from ctrader.core.wait import BLOCK, wait_once


# Sequences and cursors are uint64 in memory but handled as int64 here: mixing the two in numba
# arithmetic silently promotes to float64.
@njit(cache=True, nogil=True, inline="always")
def _ld(arr, i):
    return np.int64(load_acquire(arr, i))


@njit(cache=True, nogil=True, inline="always")
def _get(arr, i):
    return np.int64(arr[i])


# How many empty waits between two clock reads while waiting with a timeout.
_CLOCK_EVERY = 64
# Longest single sleep on the doorbell: a bound, should a wake-up ever be missed.
_BLOCK_MAX_NS = 20_000_000


@njit(cache=True, nogil=True, inline="always")
def ring_bell(ctl):
    """After publishing: wake the consumers sleeping on the doorbell, if any (see module doc)."""
    fence_seq_cst()                       # our head/slot stores are visible before we read WAITERS
    if _ld(ctl, H_WAITERS) != 0:
        fetch_add(ctl, H_BELL, 1)
        ctl[H_BELL_RINGS] += np.uint64(1)
        futex_wake(ctl, H_BELL)


@njit(cache=True, nogil=True)
def announce(ctl):
    """Ring the bell without publishing (see ``ring_layout.ANNOUNCE_SPIN_NS``)."""
    ctl[H_ANNOUNCES] += np.uint64(1)
    ring_bell(ctl)


# --- producer ----------------------------------------------------------------------------------

@njit(cache=True, nogil=True, inline="always")
def _put(seqs, payload, row, seq, mask):
    idx = seq & mask
    at = idx * SEQ_STRIDE
    store_relaxed(seqs, at, 0)           # mark "being written" before touching the payload
    fence_release()                      # ... and keep every payload store after the mark
    for w in range(payload.shape[1]):
        payload[idx, w] = row[w]
    store_release(seqs, at, seq + 1)     # publish: payload stores happen-before this


@njit(cache=True, nogil=True)
def min_consumer_cursor(ctl, head):
    """Slowest active consumer's cursor (``head`` when none is active)."""
    lowest = head
    for c in range(_get(ctl, H_MAX_CONSUMERS)):
        base = C_BASE + c * C_STRIDE
        if _ld(ctl, base + C_ACTIVE) != 0:
            cur = _ld(ctl, base + C_CURSOR)
            if cur < lowest:
                lowest = cur
    return lowest


@njit(cache=True, nogil=True)
def _room(ctl, state, head, want, wait_kind, wait_param, timeout_ns):
    """Free slots for up to ``want`` records (lossless), waiting up to ``timeout_ns`` for one.

    ``state[0]`` caches the slowest consumer's cursor so that the common case reads no other
    process's cache line. Returns the number of slots available now (0 = timed out).
    """
    capacity = _get(ctl, H_CAPACITY)
    free = capacity - (head - state[0])
    if free >= want:
        return want
    state[0] = min_consumer_cursor(ctl, head)
    free = capacity - (head - state[0])
    if free > 0:
        return min(free, want)
    ctl[H_PRODUCER_WAITS] += np.uint64(1)
    # Full: wait until a useful chunk is free, not a single slot. Resuming at the first free
    # slot would have producer and consumer trade the same cache lines record by record.
    enough = min(want, max(capacity >> 3, 1))
    deadline = monotonic_ns() + timeout_ns
    attempt = 0
    while True:
        wait_once(wait_kind, wait_param, attempt)
        attempt += 1
        state[0] = min_consumer_cursor(ctl, head)
        free = capacity - (head - state[0])
        if free >= enough:
            return min(free, want)
        if attempt % _CLOCK_EVERY == 0 and monotonic_ns() > deadline:
            return 0


@njit(cache=True, nogil=True)
def write_rows(ctl, seqs, payload, rows, state, wait_kind, wait_param, timeout_ns):
    """Publish every row of ``rows`` (uint64 2-D). Returns OK, or TIMEOUT if a lossless ring
    stayed full for ``timeout_ns``; in that case ``state[1]`` holds how many rows were written.
    """
    mask = _get(ctl, H_CAPACITY) - 1
    lossless = _get(ctl, H_KIND) != BROADCAST
    head = _get(ctl, H_HEAD)             # only this producer writes head
    n = rows.shape[0]
    done = 0
    while done < n:
        chunk = n - done
        if lossless:
            chunk = _room(ctl, state, head, chunk, wait_kind, wait_param, timeout_ns)
            if chunk == 0:
                state[1] = done
                return TIMEOUT
        for k in range(chunk):
            _put(seqs, payload, rows[done + k], head, mask)
            head += 1
        store_release(ctl, H_HEAD, head)
        ring_bell(ctl)
        done += chunk
    state[1] = done
    return OK


@njit(cache=True, nogil=True)
def write_row(ctl, seqs, payload, row, state, wait_kind, wait_param, timeout_ns):
    """Publish one record (uint64 1-D row). Returns OK or TIMEOUT (lossless ring full)."""
    head = _get(ctl, H_HEAD)
    if _get(ctl, H_KIND) != BROADCAST:
        if _room(ctl, state, head, 1, wait_kind, wait_param, timeout_ns) == 0:
            return TIMEOUT
    _put(seqs, payload, row, head, _get(ctl, H_CAPACITY) - 1)
    store_release(ctl, H_HEAD, head + 1)
    ring_bell(ctl)
    return OK


# --- consumer ----------------------------------------------------------------------------------

@njit(cache=True, nogil=True)
def _skip_overrun(ctl, base, cursor, torn):
    """The producer lapped this consumer: jump to a slot still intact and count what was lost.

    We land a quarter ring behind the head (not at the oldest slot, which the producer is
    about to overwrite again), so a consumer that is merely slow gets back in step.
    """
    capacity = _get(ctl, H_CAPACITY)
    head = _ld(ctl, H_HEAD)
    target = head - capacity + (capacity >> 2) if head > capacity else cursor + 1
    if target <= cursor:
        target = cursor + 1
    ctl[base + C_OVERRUNS] += np.uint64(1)
    ctl[base + C_LOST] += np.uint64(target - cursor)
    if torn:
        ctl[base + C_TORN] += np.uint64(1)
    return target


@njit(cache=True, nogil=True)
def read_rows(ctl, seqs, payload, consumer, out):
    """Copy up to ``out.shape[0]`` available records into ``out`` (uint64 2-D). Returns how many.

    Never blocks. Overruns (broadcast ring) are skipped and counted in the consumer's
    ``lost``/``overruns`` fields; the cursor is published once per call.
    """
    base = C_BASE + consumer * C_STRIDE
    mask = _get(ctl, H_CAPACITY) - 1
    cursor = _get(ctl, base + C_CURSOR)  # only this consumer writes its cursor
    start = cursor
    n = 0
    limit = out.shape[0]
    while n < limit:
        idx = cursor & mask
        got = _ld(seqs, idx * SEQ_STRIDE)
        if got == cursor + 1:
            for w in range(payload.shape[1]):
                out[n, w] = payload[idx, w]
            fence_acquire()              # the copy's loads complete before the re-check
            if _ld(seqs, idx * SEQ_STRIDE) == got:
                n += 1
                cursor += 1
            else:
                cursor = _skip_overrun(ctl, base, cursor, True)
        elif got > cursor + 1:
            cursor = _skip_overrun(ctl, base, cursor, False)
        else:
            break                        # not published yet (or being written right now)
    if cursor != start:
        store_release(ctl, base + C_CURSOR, cursor)
    return n


@njit(cache=True, nogil=True)
def read_rows_block(ctl, seqs, payload, consumer, out, deadline_ns):
    """Sleep on the doorbell until a publish (or ``deadline_ns``), then read. Returns how many."""
    bell = _ld(ctl, H_BELL)
    sleeping = C_BASE + consumer * C_STRIDE + C_SLEEPING
    fetch_add(ctl, H_WAITERS, 1)          # a full barrier: registered before the re-check below
    store_release(ctl, sleeping, 1)       # (ring_layout.C_SLEEPING: taken back if we die asleep)
    n = read_rows(ctl, seqs, payload, consumer, out)
    if n == 0:
        left = deadline_ns - monotonic_ns()
        if left > 0:
            futex_wait(ctl, H_BELL, bell, min(left, _BLOCK_MAX_NS))
    store_release(ctl, sleeping, 0)
    fetch_add(ctl, H_WAITERS, -1)
    if n == 0:
        n = read_rows(ctl, seqs, payload, consumer, out)
        if n == 0 and _ld(ctl, H_BELL) != bell:
            n = _spin_read(ctl, seqs, payload, consumer, out, min(monotonic_ns() + ANNOUNCE_SPIN_NS, deadline_ns))
    return n


@njit(cache=True, nogil=True)
def _spin_read(ctl, seqs, payload, consumer, out, until_ns):
    """Woken by a ring that brought nothing (an announce): poll until ``until_ns`` for the records.
    (``read_rows_wait`` with SPIN, which cannot be called from here: numba does not type the
    cycle read_rows_wait -> read_rows_block -> read_rows_wait.)"""
    spins = 0
    while True:
        cpu_relax()
        n = read_rows(ctl, seqs, payload, consumer, out)
        if n > 0:
            return n
        spins += 1
        if spins % _CLOCK_EVERY == 0 and monotonic_ns() > until_ns:
            return 0


@njit(cache=True, nogil=True)
def read_rows_wait(ctl, seqs, payload, consumer, out, wait_kind, wait_param, timeout_ns):
    """Like ``read_rows`` but waits (with the wait strategy) up to ``timeout_ns`` for data."""
    n = read_rows(ctl, seqs, payload, consumer, out)
    if n > 0:
        return n
    deadline = monotonic_ns() + timeout_ns
    attempt = 0
    while True:
        if wait_kind == BLOCK and attempt >= wait_param:
            n = read_rows_block(ctl, seqs, payload, consumer, out, deadline)
            if n > 0 or monotonic_ns() > deadline:
                return n
        else:
            wait_once(wait_kind, wait_param, attempt)
            n = read_rows(ctl, seqs, payload, consumer, out)
            if n > 0:
                return n
        attempt += 1
        if attempt % _CLOCK_EVERY == 0 and monotonic_ns() > deadline:
            return 0


@njit(cache=True, nogil=True)
def claim_consumer(ctl, pid):
    """Take a free consumer slot of a broadcast ring, starting at the head. -1 if none is free."""
    for c in range(_get(ctl, H_MAX_CONSUMERS)):
        base = C_BASE + c * C_STRIDE
        if cas(ctl, base + C_ACTIVE, 0, 1):
            store_release(ctl, base + C_CURSOR, _ld(ctl, H_HEAD))
            store_release(ctl, base + C_PID, pid)
            return c
    return -1


@njit(cache=True, nogil=True)
def available(ctl, consumer):
    """Records published but not yet read by ``consumer`` (may exceed capacity if lapped)."""
    return _ld(ctl, H_HEAD) - _ld(ctl, C_BASE + consumer * C_STRIDE + C_CURSOR)
