"""Drive a ``DecisionSource`` (``ctrader.strategy.protocol``) event-exactly: stop right after the
event whose candidates produced intents, so replay can match those orders and report their
executions back *before* the strategy sees the market event that comes after the fill, as in a
live session.

    i, cands, intents = step(engine, records, i, end)     # records[i_before:i] applied

``step`` is ``on_md_until`` with lists (empty or one array) for the driver to gather.
"""
from __future__ import annotations

import numpy as np

from ctrader.strategy.protocol import DecisionSource


def step(engine: DecisionSource, records: np.ndarray, start: int, end: int) -> tuple[int, list, list]:
    i, c, o = engine.on_md_until(records, start, end)
    return i, [c] if c is not None and len(c) else [], [o] if o is not None and len(o) else []


__all__ = ["step"]
