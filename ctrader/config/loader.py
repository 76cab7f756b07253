"""Load, layer and validate configuration.

Layers, later wins:
  1. ``default.toml`` — every key, with a value that works with no edits (shipped in the package,
     ``ctrader/data/config``; ``config/`` in a checkout links to the same files);
  2. a user TOML file (``--config FILE``), which only needs the keys it changes; the name of a
     shipped file (``--config binance-live``) works from any directory;
  3. environment variables ``CTRADER_<SECTION>_<KEY>`` (e.g. ``CTRADER_RUN_LOG_LEVEL``), plus the
     short aliases in ``ENV_ALIASES`` (``CTRADER_DATA_DIR``);
  4. ``--set section.key=value`` overrides from the command line.

Everything is checked against ``schema.Config``: an unknown key, a wrong type or a value out of
range raises ``ConfigError`` naming the key, the bad value, where it came from and what is
allowed.
A key from a file is named with its line (``my.toml:12``); a non-finite number (``nan``,
``inf``) is refused everywhere, since NaN compares false with every limit and would silently
disable it.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import pathlib
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from typing import Any

from ctrader.config.schema import Config
from ctrader.config.toml_lines import key_lines

# Package data, so an installed ctrader (not only a checkout) finds its defaults.
CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "data" / "config"
DEFAULT_FILE = CONFIG_DIR / "default.toml"
ENV_PREFIX = "CTRADER_"
ENV_ALIASES = {"CTRADER_DATA_DIR": ("run", "data_dir")}


class ConfigError(ValueError):
    """A configuration value is missing, unknown or not allowed."""


def load_config(path: str | os.PathLike | None = None, *, overrides: Mapping[str, str] | None = None,
                env: Mapping[str, str] | None = None) -> Config:
    """Build the validated configuration from the layers described in the module docstring."""
    env = os.environ if env is None else env
    merged, lines = _read_toml(DEFAULT_FILE)
    sources: dict[str, str] = {}
    _mark_sources(merged, DEFAULT_FILE.name, lines, sources)
    if path is not None:
        path = resolve_config_path(path)
        user, lines = _read_toml(pathlib.Path(path))
        _mark_sources(user, str(path), lines, sources)
        _deep_merge(merged, user)
    for dotted, value, origin in _env_overrides(env):
        _set_dotted(merged, dotted, value)
        sources[dotted] = origin
    for dotted, value in (overrides or {}).items():
        _set_dotted(merged, dotted, value)
        sources[dotted] = f"--set {dotted}"
    return _build(Config, merged, "", sources)


def shipped_configs() -> dict[str, pathlib.Path]:
    """The configurations that ship with ctrader, by name (``binance-live``: its file)."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.toml"))}


def resolve_config_path(path: str | os.PathLike) -> pathlib.Path:
    """``path`` itself when it exists; otherwise the shipped file of that name (``binance-paper``
    or ``binance-paper.toml``), so an installed ctrader needs no checkout to find them."""
    given = pathlib.Path(path)
    if given.exists():
        return given
    shipped = shipped_configs()
    name = given.name.removesuffix(".toml")
    # a bare name, or config/NAME.toml as a checkout's README writes it
    if name in shipped and (given.parent == pathlib.Path(".") or given.parent.name == "config"):
        return shipped[name]
    raise ConfigError(f"config file not found: {given} (shipped configurations: {', '.join(shipped)})")


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

def _read_toml(path: pathlib.Path) -> tuple[dict, dict[str, int]]:
    """The file's tree and the line of each of its keys."""
    try:
        text = path.read_bytes().decode()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        return tomllib.loads(text), key_lines(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _deep_merge(base: dict, top: Mapping) -> None:
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _mark_sources(tree: Mapping, origin: str, lines: Mapping[str, int], sources: dict, prefix: str = "") -> None:
    """Record where every table and key of ``tree`` comes from: ``file:line`` when the line is known."""
    def at(dotted: str) -> str:
        return f"{origin}:{lines[dotted]}" if dotted in lines else origin

    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        sources[dotted] = at(dotted)
        if isinstance(value, Mapping):
            _mark_sources(value, origin, lines, sources, dotted + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):             # [[array.of.tables]]
                    sources[f"{dotted}[{i}]"] = at(f"{dotted}[{i}]")
                    _mark_sources(item, origin, lines, sources, f"{dotted}[{i}].")


def _origin(sources: Mapping[str, str], dotted: str) -> str:
    """Where ``dotted`` was set: itself, else the first key set inside it (a section known only
    by its keys, e.g. from ``--set``), else the nearest enclosing table or list."""
    if dotted in sources:
        return sources[dotted]
    inside = next((origin for key, origin in sources.items() if key.startswith((dotted + ".", dotted + "["))),
                  None)
    if inside is not None:
        return inside
    parent = dotted
    while parent:
        parent = parent[:parent.rindex("[")] if parent.endswith("]") else parent.rpartition(".")[0]
        if parent in sources:
            return sources[parent]
    return "?"


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
        name = unknown[0]
        what = "section" if isinstance(data[name], Mapping) else "key"
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"did you mean {prefix}{close[0]}? " if close else ""
        known = "sections" if not prefix else f"keys in {where}"
        raise ConfigError(f"unknown {what} {prefix}{name} (from {_origin(sources, prefix + name)}): {hint}"
                          f"known {known}: {', '.join(sorted(fields))}")
    values = {}
    for name, f in fields.items():
        dotted = f"{prefix}{name}"
        if name not in data:
            raise ConfigError(f"missing key {dotted}: {f.metadata.get('help', '')}")
        values[name] = _coerce(hints[name], data[name], dotted, f.metadata, sources)
    return cls(**values)


def _coerce(tp: Any, raw: Any, dotted: str, meta: Mapping, sources: Mapping[str, str]) -> Any:
    origin = _origin(sources, dotted)

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
        if not math.isfinite(value):       # NaN passes every comparison with a limit as "within"
            fail("a finite number")
    elif tp is str:
        if not isinstance(raw, str):
            fail("a string")
        if meta.get("amounts"):
            _check_amount(raw, meta["amounts"], fail, meta.get("key") or "ASSET")
            return raw
        if meta.get("named"):
            _check_named(raw, meta["named"], fail, meta.get("key") or "KEY")
            return raw
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


_DECIMAL = re.compile(r"\s*(\d+(\.\d*)?|\.\d+)\s*")


def _check_named(item: str, keys: tuple, fail: Callable[[str], typing.NoReturn], key: str) -> None:
    """A ``KEY=NAME`` item (``schema.opt(named=...)``): KEY one of ``keys``, NAME not empty."""
    left, sep, name = item.partition("=")
    if not sep or not name.strip():
        fail(f"{key}=NAME (e.g. {keys[0]}=mymodel)")
    if left.strip() not in keys:
        fail(f"{key}=NAME with {key} one of " + ", ".join(keys))


def _check_amount(item: str, kind: str, fail: Callable[[str], typing.NoReturn], key: str = "ASSET") -> None:
    """A ``KEY=AMOUNT`` item (``schema.opt(amounts=...)``): a name (an asset, a strategy) and an
    amount in plain decimal notation (exact, as money is written: no exponent, no nan or inf),
    positive or non-negative as ``kind`` says."""
    example = "BTC=0.015" if key == "ASSET" else "triangular=250"
    expected = f"{key}=AMOUNT with a {kind} decimal amount (e.g. {example})"
    asset, sep, amount = item.partition("=")
    if not sep or not asset.strip() or not _DECIMAL.fullmatch(amount):
        fail(expected)
    if kind == "positive" and not float(amount) > 0:
        fail(expected)
