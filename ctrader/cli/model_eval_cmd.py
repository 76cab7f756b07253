"""``ctrader model eval|promote|retrain|train-history``: the ML loop on recorded history.

Registered on the ``model`` sub-app of ``model_cmd`` (``model list|train`` live there):

    ctrader model train-history --name m2 --kind gbt --start ... --end ...   # labels from replay
    ctrader model eval m2 --start ... --end ...      # AUC, precision@min_score, replay PnL vs none/current
    ctrader model promote m2                         # {registry}/current -> m2, atomically
    ctrader model retrain --train-hours 72 --eval-hours 24   # promote only if it beats current in replay
"""
from __future__ import annotations

import orjson
import typer

from ctrader.cli.common import state
from ctrader.cli.progress import ProgressBar
from ctrader.cli.replay_cmd import open_store
from ctrader.core.extras import require


def _dump(obj) -> str:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str).decode()


def _range(store, start, end, what: str):
    """[start, end) in ns: the options, defaulting to the recorded data's (``replay_window``)."""
    from ctrader.cli.replay_cmd import replay_window

    return replay_window(store, start, end, what=what)


def eval_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="model name in the registry"),
             start: str | None = typer.Option(None, "--start", help="held-out period start (ISO or ns)"),
             end: str | None = typer.Option(None, "--end", help="held-out period end"),
             against: str = typer.Option("none,current", "--against", help="compare with: none, current, names"),
             no_save: bool = typer.Option(False, "--no-save", help="do not store the replay runs"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Evaluate a model on a period: AUC, precision at the strategy's min_score, replay PnL vs others."""
    from ctrader.replay.ml_loop import evaluate_model

    cfg = state(ctx).setup_logging("model")
    require("train")
    store = open_store(cfg)
    try:
        lo, hi = _range(store, start, end, "evaluate on")
        with ProgressBar(enabled=not as_json) as bar:
            ev = evaluate_model(cfg, store, name, lo, hi, against=tuple(a.strip() for a in against.split(",") if a),
                                save=not no_save, progress=bar)
    finally:
        store.close()
    if as_json:
        typer.echo(_dump(ev))
        return
    c = ev["classification"]
    typer.echo(f"model {ev['model']} v{ev['version']}: {c.get('n', 0)} labelled candidates, "
               f"auc {_f(c.get('auc'))}, precision@{c.get('threshold')} {_f(c.get('precision_at_threshold'))} "
               f"({c.get('selected', 0)} selected, base rate {_f(c.get('positive_rate'))})")
    for k, r in ev["replay"].items():
        typer.echo(f"  replay {k:<24} PnL {r['pnl']:>12.4f}  groups {r['groups']:>5} "
                   f"({r['groups_complete']} complete)  {r['run_id']}")
    if "pnl_vs_none" in ev:
        typer.echo(f"  PnL vs no model: {ev['pnl_vs_none']:+.4f}")
    if "pnl_vs_current" in ev:
        typer.echo(f"  PnL vs current:  {ev['pnl_vs_current']:+.4f}")


def promote_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="model to promote"),
                reason: str = typer.Option("", "--reason")) -> None:
    """Make NAME the current model (a strategy configured with model name "current" scores with it).
    The model is loaded and checked first (ONNX loads, features match the strategy's, a test batch
    scores); one that fails is refused with the reason and current stays as it was."""
    from ctrader.model.registry import ModelError
    from ctrader.replay.ml_loop import current_target, promote

    cfg = state(ctx).setup_logging("model")
    try:
        previous = promote(cfg, name, reason=reason or "by hand")
    except (FileNotFoundError, ModelError) as exc:
        typer.secho(f"cannot promote {name}: {exc}; current stays {current_target(cfg) or 'unset'}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    typer.echo(f"current -> {name} (was {previous or 'none'})")


def retrain_cmd(ctx: typer.Context,
                train_hours: float = typer.Option(72.0, "--train-hours", help="train on this much history"),
                eval_hours: float = typer.Option(24.0, "--eval-hours", help="then judge on the next period"),
                end: str | None = typer.Option(None, "--end", help="end of the evaluation period; default: last data"),
                kind: str = typer.Option("gbt", "--kind", help="logreg or gbt"),
                name: str | None = typer.Option(None, "--name", help="model name (default rt<timestamp>)"),
                no_promote: bool = typer.Option(False, "--no-promote", help="evaluate only"),
                as_json: bool = typer.Option(False, "--json")) -> None:
    """Train on the last N hours before an evaluation period; promote only if it beats current in replay."""
    from ctrader.cli.replay_cmd import parse_time
    from ctrader.replay.ml_loop import TrainSpec, retrain

    cfg = state(ctx).setup_logging("model")
    require("train")
    store = open_store(cfg)
    try:
        with ProgressBar(enabled=not as_json) as bar:
            r = retrain(cfg, store, train_hours * 3600, eval_hours * 3600, end_ns=parse_time(end) if end else None,
                        spec=TrainSpec(name=name or "candidate", kind=kind), promote_if_better=not no_promote,
                        progress=bar)
    finally:
        store.close()
    doc = {"name": r.name, "train_window": r.train_window, "eval_window": r.eval_window, "promoted": r.promoted,
           "reason": r.reason, "previous": r.previous, "train_metrics": r.train_metrics, "evaluation": r.evaluation}
    if as_json:
        typer.echo(_dump(doc))
    else:
        typer.echo(f"{r.name}: {r.reason}")


def train_history_cmd(ctx: typer.Context,
                      name: str = typer.Option(..., "--name", help="model name (a directory in the registry)"),
                      kind: str = typer.Option("logreg", "--kind", help="logreg or gbt"),
                      start: str | None = typer.Option(None, "--start"),
                      end: str | None = typer.Option(None, "--end"),
                      latency_ms: float | None = typer.Option(None, "--latency-ms",
                                                                 help="label horizon (default: replay latencies)"),
                      as_json: bool = typer.Option(False, "--json")) -> None:
    """Train from recorded history: candidates labelled by what their orders would have done."""
    from ctrader.replay.ml_loop import TrainSpec, train_from_store

    cfg = state(ctx).setup_logging("model")
    require("train")
    store = open_store(cfg)
    try:
        lo, hi = _range(store, start, end, "train on")
        with ProgressBar(enabled=not as_json) as bar:
            out = train_from_store(cfg, store, lo, hi, TrainSpec(name=name, kind=kind, latency_ms=latency_ms),
                                   progress=bar)
    except ValueError as exc:           # a strategy with no labeller, an unknown kind
        raise typer.BadParameter(str(exc)) from None
    finally:
        store.close()
    if as_json:
        typer.echo(_dump({"name": name, "path": str(out.path), "metrics": out.metrics, "samples": out.n_samples}))
    else:
        typer.echo(f"model {name} v{out.meta.version} ({kind}): {out.n_samples} samples, auc {_f(out.metrics.get('auc'))}, "
                   f"onnx diff {out.max_onnx_diff:.1e} -> {out.path}")


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def register(app: typer.Typer) -> None:
    from ctrader.cli.model_cmd import model_app

    model_app.command("eval")(eval_cmd)
    model_app.command("promote")(promote_cmd)
    model_app.command("retrain")(retrain_cmd)
    model_app.command("train-history")(train_history_cmd)
