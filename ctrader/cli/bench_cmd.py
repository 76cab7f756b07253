"""``ctrader bench``: measure the hot paths on this machine, each beside a same-run baseline."""
from __future__ import annotations

import importlib
import inspect
import os
import platform
import time
from typing import List, Optional

import orjson
import typer

from ctrader.benchmarks import ON_REQUEST, SUITES


def _machine() -> dict:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def print_table(results: list[dict]) -> None:
    headers = ("benchmark", "value", "unit", "baseline", "baseline value", "ratio", "note")
    rows = [(r["name"], _fmt(r["value"]), r["unit"], r.get("baseline_name") or "-",
             _fmt(r.get("baseline_value")), _fmt(r.get("ratio")), r.get("note", "")) for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    typer.echo(line)
    typer.echo("-" * len(line))
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def bench(
    quick: bool = typer.Option(False, "--quick", help="short runs: the whole suite in under a minute"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    suite: List[str] = typer.Option([], "--suite", help=f"run only these suites: {', '.join(SUITES)}"),
    fail_on_regression: bool = typer.Option(False, "--fail-on-regression",
                                            help="exit 1 on a gross regression of a same-run ratio"),
    rounds: Optional[int] = typer.Option(None, "--rounds", min=1,
                                         help="race: alternating solo rounds per contender (default 2, quick 1)"),
    dislocations: Optional[int] = typer.Option(None, "--dislocations", min=1,
                                               help="race: dislocations per round (default 16, quick 3)"),
) -> None:
    """Measure rings (and every other hot path) and print each figure beside its baseline."""
    unknown = set(suite) - set(SUITES)
    if unknown:
        raise typer.BadParameter(f"unknown suite {sorted(unknown)[0]}; choose from {', '.join(SUITES)}")
    options = {k: v for k, v in (("rounds", rounds), ("dislocations", dislocations)) if v is not None}
    results, problems, tables = [], [], []
    for name in suite or [s for s in SUITES if s not in ON_REQUEST]:
        module = importlib.import_module(SUITES[name])
        accepted = inspect.signature(module.run).parameters
        suite_results = module.run(quick=quick, **{k: v for k, v in options.items() if k in accepted})
        for r in suite_results:
            r.setdefault("suite", name)
        results += suite_results
        problems += module.check_regressions(suite_results)
        if hasattr(module, "render"):
            tables.append(module.render(suite_results))
    if as_json:
        typer.echo(orjson.dumps({"machine": _machine(), "results": results, "regressions": problems},
                                option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode())
    else:
        m = _machine()
        typer.echo(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date']}")
        print_table(results)
        for table in tables:
            typer.echo("")
            typer.echo(table)
        for p in problems:
            typer.secho(f"REGRESSION: {p}", fg=typer.colors.RED, err=True)
    if problems and fail_on_regression:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
