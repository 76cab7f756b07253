"""Progress bars: drawn on a terminal, one per stage; nothing when output is not a terminal."""
from __future__ import annotations

import io

from rich.console import Console

from ctrader.cli.progress import ProgressBar
from ctrader.core.progress import no_progress


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


def test_bar_draws_each_stage_on_a_terminal():
    console, out = _terminal()
    with ProgressBar(console=console) as bar:
        bar("labelling history", 0, 3600, "0 candidates")
        bar("labelling history", 3600, 3600, "1,234 candidates")
        bar("fitting", 1, 1)
        first, second = bar._bar.tasks
        assert (first.completed, first.total, first.fields["detail"]) == (3600, 3600, "1,234 candidates")
        assert not first.visible and second.description == "fitting" and second.finished
    text = out.getvalue()
    assert "labelling history" in text and "0 candidates" in text and "fitting" in text


def test_bar_is_off_when_not_a_terminal_or_disabled(capsys):
    bar = ProgressBar()                       # under pytest stderr is not a terminal
    assert not bar.enabled
    bar("replay", 1, 2)
    bar.close()
    assert capsys.readouterr().err == ""
    console, out = _terminal()
    with ProgressBar(enabled=False, console=console) as off:     # --json
        off("replay", 1, 2)
    assert out.getvalue() == ""


def test_frequent_updates_are_thinned_but_the_end_is_drawn():
    console, out = _terminal()
    with ProgressBar(console=console) as bar:
        for i in range(10_000):
            bar("replay", i, 10_000)
        bar("replay", 10_000, 10_000, "done")
        assert bar._bar.tasks[-1].completed == 10_000
    assert "done" in out.getvalue()


def test_no_progress_accepts_every_call():
    assert no_progress("x", 1, 2, "detail") is None
