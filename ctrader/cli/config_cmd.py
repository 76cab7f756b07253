"""``ctrader config show`` / ``ctrader config check FILE`` / ``ctrader config list``."""
from __future__ import annotations

import orjson
import typer

from ctrader.cli.common import state
from ctrader.config import ConfigError, config_to_dict, load_config, shipped_configs
from ctrader.config.toml_out import to_toml

config_app = typer.Typer(help="Show or check configuration.", no_args_is_help=True)


@config_app.command("show")
def show(ctx: typer.Context,
         as_json: bool = typer.Option(False, "--json", help="print JSON instead of TOML")) -> None:
    """Print the effective configuration (defaults + file + environment + --set). Never prints secrets."""
    tree = config_to_dict(state(ctx).config())
    if as_json:
        typer.echo(orjson.dumps(tree, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo("\n".join(to_toml(tree)).strip())


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


@config_app.command("list")
def list_cmd() -> None:
    """The configurations shipped with ctrader and where they are: use one by name from any
    directory (ctrader --config binance-paper ...), or layer a file of your own over it."""
    for name, path in shipped_configs().items():
        typer.echo(f"{name:<18} {_headline(path)}")
        typer.echo(f"{'':<18} {path}")


def _headline(path) -> str:
    """The first sentence of a shipped file's opening comment: what it is for."""
    words = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    text = " ".join(words)
    end = text.find(". ")
    return text[:end + 1] if end >= 0 else text


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
