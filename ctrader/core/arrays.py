"""Concatenating record arrays without losing their layout.

``numpy.concatenate`` of padded structured arrays returns a *packed* dtype (MD_EVENT: 392 bytes
instead of 448), which is a different numba type (a recompile) and no longer the ring layout.
``concat`` keeps the dtype the caller names:

    md = concat([chunk_a, chunk_b], MD_EVENT)      # itemsize 448, as records.py defines it
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def concat(parts: Sequence[np.ndarray], dtype: np.dtype) -> np.ndarray:
    n = sum(len(p) for p in parts)
    out = np.zeros(n, dtype)
    i = 0
    for p in parts:
        out[i:i + len(p)] = p            # field by field (same names, same order)
        i += len(p)
    return out


def as_layout(recs: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``recs`` itself when it already has ``dtype``, else a copy with it."""
    if recs.dtype == dtype:
        return recs
    return concat([recs], dtype)
