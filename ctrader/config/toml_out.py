"""Configuration trees written back as TOML that ``load_config`` reads (``ctrader config show``,
``ctrader strategies rank --select``)::

    lines = to_toml(config_to_dict(cfg))                  # the whole effective configuration
    lines = to_toml(changed(tree, config_to_dict(load_config(None, env={}))))   # only what differs
"""
from __future__ import annotations

from typing import Any

import orjson


def to_toml(tree: dict, prefix: str = "") -> list[str]:
    """TOML lines for ``tree``: scalars, then sub-tables, then arrays of tables
    (``[[sim.accounts]]``)."""
    lines, tables, arrays = [], [], []
    for key, value in tree.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {orjson.dumps(list(value) if isinstance(value, tuple) else value).decode()}")
    for key, value in tables:
        lines += ["", f"[{prefix}{key}]"] + to_toml(value, f"{prefix}{key}.")
    for key, items in arrays:
        for item in items:
            lines += ["", f"[[{prefix}{key}]]"] + to_toml(item, f"{prefix}{key}.")
    return lines


def changed(tree: dict, base: dict) -> dict[str, Any]:
    """The keys of ``tree`` whose values differ from ``base``'s, tables kept as tables (an array
    of tables, e.g. ``sim.accounts``, is one value)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        other = base.get(key)
        if isinstance(value, dict) and isinstance(other, dict):
            sub = changed(value, other)
            if sub:
                out[key] = sub
        elif value != other:
            out[key] = value
    return out
