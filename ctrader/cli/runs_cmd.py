"""``ctrader runs list|compare``: recorded sessions and replay runs stored in ClickHouse.

    ctrader runs list [--kind session|replay|sweep|eval|rank] [--limit 20] [--json]
    ctrader runs compare re20260101-... re20260102-...
    ctrader report RUN_ID                   # the HTML report of a session
"""
from __future__ import annotations

from datetime import UTC, datetime

import orjson
import typer

from ctrader.cli.common import state
from ctrader.cli.replay_cmd import open_store

runs_app = typer.Typer(help="Sessions and replay runs: list and compare.", no_args_is_help=True)

KINDS = ("session", "replay", "sweep", "eval", "rank")


def _open(ctx):
    from ctrader.replay.results import ReplayResults

    cfg = state(ctx).setup_logging("runs")
    store = open_store(cfg)
    return store, ReplayResults(store)


def _dump(obj) -> str:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


@runs_app.command("list")
def list_cmd(ctx: typer.Context,
             limit: int = typer.Option(50, "--limit", help="newest first, at most this many"),
             kind: str | None = typer.Option(None, "--kind", help="session, replay, sweep, eval or rank"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Sessions (ctrader start / record) and replay runs, newest first: when, what data, orders,
    fills, PnL; a session's report: ctrader report RUN_ID."""
    from ctrader.replay.session_report import list_sessions

    if kind is not None and kind not in KINDS:
        raise typer.BadParameter(f"--kind {kind}: choose from {', '.join(KINDS)}")
    store, rs = _open(ctx)
    try:
        sessions = list_sessions(store, limit) if kind in (None, "session") else []
        replays = rs.list_runs(limit, kind) if kind != "session" else []
    finally:
        store.close()
    runs = sorted(sessions + replays, key=_when, reverse=True)[:limit]
    if as_json:
        typer.echo(_dump(runs))
        return
    if not runs:
        typer.echo("no sessions or replay runs" if kind is None else f"no runs of kind {kind}")
        return
    typer.echo(f"{'run':<34} {'kind':<7} {'data start':<19} {'hours':>6} {'events':>10} {'orders':>7} "
               f"{'fills':>6} {'pnl':>12}  details")
    for r in runs:
        if r["kind"] == "session":
            hours = "-" if r["duration_s"] is None else f"{r['duration_s'] / 3600:.2f}"
            details = f"{r['mode']} on {r['venue']}" + ("" if r["ended"] else ", no end recorded (running, or crashed)")
            typer.echo(f"{r['run_id']:<34} {'session':<7} {r['started']:%Y-%m-%d %H:%M:%S} {hours:>6} "
                       f"{r['md_rows']:>10,} {r['orders']:>7,} {r['fills']:>6,} {'-':>12}  {details}")
            continue
        hours = (r["data_end"] - r["data_start"]).total_seconds() / 3600
        extra = r["model_version"] + (f" {r['params']}" if r["params"] else "")
        typer.echo(f"{r['run_id']:<34} {r['kind']:<7} {r['data_start']:%Y-%m-%d %H:%M:%S} {hours:>6.2f} "
                   f"{r['events']:>10,} {r['intents']:>7,} {r['fills']:>6,} {r['pnl']:>12.4f}  "
                   f"config {r['config_hash'][:8]}  {extra}")
    if sessions:
        typer.echo("a session's PnL, positions and fills: ctrader report RUN_ID")


def _when(run: dict) -> datetime:
    """When a run happened: a session's start, a replay's creation (both UTC)."""
    t = run["started"] if run["kind"] == "session" else run["created_ts"]
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


@runs_app.command("compare")
def compare_cmd(ctx: typer.Context, a: str = typer.Argument(..., help="first run id"),
                b: str = typer.Argument(..., help="second run id"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Two runs side by side: what differs in their set-up, their figures, and per triangle."""
    store, rs = _open(ctx)
    try:
        try:
            c = rs.compare(a, b)
        except KeyError as exc:
            typer.secho(str(exc.args[0]), fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
    finally:
        store.close()
    if as_json:
        typer.echo(_dump(c))
        return
    typer.echo(f"A = {a}\nB = {b}")
    typer.echo("same:      " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in c["same"].items()))
    typer.echo("identical: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in c["identical"].items()))
    if c["params"]["a"] or c["params"]["b"]:
        typer.echo(f"params:    A {c['params']['a']}  B {c['params']['b']}")
    typer.echo(f"{'':<16}{'A':>14}{'B':>14}{'B - A':>14}")
    for k, v in c["figures"].items():
        typer.echo(f"{k:<16}{_n(v['a']):>14}{_n(v['b']):>14}{_n(v['delta']):>14}")
    if c["triangles"]:
        typer.echo("triangles that differ most (PnL):")
        for t in c["triangles"]:
            typer.echo(f"  {t['delta']:+12.4f}  A {t['a']:+.4f}  B {t['b']:+.4f}  {t['triangle']}")


def _n(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
