"""``ctrader config show`` / ``ctrader config check FILE``."""
from __future__ import annotations

import orjson
import typer

from ctrader.cli.common import state
from ctrader.config import ConfigError, config_to_dict, load_config

config_app = typer.Typer(help="Show or check configuration.", no_args_is_help=True)


def _to_toml(tree: dict, prefix: str = "") -> list[str]:
    lines, tables = [], []
    for key, value in tree.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {orjson.dumps(list(value) if isinstance(value, tuple) else value).decode()}")
    for key, value in tables:
        lines += ["", f"[{prefix}{key}]"] + _to_toml(value, f"{prefix}{key}.")
    return lines


@config_app.command("show")
def show(ctx: typer.Context,
         as_json: bool = typer.Option(False, "--json", help="print JSON instead of TOML")) -> None:
    """Print the effective configuration (defaults + file + environment + --set). Never prints secrets."""
    tree = config_to_dict(state(ctx).config())
    if as_json:
        typer.echo(orjson.dumps(tree, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo("\n".join(_to_toml(tree)).strip())


@config_app.command("check")
def check(ctx: typer.Context, file: str = typer.Argument(..., help="TOML file to validate"),
          command: str = typer.Option("start", "--for", help="check what this command needs: start (every "
                                      "component) or record (the feed and the recorder)")) -> None:
    """Validate FILE layered over the defaults (and the environment, and --set), then run the checks
    that `ctrader start` runs before starting anything: credentials in live mode, exchangeInfo files,
    the model, the journal, data and spill directories, the store URL. Exit 0 if all pass, 2 with
    every reason if not."""
    from ctrader.cli.record_cmd import COMPONENTS as RECORD
    from ctrader.cli.start_cmd import ALL as START
    from ctrader.runtime import preflight

    components = {"start": START, "record": RECORD}
    if command not in components:
        raise typer.BadParameter(f"expected start or record, got {command!r}", param_hint="--for")
    try:
        cfg = load_config(file, overrides=state(ctx).overrides)
    except ConfigError as exc:
        typer.secho(f"invalid: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    problems = preflight.check(cfg, components[command])
    if problems:
        typer.secho(f"invalid: {file}: {preflight.describe(problems)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    typer.echo(f"{file}: ok")


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
