"""Byte layout of a ring segment, defined once for Python, numba and Cython.

    +-------------------------------+  offset 0
    | ctl: uint64 words             |  header line 0: identity (checked on attach)
    |   [0..7]   identity           |  line 1: producer (head, counters)
    |   [8..15]  producer           |  line 2: doorbell (blocked consumers, futex word)
    |   [16..23] doorbell           |  one 64-byte line per consumer from word C_BASE
    |   [24..]   consumers          |
    +-------------------------------+  64-aligned
    | seqs: one 64-byte line a slot |  slot s holds sequence q when seqs[s * SEQ_STRIDE] == q + 1
    +-------------------------------+  64-aligned
    | payload: capacity * record    |  record_size is a multiple of 64
    +-------------------------------+

Each producer/consumer field sits in its own cache line so that the producer and every
consumer write to different lines (no false sharing between writers). Slot sequence words get
a line each too: packed eight to a line, a consumer reading slot s just behind the producer
steals the line the producer is writing s+1's sequence into, record after record. Measured
with `ctrader bench --quick` on the 2-core EPYC here: packed, numba->numba throughput was
6.2M, 6.2M and 115M records/s in three runs (it falls into that lock-step regime or not);
a line per sequence, 63M to 104M in three runs.
"""
from __future__ import annotations

MAGIC = 0x4354524452494E47   # "CTRDRING"
LAYOUT_VERSION = 3

BROADCAST, LOSSLESS = 1, 2
KIND_NAMES = {BROADCAST: "broadcast", LOSSLESS: "lossless"}

# Word indices into ctl. Line 0: identity, written once by the owner.
H_MAGIC = 0
H_VERSION = 1
H_KIND = 2
H_RECORD_SIZE = 3
H_CAPACITY = 4
H_MAX_CONSUMERS = 5
H_FINGERPRINT = 6
H_OWNER_PID = 7          # byte offset 56: shm.owner_pid reads it to find stale segments
# Line 1: the producer's.
H_HEAD = 8               # sequences published so far (next sequence to write)
H_PRODUCER_PID = 9
H_PRODUCER_WAITS = 10    # times a lossless producer found the ring full and had to wait
H_PRODUCER_TIMEOUTS = 11
# Line 2: the doorbell, for consumers that block in the kernel instead of polling (wait kind
# BLOCK, see ``ctrader.core.wait``). A consumer adds itself to H_WAITERS, re-checks its slot and
# sleeps on the futex word H_BELL; a producer that publishes while H_WAITERS > 0 bumps H_BELL
# and wakes the sleepers. Its own line: consumers write it, the producer only reads it per publish.
H_WAITERS = 16           # consumers asleep (or about to be) on the bell
H_BELL = 17              # bumped on every publish that found a waiter; futex on its low 32 bits
H_BELL_RINGS = 18        # times the producer made the wake call (a counter for stats)
# A producer about to publish may ring the bell ahead ("announce": the strategy, when it starts
# scoring candidates that may become intents). A sleeper woken by a ring that brought no record
# spins up to ANNOUNCE_SPIN_NS for it before sleeping again, so the wake-up (tens of µs on the
# test VM) overlaps the producer's remaining work instead of following its publish.
H_ANNOUNCES = 19         # announces made (a counter for stats)
ANNOUNCE_SPIN_NS = 200_000
# Consumer table: one line each.
C_BASE = 24
C_STRIDE = 8
C_CURSOR = 0             # next sequence this consumer will read
C_ACTIVE = 1             # 1 while the slot is claimed (broadcast) or declared (lossless)
C_PID = 2
C_OVERRUNS = 3           # times the producer lapped this consumer
C_LOST = 4               # records skipped because of those overruns
C_TORN = 5               # overruns detected as a torn read (overwritten mid-copy)
C_SLEEPING = 6           # 1 while this consumer is counted in H_WAITERS: a consumer killed in its
                         # sleep would leave the count up for ever (every publish then makes a wake
                         # call); the next consumer declared in its slot takes it back

IDENTITY_FIELDS = {      # checked on attach: name -> word index
    "magic": H_MAGIC, "layout version": H_VERSION, "kind": H_KIND, "record size": H_RECORD_SIZE,
    "capacity": H_CAPACITY, "max consumers": H_MAX_CONSUMERS, "record layout": H_FINGERPRINT,
}

SEQ_STRIDE = 8           # uint64 words between two slots' sequence words: one cache line

# Status codes returned by the write kernels.
OK, TIMEOUT = 0, 1

CACHE_LINE = 64


def _align(n: int) -> int:
    return -(-n // CACHE_LINE) * CACHE_LINE


def ctl_words(max_consumers: int) -> int:
    return C_BASE + C_STRIDE * max_consumers


def offsets(capacity: int, record_size: int, max_consumers: int) -> tuple[int, int, int]:
    """(seqs offset, payload offset, total size) in bytes."""
    seqs_at = _align(8 * ctl_words(max_consumers))
    payload_at = _align(seqs_at + 8 * SEQ_STRIDE * capacity)
    return seqs_at, payload_at, payload_at + capacity * record_size
