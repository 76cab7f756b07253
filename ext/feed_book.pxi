# Included by feed_parse.pyx: the local order book in C, shared by the C frame path and BookSync.
#
# Each side keeps its levels in one C array sorted by key, ascending, where key = price for bids
# and -price for asks: the best level is the LAST entry, so the busy end of the book (inserts and
# deletes near the touch) moves few entries, and the top N levels are the last N read backwards.
# A level is identified by the float of its price string (equal strings give equal floats).

from cpython.float cimport PyFloat_AsDouble
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.math cimport NAN
from libc.stdlib cimport qsort
from libc.string cimport memmove


class BadLevel(ValueError):
    """A price level that is not ``[price, qty]`` decimal strings with price > 0 (or a side that
    is not a list of them, or a snapshot side that names one price twice)."""


# LocalBook.apply_diff outcomes (the book changes only on APPLIED and CROSSED)
STEP_APPLIED = 1       # the book moved to the event's u
STEP_IGNORED = 2       # u <= the book's update id: older than the book, or the same update again
STEP_GAP = 3           # U > the book's update id + 1: updates were missed; nothing applied
STEP_CROSSED = 4       # applied, and now best bid >= best ask: the book cannot be right

cdef int _APPLIED = 1, _IGNORED = 2, _GAP = 3, _CROSSED = 4

ctypedef struct level_t:
    double key          # price for bids, -price for asks
    double qty


ctypedef struct keyed_level_t:      # for sorting a snapshot: position breaks ties (duplicates)
    double key
    double qty
    Py_ssize_t pos


cdef int level_of(object level, double* price, double* qty) except -1:
    """A validated level: a (price, qty) tuple of numbers, price > 0, qty >= 0, both finite (the
    book's order relies on it: a NaN key would break it)."""
    if type(level) is not tuple or PyTuple_GET_SIZE(level) != 2:
        raise TypeError(f"a level is a (price, qty) tuple, not {level!r}")
    price[0] = PyFloat_AsDouble(<object> PyTuple_GET_ITEM(level, 0))
    qty[0] = PyFloat_AsDouble(<object> PyTuple_GET_ITEM(level, 1))
    if not (price[0] > 0.0 and qty[0] >= 0.0) or price[0] == INFINITY or qty[0] == INFINITY:
        raise BadLevel(f"bad level {level!r}")
    return 0


cdef int _cmp_keyed(const void* a, const void* b) noexcept nogil:
    cdef const keyed_level_t* x = <const keyed_level_t*> a
    cdef const keyed_level_t* y = <const keyed_level_t*> b
    if x.key < y.key:
        return -1
    if x.key > y.key:
        return 1
    return (x.pos > y.pos) - (x.pos < y.pos)


