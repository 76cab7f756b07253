"""``ctrader start``: the trading system — simulator (when it is the venue), feed, strategy,
executor, recorder and the monitor (API, dashboard, metrics, alerts) — until Ctrl-C, SIGTERM or
``--duration``; then a summary."""
from __future__ import annotations

import json
from typing import Optional

import typer

from ctrader.cli.common import run_session_or_exit, state

ALL = ["monitor", "sim", "feed", "strategy", "executor", "recorder"]


def register(app: typer.Typer) -> None:
    @app.command("start")
    def start(
        ctx: typer.Context,
        processes: bool = typer.Option(False, "--processes/--threads",
                                       help="each component in its own OS process (linked by shared memory); "
                                            "default: all in this process"),
        duration: Optional[float] = typer.Option(None, "--duration", "-d", min=0.1,
                                                 help="stop after this many seconds (default: until Ctrl-C)"),
        as_json: bool = typer.Option(False, "--json", help="print the exit summary as JSON"),
        without: list[str] = typer.Option([], "--without", help="leave a component out (repeatable): "
                                                                 + ", ".join(ALL)),
        status_every: float = typer.Option(5.0, "--status-every", min=0.5, help="seconds between status lines"),
    ) -> None:
        """Trade: find triangular arbitrage and execute it (paper mode by default)."""
        from ctrader.runtime.report import exit_code, render_status, render_summary, summarise

        st = state(ctx)
        cfg = st.setup_logging("supervisor")
        names = [n for n in ALL if n not in without and (n != "monitor" or cfg.monitor.enabled)]
        typer.echo(f"ctrader start: venue {cfg.venue.kind}, mode {cfg.run.mode}, "
                   f"{'processes' if processes else 'one process'}"
                   + (f"; dashboard http://{cfg.monitor.host}:{cfg.monitor.port}" if "monitor" in names else "")
                   + "; Ctrl-C stops in order (a second Ctrl-C stops fast)", err=True)
        result = run_session_or_exit(cfg, names, duration_s=duration, processes=processes,
                             on_status=lambda stats: typer.echo(render_status(stats), err=True),
                             status_every_s=status_every, log_format=st.log_format or cfg.run.log_format,
                             log_level=st.log_level or cfg.run.log_level)
        summary = summarise(result)
        if as_json:
            typer.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
        else:
            typer.echo(render_summary(summary))
        code = exit_code(result)
        if code:
            raise typer.Exit(code)
