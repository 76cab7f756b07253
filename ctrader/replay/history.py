"""Market history without a live session: the simulator's market model written into a store.

Tests, benchmarks and the ML loop need recorded-looking history before any paper session ran.
``simulated_md`` runs the simulator's seeded market model offline (``ctrader.sim.offline``) and
returns MD_EVENT arrays numbered with the universe's symbol ids; ``write_md`` inserts them into
the store exactly as the recorder would (``md_book`` / ``md_trade``)::

    uni = resolve_universe(cfg)                       # the simulator's universe
    md = simulated_md(cfg, uni, seconds=600, seed=7)
    write_md(store, md, uni, run_id="sim7")
    store.read_md([s.name for s in uni.symbols], start, end)     # what replay reads back
"""
from __future__ import annotations

import numpy as np

from ctrader.core.records import MD_EVENT
from ctrader.core.arrays import concat
from ctrader.store.columns import Names, md_to_arrow


def simulated_md(cfg, universe, seconds: float, seed: int = 7, epoch_ms: int | None = None,
                 **market_overrides) -> np.ndarray:
    """``seconds`` of the simulator's market (a SNAPSHOT of every book first), as one array."""
    from ctrader.sim.offline import OfflineMarket, offline_sim_config

    sim_cfg = offline_sim_config(cfg.sim, **market_overrides) if market_overrides else cfg.sim
    market = OfflineMarket(sim_cfg, seed=seed, epoch_ms=epoch_ms)
    market.map_symbols(universe.by_name)
    parts = [market.snapshots()] + list(market.run(seconds))
    return concat(parts, MD_EVENT)


def write_md(store, md: np.ndarray, universe, run_id: str = "sim", chunk: int = 200_000) -> int:
    names = Names([s.name for s in universe.symbols])
    n = 0
    for i in range(0, len(md), chunk):
        book, trades = md_to_arrow(md[i:i + chunk], names, run_id)
        for table, data in (("md_book", book), ("md_trade", trades)):
            if data is not None:
                n += store.insert(table, data)
    return n
