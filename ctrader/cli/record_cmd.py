"""``ctrader record [--duration S]``: record market data from the configured venue into the store.

Runs the feed and the recorder (plus the built-in simulator when it is the venue) through the
same session runner as ``ctrader start``, so what is recorded is exactly what trading sees.
"""
from __future__ import annotations

import json

import typer

from ctrader.cli.common import run_session_or_exit, state

COMPONENTS = ["sim", "feed", "recorder"]      # the simulator only when it is the venue (run_session)


def register(app: typer.Typer) -> None:
    @app.command("record")
    def record(
        ctx: typer.Context,
        duration: float | None = typer.Option(None, "--duration", "-d", min=0.1,
                                                 help="stop after this many seconds (default: until Ctrl-C)"),
        processes: bool = typer.Option(False, "--processes/--threads",
                                       help="each component in its own OS process; default: one process"),
        as_json: bool = typer.Option(False, "--json", help="print the exit summary as JSON"),
        status_every: float = typer.Option(5.0, "--status-every", min=0.5, help="seconds between status lines"),
    ) -> None:
        """Record the venue's market data (books and trades) into the ClickHouse store."""
        from ctrader.runtime.report import exit_code, render_status, render_stop

        st = state(ctx)
        cfg = st.setup_logging("supervisor")
        typer.echo(f"ctrader record: venue {cfg.venue.kind} -> {cfg.store.url} ({cfg.store.database}); "
                   f"Ctrl-C stops", err=True)
        result = run_session_or_exit(cfg, COMPONENTS, duration_s=duration, processes=processes,
                             on_status=lambda stats: typer.echo(render_status(stats), err=True),
                             status_every_s=status_every, log_format=st.log_format or cfg.run.log_format,
                             log_level=st.log_level or cfg.run.log_level)
        rec = result["stats"].get("recorder", {})
        summary = {"run_id": result["run_id"], "failed": result["failed"], "stop": result.get("stop", {}),
                   "rows": {k[5:]: v for k, v in rec.items() if k.startswith("rows_")},
                   "md_lost": rec.get("md_lost"), "spill_pending_batches": rec.get("spill_pending_batches")}
        if as_json:
            typer.echo(json.dumps(summary, indent=2, sort_keys=True))
        else:
            rows = ", ".join(f"{t} {n:,}" for t, n in summary["rows"].items()) or "nothing"
            typer.echo(f"run {summary['run_id']}: recorded {rows}; md records lost {summary['md_lost']}; "
                       f"spill pending {summary['spill_pending_batches']}")
            if summary["stop"]:
                typer.echo(render_stop(summary["stop"]))
        code = exit_code(result)
        if code:
            raise typer.Exit(code)
