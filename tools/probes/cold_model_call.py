"""How much slower the shipped model's ONNX call is after the process sat idle.

    PYTHONPATH=. .venv/bin/python tools/probes/cold_model_call.py

Sleeps 1 ms .. 500 ms between calls and touches 16 MB in between (what the other processes of
a session do to the caches), then times one ``OnnxModel.score`` of 2 rows. This is the
measurement behind ``[rings] keep_warm_us`` (see bench/BENCHMARKS.md, "End to end").
"""
import time

import numpy as np

from ctrader.config import load_config
from ctrader.model.scoring import load_model
from ctrader.strategy.registry import strategy_class

cfg = load_config(env={})
model = load_model(cfg, strategy_class(cfg.strategy.name).features)
x = np.random.default_rng(1).random((2, model.n_features)).astype(np.float32)
junk = np.zeros(16_000_000 // 8)
for model_call in range(100):
    model.score(x)
for sleep_s in (0.0, 0.001, 0.01, 0.1, 0.5):
    wall, cpu = [], []
    for k in range(12):
        if sleep_s:
            time.sleep(sleep_s)
            junk += 1
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        model.score(x)
        wall.append(time.perf_counter_ns() - t0)
        cpu.append(time.thread_time_ns() - c0)
    w = np.array(wall[2:]) / 1e3
    print(f"idle {sleep_s * 1e3:5.0f} ms: model call p50 {np.median(w):6.1f} us, max {w.max():6.1f} us, "
          f"CPU p50 {np.median(cpu[2:]) / 1e3:6.1f} us")
