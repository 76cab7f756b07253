# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The feed's hot path in C: combined-stream frames straight into MD_EVENT slots.

bookTicker and depth-diff frames, the feed's traffic, are parsed here without building any
Python object but the stream name, and the depth diff is applied to the symbol's book (a C book,
``LocalBook``, that ``ctrader.feed.sync.BookSync`` keeps in sync):

    {"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"25.35190000",
     "B":"31.21000000","a":"25.36520000","A":"40.66000000"}}
    {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,"s":"BTCUSDT",
     "U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}

This path takes a frame only when it is sure: the exact compact form Binance sends, every value
by the grammar of ``ctrader.feed.parse`` (ext/feed_values.pxi), and for a diff, a book in sync
that the diff continues. Anything else -- whitespace, escapes, an unknown or repeated field, an
id too long for 18 digits, a book being rebuilt, a gap -- returns ``NOT_HANDLED`` before
anything changed, and the general Python path (orjson + ``ctrader.feed.parse``) decides, counts
what is malformed, and runs the rest of Binance's book-sync algorithm. So both paths give the
same records and counters for every frame; the tests check it byte for byte, on malformed frames
too.

    stage = MdStage(batch.records)               # slot cursor + seq shared with MdBatch
    fast = FramePath(stage, routes, names, books, last_u, book_id, stale, batch.flush, on_crossed)
    code = fast.handle(frame, recv_ts_ns, recv_mono_ns)   # WRITTEN, DUPLICATE, OUTDATED, WENT_STALE
                                                          # or NOT_HANDLED
Split over files: ext/feed_values.pxi (the value grammar), ext/feed_book.pxi (the book).
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.string cimport memchr, memcmp, memset

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object)

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
    int CT_BOOK_DEPTH
    int CT_MDKIND_BOOK_TICKER
    int CT_MDKIND_DEPTH

include "feed_values.pxi"
include "feed_book.pxi"

cdef enum:
    # FramePath.handle results
    _NOT_HANDLED = 0
    _WRITTEN = 1
    _DUPLICATE = 2     # bookTicker u already seen / diff older than the book: nothing written
    _OUTDATED = 3      # bookTicker older than the depth book: nothing written
    _WENT_STALE = 4    # the diff crossed the book: BookSync marked it stale (a STATUS record)
    # stream kinds in the routes (ctrader.feed.parse.BOOK_TICKER / DIFF)
    _ROUTE_BOOK_TICKER = 1
    _ROUTE_DIFF = 2

NOT_HANDLED, WRITTEN, DUPLICATE, OUTDATED, WENT_STALE = _NOT_HANDLED, _WRITTEN, _DUPLICATE, _OUTDATED, _WENT_STALE
ROUTE_BOOK_TICKER, ROUTE_DIFF = _ROUTE_BOOK_TICKER, _ROUTE_DIFF
cdef int64_t MAX_MS = 9223372036854       # E / T in ms: E * 10**6 ns must fit int64


cdef class MdStage:
    """The staging array's cursor: ``n`` records filled, ``seq`` the last sequence number used."""
    cdef public int64_t n
    cdef public int64_t seq
    cdef public int64_t capacity
    cdef public int64_t latency_count      # records whose receive-to-ring latency was sampled
    cdef ct_md_event* base
    cdef object records            # keeps the numpy array alive
    cdef int64_t[::1] latency      # circular buffer of the latest latencies (power-of-two size)
    cdef bint sampling             # a latency buffer was given

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
        self.sampling = latency is not None
        if latency is not None:
            if len(latency) & (len(latency) - 1):
                raise ValueError("the latency buffer needs a power-of-two length")
            self.latency = latency

    cpdef int64_t finish(self, int64_t now_mono):
        """After the staged records were written: sample ``now - recv_mono_ns`` of each, zero
        the used slots (a reused slot must not show fields of an older record), reset ``n``."""
        cdef int64_t i, n = self.n, mask
        if self.sampling:
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

    def set_book(self, int64_t i, LocalBook book):
        """The top levels of ``book`` into record ``i`` (DEPTH / SNAPSHOT records)."""
        book.fill(self.base + i)


