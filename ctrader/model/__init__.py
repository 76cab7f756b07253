"""Candidate-scoring models: the registry of model directories, ONNX scoring, and training.

    model = load_model(cfg, FEATURES)                 # ctrader.model.scoring; None for "none"
    train_from_sim(cfg, TrainOptions(seed=7), out)    # ctrader.model.train
"""
