"""``ctrader db migrate`` / ``ctrader db info``: the ClickHouse store's schema and contents.

The embedded store admits one process: while a session's recorder holds it, these commands
stop with an error naming that process (use a ClickHouse server to inspect a live store).
"""
from __future__ import annotations

import json

import typer

from ctrader.cli.common import state

db_app = typer.Typer(help="The ClickHouse store: schema migrations and contents.", no_args_is_help=True)


def _open(ctx: typer.Context, migrate: bool):
    from ctrader.store.client import StoreUnavailable
    from ctrader.store.lock import StoreLockedError
    from ctrader.store.store import Store

    cfg = state(ctx).setup_logging("db")
    try:
        return Store.from_config(cfg, migrate=migrate)
    except (StoreLockedError, StoreUnavailable) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _time(t) -> str:
    return "-" if t is None else str(t)[:23]


def render_info(info: dict) -> str:
    lines = [f"store {info['url']}  database {info['database']}  schema version {info['schema_version']}"
             f" (latest {info['latest_version']})", "",
             f"{'table':<20}{'rows':>12}{'on disk':>12}{'raw':>12}  first                    last"]
    for t in info["tables"]:
        lines.append(f"{t['table']:<20}{t['rows']:>12,}{_size(t['bytes_on_disk']):>12}"
                     f"{_size(t['uncompressed_bytes']):>12}  {_time(t['first']):<24} {_time(t['last'])}")
    if info["symbols"]:
        lines += ["", f"{'symbol':<14}{'book rows':>12}{'trades':>10}  first                    last"]
        for s in info["symbols"]:
            lines.append(f"{s['symbol']:<14}{s['book_rows']:>12,}{s['trade_rows']:>10,}  "
                         f"{_time(s['first']):<24} {_time(s['last'])}")
    else:
        lines += ["", "no market data recorded yet"]
    return "\n".join(lines)


@db_app.command("migrate")
def migrate(ctx: typer.Context) -> None:
    """Create the database and apply every pending schema migration (idempotent)."""
    store = _open(ctx, migrate=False)
    try:
        applied = store.migrate()
        version = store.schema_version()
    finally:
        store.close()
    if applied:
        typer.echo(f"applied migrations {', '.join(map(str, applied))}; schema version {version}")
    else:
        typer.echo(f"schema up to date (version {version})")


@db_app.command("info")
def info(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Tables (rows, size on disk, time range) and the recorded time range of every symbol."""
    store = _open(ctx, migrate=True)
    try:
        doc = store.info()
    finally:
        store.close()
    typer.echo(json.dumps(doc, indent=2, default=str) if as_json else render_info(doc))


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
