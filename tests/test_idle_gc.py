"""Garbage collection moved to idle moments (``ctrader.core.idle_gc``)."""
from __future__ import annotations

import gc
import weakref

import pytest

from ctrader.core.idle_gc import IdleGC


class Node:
    def __init__(self) -> None:
        self.me = self          # a reference cycle: only the cyclic collector frees it


def garbage_cycle() -> weakref.ref:
    """A cycle nobody references any more; the weak reference says when it was collected."""
    return weakref.ref(Node())


@pytest.fixture
def idle_gc():
    """An IdleGC in charge of this process's collector, handed back to Python afterwards."""
    was_enabled = gc.isenabled()
    collector = IdleGC(hard_limit=50_000)
    collector.start()
    yield collector
    collector.stop()
    gc.unfreeze()
    if was_enabled:
        gc.enable()


def test_start_freezes_what_exists_and_turns_automatic_collection_off(idle_gc):
    assert not gc.isenabled()
    assert idle_gc.frozen > 1000 and gc.get_freeze_count() > 1000     # modules, classes, test objects
    assert idle_gc.stats()["mode"] == "idle"


def test_cycles_wait_for_an_idle_moment(idle_gc):
    cycle = garbage_cycle()
    churn = [[i] for i in range(5_000)]         # allocations well past CPython's 700 threshold
    assert cycle() is not None, "nothing collects while the process is busy"
    assert idle_gc.due() >= 0
    assert idle_gc.idle() is True
    assert cycle() is None
    assert sum(idle_gc.collections) >= 1
    assert idle_gc.pause_ns_max > 0
    del churn


def test_idle_does_nothing_until_a_collection_is_due(idle_gc):
    gc.collect()           # counts back to zero
    assert idle_gc.due() == -1
    assert idle_gc.idle() is False
    assert idle_gc.collections == [0, 0, 0]


def test_busy_collects_only_past_the_hard_limit(idle_gc):
    gc.collect()
    few = [[i] for i in range(1_000)]
    idle_gc.busy()
    assert idle_gc.forced == 0
    many = [[i] for i in range(60_000)]
    idle_gc.busy()
    assert idle_gc.forced == 1
    assert gc.get_count()[0] < idle_gc.hard_limit
    del few, many


def test_stop_gives_python_its_collector_back(idle_gc):
    idle_gc.stop()
    assert gc.isenabled()
    assert idle_gc.idle() is False      # no longer in charge
    assert idle_gc.stats()["mode"] == "idle"     # the stats written at exit still say how it ran


def test_an_idle_gc_that_was_never_started_changes_nothing():
    collector = IdleGC()
    enabled = gc.isenabled()
    [[i] for i in range(5_000)]
    assert collector.idle() is False
    collector.busy()
    collector.stop()
    assert gc.isenabled() == enabled
    assert collector.collections == [0, 0, 0] and collector.forced == 0
    assert collector.stats()["mode"] == "python"
