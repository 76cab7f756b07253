"""Drive the strategy engine event-exactly: stop right after the event whose candidates produced
intents, so replay can match those orders and report their executions back *before* the strategy
sees the market event that comes after the fill, as in a live session.

    i, cands, intents = step(engine, records, i, end)     # records[i_before:i] applied

``step`` is ``StrategyEngine.on_md`` over ``records[start:end]`` with one difference: it returns
after the first event that produced intents (``on_md`` carries on to the end). Strategies
without the scan/decide split (e.g. ``NullStrategy``) are driven through ``on_md`` over the slice.
(This mirrors ``on_md``'s loop; a public ``StrategyEngine.on_md_until`` would replace it.)
"""
from __future__ import annotations

import time

import numpy as np

from ctrader.core.records import CANDIDATE, ORDER_INTENT


def can_step(engine) -> bool:
    if hasattr(engine, "on_md_until"):
        return True
    return hasattr(engine, "_decide") and hasattr(getattr(engine, "strategy", None), "scan")


def step(engine, records: np.ndarray, start: int, end: int) -> tuple[int, list, list]:
    if hasattr(engine, "on_md_until"):
        return engine.on_md_until(records, start, end)
    if not can_step(engine):
        c, o = engine.on_md(records[start:end])
        return end, [c] if c is not None and len(c) else [], [o] if o is not None and len(o) else []
    cands, intents = [], []
    i = start
    while i < end:
        t0 = time.perf_counter_ns()
        i, m = engine.strategy.scan(records, i, end)
        if m == 0:
            i = end
            break
        c, o = engine._decide(records[i - 1], m, t0)
        cands.append(c)
        if len(o):
            intents.append(o)
            break
    engine.events += i - start
    return i, cands, intents


__all__ = ["CANDIDATE", "ORDER_INTENT", "can_step", "step"]
