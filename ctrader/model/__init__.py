"""Candidate-scoring models: the registry of model directories (and which one is ``current``)
and ONNX scoring. Training needs the strategy and market data, so it lives above them
(``ctrader.replay.training``, ``ctrader.replay.ml_loop``).

    model = load_model(cfg, FEATURES)                 # ctrader.model.scoring; None for "none"
"""
