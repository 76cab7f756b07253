# Included by feed_parse.pyx: the value grammar of Binance's market-data frames, in C.
#
# The same rules as ctrader/feed/parse.py (the readable reference the tests hold this to):
# - a price or quantity is a JSON string holding a plain decimal: "0" or a digit 1-9 followed by
#   digits, then optionally "." and one or more digits. No sign, exponent, space, underscore,
#   leading zero or empty part; a JSON number, true or null is not one either. Its value is
#   exactly ``float(text)``.
# - an update id, trade id or time is a JSON integer: "0" or 1-9 followed by digits, no sign,
#   fraction or exponent.
# Scanners take ``p`` (the first byte) and ``end`` and return the first byte after what they
# read, or NULL when the bytes do not follow the grammar: the caller then checks what comes next
# (a closing quote, ``,``, ``}``...), so "12a" or "0123" fail there.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_Clear, PyErr_Occurred
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

cdef extern from "Python.h":
    # float(str) without the str: correctly rounded, locale-independent
    double PyOS_string_to_double(const char* s, char** endptr, PyObject* overflow_exception) noexcept

cdef double[23] POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                         1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]
cdef uint64_t MAX_EXACT = 1ULL << 53           # integers below this are exact doubles
cdef uint64_t MANTISSA_GUARD = 100000000000000000ULL   # 10**17: one more digit still fits in 64 bits
cdef int MAX_ID_DIGITS = 18                    # 10**18 - 1 < 2**63: longer ids go to the Python path


cdef inline bint is_digit(char c) noexcept nogil:
    return c >= 48 and c <= 57


cdef bint decimal_value_slow(const char* s, Py_ssize_t n, double* out) noexcept:
    """``float()`` of a validated decimal too long for the exact fast form (rare)."""
    cdef object text = PyBytes_FromStringAndSize(s, n)       # NUL-terminated copy
    out[0] = PyOS_string_to_double(PyBytes_AS_STRING(text), NULL, NULL)   # overflow -> inf
    if out[0] == -1.0 and PyErr_Occurred() != NULL:
        PyErr_Clear()
        return False
    return True


cdef inline const char* scan_decimal(const char* p, const char* end, double* out) noexcept:
    """A plain decimal's text (not its quotes) -> its value in ``out`` (may be inf when huge).

    The digits go into an integer mantissa as they come (no data-dependent branch per digit).
    The value is one IEEE division of two exact doubles when the mantissa is below 2**53 and the
    power of ten at most 10**22 -- correctly rounded, exactly as float(text) rounds; trailing
    fraction zeros are dropped when that brings a mantissa below 2**53; anything longer takes
    float()'s own conversion."""
    cdef const char* start = p
    cdef const char* frac
    cdef uint64_t mant = 0
    cdef int nfrac = 0
    cdef bint fits = True                           # every digit went into mant
    if p >= end:
        return NULL
    if p[0] == 48:                                  # "0": nothing may follow but "." or the end
        p += 1
    elif is_digit(p[0]):
        while p < end and is_digit(p[0]):
            if mant < MANTISSA_GUARD:
                mant = mant * 10 + <uint64_t>(p[0] - 48)
            else:
                fits = False
            p += 1
    else:
        return NULL
    if p < end and p[0] == 46:                      # "."
        p += 1
        frac = p
        while p < end and is_digit(p[0]):
            if mant < MANTISSA_GUARD:
                mant = mant * 10 + <uint64_t>(p[0] - 48)
            else:
                fits = False
            p += 1
        if p == frac:
            return NULL
        nfrac = <int> (p - frac)
        if fits and (mant >= MAX_EXACT or nfrac > 22):
            while nfrac > 0 and mant % 10 == 0:     # trailing zeros change nothing (rare: long text)
                mant //= 10
                nfrac -= 1
    if fits and mant < MAX_EXACT and nfrac <= 22:
        out[0] = <double> mant / POW10[nfrac]
    elif not decimal_value_slow(start, p - start, out):
        return NULL
    return p


cdef inline const char* scan_uint(const char* p, const char* end, int64_t* out) noexcept nogil:
    """A JSON non-negative integer of at most 18 digits -> ``out``."""
    cdef int64_t v = 0
    cdef int nd = 0
    if p >= end:
        return NULL
    if p[0] == 48:
        out[0] = 0
        return p + 1
    while p < end and is_digit(p[0]):
        if nd == MAX_ID_DIGITS:
            return NULL
        v = v * 10 + (p[0] - 48)
        nd += 1
        p += 1
    if nd == 0:
        return NULL
    out[0] = v
    return p


cdef inline const char* scan_quoted_decimal(const char* p, const char* end, double* out) noexcept:
    """``"123.45"`` -> ``out``; returns the byte after the closing quote."""
    if p >= end or p[0] != 34:
        return NULL
    p = scan_decimal(p + 1, end, out)
    if p == NULL or p >= end or p[0] != 34:
        return NULL
    return p + 1


cdef inline const char* scan_exact_string(const char* p, const char* end, const char* text,
                                          Py_ssize_t n) noexcept nogil:
    """``"<text>"`` exactly (no escapes); returns the byte after the closing quote."""
    if end - p < n + 2 or p[0] != 34 or p[n + 1] != 34 or memcmp(p + 1, text, n) != 0:
        return NULL
    return p + n + 2


cdef bint decimal_of_str(str text, double* out) noexcept:
    """A whole Python string that is a plain decimal -> its value (False if it is not one)."""
    cdef Py_ssize_t size
    cdef const char* s
    cdef const char* stop
    if not PyUnicode_IS_ASCII(text):
        return False                    # every byte of the grammar is ASCII
    s = PyUnicode_AsUTF8AndSize(text, &size)
    stop = scan_decimal(s, s + size, out)
    return stop != NULL and stop == s + size
