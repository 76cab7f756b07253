"""Load, layer and validate configuration.

Layers, later wins:
  1. ``config/default.toml`` — every key, with a value that works with no edits;
  2. a user TOML file (``--config FILE``), which only needs the keys it changes;
  3. environment variables ``CTRADER_<SECTION>_<KEY>`` (e.g. ``CTRADER_RUN_LOG_LEVEL``), plus the
     short aliases in ``ENV_ALIASES`` (``CTRADER_DATA_DIR``);
  4. ``--set section.key=value`` overrides from the command line.

Everything is checked against ``schema.Config``: an unknown key, a wrong type or a value out of
range raises ``ConfigError`` naming the key, the bad value, where it came from and what is
allowed.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import tomllib
import typing
from typing import Any, Mapping

from ctrader.config.schema import Config

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent.parent / "config"
DEFAULT_FILE = CONFIG_DIR / "default.toml"
ENV_PREFIX = "CTRADER_"
ENV_ALIASES = {"CTRADER_DATA_DIR": ("run", "data_dir")}


class ConfigError(ValueError):
    """A configuration value is missing, unknown or not allowed."""


def load_config(path: str | os.PathLike | None = None, *, overrides: Mapping[str, str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Build the validated configuration from the layers described in the module docstring."""
    env = os.environ if env is None else env
    merged = _read_toml(DEFAULT_FILE)
    sources: dict[str, str] = {}
    _mark_sources(merged, DEFAULT_FILE.name, sources)
    if path is not None:
        user = _read_toml(pathlib.Path(path))
        _mark_sources(user, str(path), sources)
        _deep_merge(merged, user)
    for dotted, value, origin in _env_overrides(env):
        _set_dotted(merged, dotted, value)
        sources[dotted] = origin
    for dotted, value in (overrides or {}).items():
        _set_dotted(merged, dotted, value)
        sources[dotted] = f"--set {dotted}"
    return _build(Config, merged, "", sources)


def config_to_dict(cfg: Any) -> dict:
    """The config as plain data (for ``config show`` and run metadata); holds no secrets: alert
    URLs, which carry tokens, show their scheme only."""
    tree = dataclasses.asdict(cfg)
    alerts = tree.get("alerts")
    if isinstance(alerts, dict) and alerts.get("urls"):
        alerts["urls"] = tuple(u.split("://", 1)[0] + "://***" if "://" in u else "***" for u in alerts["urls"])
    return tree


def data_dir(cfg: Config) -> pathlib.Path:
    return pathlib.Path(os.path.expanduser(cfg.run.data_dir)).resolve()


def expand_path(cfg: Config, template: str) -> pathlib.Path:
    """A path setting with ``{data_dir}`` replaced and ``~`` expanded (e.g. ``model.dir``)."""
    return pathlib.Path(os.path.expanduser(template.replace("{data_dir}", str(data_dir(cfg))))).resolve()


# --- layers ------------------------------------------------------------------------------------

def _read_toml(path: pathlib.Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _deep_merge(base: dict, top: Mapping) -> None:
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _mark_sources(tree: Mapping, origin: str, sources: dict, prefix: str = "") -> None:
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _mark_sources(value, origin, sources, dotted + ".")
        else:
            sources[dotted] = origin


def _env_overrides(env: Mapping[str, str]):
    """Yield (dotted key, raw string, origin) for every schema key set in the environment."""
    for name, dotted in ENV_ALIASES.items():
        if name in env:
            yield ".".join(dotted), env[name], f"env {name}"
    for dotted in _scalar_keys(Config):
        name = ENV_PREFIX + dotted.replace(".", "_").upper()
        if name in env:
            yield dotted, env[name], f"env {name}"


def _scalar_keys(cls: type, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _scalar_keys(tp, f"{prefix}{f.name}.")
        elif typing.get_origin(tp) is not list or not dataclasses.is_dataclass(typing.get_args(tp)[0]):
            yield f"{prefix}{f.name}"


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section")
    node[leaf] = value


# --- validation --------------------------------------------------------------------------------

def _build(cls: type, data: Any, prefix: str, sources: Mapping[str, str]) -> Any:
    where = prefix.rstrip(".") or "<top level>"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (from {sources.get(prefix + unknown[0], '?')});"
                          f" known keys in {where}: {', '.join(sorted(fields))}")
    values = {}
    for name, f in fields.items():
        dotted = f"{prefix}{name}"
        if name not in data:
            raise ConfigError(f"missing key {dotted}: {f.metadata.get('help', '')}")
        values[name] = _coerce(hints[name], data[name], dotted, f.metadata, sources)
    return cls(**values)


def _coerce(tp: Any, raw: Any, dotted: str, meta: Mapping, sources: Mapping[str, str]) -> Any:
    origin = sources.get(dotted, "?")

    def fail(expected: str) -> typing.NoReturn:
        help_text = f" ({meta['help']})" if meta.get("help") else ""
        raise ConfigError(f"{dotted} = {raw!r} (from {origin}): expected {expected}{help_text}")

    if dataclasses.is_dataclass(tp):
        return _build(tp, raw, dotted + ".", sources)
    if typing.get_origin(tp) is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(raw, str):  # from env / --set: comma-separated
            raw = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(raw, list):
            fail("a list")
        return tuple(_coerce(item_tp, item, f"{dotted}[{i}]", meta, sources) for i, item in enumerate(raw))
    if tp is bool:
        if isinstance(raw, bool):
            value = raw
        elif isinstance(raw, str) and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            value = raw.lower() in ("1", "true", "yes", "on")
        else:
            fail("true or false")
    elif tp is int:
        if isinstance(raw, bool):
            fail("an integer")
        try:
            value = int(raw) if isinstance(raw, (int, str)) else fail("an integer")
        except ValueError:
            fail("an integer")
    elif tp is float:
        if isinstance(raw, bool):
            fail("a number")
        try:
            value = float(raw) if isinstance(raw, (int, float, str)) else fail("a number")
        except ValueError:
            fail("a number")
    elif tp is str:
        if not isinstance(raw, str):
            fail("a string")
        value = raw
    else:  # pragma: no cover - a schema bug, not a user error
        raise TypeError(f"unsupported config type {tp!r} for {dotted}")
    if meta.get("choices") and value not in meta["choices"]:
        fail("one of " + ", ".join(map(str, meta["choices"])))
    if meta.get("pow2") and (value <= 0 or value & (value - 1)):
        fail("a power of two")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        fail(f"a value in [{lo}, {hi}]")
    return value