ctypedef struct price_qty_t:
    double price
    double qty


ctypedef struct level_buf_t:       # one side of a diff as parsed, reused from frame to frame
    price_qty_t* lv
    Py_ssize_t n
    Py_ssize_t cap


cdef bint buf_push(level_buf_t* buf, double price, double qty) noexcept:
    cdef Py_ssize_t cap
    cdef price_qty_t* grown
    if buf.n == buf.cap:
        cap = buf.cap * 2 if buf.cap else 64
        grown = <price_qty_t*> PyMem_Realloc(buf.lv, cap * sizeof(price_qty_t))
        if grown == NULL:
            return False
        buf.lv = grown
        buf.cap = cap
    buf.lv[buf.n].price = price
    buf.lv[buf.n].qty = qty
    buf.n += 1
    return True


cdef const char* scan_levels(const char* p, const char* end, level_buf_t* buf) noexcept:
    """``[["price","qty"],...]`` (or ``[]``) into ``buf``; price > 0, both finite."""
    cdef double price = 0.0, qty = 0.0
    buf.n = 0
    if p >= end or p[0] != 91:                      # "["
        return NULL
    p += 1
    if p < end and p[0] == 93:                      # "]"
        return p + 1
    while True:
        if p >= end or p[0] != 91:
            return NULL
        p = scan_quoted_decimal(p + 1, end, &price)
        if p == NULL or p >= end or p[0] != 44:     # ","
            return NULL
        p = scan_quoted_decimal(p + 1, end, &qty)
        if p == NULL or p >= end or p[0] != 93:
            return NULL
        p += 1
        if not price > 0.0 or price == INFINITY or qty == INFINITY:
            return NULL
        if not buf_push(buf, price, qty):
            return NULL
        if p >= end:
            return NULL
        if p[0] == 44:
            p += 1
        elif p[0] == 93:
            return p + 1
        else:
            return NULL


