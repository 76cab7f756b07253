"""How long work says how far it is: a ``Progress`` callable, called now and then.

    def label(..., progress: Progress = no_progress):
        for ...:
            progress("labelling history", market_s_done, market_s_total)

``stage`` names what is being done ("simulating market", "replay none"); ``done`` and ``total``
are in the stage's own unit (market seconds, replays); ``detail`` is a short figure to show
beside it ("12,345 events"). A new stage name starts a new bar. The CLI draws it with rich on a
terminal (``ctrader.cli.progress``); library callers pass nothing.
"""
from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, stage: str, done: float, total: float, detail: str = "") -> None: ...


def no_progress(stage: str, done: float, total: float, detail: str = "") -> None:
    """The default: report nowhere."""