cdef class BookSide:
    """One side of a book; ``levels()`` / ``best()`` / ``top()`` read it best first."""
    cdef level_t* lv
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef readonly double sign          # key = sign * price

    def __cinit__(self, bint is_bid):
        self.sign = 1.0 if is_bid else -1.0
        self.cap = 64
        self.n = 0
        self.lv = <level_t*> PyMem_Malloc(self.cap * sizeof(level_t))
        if self.lv == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.lv)

    cdef int reserve(self, Py_ssize_t want) except -1:
        cdef Py_ssize_t cap = self.cap
        cdef level_t* grown
        if want <= cap:
            return 0
        while cap < want:
            cap *= 2
        grown = <level_t*> PyMem_Realloc(self.lv, cap * sizeof(level_t))
        if grown == NULL:
            raise MemoryError()
        self.lv = grown
        self.cap = cap
        return 0

    cdef inline Py_ssize_t lower(self, double key) noexcept nogil:
        """Index of the first level with a key >= ``key``."""
        cdef Py_ssize_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.lv[mid].key < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef int set(self, double price, double qty) except -1:
        """Binance's update rule for one level: set its quantity; quantity 0 removes it."""
        cdef double key = self.sign * price
        cdef Py_ssize_t i = self.lower(key)
        cdef bint found = i < self.n and self.lv[i].key == key
        if qty > 0.0:
            if found:
                self.lv[i].qty = qty
                return 0
            if self.n == self.cap:
                self.reserve(self.n + 1)
            memmove(self.lv + i + 1, self.lv + i, (self.n - i) * sizeof(level_t))
            self.lv[i].key = key
            self.lv[i].qty = qty
            self.n += 1
        elif found:
            memmove(self.lv + i, self.lv + i + 1, (self.n - i - 1) * sizeof(level_t))
            self.n -= 1
        return 0

    cdef int apply_list(self, list levels) except -1:
        """``[(price, qty), ...]`` floats (``parse.levels`` / ``parse_levels``), in order."""
        cdef object level
        cdef double price = 0.0, qty = 0.0
        for level in levels:
            level_of(level, &price, &qty)
            self.set(price, qty)
        return 0

    cdef int replace_list(self, list levels) except -1:
        """The side becomes exactly these levels (validated floats); zero quantities are left out.
        A price named twice raises BadLevel and leaves the side unchanged."""
        cdef Py_ssize_t m = len(levels), k, out = 0
        cdef keyed_level_t* tmp = <keyed_level_t*> PyMem_Malloc((m if m else 1) * sizeof(keyed_level_t))
        if tmp == NULL:
            raise MemoryError()
        try:
            for k in range(m):
                level_of(levels[k], &tmp[k].key, &tmp[k].qty)
                tmp[k].key *= self.sign
                tmp[k].pos = k
            qsort(tmp, m, sizeof(keyed_level_t), _cmp_keyed)
            for k in range(1, m):
                if tmp[k].key == tmp[k - 1].key:
                    raise BadLevel(f"price {self.sign * tmp[k].key!r} appears twice in one side of a snapshot")
            self.reserve(m)
            for k in range(m):
                if tmp[k].qty > 0.0:
                    self.lv[out].key = tmp[k].key
                    self.lv[out].qty = tmp[k].qty
                    out += 1
            self.n = out
        finally:
            PyMem_Free(tmp)
        return 0

    cdef inline int copy_top(self, double* px, double* qty, int depth) noexcept nogil:
        """The best ``depth`` levels (fewer if the side is shorter) into ``px`` / ``qty``."""
        cdef int k, n = depth if self.n > depth else <int> self.n
        cdef level_t* at
        for k in range(n):
            at = self.lv + (self.n - 1 - k)
            px[k] = self.sign * at.key
            qty[k] = at.qty
        return n

    def __len__(self):
        return self.n

    def clear(self):
        self.n = 0

    def best(self):
        """The best price, NaN when the side is empty."""
        return self.sign * self.lv[self.n - 1].key if self.n else NAN

    def levels(self, n=None):
        """``[(price, qty), ...]`` best first (all levels, or the best ``n``)."""
        cdef Py_ssize_t k, count = self.n if n is None else min(<Py_ssize_t> n, self.n)
        return [(self.sign * self.lv[self.n - 1 - k].key, self.lv[self.n - 1 - k].qty) for k in range(count)]

    def top(self, double[::1] px_out, double[::1] qty_out):
        """Write up to ``len(px_out)`` levels best first into float64 arrays; returns how many."""
        cdef int depth = <int> min(px_out.shape[0], qty_out.shape[0])
        if depth == 0:
            return 0
        return self.copy_top(&px_out[0], &qty_out[0], depth)