cdef class FramePath:
    """bookTicker and depth-diff frames -> staged records; ``handle`` returns NOT_HANDLED for
    every frame it leaves to the Python path (see the module docstring)."""
    cdef MdStage stage
    cdef dict routes               # stream name (bytes) -> symbol id * 4 + ROUTE_BOOK_TICKER / ROUTE_DIFF
    cdef list names                # symbol id -> symbol name (bytes), as in the payload's "s"
    cdef list books                # symbol id -> its LocalBook (depth streams), else None
    cdef int64_t[::1] last_u       # last bookTicker u per symbol (duplicates)
    cdef int64_t[::1] book_id      # depth book's update id per symbol, -1 when not in sync
    cdef uint8_t[::1] stale        # flags to set on every record of the symbol (MdFlag.STALE or 0)
    cdef object flush              # write the staged records (MdBatch.flush)
    cdef object on_crossed         # on_crossed(sid, recv_ts, recv_mono): a diff crossed the book
    cdef int64_t flush_every
    cdef level_buf_t bid_levels
    cdef level_buf_t ask_levels
    cdef public int64_t messages   # frames taken here (the Python path counts the others)
    cdef public int64_t bytes
    cdef public int64_t duplicates
    cdef public int64_t outdated

    def __init__(self, MdStage stage, dict routes, list names, list books, int64_t[::1] last_u,
                 int64_t[::1] book_id, uint8_t[::1] stale, flush, on_crossed, int64_t flush_every=32):
        self.stage = stage
        self.routes = routes
        self.names = names
        self.books = books
        self.last_u = last_u
        self.book_id = book_id
        self.stale = stale
        self.flush = flush
        self.on_crossed = on_crossed
        self.flush_every = flush_every
        for name in names:
            if name is not None and type(name) is not bytes:
                raise TypeError("symbol names must be bytes")
        for book in books:
            if book is not None and not isinstance(book, LocalBook):
                raise TypeError("books must be LocalBook or None")
        self.messages = 0
        self.bytes = 0
        self.duplicates = 0
        self.outdated = 0

    def __dealloc__(self):
        PyMem_Free(self.bid_levels.lv)
        PyMem_Free(self.ask_levels.lv)

    def handle(self, bytes frame, int64_t recv_ts, int64_t recv_mono):
        cdef Py_ssize_t size = PyBytes_GET_SIZE(frame)
        cdef const char* s = PyBytes_AS_STRING(frame)
        cdef const char* end = s + size
        cdef const char* q
        cdef Py_ssize_t name_len
        cdef PyObject* found
        cdef int64_t route
        cdef int32_t sid
        cdef int code
        if size < 30 or memcmp(s, b'{"stream":"', 11) != 0:
            return 0
        q = <const char*> memchr(s + 11, 34, size - 11)
        if q == NULL or end - q < 12 or memcmp(q + 1, b',"data":{', 9) != 0:
            return 0
        name_len = q - (s + 11)
        found = PyDict_GetItem(self.routes, PyBytes_FromStringAndSize(s + 11, name_len))
        if found == NULL:
            return 0
        route = <object> found
        sid = <int32_t> (route >> 2)
        if route & 3 == _ROUTE_BOOK_TICKER:
            code = self.book_ticker(sid, q + 10, end, recv_ts, recv_mono)
        elif route & 3 == _ROUTE_DIFF:
            code = self.depth(sid, q + 10, end, recv_ts, recv_mono)
        else:
            return 0
        if code:
            self.messages += 1
            self.bytes += size
            if self.stage.n >= self.flush_every:
                self.flush()                # a long burst in one socket read: write what we have
        return code

    cdef inline const char* symbol_field(self, int32_t sid, const char* p, const char* end):
        cdef object name = <object> PyList_GET_ITEM(self.names, sid)
        return scan_exact_string(p, end, PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))

    cdef inline int book_ticker(self, int32_t sid, const char* p, const char* end, int64_t recv_ts,
                         int64_t recv_mono) except -1:
        """``"u":...,"s":...,"b":...,"B":...,"a":...,"A":...}}`` in any order, "s" optional."""
        cdef int seen = 0, bit
        cdef char key
        cdef int64_t u = 0, i
        cdef double vals[4]
        cdef ct_md_event* rec
        while True:
            if end - p < 4 or p[0] != 34 or p[2] != 34 or p[3] != 58:    # '"k":' (one-letter keys)
                return 0
            key = p[1]
            p += 4
            if key == 117:                  # 'u'
                bit = 1
                p = scan_uint(p, end, &u)
            elif key == 98:                 # 'b'
                bit = 2
                p = scan_quoted_decimal(p, end, &vals[0])
            elif key == 66:                 # 'B'
                bit = 4
                p = scan_quoted_decimal(p, end, &vals[1])
            elif key == 97:                 # 'a'
                bit = 8
                p = scan_quoted_decimal(p, end, &vals[2])
            elif key == 65:                 # 'A'
                bit = 16
                p = scan_quoted_decimal(p, end, &vals[3])
            elif key == 115:                # 's'
                bit = 32
                p = self.symbol_field(sid, p, end)
            else:
                return 0
            if p == NULL or seen & bit or p >= end:
                return 0
            seen |= bit
            if p[0] == 44:                  # ','
                p += 1
                continue
            if p[0] == 125 and p + 2 == end and p[1] == 125:    # '}}' and nothing after
                break
            return 0
        if seen & 31 != 31 or vals[0] == INFINITY or vals[1] == INFINITY or vals[2] == INFINITY \
                or vals[3] == INFINITY:
            return 0
        if u <= self.last_u[sid]:
            self.duplicates += 1
            return _DUPLICATE
        self.last_u[sid] = u
        if u <= self.book_id[sid]:
            self.outdated += 1              # the depth book is already newer
            return _OUTDATED
        rec = self.slot()
        rec.symbol_id = sid
        rec.kind = CT_MDKIND_BOOK_TICKER
        rec.flags = self.stale[sid]
        rec.n_bids = 1
        rec.n_asks = 1
        rec.exch_ts_ns = 0                  # spot JSON bookTicker carries no event time
        rec.recv_ts_ns = recv_ts
        rec.recv_mono_ns = recv_mono
        rec.first_update_id = u
        rec.last_update_id = u
        rec.bid_px[0] = vals[0]
        rec.bid_qty[0] = vals[1]
        rec.ask_px[0] = vals[2]
        rec.ask_qty[0] = vals[3]
        return _WRITTEN

    cdef int depth(self, int32_t sid, const char* p, const char* end, int64_t recv_ts,
                   int64_t recv_mono) except -1:
        """A depthUpdate for a book in sync: ``"e":"depthUpdate","E":..,"s":..,"U":..,"u":..,
        "b":[...],"a":[...]}}`` in any order ("e" and "s" optional)."""
        cdef object obj = <object> PyList_GET_ITEM(self.books, sid)
        cdef LocalBook book
        cdef int seen = 0, bit, step
        cdef char key
        cdef int64_t first = 0, last = 0, exch = 0
        cdef Py_ssize_t k
        cdef ct_md_event* rec
        if obj is None:
            return 0
        book = <LocalBook> obj
        if not book.synced:
            return 0                        # buffered for the rebuild: BookSync's Python side
        while True:
            if end - p < 4 or p[0] != 34 or p[2] != 34 or p[3] != 58:
                return 0
            key = p[1]
            p += 4
            if key == 98:                   # 'b'
                bit = 1
                p = scan_levels(p, end, &self.bid_levels)
            elif key == 97:                 # 'a'
                bit = 2
                p = scan_levels(p, end, &self.ask_levels)
            elif key == 85:                 # 'U'
                bit = 4
                p = scan_uint(p, end, &first)
            elif key == 117:                # 'u'
                bit = 8
                p = scan_uint(p, end, &last)
            elif key == 69:                 # 'E'
                bit = 16
                p = scan_uint(p, end, &exch)
            elif key == 101:                # 'e'
                bit = 32
                p = scan_exact_string(p, end, b"depthUpdate", 11)
            elif key == 115:                # 's'
                bit = 64
                p = self.symbol_field(sid, p, end)
            else:
                return 0
            if p == NULL or seen & bit or p >= end:
                return 0
            seen |= bit
            if p[0] == 44:
                p += 1
                continue
            if p[0] == 125 and p + 2 == end and p[1] == 125:
                break
            return 0
        if seen & 31 != 31 or first > last or exch > MAX_MS:
            return 0
        step = book.diff_step(first, last)
        if step == _IGNORED:
            self.duplicates += 1
            return _DUPLICATE
        if step == _GAP:
            return 0                        # BookSync marks the book stale and buffers the event
        for k in range(self.bid_levels.n):
            book.bids.set(self.bid_levels.lv[k].price, self.bid_levels.lv[k].qty)
        for k in range(self.ask_levels.n):
            book.asks.set(self.ask_levels.lv[k].price, self.ask_levels.lv[k].qty)
        if book.applied(last, exch) == _CROSSED:
            self.on_crossed(sid, recv_ts, recv_mono)
            return _WENT_STALE
        self.book_id[sid] = last
        rec = self.slot()
        rec.symbol_id = sid
        rec.kind = CT_MDKIND_DEPTH
        rec.flags = 0                       # applied to a book in sync
        rec.exch_ts_ns = exch * 1000000
        rec.recv_ts_ns = recv_ts
        rec.recv_mono_ns = recv_mono
        rec.first_update_id = first
        rec.last_update_id = last
        book.fill(rec)
        return _WRITTEN

    cdef inline ct_md_event* slot(self) except NULL:
        """A fresh staged record (seq set), flushing first when the stage is full."""
        cdef int64_t i = self.stage.claim()
        if i < 0:
            self.flush()
            i = self.stage.claim()
        return self.stage.base + i


def decimal_value(text):
    """The C grammar on one Python string: its float, or None if it is not a plain decimal
    (for tests: ``ctrader.feed.parse.decimal`` is the reference)."""
    cdef double v = 0.0
    if type(text) is not str or not decimal_of_str(text, &v):
        return None
    return v
