"""``ctrader model list|train``: the models the strategy can score with, and training new ones."""
from __future__ import annotations

import pathlib

import typer

from ctrader.cli.common import state

model_app = typer.Typer(help="Candidate-scoring models (ONNX): list and train.", no_args_is_help=True)


@model_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Every model in the registry ([model] dir) and the packaged ones; * marks [model] name."""
    from ctrader.model.registry import aliases, list_models, registry_dir

    cfg = state(ctx).config()
    models = list_models(cfg)
    typer.echo(f"registry: {registry_dir(cfg)}   [model] name = {cfg.model.name}")
    for alias, target in aliases(cfg).items():
        typer.echo(f"  {alias} -> {target}")
    if not models:
        typer.echo("no models")
        return
    for meta in models:
        mark = "*" if pathlib.Path(meta.path).name == cfg.model.name else " "
        auc = meta.metrics.get("auc")
        typer.echo(f"{mark} {meta.name:<16} v{meta.version:<12} {meta.strategy:<11} "
                   f"{len(meta.features):>2} features  auc {auc if auc is None else round(auc, 3)}  "
                   f"samples {meta.training.get('n_samples', '-')}  {meta.path}")


@model_app.command("train")
def train_cmd(
    ctx: typer.Context,
    from_sim: bool = typer.Option(False, "--from-sim", help="generate the data offline from the simulator's "
                                  "market model (the only source for now)"),
    name: str = typer.Option("default", "--name", help="model name (a directory in the registry)"),
    out: str | None = typer.Option(None, "--out", help="output directory; default {registry}/{name}"),
    seed: int = typer.Option(7, "--seed", help="seed of the simulated market"),
    seconds: float = typer.Option(900.0, "--seconds", help="market seconds to simulate"),
    latency_ms: float = typer.Option(200.0, "--latency-ms", help="label: re-evaluate the triangle this much later"),
    dislocations_per_min: float = typer.Option(20.0, "--dislocations-per-min",
                                               help="dislocations in the simulated market"),
) -> None:
    """Train a model from simulated market data, export it to ONNX, check it, and register it."""
    from ctrader.model.registry import registry_dir
    from ctrader.model.train import TrainOptions, train_from_sim

    st = state(ctx)
    cfg = st.setup_logging("model")
    if not from_sim:
        raise typer.BadParameter("only --from-sim is available (training from the store comes with replay)")
    opts = TrainOptions(seed=seed, market_seconds=seconds, latency_ms=latency_ms,
                        dislocations_per_min=dislocations_per_min, name=name)
    target = pathlib.Path(out) if out else registry_dir(cfg) / name
    result = train_from_sim(cfg, opts, target)
    m = result.meta.metrics
    typer.echo(f"model {result.meta.name} v{result.meta.version}: {result.meta.training['n_samples']} samples, "
               f"auc {m.get('auc')}, accuracy {m.get('accuracy')}, onnx diff {result.max_onnx_diff:.1e} -> {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
