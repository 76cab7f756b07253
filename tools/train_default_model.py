#!/usr/bin/env python3
"""Rebuild the packaged default model (ctrader/data/models/default) from simulator data.

Reproducible: the same seed and options give the same model.onnx (metadata.json differs only
in created_at). Usage: .venv/bin/python tools/train_default_model.py [--seed 7] [--seconds 900]
"""
from __future__ import annotations

import argparse
import logging
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctrader.config import load_config
from ctrader.model.registry import PACKAGED_DIR
from ctrader.replay.training import TrainOptions, train_from_sim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--out", default=str(PACKAGED_DIR / "default"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = train_from_sim(load_config(), TrainOptions(seed=args.seed, market_seconds=args.seconds), args.out)
    size = (pathlib.Path(args.out) / "model.onnx").stat().st_size
    print(f"{result.meta.name} v{result.meta.version}: {result.meta.metrics} ({size} bytes) -> {args.out}")


if __name__ == "__main__":
    main()
