"""Progress bars (rich) on stderr for commands that run longer than a few seconds.

Drawn only when stderr is a terminal and the command prints no JSON: piped or scripted output
stays clean. One bar per stage (``ctrader.core.progress.Progress``); each disappears when its
stage ends, so the command's own output is what stays on the screen.

    with ProgressBar(enabled=not as_json) as bar:
        train_from_sim(cfg, opts, target, progress=bar)
"""
from __future__ import annotations

import sys
import time

# a stage is redrawn at most this often: callers may report per batch, thousands of times a second
MIN_INTERVAL_S = 0.1


class ProgressBar:
    def __init__(self, enabled: bool = True, console=None) -> None:
        self.enabled = enabled and (console is not None or sys.stderr.isatty())
        self._console = console
        self._bar = None
        self._task = None
        self._stage: str | None = None
        self._last = 0.0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                             TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                             console=self._console or Console(stderr=True), transient=True)
        self._bar.start()

    def __call__(self, stage: str, done: float, total: float, detail: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._start()
        now = time.monotonic()
        if stage != self._stage:
            if self._task is not None:
                self._bar.update(self._task, completed=self._bar.tasks[-1].total, visible=False)
            self._task = self._bar.add_task(stage, total=max(total, 1e-9), detail=detail)
            self._stage, self._last = stage, 0.0
        elif now - self._last < MIN_INTERVAL_S and done < total:
            return
        self._last = now
        self._bar.update(self._task, completed=min(done, total), total=max(total, 1e-9), detail=detail)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
