"""``ctrader kill`` / ``ctrader kill --clear``: the file kill switch.

The executor refuses every new order while ``risk.kill_file`` ({data_dir}/KILL by default)
exists and cancels its open orders the first time it sees it (``ctrader.execution.risk.KillSwitch``);
``--clear`` removes the file so trading may resume. ``kill -USR1 <executor pid>`` does the same
for one process until it restarts.
"""
from __future__ import annotations

import time

import typer

from ctrader.cli.common import state
from ctrader.config import expand_path


def kill(ctx: typer.Context,
         clear: bool = typer.Option(False, "--clear", help="remove the kill file: trading may resume")) -> None:
    """Stop all trading: new orders are refused and open ones cancelled (--clear to resume)."""
    cfg = state(ctx).config()
    path = expand_path(cfg, cfg.risk.kill_file)
    if clear:
        if path.exists():
            path.unlink()
            typer.echo(f"kill switch cleared: removed {path}")
        else:
            typer.echo(f"kill switch was not engaged ({path} does not exist)")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"engaged by ctrader kill at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    typer.echo(f"kill switch engaged: {path} (ctrader kill --clear to resume)")


def register(app: typer.Typer) -> None:
    app.command("kill")(kill)
