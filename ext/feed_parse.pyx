# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The feed's hot path in C: a combined-stream bookTicker frame straight into an MD_EVENT slot.

bookTicker is the most frequent message (every change of a best level) and has a fixed, flat
shape, so it is parsed here without building any Python object but the stream name:

    {"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"25.35190000",
     "B":"31.21000000","a":"25.36520000","A":"40.66000000"}}

Anything else, or anything unexpected in such a frame (whitespace, escapes, a missing field, a
negative or huge number), returns ``NOT_HANDLED`` and goes to the general Python path, which
validates everything and counts errors: this parser only ever accepts what that path would
accept, and produces exactly the same floats (a decimal with a mantissa below 2**53 and at most
22 fraction digits is exactly ``mantissa / 10**frac``, which IEEE division rounds correctly, like
``float(str)`` does).

    stage = MdStage(batch.records)               # slot cursor + seq shared with MdBatch
    fast = BookTickerPath(stage, routes, last_u, book_id, stale, batch.flush, flush_every=32)
    code = fast.handle(frame, recv_ts_ns, recv_mono_ns)    # WRITTEN, DUPLICATE, OUTDATED, NOT_HANDLED
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memchr, memcmp, memset

cdef extern from "records.h":
    ctypedef struct ct_md_event:
        int32_t symbol_id
        uint8_t kind
        uint8_t flags
        uint8_t n_bids
        uint8_t n_asks
        int64_t seq
        int64_t exch_ts_ns
        int64_t recv_ts_ns
        int64_t recv_mono_ns
        int64_t first_update_id
        int64_t last_update_id
        double trade_px
        double trade_qty
        double bid_px[10]
        double bid_qty[10]
        double ask_px[10]
        double ask_qty[10]

NOT_HANDLED = 0
WRITTEN = 1
DUPLICATE = 2
OUTDATED = 3

cdef int KIND_BOOK_TICKER = 1
cdef double[23] POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                         1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]
cdef uint64_t MAX_EXACT = 1ULL << 53


cdef class MdStage:
    """The staging array's cursor: ``n`` records filled, ``seq`` the last sequence number used."""
    cdef public int64_t n
    cdef public int64_t seq
    cdef public int64_t capacity
    cdef public int64_t latency_count      # records whose receive-to-ring latency was sampled
    cdef ct_md_event* base
    cdef object records            # keeps the numpy array alive
    cdef int64_t[::1] latency      # circular buffer of the latest latencies (power-of-two size)

    def __init__(self, records, latency=None):
        cdef unsigned char[::1] raw = records.view("u1").reshape(-1)
        if records.dtype.itemsize != sizeof(ct_md_event):
            raise ValueError("records are not MD_EVENT")
        self.records = records
        self.base = <ct_md_event*> &raw[0]
        self.capacity = len(records)
        self.n = 0
        self.seq = 0
        self.latency_count = 0
        if latency is not None:
            if len(latency) & (len(latency) - 1):
                raise ValueError("the latency buffer needs a power-of-two length")
            self.latency = latency

    cpdef int64_t finish(self, int64_t now_mono):
        """After the staged records were written: sample ``now - recv_mono_ns`` of each, zero
        the used slots (a reused slot must not show fields of an older record), reset ``n``."""
        cdef int64_t i, n = self.n, mask
        if self.latency is not None:
            mask = self.latency.shape[0] - 1
            for i in range(n):
                self.latency[(self.latency_count + i) & mask] = now_mono - self.base[i].recv_mono_ns
            self.latency_count += n
        memset(self.base, 0, n * sizeof(ct_md_event))
        self.n = 0
        return n

    cpdef int64_t claim(self):
        """Index of a fresh slot with its seq set, or -1 when the stage is full (flush first)."""
        cdef int64_t i = self.n
        if i >= self.capacity:
            return -1
        self.n = i + 1
        self.seq += 1
        self.base[i].seq = self.seq
        return i


    cpdef int64_t put(self, int kind, int32_t sid, int flags, int64_t exch_ts_ns, int64_t recv_ts,
                      int64_t recv_mono, int64_t first_id, int64_t last_id):
        """Claim a slot and fill the fields every record has; -1 when full (flush first)."""
        cdef int64_t i = self.claim()
        cdef ct_md_event* rec
        if i < 0:
            return -1
        rec = self.base + i
        rec.kind = <uint8_t> kind
        rec.symbol_id = sid
        rec.flags = <uint8_t> flags
        rec.exch_ts_ns = exch_ts_ns
        rec.recv_ts_ns = recv_ts
        rec.recv_mono_ns = recv_mono
        rec.first_update_id = first_id
        rec.last_update_id = last_id
        return i

    cpdef void set_trade(self, int64_t i, double price, double qty):
        self.base[i].trade_px = price
        self.base[i].trade_qty = qty

    cpdef void set_top(self, int64_t i, double bid, double bid_qty, double ask, double ask_qty):
        cdef ct_md_event* rec = self.base + i
        rec.bid_px[0] = bid
        rec.bid_qty[0] = bid_qty
        rec.ask_px[0] = ask
        rec.ask_qty[0] = ask_qty
        rec.n_bids = 1
        rec.n_asks = 1

    cpdef void set_counts(self, int64_t i, int n_bids, int n_asks):
        self.base[i].n_bids = <uint8_t> n_bids
        self.base[i].n_asks = <uint8_t> n_asks


