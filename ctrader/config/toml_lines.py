"""Where each key of a TOML file is written: dotted key -> line number (1-based).

``tomllib`` gives values without positions, so an error about a key would otherwise only name
the file. This scanner reads the file's lines as TOML lays them out: table headers
(``[risk]``, ``[sim.market]``), arrays of tables (``[[sim.accounts]]``, numbered as the loader
numbers them: ``sim.accounts[0]``) and ``key = value`` lines (dotted keys too). A table is
placed at its header, a key at its assignment::

    lines = key_lines('[risk]\\nmax_position = 5\\n')
    lines["risk"] == 1 and lines["risk.max_position"] == 2

It does not validate anything (``tomllib`` has done that): lines inside multi-line strings and
continuation lines of multi-line arrays are skipped, and a key it cannot place is simply absent.
"""
from __future__ import annotations

import re

_KEY_PART = r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'"""          # bare, "quoted" or 'literal'
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*((?:{_KEY_PART})(?:\s*\.\s*(?:{_KEY_PART}))*)\s*=")
_PART = re.compile(_KEY_PART)


def _parts(dotted: str) -> list[str]:
    return [p.strip("\"'") for p in _PART.findall(dotted)]


def key_lines(text: str) -> dict[str, int]:
    """Every table and key of the TOML ``text`` -> the line it is written on."""
    out: dict[str, int] = {}
    table: list[str] = []
    array_counts: dict[str, int] = {}
    in_string: str | None = None          # the delimiter of an open multi-line string
    depth = 0                             # open brackets of a multi-line array value
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string is not None:
            if line.count(in_string) % 2:
                in_string = None
            continue
        if depth > 0:
            depth = max(0, depth + _bracket_balance(line))
            continue
        header = _HEADER.match(line)
        if header:
            name = ".".join(_parts(header.group(2)))
            if header.group(1) == "[[":          # each [[x]] opens the next element of array x
                index = array_counts.get(name, 0)
                array_counts[name] = index + 1
                out.setdefault(name, number)
                name = f"{name}[{index}]"
            table = [name]
            out.setdefault(name, number)
            continue
        assign = _ASSIGN.match(line)
        if not assign:
            continue
        key = ".".join(table + _parts(assign.group(1)))
        out.setdefault(key, number)
        value = line[assign.end():]
        for quote in ('"""', "'''"):
            if value.count(quote) % 2:
                in_string = quote
                break
        else:
            depth = max(0, _bracket_balance(value))
    return out


def _bracket_balance(text: str) -> int:
    """Opened minus closed brackets outside strings and comments (for multi-line arrays)."""
    balance = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        elif ch in "[{":
            balance += 1
        elif ch in "]}":
            balance -= 1
    return balance
