"""Which model each strategy scores with: ``[model] name`` and ``[model] per_strategy``.

    models = load_models(cfg)      # {"triangular": OnnxModel, "maker_triangular": OnnxModel or None}
    engine = decision_source(cfg, universe, models)
    describe_models(models)        # "triangular=default:1 maker_triangular=maker:3" (run metadata)

The rules, the same in a session, a replay and a sweep:

- ``[model] per_strategy = ["maker_triangular=maker"]``: that strategy scores with model
  ``maker``, checked against its own features; a model trained on other features is refused
  (``FeatureMismatch`` names the strategy), never run on the wrong inputs.
- ``[model] name`` scores the strategy it was trained for: the first strategy of the set whose
  features it has and that has no model of its own (if its strategy has one, it is not used).
  It is refused when it fits no strategy of the set.
- Any other strategy runs unscored (``min_score`` does not hold it back).

Only the metadata is read to decide; each model file is loaded once, whichever strategies use it.
"""
from __future__ import annotations

from collections.abc import Mapping

from ctrader.model.registry import ModelMeta, read_metadata, resolve_model_dir
from ctrader.model.scoring import FeatureMismatch, ModelFiles, OnnxModel, check_features, load_model
from ctrader.strategy.registry import strategy_class, strategy_names

NONE = "none"


def per_strategy_names(cfg) -> dict[str, str]:
    """``[model] per_strategy`` as {strategy: model name} (the config loader checked the form
    and the strategy names)."""
    out = {}
    for item in cfg.model.per_strategy:
        strategy, _, name = item.partition("=")
        out[strategy.strip()] = name.strip()
    return out


def assign_models(cfg, name: str | None = None) -> dict[str, str | None]:
    """The registry name of the model each strategy of the set scores with (None: unscored).

    ``name``: the general model instead of ``[model] name`` (e.g. "current", or a model a
    command was asked to evaluate); the per-strategy models stay as configured. ``name="none"``
    (a command told to run unscored): no strategy is scored.
    """
    names = strategy_names(cfg)
    if name == NONE:
        return {n: None for n in names}
    own = per_strategy_names(cfg)
    chosen: dict[str, str | None] = {n: (own.get(n) if own.get(n) != NONE else None) for n in names}
    free = [n for n in names if n not in own]
    general = name or cfg.model.name
    path = resolve_model_dir(cfg, general) if free else None
    if path is None:
        return chosen
    meta = read_metadata(path)
    errors = []
    for strategy in names:
        try:
            check_features(meta, strategy_class(strategy).features)
        except FeatureMismatch as exc:
            errors.append(f"{strategy}: {exc}")
            continue
        if strategy in free:
            chosen[strategy] = general
            return chosen
    if len(errors) < len(names):         # it fits a strategy that has a model of its own
        return chosen
    raise FeatureMismatch(f"model {general!r} ([model] name) fits no strategy of {names}: " + " | ".join(errors))


def load_models(cfg, name: str | None = None) -> dict[str, OnnxModel | None]:
    """The loaded model of each strategy of the set (``assign_models``), each checked against
    its strategy's features."""
    loaded: dict[tuple[str, tuple[str, ...]], OnnxModel] = {}
    out: dict[str, OnnxModel | None] = {}
    for strategy, model_name in assign_models(cfg, name).items():
        if model_name is None:
            out[strategy] = None
            continue
        features = tuple(strategy_class(strategy).features)
        key = (model_name, features)
        if key not in loaded:
            try:
                loaded[key] = load_model(cfg, features, model_name)
            except FeatureMismatch as exc:
                raise FeatureMismatch(f"{strategy}'s model {model_name!r} ([model] per_strategy): {exc}") from exc
        out[strategy] = loaded[key]
    return out


def read_model_files(cfg, name: str | None = None) -> dict[str, ModelFiles | None]:
    """``load_models`` as bytes, for a process that cannot read the registry (a sweep worker)."""
    files: dict[str, ModelFiles] = {}
    out: dict[str, ModelFiles | None] = {}
    for strategy, model_name in assign_models(cfg, name).items():
        if model_name is not None and model_name not in files:
            files[model_name] = ModelFiles.read(cfg, model_name)
        if model_name is not None:
            try:
                check_features(files[model_name].meta, strategy_class(strategy).features)
            except FeatureMismatch as exc:
                raise FeatureMismatch(f"{strategy}'s model {model_name!r} ([model] per_strategy): {exc}") from exc
        out[strategy] = files.get(model_name) if model_name is not None else None
    return out


def load_model_files(files: Mapping[str, ModelFiles | None], threads: int = 1) -> dict[str, OnnxModel | None]:
    """``read_model_files``' answer loaded again (in the worker)."""
    return {strategy: (f.load(strategy_class(strategy).features, threads) if f is not None else None)
            for strategy, f in files.items()}


def _label(meta: ModelMeta) -> str:
    return f"{meta.name}:{meta.version}"


def describe_models(models: Mapping[str, object | None]) -> str:
    """The models of a run in one line: "name:version" for a single strategy, "strategy=name:version"
    for each scored strategy of several; "none" when nothing is scored."""
    scored = {s: m for s, m in models.items() if m is not None}
    if not scored:
        return NONE
    if len(models) == 1:
        return _label(next(iter(scored.values())).meta)
    return " ".join(f"{s}={_label(m.meta)}" for s, m in scored.items())


__all__ = ["assign_models", "describe_models", "load_model_files", "load_models", "per_strategy_names",
           "read_model_files"]
