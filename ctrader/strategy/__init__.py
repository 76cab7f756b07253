"""Strategies: numba kernels that turn book updates into candidates, and the engine that scores
them, decides and emits order intents.

    engine = StrategyEngine(cfg, uni, model)        # ctrader.strategy.engine
    candidates, intents = engine.on_md(md_records)

``registry`` maps ``[strategy] name`` to an implementation (``triangular`` is the first);
``process.run_strategy`` is the component that runs an engine between the rings.
"""
