"""Scoring candidates with an ONNX model through onnxruntime: one batched call per market event.

    model = OnnxModel.load(path, expected_features=FEATURES)   # refuses a feature mismatch
    probs = model.score(features)            # float32 (n, k) -> float64 (n,), P(trade pays)
    model = verify_model(path, FEATURES)     # ... and proven to score a test batch (promote, pre-flight)

``load_model(cfg, features)`` resolves ``[model] name`` through the registry (None for "none");
``ModelFiles`` carries a model as bytes to a process without the registry.
The session runs with ``[model] threads`` intra-op threads (1 by default: scoring a few rows is
faster on the calling thread than handing them to a pool, and the strategy owns one core).
"""
from __future__ import annotations

import logging
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ctrader.model.registry import MODEL_FILE, ModelError, ModelMeta, read_metadata, resolve_model_dir

log = logging.getLogger(__name__)


class FeatureMismatch(ModelError):
    """The model was trained on other features (names or order) than the strategy computes."""


def check_features(meta: ModelMeta, expected: Sequence[str]) -> None:
    expected = tuple(expected)
    if meta.features == expected:
        return
    missing = [f for f in expected if f not in meta.features]
    extra = [f for f in meta.features if f not in expected]
    detail = []
    if missing:
        detail.append(f"missing {missing}")
    if extra:
        detail.append(f"unknown {extra}")
    if not detail:
        detail.append("same names in another order")
    raise FeatureMismatch(f"model {meta.name} v{meta.version} ({meta.path}) does not match the strategy's "
                          f"features: {'; '.join(detail)}")


class OnnxModel:
    def __init__(self, meta: ModelMeta, session) -> None:
        self.meta = meta
        self.session = session
        self.input_name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        self.output_name = meta.onnx.get("probabilities") or ("probabilities" if "probabilities" in outputs
                                                               else outputs[-1])
        self.n_features = len(meta.features)

    @property
    def version(self) -> str:
        return self.meta.version

    @classmethod
    def load(cls, model_dir: str | pathlib.Path, expected_features: Sequence[str] | None = None,
             threads: int = 1) -> OnnxModel:
        meta = read_metadata(model_dir)
        path = pathlib.Path(model_dir) / MODEL_FILE
        if not path.is_file():
            raise ModelError(f"{model_dir}: no {MODEL_FILE}")
        model = cls.from_bytes(meta, path.read_bytes(), expected_features, threads, source=str(path))
        log.info("model %s v%s loaded from %s (%d features)", meta.name, meta.version, model_dir, model.n_features)
        return model

    @classmethod
    def from_bytes(cls, meta: ModelMeta, onnx: bytes, expected_features: Sequence[str] | None = None,
                   threads: int = 1, source: str = "") -> OnnxModel:
        """A model from its metadata and ONNX bytes (``ModelFiles``: no registry on this host)."""
        import onnxruntime as ort

        if expected_features is not None:
            check_features(meta, expected_features)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(onnx, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:     # onnxruntime raises its own kinds (InvalidProtobuf, Fail, ...)
            raise ModelError(f"{source or f'model {meta.name}'}: onnxruntime cannot load it "
                             f"({type(exc).__name__}: {str(exc).strip() or 'no detail'})") from exc
        return cls(meta, session)

    def score(self, features: np.ndarray) -> np.ndarray:
        """P(class 1) for each row of ``features`` (float32, (n, n_features))."""
        x = np.ascontiguousarray(features[:, : self.n_features], dtype=np.float32)
        return np.asarray(self.probabilities(x), dtype=np.float64)[:, 1]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The model's (n, 2) class probabilities for ``x``, which must already be float32, C
        order and exactly ``n_features`` wide (the strategy's hot path prepares it so)."""
        return self.session.run([self.output_name], {self.input_name: x})[0]


def verify_model(model_dir: str | pathlib.Path, expected_features: Sequence[str], threads: int = 1) -> OnnxModel:
    """Load a model and prove it can score for a strategy computing ``expected_features``: its
    metadata reads, lists exactly those features, onnxruntime loads the ONNX file, and a test
    batch gives one probability in [0, 1] per row. Raises ``ModelError`` saying which failed.
    What ``model promote`` and the pre-flight check run before anything relies on a model."""
    model = OnnxModel.load(model_dir, expected_features, threads=threads)
    n = model.n_features
    batch = np.zeros((4, n), dtype=np.float32)      # all-zero, all-one and two seeded random rows
    batch[1] = 1.0
    batch[2:] = np.random.default_rng(0).normal(size=(2, n))
    try:
        p = model.score(batch)
    except Exception as exc:      # onnxruntime's errors for a wrong shape or type have no common base
        raise ModelError(f"{model_dir}: model {model.meta.name} v{model.version} cannot score a test batch of "
                         f"{n} features ({type(exc).__name__}: {str(exc).strip()})") from exc
    if p.shape != (len(batch),) or not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ModelError(f"{model_dir}: model {model.meta.name} v{model.version} scored a test batch with "
                         f"{p.tolist()}; expected one probability in [0, 1] per row")
    return model


def load_model(cfg, features: Sequence[str], name: str | None = None) -> OnnxModel | None:
    """The configured model, checked against ``features``; None when ``[model] name = "none"``."""
    path = resolve_model_dir(cfg, name)
    if path is None:
        return None
    return OnnxModel.load(path, features, threads=cfg.model.threads)


@dataclass(frozen=True)
class ModelFiles:
    """A model as bytes, for a process that cannot read the registry (a sweep worker, a task on
    a Ray cluster): the driver reads it, the worker rebuilds the ``OnnxModel``."""
    meta: ModelMeta
    onnx: bytes

    @classmethod
    def read(cls, cfg, name: str | None = None) -> ModelFiles | None:
        """Model ``name`` (default ``[model] name``) from the registry; None for "none"."""
        path = resolve_model_dir(cfg, name)
        if path is None:
            return None
        return cls(read_metadata(path), (pathlib.Path(path) / MODEL_FILE).read_bytes())

    def load(self, features: Sequence[str], threads: int = 1) -> OnnxModel:
        return OnnxModel.from_bytes(self.meta, self.onnx, features, threads)
