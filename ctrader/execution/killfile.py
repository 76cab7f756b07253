"""The file kill switch, from outside the executor: ``ctrader kill`` and the monitor's
``POST /api/kill`` write the file, every executor watching it (``risk.KillSwitch``) refuses new
orders and cancels its open ones; removing the file lets trading resume. Standard library only:
the commands that use it start fast.

    engage_kill_file(path, "ctrader kill"); kill_file_note(path)  # "engaged by ctrader kill at ..."
    clear_kill_file(path)
"""
from __future__ import annotations

import os
import pathlib
import time


def engage_kill_file(path: str | os.PathLike, by: str) -> pathlib.Path:
    """Engage the file kill switch: every executor watching ``path`` refuses new orders and
    cancels its open ones. The file says who engaged it and when (the monitor's alert quotes it)."""
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f"engaged by {by} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    return p


def clear_kill_file(path: str | os.PathLike) -> bool:
    """Remove the kill file (trading may resume); False when it was not there."""
    try:
        pathlib.Path(path).unlink()
    except FileNotFoundError:
        return False
    return True


def kill_file_note(path: str | os.PathLike) -> str:
    """The first line of the kill file ("engaged by ... at ..."), "" when there is none."""
    try:
        with open(path) as fh:
            return fh.readline(500).strip()
    except OSError:
        return ""
