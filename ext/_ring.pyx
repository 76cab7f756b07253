# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The ring protocol for Python callers, in C.

Same layout (``ctrader/core/ring_layout.py``) and the same per-slot seqlock as the numba kernels
in ``ctrader/core/ring_numba.py``; read that module's docstring for the protocol. Shared words are
only touched through ``__atomic_*`` builtins so the C compiler can neither cache nor reorder
them. Waiting releases the GIL. The doorbell (wait kind BLOCK: producers wake consumers that
sleep on a futex) follows ``ring_numba``'s protocol too.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyObject_GetBuffer, PyBuffer_Release
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

from ctrader.core import ring_layout as L

cdef extern from *:
    """
    #include <sched.h>
    #include <time.h>
    #include <unistd.h>
    #include <limits.h>
    #include <sys/syscall.h>
    #if defined(__linux__) && defined(SYS_futex)
    #include <linux/futex.h>
    /* FUTEX_WAIT / FUTEX_WAKE, not the _PRIVATE ops: the word lives in shared memory. The word is
       the low 32 bits of a uint64 ring word (little-endian). */
    static inline void ct_futex_wait(uint64_t *p, uint64_t expected, int64_t timeout_ns) {
        struct timespec ts = { timeout_ns / 1000000000LL, timeout_ns % 1000000000LL };
        syscall(SYS_futex, (uint32_t *)p, FUTEX_WAIT, (uint32_t)expected, &ts, NULL, 0);
    }
    static inline void ct_futex_wake(uint64_t *p) { syscall(SYS_futex, (uint32_t *)p, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }
    #else
    static inline void ct_futex_wait(uint64_t *p, uint64_t expected, int64_t timeout_ns) { usleep(50); }
    static inline void ct_futex_wake(uint64_t *p) { }
    #endif
    static inline uint64_t ct_fetch_add(uint64_t *p, int64_t d) { return __atomic_fetch_add(p, (uint64_t)d, __ATOMIC_SEQ_CST); }
    static inline void ct_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    static inline uint64_t ct_load_acquire(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline void ct_store_release(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void ct_store_relaxed(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline void ct_fence_acquire(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }
    static inline void ct_fence_release(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
    static inline void ct_pause(void) { __builtin_ia32_pause(); }
    static inline int64_t ct_monotonic_ns(void) {
        struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    }
    """
    uint64_t ct_load_acquire(const uint64_t *p) nogil
    void ct_store_release(uint64_t *p, uint64_t v) nogil
    void ct_store_relaxed(uint64_t *p, uint64_t v) nogil
    void ct_fence_acquire() nogil
    void ct_fence_release() nogil
    void ct_pause() nogil
    int64_t ct_monotonic_ns() nogil
    void ct_futex_wait(uint64_t *p, uint64_t expected, int64_t timeout_ns) nogil
    void ct_futex_wake(uint64_t *p) nogil
    uint64_t ct_fetch_add(uint64_t *p, int64_t d) nogil
    void ct_fence_seq_cst() nogil
    int sched_yield() nogil
    int usleep(unsigned int usec) nogil

# Layout constants, read once from the single Python definition.
cdef int64_t H_KIND = L.H_KIND, H_CAPACITY = L.H_CAPACITY, H_HEAD = L.H_HEAD
cdef int64_t H_MAX_CONSUMERS = L.H_MAX_CONSUMERS, H_PRODUCER_WAITS = L.H_PRODUCER_WAITS
cdef int64_t C_BASE = L.C_BASE, C_STRIDE = L.C_STRIDE, C_CURSOR = L.C_CURSOR, C_ACTIVE = L.C_ACTIVE
cdef int64_t C_OVERRUNS = L.C_OVERRUNS, C_LOST = L.C_LOST, C_TORN = L.C_TORN, C_SLEEPING = L.C_SLEEPING
cdef uint64_t BROADCAST = L.BROADCAST
cdef int64_t SEQ_STRIDE = L.SEQ_STRIDE
cdef int64_t H_WAITERS = L.H_WAITERS, H_BELL = L.H_BELL, H_BELL_RINGS = L.H_BELL_RINGS
cdef int64_t H_ANNOUNCES = L.H_ANNOUNCES, ANNOUNCE_SPIN_NS = L.ANNOUNCE_SPIN_NS
from ctrader.core import wait as W
cdef int SPIN = W.SPIN, SPIN_YIELD = W.SPIN_YIELD, BLOCK = W.BLOCK
cdef int64_t SLEEP_MAX_US = W.SLEEP_MAX_US
cdef int CLOCK_EVERY = 64
cdef int64_t BLOCK_MAX_NS = 20000000     # longest single sleep on the doorbell


