"""Where models live and what their metadata says.

A model is a directory holding ``model.onnx`` and ``metadata.json``. Models are found in the
registry directory (``[model] dir``, by default ``{data_dir}/models``) and, for the name
``default``, in the package (``ctrader/data/models/default``) when the registry has none::

    path = resolve_model_dir(cfg)                 # None when [model] name = "none"
    meta = read_metadata(path)                    # ModelMeta: features, version, metrics, ...
    for meta in list_models(cfg): print(meta.name, meta.version)

The metadata records the feature list and order (the contract with the strategy), the version,
the training window and data source, and the validation metrics.
"""
from __future__ import annotations

import json
import os
import pathlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

PACKAGED_DIR = pathlib.Path(__file__).resolve().parent.parent / "data" / "models"
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"


class ModelError(RuntimeError):
    """A model that cannot be used: missing files, bad metadata, or features that do not match."""


@dataclass(frozen=True)
class ModelMeta:
    name: str
    version: str
    strategy: str
    features: tuple[str, ...]
    kind: str = ""                       # e.g. logistic_regression
    created_at: str = ""
    training: dict[str, Any] = field(default_factory=dict)   # source, seed, window, samples
    metrics: dict[str, Any] = field(default_factory=dict)    # validation metrics
    onnx: dict[str, Any] = field(default_factory=dict)       # input/output names, opset
    path: str = ""                       # the directory it was read from (not written)

    def to_json(self) -> str:
        doc = asdict(self)
        doc.pop("path")
        doc["features"] = list(self.features)
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def read_metadata(model_dir: str | pathlib.Path) -> ModelMeta:
    path = pathlib.Path(model_dir)
    try:
        doc = json.loads((path / METADATA_FILE).read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: no {METADATA_FILE}") from None
    except ValueError as exc:
        raise ModelError(f"{path / METADATA_FILE}: {exc}") from exc
    try:
        return ModelMeta(name=str(doc["name"]), version=str(doc["version"]), strategy=str(doc["strategy"]),
                         features=tuple(doc["features"]), kind=doc.get("kind", ""),
                         created_at=doc.get("created_at", ""), training=doc.get("training", {}),
                         metrics=doc.get("metrics", {}), onnx=doc.get("onnx", {}), path=str(path))
    except KeyError as exc:
        raise ModelError(f"{path / METADATA_FILE}: missing {exc}") from None


def registry_dir(cfg) -> pathlib.Path:
    from ctrader.config.loader import expand_path

    return expand_path(cfg, cfg.model.dir)


def resolve_model_dir(cfg, name: str | None = None) -> pathlib.Path | None:
    """The directory of model ``name`` (default ``[model] name``); None for "none"."""
    name = name or cfg.model.name
    if name == "none":
        return None
    candidates = [registry_dir(cfg) / name]
    if name == "default":
        candidates.append(PACKAGED_DIR / "default")
    for path in candidates:
        if (path / MODEL_FILE).is_file():
            return path
    raise ModelError(f"model {name!r} not found (looked in {', '.join(str(c) for c in candidates)})")


def list_models(cfg) -> list[ModelMeta]:
    """Every readable model of the registry, then the packaged ones (aliases such as the
    ``current`` symlink are not listed twice: see ``aliases``)."""
    out: list[ModelMeta] = []
    for root in (registry_dir(cfg), PACKAGED_DIR):
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.iterdir() if not p.is_symlink() and (p / MODEL_FILE).is_file()):
            try:
                out.append(read_metadata(path))
            except ModelError:
                continue
    return out


def aliases(cfg) -> dict[str, str]:
    """Symlinks in the registry (e.g. ``current`` -> ``m2``): alias -> model directory name."""
    root = registry_dir(cfg)
    if not root.is_dir():
        return {}
    return {p.name: pathlib.Path(p.readlink()).name for p in sorted(root.iterdir())
            if p.is_symlink() and (p / MODEL_FILE).is_file()}


# --- the promoted model -------------------------------------------------------------------------

CURRENT = "current"      # {registry}/current: a symlink to the model a strategy with model.name "current" runs


def current_target(cfg) -> str | None:
    """The model name ``{registry}/current`` points to, or None."""
    link = registry_dir(cfg) / CURRENT
    if not link.is_symlink():
        return None
    return pathlib.Path(os.readlink(link)).name


class PromotionWatcher:
    """Tells a running strategy when ``current`` points at another model (cheap: one readlink,
    at most every ``interval_s``); the strategy then loads it and swaps its scorer::

        watcher = PromotionWatcher(cfg)            # in the strategy process, [model] name = "current"
        if watcher.poll(): engine.model = load_strategy_model(cfg, "current")
    """

    def __init__(self, cfg, interval_s: float = 1.0) -> None:
        self.cfg = cfg
        self.interval_s = interval_s
        self.target = current_target(cfg)
        self._next = time.monotonic() + interval_s

    def poll(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now < self._next:
            return False
        self._next = now + self.interval_s
        target = current_target(self.cfg)
        if target != self.target:
            self.target = target
            return True
        return False
