"""``ctrader strategies rank``: strategies and parameter sets compared over the same history.

    ctrader strategies rank --variant base: --variant "tight:strategy.min_edge_bps=3,strategy.cooldown_ms=100"
    ctrader strategies rank --all-strategies --windows 4 --json

Every variant replays the same windows of recorded market data; the ranking is walk-forward:
a variant is picked on one window and judged on the next (``ctrader.replay.sweep``).
"""
from __future__ import annotations

import orjson
import typer

from ctrader.cli.common import state
from ctrader.cli.replay_cmd import open_store

strategies_app = typer.Typer(help="Strategies: list and rank.", no_args_is_help=True)


@strategies_app.command("list")
def list_cmd() -> None:
    """The registered strategies."""
    from ctrader.strategy.registry import STRATEGIES

    for name, target in sorted(STRATEGIES.items()):
        typer.echo(f"{name:<16} {target}")


@strategies_app.command("rank")
def rank_cmd(
    ctx: typer.Context,
    variant: list[str] = typer.Option([], "--variant", help="NAME:section.key=v,... (repeatable); NAME: = as configured"),
    all_strategies: bool = typer.Option(False, "--all-strategies", help="add every registered strategy as configured"),
    start: str | None = typer.Option(None, "--start"),
    end: str | None = typer.Option(None, "--end"),
    windows: int = typer.Option(3, "--windows", help="walk-forward windows over the range"),
    workers: int = typer.Option(0, "--workers", help="processes (0 = [replay] workers / cores)"),
    model: str | None = typer.Option(None, "--model", help="model for every variant (default: [model] name)"),
    no_save: bool = typer.Option(False, "--no-save"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay each variant over the same windows and rank them walk-forward."""
    from ctrader.cli.progress import ProgressBar
    from ctrader.cli.replay_cmd import count_progress, print_ranking, replay_window
    from ctrader.replay.sweep import ConfigSource, SweepError, parse_variant, run_variants
    from ctrader.strategy.registry import STRATEGIES

    st = state(ctx)
    cfg = st.setup_logging("strategies")
    try:
        variants = [parse_variant(v) for v in variant]
    except SweepError as exc:
        raise typer.BadParameter(str(exc))
    if all_strategies:
        variants += [(name, {"strategy.name": name}) for name in sorted(STRATEGIES)]
    if not variants:
        variants = [("base", {})]
    if len({n for n, _ in variants}) != len(variants):
        raise typer.BadParameter("two variants have the same name")
    source = ConfigSource(st.config_path, tuple(sorted((st.overrides or {}).items())))
    for name, params in variants:
        try:
            source.load(params)
        except Exception as exc:
            raise typer.BadParameter(f"--variant {name}: {exc}")
    store = open_store(cfg)
    try:
        lo, hi = replay_window(store, start, end, what="rank on")
        with ProgressBar(enabled=not as_json) as bar:
            sw = run_variants(source, variants, store, lo, hi, windows=windows, workers=workers, model=model,
                              save=not no_save, kind="rank", progress=count_progress(bar, "rank"))
    finally:
        store.close()
    if as_json:
        typer.echo(orjson.dumps(sw.to_json(), option=orjson.OPT_INDENT_2, default=str).decode())
    else:
        print_ranking(sw)


def register(app: typer.Typer) -> None:
    app.add_typer(strategies_app, name="strategies")
