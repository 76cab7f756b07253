"""Where the components of a run may execute (``ctrader.runtime.cpus``)."""
from __future__ import annotations

import platform

import pytest

from ctrader.core.wait import SPIN, wait_strategy
from ctrader.runtime.cpus import cpu_plan

RUN = ["sim", "recorder", "executor", "strategy", "feed"]


def test_on_two_cores_the_strategy_owns_one_and_the_rest_share_the_other():
    plan = cpu_plan(RUN, cores=[0, 1])
    assert plan.cpus["strategy"] == {1}
    assert all(plan.cpus[n] == {0} for n in RUN if n != "strategy")
    assert plan.owns_core("strategy") and not plan.owns_core("executor")
    assert "strategy on cpu 1 (own core, spins)" in plan.describe()


def test_three_cores_leave_two_to_share():
    plan = cpu_plan(RUN, cores=[4, 5, 6])
    assert plan.cpus["strategy"] == {6} and plan.cpus["feed"] == {4, 5}


def test_nothing_is_pinned_with_one_core_many_cores_no_strategy_or_layout_none():
    assert cpu_plan(RUN, cores=[0]).cpus == {}
    assert cpu_plan(RUN, cores=list(range(8))).cpus == {}       # every busy process spins on its own
    assert cpu_plan(["sim", "feed", "recorder"], cores=[0, 1]).cpus == {}
    assert cpu_plan(RUN, "none", cores=[0, 1]).cpus == {}
    assert cpu_plan(RUN, cores=[0]).describe() == "cores: placed by the OS"


def test_auto_wait_spins_only_for_a_process_that_owns_its_core():
    assert wait_strategy("auto", owns_core=True).kind == SPIN
    assert wait_strategy("block", owns_core=True).name == "block"      # an explicit choice stands


def test_the_executor_asks_for_a_short_slice_when_cores_are_shared():
    assert cpu_plan(RUN, cores=[0, 1]).short_slice == {"executor"}
    assert cpu_plan(RUN, cores=list(range(8))).short_slice == frozenset()
    assert "executor with a 100 µs slice" in cpu_plan(RUN, cores=[0, 1]).describe()


def _kernel_at_least(major: int, minor: int) -> bool:
    import platform
    import re

    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (major, minor)


@pytest.mark.skipif(platform.machine() != "x86_64" or not _kernel_at_least(6, 12),
                    reason="custom SCHED_OTHER slices need Linux >= 6.12 (checked here on x86-64)")
def test_request_slice_sets_the_threads_slice():
    import ctypes
    import struct
    import threading

    from ctrader.runtime.cpus import request_slice

    seen = []

    def in_thread():                      # slices are per thread: leave the test runner's alone
        ok = request_slice(100_000)
        buf = ctypes.create_string_buffer(56)
        ctypes.CDLL(None).syscall(315, 0, buf, 56, 0)            # sched_getattr
        seen.append((ok, struct.unpack("IIQiIQQQII", buf.raw)[5]))

    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert seen == [(True, 100_000)]
