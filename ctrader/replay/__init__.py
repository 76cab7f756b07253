"""Replay: recorded market data through the live strategy and fill model, results, reports,
sweeps and the ML loop. Entry points: ``runner.replay_store``, ``driver.ReplayEngine``,
``sweep.run_variants``, ``ml_loop``; CLI in ``ctrader.cli.replay_cmd`` and friends."""