cdef inline const char* parse_decimal(const char* p, const char* end, double* out) noexcept nogil:
    """``123.4500`` up to the closing quote; NULL if it is not a plain non-negative decimal."""
    cdef uint64_t mant = 0
    cdef int frac = -1, digits = 0
    cdef char c
    while p < end:
        c = p[0]
        if c >= 48 and c <= 57:
            if mant >= 100000000000000000ULL:
                return NULL                 # 18+ significant digits: leave it to Python
            mant = mant * 10 + <uint64_t>(c - 48)
            digits += 1
            if frac >= 0:
                frac += 1
        elif c == 46 and frac < 0:          # '.'
            frac = 0
        elif c == 34:                       # closing '"'
            if digits == 0 or mant >= MAX_EXACT or frac > 22:
                return NULL
            out[0] = <double> mant / POW10[frac if frac > 0 else 0]
            return p
        else:
            return NULL
        p += 1
    return NULL


cdef class BookTickerPath:
    cdef MdStage stage
    cdef dict routes               # stream name (bytes) -> symbol id, bookTicker streams only
    cdef int64_t[::1] last_u       # last bookTicker u per symbol (duplicates)
    cdef int64_t[::1] book_id      # depth book's update id per symbol, -1 when not in sync
    cdef uint8_t[::1] stale        # flags to set on every record of the symbol (MdFlag.STALE or 0)
    cdef object flush
    cdef int64_t flush_every
    cdef public int64_t messages
    cdef public int64_t bytes
    cdef public int64_t duplicates
    cdef public int64_t outdated

    def __init__(self, MdStage stage, dict routes, int64_t[::1] last_u, int64_t[::1] book_id,
                 uint8_t[::1] stale, flush, int64_t flush_every=32):
        self.stage = stage
        self.flush_every = flush_every
        self.routes = routes
        self.last_u = last_u
        self.book_id = book_id
        self.stale = stale
        self.flush = flush
        self.messages = 0
        self.bytes = 0
        self.duplicates = 0
        self.outdated = 0

    def handle(self, bytes frame, int64_t recv_ts, int64_t recv_mono):
        cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
        cdef const char* s = PyBytes_AS_STRING(frame)
        cdef const char* end = s + size
        cdef const char* q
        cdef const char* p
        cdef Py_ssize_t name_len
        cdef PyObject* found
        cdef int seen = 0
        cdef char key
        cdef int64_t u = 0, i
        cdef int nd
        cdef double vals[4]
        cdef int slot
        cdef ct_md_event* rec
        cdef int32_t sid
        if size < 40 or memcmp(s, b'{"stream":"', 11) != 0:
            return 0
        q = <const char*> memchr(s + 11, 34, size - 11)
        if q == NULL:
            return 0
        name_len = q - (s + 11)
        if name_len <= 11 or memcmp(q - 11, b"@bookTicker", 11) != 0:
            return 0
        if end - q < 12 or memcmp(q + 1, b',"data":{', 9) != 0:
            return 0
        found = PyDict_GetItem(self.routes, PyBytes_FromStringAndSize(s + 11, name_len))
        if found == NULL:
            return 0
        sid = <object> found
        p = q + 10
        # members: "k":value, ...}
        while True:
            if p + 4 > end or p[0] != 34 or p[2] != 34 or p[3] != 58:    # '"k":' (one-letter keys)
                return 0
            key = p[1]
            p += 4
            if p >= end:
                return 0
            if key == 117:                  # 'u': a non-negative integer
                nd = 0
                u = 0
                while p < end and p[0] >= 48 and p[0] <= 57:
                    if nd >= 18:
                        return 0
                    u = u * 10 + (p[0] - 48)
                    nd += 1
                    p += 1
                if nd == 0:
                    return 0
                seen |= 1
            elif p[0] == 34:                # a string value
                slot = -1
                if key == 98:               # 'b'
                    slot = 0
                elif key == 66:             # 'B'
                    slot = 1
                elif key == 97:             # 'a'
                    slot = 2
                elif key == 65:             # 'A'
                    slot = 3
                if slot >= 0:
                    p = parse_decimal(p + 1, end, &vals[slot])
                    if p == NULL:
                        return 0
                    seen |= 2 << slot
                else:
                    q = <const char*> memchr(p + 1, 34, end - p - 1)
                    if q == NULL or memchr(p + 1, 92, q - p - 1) != NULL:   # no escapes here
                        return 0
                    p = q
                p += 1
            else:
                return 0
            if p >= end:
                return 0
            if p[0] == 44:                  # ','
                p += 1
                continue
            if p[0] == 125 and p + 2 == end and p[1] == 125:    # '}}' and nothing after
                break
            return 0
        if seen != 31:
            return 0
        self.messages += 1
        self.bytes += size
        if u <= self.last_u[sid]:
            self.duplicates += 1
            return 2
        self.last_u[sid] = u
        if u <= self.book_id[sid]:
            self.outdated += 1              # the depth book is already newer
            return 3
        i = self.stage.claim()
        if i < 0:
            self.flush()
            i = self.stage.claim()
        rec = self.stage.base + i
        rec.symbol_id = sid
        rec.kind = KIND_BOOK_TICKER
        rec.flags = self.stale[sid]
        rec.n_bids = 1
        rec.n_asks = 1
        rec.exch_ts_ns = 0
        rec.recv_ts_ns = recv_ts
        rec.recv_mono_ns = recv_mono
        rec.first_update_id = u
        rec.last_update_id = u
        rec.bid_px[0] = vals[0]
        rec.bid_qty[0] = vals[1]
        rec.ask_px[0] = vals[2]
        rec.ask_qty[0] = vals[3]
        if self.stage.n >= self.flush_every:
            self.flush()                    # a long burst in one socket read: write what we have
        return 1


