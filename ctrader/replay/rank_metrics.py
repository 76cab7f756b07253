"""What `strategies rank` measures per variant and window, beside its PnL, and how stable a
variant's rank is across windows.

    m = window_metrics(summary, pnl_series, inventory, fills)    # one job (variant x window)
    ranks = ranks_by_window({"a": [1.0, -2.0], "b": [0.5, 3.0]})  # {"a": [1, 2], "b": [2, 1]}

Per window (``METRICS``, all in the valuation asset where they are amounts):

- ``pnl``: after fees, the replay's own (``ReplaySummary``);
- ``max_drawdown``: the largest fall of the PnL series from its running peak (starting at 0);
- ``pnl_per_drawdown``: PnL per unit of that risk (None without a drawdown);
- ``inventory_max``: the most inventory held at a PnL sample, every asset but the valuation
  asset, valued;
- ``hit_rate``: groups that made money / groups that traded;
- ``fills``, ``orders``: what was traded and sent (turnover);
- ``maker_fill_share``: fills that rested on the book first / fills (0 for taker strategies);
- ``maker_fill_rate``: resting orders that filled at all / resting orders placed (the replay
  summary's ``resting_orders``; None for strategies that place none): how often resting pays.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

METRICS = ("pnl", "max_drawdown", "pnl_per_drawdown", "inventory_max", "hit_rate", "fills", "orders",
           "maker_fill_share", "maker_fill_rate")


def max_drawdown(pnl: np.ndarray) -> float:
    """The largest fall from a running peak of ``pnl`` (a series starting from a flat 0)."""
    if len(pnl) == 0:
        return 0.0
    path = np.concatenate([[0.0], np.asarray(pnl, np.float64)])
    return float(np.max(np.maximum.accumulate(path) - path))


def window_metrics(summary: dict[str, Any], pnl_series: np.ndarray, inventory: list[dict[str, float]],
                   fills: np.ndarray) -> dict[str, float | None]:
    pnl = float(summary.get("pnl", 0.0))
    dd = max_drawdown(pnl_series["pnl"] if len(pnl_series) else np.zeros(0))
    valuation = summary.get("valuation_asset")
    held = [sum(abs(v) for a, v in sample.items() if a != valuation) for sample in inventory]
    traded, won = summary.get("groups_traded", 0), summary.get("groups_won", 0)
    n_fills = len(fills)
    resting = summary.get("resting_orders") or {"placed": 0, "filled": 0}
    return {"pnl": pnl, "max_drawdown": dd, "pnl_per_drawdown": pnl / dd if dd > 0 else None,
            "inventory_max": max(held) if held else 0.0, "hit_rate": won / traded if traded else None,
            "fills": summary.get("fills", n_fills), "orders": summary.get("intents", 0),
            "maker_fill_share": float(np.mean(fills["is_maker"] != 0)) if n_fills else None,
            "maker_fill_rate": resting["filled"] / resting["placed"] if resting["placed"] else None}


def ranks_by_window(pnl: dict[str, list[float | None]]) -> dict[str, list[int]]:
    """Each variant's rank (1 = best PnL) in each window; a window it failed ranks it last;
    ties keep the variants' order."""
    names = list(pnl)
    n_win = len(next(iter(pnl.values()))) if pnl else 0
    out: dict[str, list[int]] = {v: [] for v in names}
    for w in range(n_win):
        def value(v: str, w: int = w) -> float:
            x = pnl[v][w]
            return -math.inf if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
        order = sorted(names, key=lambda v: (-value(v), names.index(v)))
        for r, v in enumerate(order):
            out[v].append(r + 1)
    return out


__all__ = ["METRICS", "max_drawdown", "ranks_by_window", "window_metrics"]