cdef inline void wait_once(int kind, int64_t param, int64_t attempt) noexcept nogil:
    """Same as ``ctrader.core.wait.wait_once`` (no doorbell)."""
    cdef int64_t delay, cap
    if kind == SPIN or ((kind == SPIN_YIELD or kind == BLOCK) and attempt < param):
        ct_pause()
    elif kind == SPIN_YIELD:
        sched_yield()
    else:
        if kind == BLOCK:
            attempt -= param
            cap = SLEEP_MAX_US
        else:
            cap = param if param > 0 else 1
        delay = 1 << (attempt if attempt < 20 else 20)
        usleep(<unsigned int>(delay if delay < cap else cap))


cdef class RingCore:
    """Raw access to one ring segment; ``ctrader.core.ring`` wraps it in Producer/Consumer."""
    cdef uint64_t *ctl
    cdef uint64_t *seqs
    cdef char *payload
    cdef int64_t record_size, capacity, mask
    cdef int64_t cached_min          # producer: slowest consumer's cursor, last time we looked
    cdef Py_buffer view              # held while we live: the mapping cannot be closed under us
    cdef bint has_view

    def __cinit__(self, object buffer, int64_t seqs_offset, int64_t payload_offset):
        PyObject_GetBuffer(buffer, &self.view, PyBUF_WRITABLE)
        self.has_view = True
        self.ctl = <uint64_t *>self.view.buf
        self.seqs = <uint64_t *>(<char *>self.view.buf + seqs_offset)
        self.payload = <char *>self.view.buf + payload_offset
        self.record_size = <int64_t>self.ctl[L.H_RECORD_SIZE]
        self.capacity = <int64_t>self.ctl[H_CAPACITY]
        self.mask = self.capacity - 1
        self.cached_min = 0

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)

    # --- producer ------------------------------------------------------------------------------

    cdef inline void _put(self, const char *src, int64_t seq) noexcept nogil:
        cdef int64_t idx = seq & self.mask
        ct_store_relaxed(&self.seqs[idx * SEQ_STRIDE], 0)           # "being written"
        ct_fence_release()
        memcpy(self.payload + idx * self.record_size, src, self.record_size)
        ct_store_release(&self.seqs[idx * SEQ_STRIDE], <uint64_t>(seq + 1))

    cdef int64_t _min_cursor(self, int64_t head) noexcept nogil:
        cdef int64_t lowest = head, cur, c, base
        for c in range(<int64_t>self.ctl[H_MAX_CONSUMERS]):
            base = C_BASE + c * C_STRIDE
            if ct_load_acquire(&self.ctl[base + C_ACTIVE]) != 0:
                cur = <int64_t>ct_load_acquire(&self.ctl[base + C_CURSOR])
                if cur < lowest:
                    lowest = cur
        return lowest

    cdef int64_t _room(self, int64_t head, int64_t want, int wait_kind, int64_t wait_param,
                       int64_t timeout_ns) noexcept nogil:
        cdef int64_t free_slots = self.capacity - (head - self.cached_min)
        cdef int64_t attempt = 0, deadline, enough
        if free_slots >= want:
            return want
        self.cached_min = self._min_cursor(head)
        free_slots = self.capacity - (head - self.cached_min)
        if free_slots > 0:
            return free_slots if free_slots < want else want
        self.ctl[H_PRODUCER_WAITS] += 1
        # Full: wait for a useful chunk, not one slot (see ring_numba._room).
        enough = want if want < (self.capacity >> 3) else (self.capacity >> 3)
        if enough < 1:
            enough = 1
        deadline = ct_monotonic_ns() + timeout_ns
        while True:
            wait_once(wait_kind, wait_param, attempt)
            attempt += 1
            self.cached_min = self._min_cursor(head)
            free_slots = self.capacity - (head - self.cached_min)
            if free_slots >= enough:
                return free_slots if free_slots < want else want
            if attempt % CLOCK_EVERY == 0 and ct_monotonic_ns() > deadline:
                return 0

    cdef int64_t _write(self, const char *src, int64_t n, int wait_kind, int64_t wait_param,
                        int64_t timeout_ns) noexcept nogil:
        cdef int64_t head = <int64_t>self.ctl[H_HEAD], done = 0, chunk, k
        cdef bint lossless = self.ctl[H_KIND] != BROADCAST
        while done < n:
            chunk = n - done
            if lossless:
                chunk = self._room(head, chunk, wait_kind, wait_param, timeout_ns)
                if chunk == 0:
                    break
            for k in range(chunk):
                self._put(src + (done + k) * self.record_size, head)
                head += 1
            ct_store_release(&self.ctl[H_HEAD], <uint64_t>head)
            self._ring_bell()
            done += chunk
        return done

    cdef inline void _ring_bell(self) noexcept nogil:
        ct_fence_seq_cst()                  # head and slots visible before we look for sleepers
        if ct_load_acquire(&self.ctl[H_WAITERS]) != 0:
            ct_fetch_add(&self.ctl[H_BELL], 1)
            self.ctl[H_BELL_RINGS] += 1
            ct_futex_wake(&self.ctl[H_BELL])

    def announce(self):
        """Ring the bell without publishing: sleepers wake now and spin for the records about
        to come (``ring_layout.ANNOUNCE_SPIN_NS``). A full fence and a load when nobody sleeps."""
        with nogil:
            self.ctl[H_ANNOUNCES] += 1
            self._ring_bell()

    def write(self, object records, int wait_kind, int64_t wait_param, int64_t timeout_ns):
        """Publish the records in a contiguous buffer (bytes, numpy record or array).

        Returns how many were written: fewer than given only when a lossless ring stayed full
        for ``timeout_ns``.
        """
        cdef Py_buffer view
        cdef int64_t n, done
        PyObject_GetBuffer(records, &view, PyBUF_SIMPLE)
        try:
            if view.len % self.record_size != 0:
                raise ValueError(f"buffer of {view.len} bytes is not a whole number of "
                                 f"{self.record_size}-byte records")
            n = view.len // self.record_size
            with nogil:
                done = self._write(<const char *>view.buf, n, wait_kind, wait_param, timeout_ns)
        finally:
            PyBuffer_Release(&view)
        return done

    # --- consumer ------------------------------------------------------------------------------

    cdef int64_t _skip_overrun(self, int64_t base, int64_t cursor, bint torn) noexcept nogil:
        cdef int64_t head = <int64_t>ct_load_acquire(&self.ctl[H_HEAD])
        cdef int64_t target = head - self.capacity + (self.capacity >> 2) if head > self.capacity else cursor + 1
        if target <= cursor:
            target = cursor + 1
        self.ctl[base + C_OVERRUNS] += 1
        self.ctl[base + C_LOST] += <uint64_t>(target - cursor)
        if torn:
            self.ctl[base + C_TORN] += 1
        return target

    cdef int64_t _read(self, int64_t consumer, char *out, int64_t limit, bint publish) noexcept nogil:
        cdef int64_t base = C_BASE + consumer * C_STRIDE
        cdef int64_t cursor = <int64_t>self.ctl[base + C_CURSOR], start = cursor
        cdef int64_t n = 0, idx
        cdef uint64_t got
        while n < limit:
            idx = cursor & self.mask
            got = ct_load_acquire(&self.seqs[idx * SEQ_STRIDE])
            if got == <uint64_t>(cursor + 1):
                memcpy(out + n * self.record_size, self.payload + idx * self.record_size, self.record_size)
                ct_fence_acquire()
                if ct_load_acquire(&self.seqs[idx * SEQ_STRIDE]) == got:
                    n += 1
                    cursor += 1
                else:
                    cursor = self._skip_overrun(base, cursor, True)
            elif got > <uint64_t>(cursor + 1):
                cursor = self._skip_overrun(base, cursor, False)
            else:
                break
        if publish and cursor != start:
            ct_store_release(&self.ctl[base + C_CURSOR], <uint64_t>cursor)
        return n

    cdef int64_t _read_block(self, int64_t consumer, char *out, int64_t limit, bint publish,
                             int64_t deadline) noexcept nogil:
        """Sleep on the doorbell until a publish (or ``deadline``), then read (ring_numba.read_rows_block).
        Woken by a ring that brought nothing (an announce), spin for the records before returning."""
        cdef uint64_t bell = ct_load_acquire(&self.ctl[H_BELL])
        cdef uint64_t *sleeping = &self.ctl[C_BASE + consumer * C_STRIDE + C_SLEEPING]
        cdef int64_t n, left
        ct_fetch_add(&self.ctl[H_WAITERS], 1)       # a full barrier: registered before the re-check
        ct_store_release(sleeping, 1)
        n = self._read(consumer, out, limit, publish)
        if n == 0:
            left = deadline - ct_monotonic_ns()
            if left > 0:
                ct_futex_wait(&self.ctl[H_BELL], bell, left if left < BLOCK_MAX_NS else BLOCK_MAX_NS)
        ct_store_release(sleeping, 0)
        ct_fetch_add(&self.ctl[H_WAITERS], -1)
        if n == 0:
            n = self._read(consumer, out, limit, publish)
            if n == 0 and ct_load_acquire(&self.ctl[H_BELL]) != bell:
                n = self._spin_read(consumer, out, limit, publish, deadline)
        return n

    cdef int64_t _spin_read(self, int64_t consumer, char *out, int64_t limit, bint publish,
                            int64_t deadline) noexcept nogil:
        """Poll for up to ANNOUNCE_SPIN_NS (never past ``deadline``): records were announced."""
        cdef int64_t n = 0, spins = 0
        cdef int64_t until = ct_monotonic_ns() + ANNOUNCE_SPIN_NS
        if until > deadline:
            until = deadline
        while True:
            ct_pause()
            n = self._read(consumer, out, limit, publish)
            if n > 0:
                return n
            spins += 1
            if spins % CLOCK_EVERY == 0 and ct_monotonic_ns() > until:
                return 0

    def read(self, int64_t consumer, object out, int wait_kind, int64_t wait_param, int64_t timeout_ns,
             bint publish=True):
        """Copy available records into the writable buffer ``out`` (a numpy record array).

        Waits up to ``timeout_ns`` (with the GIL released) when nothing is available; 0 means
        do not wait. Returns the number of records copied. With ``publish`` false the cursor
        stays where it was until ``commit`` (lossless rings: handle, then release the slots).
        """
        cdef Py_buffer view
        cdef int64_t limit, n, attempt = 0, deadline
        PyObject_GetBuffer(out, &view, PyBUF_WRITABLE)
        try:
            limit = view.len // self.record_size
            with nogil:
                n = self._read(consumer, <char *>view.buf, limit, publish)
                if n == 0 and timeout_ns > 0 and limit > 0:
                    deadline = ct_monotonic_ns() + timeout_ns
                    while True:
                        if wait_kind == BLOCK and attempt >= wait_param:
                            n = self._read_block(consumer, <char *>view.buf, limit, publish, deadline)
                            attempt += 1
                            if n > 0 or ct_monotonic_ns() > deadline:
                                break
                            continue
                        wait_once(wait_kind, wait_param, attempt)
                        attempt += 1
                        n = self._read(consumer, <char *>view.buf, limit, publish)
                        if n > 0 or (attempt % CLOCK_EVERY == 0 and ct_monotonic_ns() > deadline):
                            break
        finally:
            PyBuffer_Release(&view)
        return n

    def forget_sleeper(self, int64_t consumer):
        """Take back the doorbell registration a dead consumer left in slot ``consumer`` (killed
        in its sleep). Returns whether there was one. Only for a slot nobody reads from now."""
        cdef uint64_t *sleeping = &self.ctl[C_BASE + consumer * C_STRIDE + C_SLEEPING]
        if ct_load_acquire(sleeping) == 0:
            return False
        ct_store_release(sleeping, 0)
        ct_fetch_add(&self.ctl[H_WAITERS], -1)
        return True

    def commit(self, int64_t consumer, int64_t n):
        """Advance ``consumer``'s cursor by ``n`` records read with ``publish=False``."""
        cdef uint64_t *cursor = &self.ctl[C_BASE + consumer * C_STRIDE + C_CURSOR]
        ct_store_release(cursor, cursor[0] + <uint64_t>n)

    def head(self):
        return ct_load_acquire(&self.ctl[H_HEAD])
