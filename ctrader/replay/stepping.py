"""Drive the strategy engine event-exactly: stop right after the event whose candidates produced
intents, so replay can match those orders and report their executions back *before* the strategy
sees the market event that comes after the fill, as in a live session.

    i, cands, intents = step(engine, records, i, end)     # records[i_before:i] applied

``step`` is ``StrategyEngine.on_md_until`` with lists (empty or one array) for the driver to
gather. Engines without it (e.g. ``NullStrategy``) are driven through ``on_md`` over the slice.
"""
from __future__ import annotations

import numpy as np


def can_step(engine) -> bool:
    return hasattr(engine, "on_md_until")


def step(engine, records: np.ndarray, start: int, end: int) -> tuple[int, list, list]:
    if can_step(engine):
        i, c, o = engine.on_md_until(records, start, end)
    else:
        c, o = engine.on_md(records[start:end])
        i = end
    return i, [c] if c is not None and len(c) else [], [o] if o is not None and len(o) else []


__all__ = ["can_step", "step"]
