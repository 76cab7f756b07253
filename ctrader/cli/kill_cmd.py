"""``ctrader kill`` / ``ctrader kill --clear``: the file kill switch.

The executor refuses every new order while ``risk.kill_file`` ({data_dir}/KILL by default)
exists and cancels its open orders the first time it sees it (``ctrader.execution.risk.KillSwitch``);
``--clear`` removes the file so trading may resume. ``kill -USR1 <executor pid>`` does the same
for one process until it restarts.
"""
from __future__ import annotations

import typer

from ctrader.cli.common import state
from ctrader.config import expand_path
from ctrader.execution.killfile import clear_kill_file, engage_kill_file


def kill(ctx: typer.Context,
         clear: bool = typer.Option(False, "--clear", help="remove the kill file: trading may resume")) -> None:
    """Stop all trading: new orders are refused and open ones cancelled (--clear to resume)."""
    cfg = state(ctx).config()
    path = expand_path(cfg, cfg.risk.kill_file)
    if clear:
        if clear_kill_file(path):
            typer.echo(f"kill switch cleared: removed {path}")
        else:
            typer.echo(f"kill switch was not engaged ({path} does not exist)")
        return
    engage_kill_file(path, "ctrader kill")
    typer.echo(f"kill switch engaged: {path} (ctrader kill --clear to resume)")


def register(app: typer.Typer) -> None:
    app.command("kill")(kill)
