"""Strategy name -> implementation (``[strategy] name``).

A strategy is a module with a class implementing ``ctrader.strategy.protocol.Strategy`` (see
``ctrader.strategy.triangular``). Adding one is a new module and one line here, never a fork::

    cls = strategy_class("triangular")
    strat = cls(cfg, universe, book_cache)
"""
from __future__ import annotations

import importlib

STRATEGIES: dict[str, str] = {
    "triangular": "ctrader.strategy.triangular:TriangularArbitrage",
    "cross_rate_reversion": "ctrader.strategy.cross_rate:CrossRateReversion",
}


def strategy_class(name: str) -> type:
    try:
        target = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
