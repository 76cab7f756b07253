"""``ctrader model list|train``: the models the strategy can score with, and training new ones."""
from __future__ import annotations

import pathlib

import typer

from ctrader.cli.common import state
from ctrader.cli.progress import ProgressBar
from ctrader.core.extras import require

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
                                  "market model"),
    from_store: bool = typer.Option(False, "--from-store", help="label recorded history from the store "
                                    "(what each candidate's orders would have done; = model train-history)"),
    name: str = typer.Option("default", "--name", help="model name (a directory in the registry)"),
    out: str | None = typer.Option(None, "--out", help="output directory; default {registry}/{name}"),
    kind: str = typer.Option("logreg", "--kind", help="--from-store: logreg or gbt"),
    start: str | None = typer.Option(None, "--start", help="--from-store: period start (ISO or ns; default: "
                                     "the first recorded md)"),
    end: str | None = typer.Option(None, "--end", help="--from-store: period end (default: the last)"),
    seed: int = typer.Option(7, "--seed", help="seed of the simulated market"),
    seconds: float = typer.Option(900.0, "--seconds", help="market seconds to simulate"),
    latency_ms: float | None = typer.Option(None, "--latency-ms", help="label: re-evaluate the triangle this "
                                            "much later (default 200 from the sim, the replay latencies "
                                            "from the store)"),
    dislocations_per_min: float = typer.Option(20.0, "--dislocations-per-min",
                                               help="dislocations in the simulated market"),
) -> None:
    """Train a model (from simulated market data or recorded history), export it to ONNX, check
    it, and register it."""
    from ctrader.model.registry import registry_dir

    st = state(ctx)
    cfg = st.setup_logging("model")
    if from_sim == from_store:
        raise typer.BadParameter("choose one source: --from-sim or --from-store")
    require("train")
    if from_store:
        from ctrader.cli.model_eval_cmd import _f, _range
        from ctrader.cli.replay_cmd import open_store
        from ctrader.replay.ml_loop import TrainSpec, train_from_store

        store = open_store(cfg)
        try:
            lo, hi = _range(store, start, end, "train on")
            with ProgressBar() as bar:
                res = train_from_store(cfg, store, lo, hi, TrainSpec(name=name, kind=kind, latency_ms=latency_ms),
                                       out_dir=out, progress=bar)
        except ValueError as exc:       # a strategy with no labeller, an unknown kind
            raise typer.BadParameter(str(exc)) from None
        finally:
            store.close()
        typer.echo(f"model {name} v{res.meta.version} ({kind}): {res.n_samples} samples, "
                   f"auc {_f(res.metrics.get('auc'))}, onnx diff {res.max_onnx_diff:.1e} -> {res.path}")
        return
    from ctrader.replay.training import TrainOptions, train_from_sim

    opts = TrainOptions(seed=seed, market_seconds=seconds, latency_ms=200.0 if latency_ms is None else latency_ms,
                        dislocations_per_min=dislocations_per_min, name=name)
    target = pathlib.Path(out) if out else registry_dir(cfg) / name
    try:
        with ProgressBar() as bar:
            result = train_from_sim(cfg, opts, target, progress=bar)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    m = result.meta.metrics
    typer.echo(f"model {result.meta.name} v{result.meta.version}: {result.meta.training['n_samples']} samples, "
               f"auc {m.get('auc')}, accuracy {m.get('accuracy')}, onnx diff {result.max_onnx_diff:.1e} -> {target}")


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