cdef class LocalBook:
    """A symbol's book and the update id it stands at (``BookSync`` decides when it is in sync).

        book = LocalBook()
        book.replace([(100.5, 2.0)], [(100.6, 1.0)])           # validated floats (parse_levels)
        book.update_id, book.synced = 41, True
        book.apply_diff(42, 43, exch_ms, [(100.5, 0.0)], [])     # -> STEP_APPLIED
        book.best_bid(), book.best_ask(), book.bids.levels(10)
    """
    cdef readonly BookSide bids
    cdef readonly BookSide asks
    cdef public int64_t update_id      # the last update applied (the snapshot's lastUpdateId, then each u)
    cdef public int64_t last_exch_ms   # E of that update
    cdef public bint synced            # False: not to be updated from diffs (BookSync is rebuilding it)

    def __cinit__(self):
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.update_id = 0
        self.last_exch_ms = 0
        self.synced = False

    def clear(self):
        self.bids.n = 0
        self.asks.n = 0

    def replace(self, list bids, list asks):
        """Become a snapshot (validated floats); BadLevel (book unchanged) if a price repeats."""
        cdef BookSide fresh_bids = BookSide(True), fresh_asks = BookSide(False)
        fresh_bids.replace_list(bids)
        fresh_asks.replace_list(asks)
        self.bids, self.asks = fresh_bids, fresh_asks

    def apply(self, list bids, list asks):
        """Set each level's quantity (validated floats), 0 removes it; no update-id rule."""
        self.bids.apply_list(bids)
        self.asks.apply_list(asks)

    cdef inline int diff_step(self, int64_t first_id, int64_t last_id) noexcept nogil:
        """Binance's rule for an event of a book in sync: ignore, gap, or apply."""
        if last_id <= self.update_id:
            return _IGNORED
        if first_id - 1 > self.update_id:
            return _GAP
        return _APPLIED

    cdef inline int applied(self, int64_t last_id, int64_t exch_ms) noexcept nogil:
        self.update_id = last_id
        self.last_exch_ms = exch_ms
        return _CROSSED if self.is_crossed() else _APPLIED

    def apply_diff(self, int64_t first_id, int64_t last_id, int64_t exch_ms, list bids, list asks):
        """A diff event (U, u, E, validated levels) on a book in sync -> a STEP_* outcome."""
        cdef int step = self.diff_step(first_id, last_id)
        if step != _APPLIED:
            return step
        self.bids.apply_list(bids)
        self.asks.apply_list(asks)
        return self.applied(last_id, exch_ms)

    cdef inline bint is_crossed(self) noexcept nogil:
        return (self.bids.n > 0 and self.asks.n > 0
                and self.bids.lv[self.bids.n - 1].key >= -self.asks.lv[self.asks.n - 1].key)

    def crossed(self):
        """Best bid at or above best ask: the book cannot be right (a missed update)."""
        return self.is_crossed()

    def best_bid(self):
        return self.bids.best()

    def best_ask(self):
        return self.asks.best()

    cdef inline void fill(self, ct_md_event* rec) noexcept nogil:
        """The top CT_BOOK_DEPTH levels of each side into a record."""
        rec.n_bids = <uint8_t> self.bids.copy_top(&rec.bid_px[0], &rec.bid_qty[0], CT_BOOK_DEPTH)
        rec.n_asks = <uint8_t> self.asks.copy_top(&rec.ask_px[0], &rec.ask_qty[0], CT_BOOK_DEPTH)


def parse_levels(levels):
    """``[["price", "qty"], ...]`` -> ``[(price, qty), ...]`` floats, by the grammar of
    ``ctrader.feed.parse.levels`` (the same checks, in C: snapshots may hold thousands of levels).
    Raises BadLevel for anything else."""
    cdef list out
    cdef object pair, a, b
    cdef double p = 0.0, q = 0.0
    if type(levels) is not list:
        raise BadLevel(f"levels are not a list: {type(levels).__name__}")
    out = []
    for pair in <list> levels:
        if type(pair) is not list or PyList_GET_SIZE(pair) != 2:
            raise BadLevel(f"a level is not a [price, qty] pair: {pair!r}")
        a = <object> PyList_GET_ITEM(pair, 0)
        b = <object> PyList_GET_ITEM(pair, 1)
        if (type(a) is not str or type(b) is not str or not decimal_of_str(a, &p) or not decimal_of_str(b, &q)
                or not p > 0.0 or p == INFINITY or q == INFINITY):
            raise BadLevel(f"bad level {pair!r}")
        out.append((p, q))
    return out
