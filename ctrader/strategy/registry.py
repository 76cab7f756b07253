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
    "maker_triangular": "ctrader.strategy.maker_triangular:MakerTriangular",
}


def strategy_class(name: str) -> type:
    try:
        target = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def strategy_names(cfg) -> list[str]:
    """The strategies a session runs: ``[strategy] names``, or ``name`` alone when empty."""
    names = list(getattr(cfg.strategy, "names", ()) or ())
    if not names:
        return [cfg.strategy.name]
    if len(set(names)) != len(names):
        raise ValueError(f"strategy.names lists a strategy twice: {names}")
    return names