# --- depth helpers: level strings -> floats, book top -> record -------------------------------------

from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromDouble
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE


cdef inline bint decimal_of(str text, double* out):
    """A whole string that is a plain non-negative decimal -> its exact float (as ``float(text)``)."""
    cdef Py_ssize_t size
    cdef const char* s = PyUnicode_AsUTF8AndSize(text, &size)
    cdef uint64_t mant = 0
    cdef int frac = -1, digits = 0
    cdef Py_ssize_t k
    cdef char c
    for k in range(size):
        c = s[k]
        if c >= 48 and c <= 57:
            if mant >= 100000000000000000ULL:
                return False
            mant = mant * 10 + <uint64_t>(c - 48)
            digits += 1
            if frac >= 0:
                frac += 1
        elif c == 46 and frac < 0:
            frac = 0
        else:
            return False
    if digits == 0 or mant >= MAX_EXACT or frac > 22:
        return False
    out[0] = <double> mant / POW10[frac if frac > 0 else 0]
    return True


def parse_levels_fast(levels):
    """``[["price", "qty"], ...]`` -> ``[(price, qty), ...]`` floats, or None when any level is not
    plain (then the Python parser decides, and raises for a bad one)."""
    cdef list out = []
    cdef double p = 0.0, q = 0.0
    cdef object pair
    if type(levels) is not list:
        return None
    for pair in <list> levels:
        if type(pair) is not list or PyList_GET_SIZE(pair) != 2:
            return None
        a = <object> PyList_GET_ITEM(pair, 0)
        b = <object> PyList_GET_ITEM(pair, 1)
        if type(a) is not str or type(b) is not str:
            return None
        if not decimal_of(a, &p) or not decimal_of(b, &q) or not p > 0.0:
            return None
        out.append((p, q))
    return out


def fill_levels(MdStage stage, int64_t i, bint bids, list keys, dict qty, double sign):
    """Write the first 10 levels of a book side (sorted ``keys``, ``qty[price]``) into record ``i``;
    returns how many."""
    cdef ct_md_event* rec = stage.base + i
    cdef double* px
    cdef double* qx
    if bids:
        px, qx = &rec.bid_px[0], &rec.bid_qty[0]
    else:
        px, qx = &rec.ask_px[0], &rec.ask_qty[0]
    cdef Py_ssize_t n = PyList_GET_SIZE(keys), k
    cdef double p
    if n > 10:
        n = 10
    for k in range(n):
        p = sign * PyFloat_AS_DOUBLE(<object> PyList_GET_ITEM(keys, k))
        px[k] = p
        qx[k] = PyFloat_AS_DOUBLE(qty[p])
    return n


from cpython.list cimport PyList_Insert
from cpython.dict cimport PyDict_SetItem, PyDict_DelItem, PyDict_Contains
from cpython.tuple cimport PyTuple_GET_ITEM


cdef inline Py_ssize_t bisect_left_d(list keys, double k):
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(keys), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if PyFloat_AS_DOUBLE(<object> PyList_GET_ITEM(keys, mid)) < k:
            lo = mid + 1
        else:
            hi = mid
    return lo


def apply_side(list keys, dict qty, double sign, list levels):
    """``BookSide.apply`` in C: set each (price, qty) level (validated floats), qty 0 removes it;
    ``keys`` stays sorted ascending (``sign * price``: bids negated, best first)."""
    cdef object level, price, q
    cdef double k
    cdef Py_ssize_t idx
    for level in levels:
        price = <object> PyTuple_GET_ITEM(level, 0)
        q = <object> PyTuple_GET_ITEM(level, 1)
        if PyFloat_AS_DOUBLE(q) > 0.0:
            if not PyDict_Contains(qty, price):
                k = sign * PyFloat_AS_DOUBLE(price)
                PyList_Insert(keys, bisect_left_d(keys, k), PyFloat_FromDouble(k))
            PyDict_SetItem(qty, price, q)
        elif PyDict_Contains(qty, price):
            PyDict_DelItem(qty, price)
            idx = bisect_left_d(keys, sign * PyFloat_AS_DOUBLE(price))
            del keys[idx]
