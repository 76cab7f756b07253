"""``ctrader report RUN_ID``: the HTML report of a recorded live or paper session.

    ctrader report 20260101-120000-4242                   # writes report-20260101-120000-4242.html
    ctrader report 20260101-120000-4242 --out day1.html --valuation-asset BTC
    ctrader report 20260101-120000-4242 --json            # every fill and group, no HTML

From the store: the session's real orders, fills and fees, not a re-simulation (``ctrader replay
--run RUN_ID`` re-simulates it). ``ctrader runs list --kind session`` lists the sessions.
"""
from __future__ import annotations

import orjson
import typer

from ctrader.cli.common import state
from ctrader.cli.replay_cmd import open_store
from ctrader.core.extras import require


def report(ctx: typer.Context,
           run_id: str = typer.Argument(..., help="the session's run id (ctrader runs list --kind session)"),
           out: str | None = typer.Option(None, "--out", "-o", help="HTML file to write; default report-RUN_ID.html"),
           valuation_asset: str | None = typer.Option(None, "--valuation-asset",
                                                      help="value positions in this asset; default [risk] valuation_asset"),
           as_json: bool = typer.Option(False, "--json", help="print the summary with every fill and group as "
                                                                 "JSON instead of writing HTML")) -> None:
    """HTML report of a recorded live or paper session: PnL, positions, fills, groups, latency."""
    from ctrader.config import data_dir
    from ctrader.replay.session_report import (
        SessionNotFound,
        format_summary,
        load_session,
        to_json,
        write_html,
    )
    from ctrader.core.stats import read_stats

    cfg = state(ctx).setup_logging("report")
    if not as_json:
        require("report")
    # The executor's own final figures, when the run directory is on this machine: a cross-check.
    run_dir = data_dir(cfg) / "runs" / run_id
    executor_stats = read_stats(run_dir).get("executor") if run_dir.is_dir() else None
    store = open_store(cfg)
    try:
        try:
            rep = load_session(store, run_id, valuation_asset or cfg.risk.valuation_asset, executor_stats)
        except SessionNotFound as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
    finally:
        store.close()
    if as_json:
        typer.echo(orjson.dumps(to_json(rep), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                                default=str).decode())
        return
    path = write_html(rep, out or f"report-{run_id}.html")
    typer.echo(format_summary(rep.summary))
    typer.echo(f"report: {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
