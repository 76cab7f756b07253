"""``ctrader replay``: recorded market data through the live strategy and fill model, fast.

    ctrader replay --start 2026-01-01T00:00 --end 2026-01-02T00:00 --report out.html
    ctrader replay --run r20260101-...            # the data range and symbols of a recorded session
    ctrader replay --order-latency lognormal:2:0.5 --json
    ctrader replay --sweep strategy.min_edge_bps=0:4:1 --sweep strategy.cooldown_ms=100:500:200 --windows 3
"""
from __future__ import annotations

import orjson
import typer

from ctrader.cli.common import state
from ctrader.cli.progress import ProgressBar
from ctrader.core.extras import require


def open_store(cfg):
    """The configured store, or a clear message when a live session holds the embedded engine."""
    from ctrader.store.lock import StoreLockedError
    from ctrader.store.store import Store

    try:
        return Store.from_config(cfg)
    except StoreLockedError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


def parse_time(text):
    """An ISO time, or nanoseconds since the epoch as digits."""
    from ctrader.store.store import to_ns

    if text is None:
        return None
    if isinstance(text, str) and text.strip().isdigit():
        return int(text)
    try:
        return to_ns(text)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"not a time: {text!r} ({exc})")


def replay_window(store, start: str | int | None, end: str | int | None,
                  symbols: list[str] | None = None, what: str = "replay") -> tuple[int, int]:
    """[start, end) in ns to replay (or train, or evaluate on): ``--start`` / ``--end``, each
    defaulting to the recorded data's. An end at or before the start is a usage error (exit 2);
    a range the store holds no market data in ends the command with exit 1, as an empty store
    does, instead of an empty replay."""
    from ctrader.replay.runner import data_range

    start_ns, end_ns = parse_time(start), parse_time(end)
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        same = "the same time as" if end_ns == start_ns else "before"
        raise typer.BadParameter(f"--end {end} ({_iso(end_ns)}) is {same} --start {start} ({_iso(start_ns)}): "
                                 f"the range to {what} is empty")
    record_first = "record some first: ctrader record / ctrader start"
    try:
        lo, hi = data_range(store, symbols, start_ns, end_ns)
    except ValueError as exc:
        if start_ns is None and end_ns is None:
            message = f"nothing to {what}: {exc} ({record_first})"
        else:
            try:
                first, last = data_range(store, symbols)
                held = f"the store holds {_iso(first)} .. {_iso(last)}"
            except ValueError:
                held = f"the store holds none ({record_first})"
            message = (f"nothing to {what} from {_iso(start_ns) if start_ns is not None else 'the first record'} "
                       f"to {_iso(end_ns) if end_ns is not None else 'the last'}: {exc}; {held}")
        typer.secho(message, fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    return (lo if start_ns is None else start_ns), (hi if end_ns is None else end_ns)


def _iso(ns: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_speed(text: str) -> float:
    """'fast' / 'max' -> 0 (as fast as possible), 'realtime' -> 1, '10x' or '10' -> 10."""
    t = text.strip().lower()
    if t in ("fast", "max", "0"):
        return 0.0
    if t == "realtime":
        return 1.0
    try:
        v = float(t.removesuffix("x"))
    except ValueError:
        raise typer.BadParameter(f"--speed: expected fast, realtime or a multiple like 10x; got {text!r}")
    if v < 0:
        raise typer.BadParameter("--speed must be >= 0")
    return v


def market_time_progress(bar: ProgressBar, stage: str, start_ns: int, end_ns: int):
    """A replay's ``progress(events, ts_ns)`` drawn as market time done of the range."""
    span_s = max(end_ns - start_ns, 1) / 1e9
    return lambda events, ts_ns: bar(stage, max(0, ts_ns - start_ns) / 1e9, span_s, f"{events:,} events")


def replay(
    ctx: typer.Context,
    start: str | None = typer.Option(None, "--start", help="ISO time or ns; default: first recorded event"),
    end: str | None = typer.Option(None, "--end", help="ISO time or ns (exclusive); default: last event"),
    symbols: str | None = typer.Option(None, "--symbols", help="comma-separated subset of the universe"),
    run: str | None = typer.Option(None, "--run", help="replay the data range and symbols of this recorded run"),
    model: str | None = typer.Option(None, "--model", help="model name, 'none', default: [model] name"),
    feed_latency: str | None = typer.Option(None, "--feed-latency", help="override replay.feed_latency"),
    order_latency: str | None = typer.Option(None, "--order-latency", help="override replay.order_latency"),
    exec_latency: str | None = typer.Option(None, "--exec-latency", help="override replay.exec_latency"),
    seed: int | None = typer.Option(None, "--seed", help="override replay.seed (sampled latencies)"),
    speed: str = typer.Option("fast", "--speed", help="fast, realtime, or a multiple of market time (10x)"),
    exchange_info: str | None = typer.Option(None, "--exchange-info", help="exchangeInfo JSON for the universe"),
    report: str | None = typer.Option(None, "--report", help="write a self-contained HTML report here"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
    no_save: bool = typer.Option(False, "--no-save", help="do not write results to the store"),
    label: str = typer.Option("", "--label", help="a free-text label stored with the run"),
    sweep: list[str] = typer.Option([], "--sweep", help="section.key=a:b:step (repeatable): a parameter grid"),
    windows: int = typer.Option(3, "--windows", help="sweep: walk-forward windows over the range"),
    workers: int = typer.Option(0, "--workers", help="sweep: processes (0 = [replay] workers / cores)"),
    compare_recorded: bool = typer.Option(True, "--compare-recorded/--no-compare-recorded",
                                          help="with --run: compare decisions and fills with the session's"),
    session_timing: bool = typer.Option(True, "--session-timing/--model-timing",
                                        help="with --run: each order's recorded live timing (send delay, "
                                             "execution arrival) instead of the latency models"),
) -> None:
    """Replay recorded market data through the strategy and the paper fill model."""
    st = state(ctx)
    extra = {}
    if feed_latency is not None:
        extra["replay.feed_latency"] = feed_latency
    if order_latency is not None:
        extra["replay.order_latency"] = order_latency
    if exec_latency is not None:
        extra["replay.exec_latency"] = exec_latency
    if seed is not None:
        extra["replay.seed"] = str(seed)
    if extra:
        st.overrides = dict(st.overrides or {}, **extra)
        st._config = None
    cfg = st.setup_logging("replay")
    if report:
        require("report")                   # before the replay, not after it
    from ctrader.execution.latency import LatencySpecError
    from ctrader.replay.runner import options_from_config, replay_store, resolve_universe

    try:
        opts = options_from_config(cfg)
    except LatencySpecError as exc:
        raise typer.BadParameter(str(exc))
    opts.speed = parse_speed(speed)
    store = open_store(cfg)
    try:
        names = [s.strip().upper() for s in symbols.split(",")] if symbols else None
        first_group, align_note = 1, ""
        if run:
            from ctrader.replay.fidelity import session_alignment

            info = store.run_info(run)
            if info is None:
                raise typer.BadParameter(f"--run {run}: no such run in the store")
            names = names or info["symbols"]
            al = session_alignment(cfg, store, run, names)
            start = start or al["start_ns"]
            end = end or al["end_ns"]
            first_group, align_note = al["first_group"], al["note"]
        start_ns, end_ns = replay_window(store, start, end, names)
        if sweep:
            _sweep(st, store, sweep, start_ns, end_ns, windows, workers, model, as_json, no_save)
            return
        uni = resolve_universe(cfg, exchange_info, source_run=run)
        with ProgressBar(enabled=not as_json) as bar:
            r = replay_store(cfg, store, start_ns, end_ns, symbols=names, universe=uni,
                             model=model or "config", options=opts, save=not no_save, label=label,
                             source_run=run, first_group=first_group,
                             progress=market_time_progress(bar, "replay", start_ns, end_ns),
                             session_timing=bool(run) and session_timing)
        s = r.result.summary
        if run and compare_recorded:
            from ctrader.replay.fidelity import compare_with_session

            s["session_comparison"] = compare_with_session(store, run, r.result)
            s["session_comparison"]["alignment"] = align_note
        if report:
            from ctrader.replay.report import write_html

            write_html(r.result, report, title=f"ctrader replay {r.run_id}")
        if as_json:
            typer.echo(orjson.dumps(s, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                                    default=str).decode())
        else:
            from ctrader.replay.report import format_summary

            typer.echo(format_summary(s))
            if "session_comparison" in s:
                c = s["session_comparison"]
                typer.echo(f"({c['alignment']})")
                typer.echo(f"vs session {run}: decisions {'identical' if c['decisions_identical'] else 'DIFFER'}"
                           f" ({c['candidates_matched']}/{c['recorded_candidates']} candidates), "
                           f"fills {c['fills_matched']}/{c['recorded_fills']} match")
                for d in c["differences"][:10]:
                    typer.echo(f"  {d}")
            if report:
                typer.echo(f"report: {report}")
    finally:
        store.close()


def _sweep(st, store, specs, start_ns, end_ns, windows, workers, model, as_json, no_save) -> None:
    from ctrader.replay.sweep import ConfigSource, SweepError, grid_variants, parse_grid, run_variants

    try:
        grid = parse_grid(specs)
    except SweepError as exc:
        raise typer.BadParameter(str(exc))
    source = ConfigSource(st.config_path, tuple(sorted((st.overrides or {}).items())))
    for params in grid:                  # validate every set before spending minutes on it
        try:
            source.load(params)
        except Exception as exc:
            raise typer.BadParameter(f"--sweep {params}: {exc}")

    with ProgressBar(enabled=not as_json) as bar:
        sw = run_variants(source, grid_variants(grid), store, start_ns, end_ns, windows=windows, workers=workers,
                          model=model, save=not no_save, progress=count_progress(bar, "sweep"))
    if as_json:
        typer.echo(orjson.dumps(sw.to_json(), option=orjson.OPT_INDENT_2, default=str).decode())
        return
    print_ranking(sw)


def count_progress(bar: ProgressBar, stage: str):
    """A sweep's ``progress(done, total)`` (replays finished) drawn as a bar."""
    return lambda done, total: bar(stage, done, total, f"{done}/{total} replays")


def print_ranking(sw) -> None:
    typer.echo(f"sweep {sw.sweep_id}: {len(sw.variants)} parameter sets x {len(sw.windows)} windows")
    for w in sw.walk_forward:
        typer.echo(f"  window {w['train_window']} -> {w['test_window']}: chose {w['chosen']} "
                   f"(in sample {_f(w['in_sample_pnl'])}, out of sample {_f(w['out_of_sample_pnl'])})")
    if sw.walk_forward:
        typer.echo(f"  walk-forward out-of-sample PnL: {sw.oos_pnl:.4f}")
    typer.echo(f"{'rank':>4}  {'oos mean PnL':>12}  {'chosen':>6}  {'max DD':>9}  {'hit':>5}  {'fills':>6}  "
               f"{'rested':>6}  {'ranks':>7}  variant   PnL by window")
    for e in sw.ranking:
        m = e.get("metrics_by_window", {})
        dd = max((x for x in m.get("max_drawdown", []) if x is not None), default=None)
        hits = [x for x in m.get("hit_rate", []) if x is not None]
        fills = sum(x for x in m.get("fills", []) if x is not None)
        rested = [x for x in m.get("maker_fill_rate", []) if x is not None]     # resting orders that filled
        ranks = "/".join(str(r) for r in e.get("rank_by_window", []))
        typer.echo(f"{e['rank']:>4}  {e['oos_mean_pnl']:>12.4f}  {e['times_chosen']:>6}  {_f(dd):>9}  "
                   f"{(f'{sum(hits) / len(hits):.0%}' if hits else '-'):>5}  {fills:>6}  "
                   f"{(f'{sum(rested) / len(rested):.0%}' if rested else '-'):>6}  {ranks:>7}  {e['variant']}   "
                   + " ".join(_f(x) for x in e["pnl_by_window"]))
    for r in sw.results:
        if r.error:
            typer.secho(f"  failed: {r.variant} window {r.window}: {r.error}", fg=typer.colors.RED, err=True)


def _f(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
