"""The ``ctrader`` command line.

Each area registers its own commands from a module in this package (``register(app)``), so this
file only wires them together and handles the options every command shares.
"""
from __future__ import annotations

import importlib
from typing import List, Optional

import typer

import ctrader
from ctrader.cli.common import CliState
from ctrader.core.extras import EXIT_CODE, MissingExtra

app = typer.Typer(
    name="ctrader",
    help="Low-latency arbitrage trading for Binance Spot.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,          # help texts contain [section] names and a:b:step: print them as written
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Modules that add commands; each defines register(app).
COMMAND_MODULES = [
    "ctrader.cli.config_cmd",
    "ctrader.cli.bench_cmd",
    "ctrader.cli.sim_cmd",
    "ctrader.cli.model_cmd",
    "ctrader.cli.start_cmd",
    "ctrader.cli.db_cmd",
    "ctrader.cli.record_cmd",
    "ctrader.cli.kill_cmd",
    "ctrader.cli.status_cmd",
    "ctrader.cli.replay_cmd",
    "ctrader.cli.runs_cmd",
    "ctrader.cli.report_cmd",
    "ctrader.cli.strategies_cmd",
    "ctrader.cli.model_eval_cmd",
]


@app.callback()
def main(
    ctx: typer.Context,
    config: Optional[str] = typer.Option(None, "--config", "-c", envvar="CTRADER_CONFIG",
                                         help="TOML file layered over the defaults, or the name of a shipped "
                                              "one (ctrader config list)"),
    set_: List[str] = typer.Option([], "--set", help="override one key: section.key=value (repeatable)"),
    log_format: Optional[str] = typer.Option(None, "--log-format", help="text or json"),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING or ERROR"),
) -> None:
    overrides = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--set expects section.key=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    ctx.obj = CliState(config_path=config, overrides=overrides, log_format=log_format, log_level=log_level)


@app.command()
def version() -> None:
    """Print the ctrader version."""
    typer.echo(f"ctrader {ctrader.__version__}")


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def run() -> None:
    """The ``ctrader`` console script: the app, with a missing optional extra (``[train]``,
    ``[report]``...) said in one line naming what to install instead of a traceback."""
    try:
        app()
    except MissingExtra as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(EXIT_CODE) from None


if __name__ == "__main__":  # python -m ctrader.cli.main
    run()
