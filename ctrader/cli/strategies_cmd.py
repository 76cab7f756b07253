"""``ctrader strategies rank``: strategies and parameter sets compared over the same history.

    ctrader strategies rank --variant base: --variant "tight:strategy.min_edge_bps=3,strategy.cooldown_ms=100"
    ctrader strategies rank --all-strategies --windows 4 --json
    ctrader strategies rank --all-strategies --select chosen.toml && ctrader start --config chosen.toml

Every variant replays the same windows of recorded market data; the ranking is walk-forward:
a variant is picked on one window and judged on the next (``ctrader.replay.sweep``).
"""
from __future__ import annotations

import pathlib

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


def _unscored_unless_fits(source, params: dict, model: str | None) -> dict:
    """A strategy ``--all-strategies`` adds alone: scored by the configured models where one was
    trained for it, else unscored (``model.name = none``) rather than refused. A model named with
    ``--model`` is the user's choice and stays (a wrong one is refused)."""
    from ctrader.model.registry import ModelError
    from ctrader.model.scoring import FeatureMismatch
    from ctrader.strategy.models import assign_models

    if model is not None:
        return params
    try:
        assign_models(source.load(params))
    except FeatureMismatch:
        return {**params, "model.name": "none"}
    except ModelError:              # e.g. not in the registry: the sweep refuses the variant, saying so
        return params
    return params


@strategies_app.command("rank")
def rank_cmd(
    ctx: typer.Context,
    variant: list[str] = typer.Option([], "--variant", help="NAME:section.key=v,... (repeatable); NAME: = as configured"),
    all_strategies: bool = typer.Option(False, "--all-strategies", help="add every registered strategy as "
                                        "configured, each alone, and all of them side by side (strategy.names)"),
    start: str | None = typer.Option(None, "--start"),
    end: str | None = typer.Option(None, "--end"),
    windows: int = typer.Option(3, "--windows", help="walk-forward windows over the range"),
    workers: int = typer.Option(0, "--workers", help="processes (0 = [replay] workers / cores)"),
    model: str | None = typer.Option(None, "--model", help="model for every variant (default: [model] name)"),
    no_save: bool = typer.Option(False, "--no-save"),
    as_json: bool = typer.Option(False, "--json"),
    select: str | None = typer.Option(None, "--select", help="write the best-ranked variant's configuration to "
                                      "this TOML file, for ctrader start --config"),
    force: bool = typer.Option(False, "--force", help="with --select: replace the file if it exists"),
    report: str | None = typer.Option(None, "--report", help="write an HTML page comparing the variants: the "
                                      "ranking and a plot per metric across the windows"),
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
    source = ConfigSource(st.config_path, tuple(sorted((st.overrides or {}).items())))
    if all_strategies:
        # each alone (a configured strategy.names set aside), then all of them side by side
        variants += [(name, {"strategy.name": name, "strategy.names": ""}) for name in sorted(STRATEGIES)]
        variants.append(("side_by_side", {"strategy.names": ",".join(sorted(STRATEGIES))}))
    if not variants:
        variants = [("base", {})]
    if len({n for n, _ in variants}) != len(variants):
        raise typer.BadParameter("two variants have the same name")
    if select and pathlib.Path(select).exists() and not force:
        raise typer.BadParameter(f"{select} exists; --force replaces it", param_hint="--select")
    for name, params in variants:
        try:
            source.load(params)
        except Exception as exc:
            raise typer.BadParameter(f"--variant {name}: {exc}")
    if all_strategies:
        alone = set(STRATEGIES)
        variants = [(name, _unscored_unless_fits(source, params, model) if name in alone else params)
                    for name, params in variants]
    store = open_store(cfg)
    try:
        lo, hi = replay_window(store, start, end, what="rank on")
        with ProgressBar(enabled=not as_json) as bar:
            sw = run_variants(source, variants, store, lo, hi, windows=windows, workers=workers, model=model,
                              save=not no_save, kind="rank", progress=count_progress(bar, "rank"))
    finally:
        store.close()
    chosen = write_selection(sw, source, select) if select else None
    if report:
        from ctrader.replay.rank_report import write_rank_html

        write_rank_html(sw, report)
    if as_json:
        doc = sw.to_json()
        if chosen is not None:
            doc["selected"] = chosen
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode())
    else:
        print_ranking(sw)
        if report:
            typer.echo(f"report: {report}")
        if chosen is not None:
            typer.echo(f"selected {chosen['variant']} (rank {chosen['rank']}, out-of-sample mean PnL "
                       f"{chosen['oos_mean_pnl']:.4f}): wrote {chosen['path']}; "
                       f"run it with: ctrader start --config {chosen['path']}")


# alert URLs carry tokens: never copied into a file a ranking writes
_NOT_COPIED = (("alerts", "urls"),)


def write_selection(sw, source, path: str) -> dict:
    """Write the best-ranked variant that ran on every window as a TOML configuration: what it
    sets that the defaults do not (the command's --config file and --set overrides, then the
    variant's parameters), read back and checked to give the same configuration."""
    from ctrader.config import config_to_dict, load_config
    from ctrader.config.toml_out import changed, to_toml

    failed = {r.variant for r in sw.results if r.error}
    best = next((e for e in sw.ranking if e["variant"] not in failed), None)
    if best is None:
        raise typer.BadParameter("no variant ran on every window: nothing to select", param_hint="--select")
    cfg = source.load(best["params"])
    tree = config_to_dict(cfg)
    diff = changed(tree, config_to_dict(load_config(None, env={})))
    for section, key in _NOT_COPIED:
        diff.get(section, {}).pop(key, None)
        if section in diff and not diff[section]:
            del diff[section]
    header = [f"# written by ctrader strategies rank --select (sweep {sw.sweep_id}): variant {best['variant']},",
              (f"# rank {best['rank']} of {len(sw.ranking)}, out-of-sample mean PnL {best['oos_mean_pnl']:.6g} over "
               f"{len(sw.windows)} walk-forward windows; parameters {dict(best['params'])}."),
              "# What differs from the defaults; alert URLs are not copied (they carry tokens)."]
    target = pathlib.Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text("\n".join(header + to_toml(diff)).strip() + "\n")
    back = config_to_dict(load_config(tmp))
    for section, key in _NOT_COPIED:
        back[section][key] = tree[section][key]
    if back != tree:
        tmp.unlink()
        raise typer.BadParameter("the written configuration does not read back the same; nothing was written",
                                 param_hint="--select")
    tmp.replace(target)
    return {"variant": best["variant"], "rank": best["rank"], "oos_mean_pnl": best["oos_mean_pnl"],
            "params": dict(best["params"]), "path": str(target)}


def register(app: typer.Typer) -> None:
    app.add_typer(strategies_app, name="strategies")
