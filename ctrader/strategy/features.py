"""Candidate features for the model, and the per-symbol market statistics they use (numba).

``FEATURES`` is the contract with the model: its metadata lists the same names in the same
order, or the strategy refuses it. The features describe what the evaluation saw (edges, size,
each leg's spread, depth, imbalance and age) and the recent market around it (volatility and
update rate of the legs, how long this triangle has shown an edge)::

    stats = new_market_stats(n_symbols)
    update_market_stats(stats, sid, mid, now_ns)             # on every book update
    compute_features(outf, outi, n, tri, stats, edge_since, max_start, now_ns, feat)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ctrader.strategy import kernels as K

FEATURES: tuple[str, ...] = (
    "edge_bps", "edge_top_bps", "edge_raw_bps", "size_frac",
    "spread_bps_0", "spread_bps_1", "spread_bps_2",
    "depth_ratio_0", "depth_ratio_1", "depth_ratio_2",
    "imbalance_0", "imbalance_1", "imbalance_2",
    "age_ms_0", "age_ms_1", "age_ms_2",
    "vol_bps", "update_rate", "edge_age_ms", "levels_used",
)
N_FEATURES = len(FEATURES)

# per-symbol market statistics columns
S_MID = 0        # last mid seen
S_VAR = 1        # EWMA of squared mid returns, bps^2 per update
S_RATE = 2       # EWMA of updates per second
S_LAST = 3       # monotonic ns of the last update
N_STATS = 4
EWMA_ALPHA = 0.05


def new_market_stats(n_symbols: int) -> np.ndarray:
    return np.zeros((n_symbols, N_STATS), dtype=np.float64)


@njit(cache=True)
def update_market_stats(stats, sid, mid, now_ns):
    """Fold one book update of ``sid`` (its new mid, at ``now_ns``) into the EWMAs."""
    if not (mid > 0.0):
        return
    prev = stats[sid, S_MID]
    if prev > 0.0:
        r = 1e4 * math.log(mid / prev)
        stats[sid, S_VAR] += EWMA_ALPHA * (r * r - stats[sid, S_VAR])
    last = stats[sid, S_LAST]
    if last > 0.0 and now_ns > last:
        inst = min(1e9 / (now_ns - last), 1e4)
        stats[sid, S_RATE] += EWMA_ALPHA * (inst - stats[sid, S_RATE])
    stats[sid, S_MID] = mid
    stats[sid, S_LAST] = now_ns


@njit(cache=True)
def compute_features(outf, outi, n, tri, stats, edge_since, max_start, now_ns, feat):
    """Rows 0..n-1 of the evaluation results -> ``feat[0:n, 0:N_FEATURES]`` (float32)."""
    legs_symbol, start_asset = tri[0], tri[2]
    for i in range(n):
        t = outi[i, K.I_TRI]
        feat[i, 0] = 1e4 * outf[i, K.F_EDGE]
        feat[i, 1] = 1e4 * outf[i, K.F_EDGE_TOP]
        feat[i, 2] = 1e4 * outf[i, K.F_EDGE_RAW]
        cap = max_start[start_asset[t]]
        feat[i, 3] = outf[i, K.F_SIZE] / cap if cap > 0.0 else 0.0
        vol = 0.0
        rate = 0.0
        levels = 0
        for k in range(3):
            s = legs_symbol[t, k]
            feat[i, 4 + k] = 1e4 * outf[i, K.F_SPREAD + k]
            used = outf[i, K.F_IN + k]
            feat[i, 7 + k] = math.log1p(outf[i, K.F_DEPTH + k] / used) if used > 0.0 else 0.0
            feat[i, 10 + k] = outf[i, K.F_IMB + k]
            feat[i, 13 + k] = outf[i, K.F_AGE + k] * 1e-6
            vol += math.sqrt(stats[s, S_VAR])
            rate += stats[s, S_RATE]
            levels += outi[i, K.I_LEVELS + k]
        feat[i, 16] = vol / 3.0
        feat[i, 17] = rate / 3.0
        since = edge_since[t]
        feat[i, 18] = (now_ns - since) * 1e-6 if since > 0 else 0.0
        feat[i, 19] = levels
