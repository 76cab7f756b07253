"""``ctrader db migrate|info|prune|backup|restore``: the ClickHouse store's schema, contents,
retention and backups.

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


def render_info(info: dict, keep: dict[str, int] | None = None) -> str:
    lines = [f"store {info['url']}  database {info['database']}  schema version {info['schema_version']}"
             f" (latest {info['latest_version']})", "",
             f"{'table':<20}{'rows':>12}{'on disk':>12}{'raw':>12}  {'keeps':<10}first                    last"]
    keep = keep or {}
    for t in info["tables"]:
        days = keep.get(t["table"])
        kept = "-" if days is None else ("for ever" if days == 0 else f"{days} days")
        lines.append(f"{t['table']:<20}{t['rows']:>12,}{_size(t['bytes_on_disk']):>12}"
                     f"{_size(t['uncompressed_bytes']):>12}  {kept:<10}{_time(t['first']):<24} {_time(t['last'])}")
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
    from ctrader.store.retention import retention_days

    store = _open(ctx, migrate=True)
    try:
        doc = store.info()
    finally:
        store.close()
    doc["retention_days"] = retention_days(state(ctx).config().store.retention)
    typer.echo(json.dumps(doc, indent=2, default=str) if as_json else render_info(doc, doc["retention_days"]))


@db_app.command("prune")
def prune(ctx: typer.Context,
          older_than: int | None = typer.Option(None, "--older-than", min=1,
                                                help="days to keep in the tables chosen with --table (default: "
                                                     "[store.retention] of each table)"),
          tables: list[str] = typer.Option([], "--table", help="only this table (repeatable); --older-than "
                                                                 "needs at least one"),
          dry_run: bool = typer.Option(False, "--dry-run", help="count what would go, remove nothing"),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Remove rows older than each table's retention now (the TTL removes them only at merges).
    Tables kept for ever (0 days) are left alone unless named with --table and --older-than."""
    from dataclasses import asdict

    from ctrader.store.retention import TIME_COLUMNS, retention_days
    from ctrader.store.retention import prune as prune_store

    unknown = sorted(set(tables) - set(TIME_COLUMNS))
    if unknown:
        raise typer.BadParameter(f"--table {unknown[0]}: choose from {', '.join(TIME_COLUMNS)}")
    if older_than is not None and not tables:
        raise typer.BadParameter("--older-than needs --table (which tables to cut): the record of what was "
                                 "traded (orders, executions) is never cut by accident")
    days = retention_days(state(ctx).config().store.retention)
    if tables:
        days = {t: (older_than if older_than is not None else days[t]) for t in tables}
    store = _open(ctx, migrate=True)
    try:
        done = prune_store(store, days, dry_run=dry_run)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([asdict(p) for p in done], indent=2))
        return
    if not done:
        typer.echo("nothing to prune: every table chosen keeps its rows for ever")
        return
    verb = "would remove" if dry_run else "removed"
    for p in done:
        typer.echo(f"{p.table:<14} keeps {p.days:>4} days: {verb} {p.rows:>12,} rows older than {p.cutoff} UTC"
                   + (f" ({p.partitions} whole days, {_size(p.bytes_on_disk)})" if p.partitions else ""))


@db_app.command("backup")
def backup_cmd(ctx: typer.Context,
               dest: str = typer.Argument(..., help="a new directory for the backup"),
               tables: list[str] = typer.Option([], "--table", help="only this table (repeatable); default all"),
               as_json: bool = typer.Option(False, "--json", help="print the manifest")) -> None:
    """Copy the store into DEST: a Parquet file per table and day, and a manifest with checksums.
    Restores into the embedded engine or a ClickHouse server (ctrader db restore)."""
    from ctrader.cli.progress import ProgressBar
    from ctrader.store.backup import BackupError, backup

    store = _open(ctx, migrate=True)
    try:
        with ProgressBar(enabled=not as_json) as bar:
            manifest = backup(store, dest, tables or None,
                              progress=lambda table, done, total: bar("backup", done, total, table))
    except BackupError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(manifest, indent=2))
        return
    size = sum(f["bytes"] for t in manifest["tables"].values() for f in t["files"])
    for name, t in manifest["tables"].items():
        typer.echo(f"{name:<20}{t['rows']:>12,} rows  {len(t['files']):>4} files")
    typer.echo(f"backup of {manifest['database']} (schema {manifest['schema_version']}) in {dest}: {_size(size)}")


@db_app.command("restore")
def restore_cmd(ctx: typer.Context,
                src: str = typer.Argument(..., help="a directory written by ctrader db backup"),
                replace: bool = typer.Option(False, "--replace", help="days the store already holds are replaced "
                                                                      "by the backup's (default: stop)"),
                verify_only: bool = typer.Option(False, "--verify", help="only check the backup's files")) -> None:
    """Insert a backup into the configured store (its schema migrated first). Stops before changing
    anything when the store already holds one of the backup's days, unless --replace."""
    from ctrader.cli.progress import ProgressBar
    from ctrader.store.backup import BackupError, read_manifest, restore, verify

    try:
        if verify_only:
            manifest = read_manifest(src)
            verify(src, manifest)
            rows = sum(t["rows"] for t in manifest["tables"].values())
            typer.echo(f"{src}: ok ({len(manifest['tables'])} tables, {rows:,} rows, made {manifest['created']} "
                       f"from {manifest['source']})")
            return
        store = _open(ctx, migrate=True)
        try:
            with ProgressBar() as bar:
                done = restore(store, src, replace=replace,
                               progress=lambda table, n, total: bar("restore", n, total, table))
        finally:
            store.close()
    except BackupError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    for name, rows in done.items():
        typer.echo(f"{name:<20}{rows:>12,} rows")
    typer.echo(f"restored {sum(done.values()):,} rows from {src}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
