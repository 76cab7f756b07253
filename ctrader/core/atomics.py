"""Atomic loads, stores, fences and CAS on uint64 array elements, for numba code.

Why: a numba loop that spins on a plain load from shared memory can hang for ever, because
LLVM may hoist the load out of the loop. These intrinsics emit ``load atomic ... acquire`` /
``store atomic ... release`` / ``fence`` / ``cmpxchg`` so the compiler must re-read memory and
keep the order the ring protocol relies on. On x86 they cost nothing beyond that: ordinary
loads already have acquire and stores release semantics.

    @njit
    def wait_for(flag, value):
        while load_acquire(flag, 0) != value:
            pass
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _element_pointer(context, builder, arr_type, arr, idx):
    array = context.make_array(arr_type)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arr_type, array, [idx], wraparound=False)


def _check_u64_array(arr):
    return isinstance(arr, types.Array) and arr.dtype == types.uint64 and arr.ndim == 1


@intrinsic
def load_acquire(typingctx, arr, idx):
    """``arr[idx]`` as an acquire load (uint64 1-D arrays)."""
    if not _check_u64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return types.uint64(arr, idx), codegen


@intrinsic
def store_release(typingctx, arr, idx, value):
    """``arr[idx] = value`` as a release store (uint64 1-D arrays)."""
    if not _check_u64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.uint64)
        builder.store_atomic(val, ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


@intrinsic
def store_relaxed(typingctx, arr, idx, value):
    """``arr[idx] = value`` as a monotonic (relaxed) atomic store: visible, but unordered."""
    if not _check_u64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.uint64)
        builder.store_atomic(val, ptr, ordering="monotonic", align=8)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


@intrinsic
def cas(typingctx, arr, idx, expected, desired):
    """Compare-and-swap ``arr[idx]`` from ``expected`` to ``desired``; True if it swapped."""
    if not _check_u64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        exp = context.cast(builder, args[2], sig.args[2], types.uint64)
        new = context.cast(builder, args[3], sig.args[3], types.uint64)
        pair = builder.cmpxchg(ptr, exp, new, "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return types.boolean(arr, idx, expected, desired), codegen


@intrinsic
def fence_acquire(typingctx):
    """Later loads and stores stay after every earlier load (seqlock re-check)."""
    def codegen(context, builder, sig, args):
        builder.fence("acquire")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def fence_release(typingctx):
    """Earlier loads and stores stay before every later store (mark-then-write)."""
    def codegen(context, builder, sig, args):
        builder.fence("release")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def cpu_relax(typingctx):
    """The x86 ``pause`` hint inside spin loops (eases the sibling hyper-thread and power)."""
    def codegen(context, builder, sig, args):
        # numba's JIT has no inline-asm parser; the LLVM intrinsic emits the same instruction.
        fnty = ir.FunctionType(ir.VoidType(), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


# --- clocks and scheduler calls: libc symbols declared straight into the LLVM module ----------
# (ctypes function pointers would work too, but they make numba refuse to cache the kernels.)

CLOCK_MONOTONIC = 1  # the clock behind time.monotonic_ns / perf_counter_ns on Linux


@intrinsic
def _clock_monotonic_ns(typingctx):
    # The timespec lives on the stack: no allocation per call, unlike an np.empty scratch array.
    def codegen(context, builder, sig, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        ts = cgutils.alloca_once(builder, ir.ArrayType(i64, 2))
        fnty = ir.FunctionType(i32, [i32, ts.type])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        builder.call(fn, [ir.Constant(i32, CLOCK_MONOTONIC), ts])
        sec = builder.load(builder.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 0)]))
        nsec = builder.load(builder.gep(ts, [ir.Constant(i32, 0), ir.Constant(i32, 1)]))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return types.int64(), codegen


@njit(cache=True, nogil=True)
def monotonic_ns() -> int:
    """CLOCK_MONOTONIC in ns: the same clock as ``time.monotonic_ns()`` in every process."""
    return _clock_monotonic_ns()


@intrinsic
def _libc_sched_yield(typingctx):
    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        builder.call(cgutils.get_or_insert_function(builder.module, fnty, "sched_yield"), [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _libc_usleep(typingctx, us):
    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(i32, [i32])
        arg = builder.trunc(context.cast(builder, args[0], sig.args[0], types.int64), i32)
        builder.call(cgutils.get_or_insert_function(builder.module, fnty, "usleep"), [arg])
        return context.get_dummy_value()

    return types.void(us), codegen


@njit(cache=True, nogil=True)
def sched_yield() -> None:
    """Give the core to another runnable process (spin-then-yield waiting)."""
    _libc_sched_yield()


@njit(cache=True, nogil=True)
def sleep_us(us: int) -> None:
    _libc_usleep(us)


# --- the ring's doorbell: read-modify-write, a full fence, and futex wait/wake -------------------

@intrinsic
def fetch_add(typingctx, arr, idx, delta):
    """Atomically ``arr[idx] += delta`` (sequentially consistent); returns the old value.
    A negative ``delta`` subtracts (two's complement on uint64)."""
    if not _check_u64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return types.uint64(arr, idx, delta), codegen


@intrinsic
def fence_seq_cst(typingctx):
    """A full fence: earlier stores are visible before later loads (store -> load ordering,
    which acquire/release alone do not give). The doorbell's publish-then-check needs it."""
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


def _futex_syscall_number() -> int:
    import platform

    return {"x86_64": 202, "aarch64": 98}.get(platform.machine(), -1)


SYS_FUTEX = _futex_syscall_number()   # -1: no futex here, the BLOCK wait falls back to sleeping
FUTEX_WAIT, FUTEX_WAKE = 0, 1          # not the _PRIVATE ops: the word is in shared memory
_INT_MAX = 2**31 - 1


@intrinsic
def _futex(typingctx, arr, idx, op, value, timeout_ns):
    """``syscall(SYS_futex, &arr[idx], op, value, timeout, NULL, 0)``; the word is the low 32
    bits of the uint64 element (little-endian), ``timeout_ns`` relative (FUTEX_WAIT only)."""
    if not _check_u64_array(arr):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        ts = cgutils.alloca_once(builder, ir.ArrayType(i64, 2))
        tns = context.cast(builder, args[4], sig.args[4], types.int64)
        billion = ir.Constant(i64, 1_000_000_000)
        zero32 = ir.Constant(ir.IntType(32), 0)
        builder.store(builder.sdiv(tns, billion), builder.gep(ts, [zero32, zero32]))
        builder.store(builder.srem(tns, billion), builder.gep(ts, [zero32, ir.Constant(ir.IntType(32), 1)]))
        fnty = ir.FunctionType(i64, [i64], var_arg=True)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "syscall")
        op = context.cast(builder, args[2], sig.args[2], types.int64)
        val = context.cast(builder, args[3], sig.args[3], types.int64)
        return builder.call(fn, [ir.Constant(i64, SYS_FUTEX), builder.ptrtoint(ptr, i64), op, val,
                                 builder.ptrtoint(ts, i64), ir.Constant(i64, 0), ir.Constant(i64, 0)])

    return types.int64(arr, idx, op, value, timeout_ns), codegen


@njit(cache=True, nogil=True)
def futex_wait(arr, idx, expected, timeout_ns) -> None:
    """Sleep while the low 32 bits of ``arr[idx]`` equal ``expected``, for up to ``timeout_ns``
    (returns at once if they already differ; spurious returns are possible: re-check). Without
    futexes (not Linux x86-64/arm64) it naps 50 µs, like the Cython ring."""
    if SYS_FUTEX >= 0:
        _futex(arr, idx, FUTEX_WAIT, expected & 0xFFFFFFFF, timeout_ns)
    else:
        _libc_usleep(50)


@njit(cache=True, nogil=True)
def futex_wake(arr, idx) -> None:
    """Wake every thread sleeping on the low 32 bits of ``arr[idx]``."""
    if SYS_FUTEX >= 0:
        _futex(arr, idx, FUTEX_WAKE, _INT_MAX, 0)
