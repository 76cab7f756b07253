"""``ctrader status [--watch] [--json]``: a running session, from another terminal.

From its monitor's API when the monitor runs (``GET /api/status``), else from its run
directory; in the style of ``htop``: components, PnL, positions, balances, open orders, books,
latency, alerts. ``--watch`` redraws every ``--every`` seconds until Ctrl-C or the session ends.
Exit code 1 when no session runs in the data directory.
"""
from __future__ import annotations

import json
import time

import typer

from ctrader.cli.common import state


def _num(value, digits: int = 6) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _signed(value) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    colour = "green" if value > 0 else "red" if value < 0 else "white"
    return f"[{colour}]{value:+.6g}[/]"


def render(doc: dict):
    """The status document as rich renderables (a Group)."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    def table(title: str, *columns: str) -> Table:
        t = Table(title=title, title_justify="left", title_style="bold", expand=False, box=None, padding=(0, 1),
                  header_style="dim")
        for c in columns:
            t.add_column(c)
        return t

    kill = doc.get("kill") or {}
    pnl = doc.get("pnl") or {}
    ex = doc.get("executor") or {}
    head = Text.from_markup(
        f"[bold]ctrader[/] run [bold]{doc.get('run_id') or '?'}[/]  {doc.get('mode') or '?'} on {doc.get('venue') or '?'}"
        f"  up {_num(doc.get('uptime_s'), 5)}s  "
        + ("[bold white on red] KILLED [/] " + (kill.get("note") or kill.get("reason") or "") if kill.get("engaged")
           else "[green]trading[/]")
        + f"\n[dim]from {doc.get('source')}[/]")

    comps = table("components", "name", "state", "pid", "restarts", "beat")
    colours = {"running": "green", "starting": "yellow", "failed": "bold red", "dead": "bold red", "stopped": "dim"}
    for name, c in (doc.get("components") or {}).items():
        comps.add_row(name, f"[{colours.get(c['state'], 'white')}]{c['state']}[/]", _num(c.get("pid")),
                      _num(c.get("restarts")), f"{_num(c.get('beat_age_s'), 3)}s")

    money = table("PnL", "", "")
    money.add_row("total", f"{_signed(pnl.get('total'))} {pnl.get('valuation_asset') or ''}")
    money.add_row("today", f"{_signed(pnl.get('daily'))} (limit -{_num(pnl.get('daily_loss_limit'))})")
    money.add_row("orders / fills", f"{_num(ex.get('orders_sent'))} / {_num(ex.get('fills'))}")
    refusals = ex.get("refusals") or {}
    money.add_row("refusals", ", ".join(f"{k} {v}" for k, v in sorted(refusals.items())) or "0")
    rejects = ex.get("rejects") or {}
    money.add_row("rejects", ", ".join(f"{k}: {v}" for k, v in sorted(rejects.items())) or "0")

    pos = table("positions (change)", "asset", "units", "value")
    by_asset = pnl.get("by_asset") or {}
    for asset, units in sorted((doc.get("positions") or {}).items()):
        pos.add_row(asset, f"{units:+.8f}".rstrip("0").rstrip("."), _num(by_asset.get(asset)))

    parts = [head, Columns([comps, money, pos], padding=(0, 4))]
    balances = doc.get("balances")
    if balances:
        bal = table("balances", "asset", "free", "locked")
        for asset, b in sorted(balances.items()):
            bal.add_row(asset, b["free"], b["locked"])
        parts.append(bal)

    orders = doc.get("open_orders") or []
    oo = table(f"open orders ({len(orders)})", "symbol", "side", "type", "price", "qty", "filled", "status", "age")
    for o in orders[:20]:
        oo.add_row(o["symbol"], o["side"], o["type"] + (f" {o['tif']}" if o.get("tif") else ""), o["price"] or "market",
                   o["qty"], o["filled"], o["status"], f"{_num(o.get('age_s'), 3)}s")
    fills = list(reversed((doc.get("fills") or {}).get("last") or []))[:8]
    ff = table("last fills", "#", "time", "symbol", "side", "price", "qty", "fee")
    for f in fills:
        ff.add_row(str(f["id"]), time.strftime("%H:%M:%S", time.localtime(f["time"])), f["symbol"], f["side"],
                   f["price"], f["qty"], f"{f['fee']} {f['fee_asset']}")
    parts.append(Columns([oo, ff] if fills else [oo], padding=(0, 4)))

    lat = doc.get("latency_us") or {}
    feed = doc.get("feed") or {}
    books = feed.get("books")
    if books:
        stale = [b["symbol"] for b in books if b["stale"]]
        known = [b for b in books if b["age_s"] is not None]
        oldest = max(known, key=lambda b: b["age_s"]) if known else None
        book_line = (f"{len(books)} books, {len(stale)} stale{(': ' + ', '.join(stale[:8])) if stale else ''}"
                     + (f"; oldest {oldest['symbol']} {oldest['age_s']:.1f}s" if oldest else ""))
    else:
        book_line = f"{_num(feed.get('stale_symbols'))} books stale"
    t2o, tti = lat.get("tick_to_order") or {}, lat.get("tick_to_intent") or {}
    rtr, ev = lat.get("recv_to_ring") or {}, lat.get("strategy_eval") or {}
    lines = Text.from_markup(
        f"[bold]books[/] {book_line}   [bold]feed[/] msgs {_num(feed.get('messages'))} gaps {_num(feed.get('gaps'))} "
        f"resyncs {_num(feed.get('resyncs'))} disconnects {_num(feed.get('disconnects'))}\n"
        f"[bold]latency p50/p99 us[/] tick->order {_num(t2o.get('p50'), 5)}/{_num(t2o.get('p99'), 5)}  "
        f"tick->intent {_num(tti.get('p50'), 5)}/{_num(tti.get('p99'), 5)}  "
        f"recv->ring {_num(rtr.get('p50'), 4)}/{_num(rtr.get('p99'), 4)}  eval {_num(ev.get('p50'), 3)}/{_num(ev.get('p99'), 3)}")
    parts.append(lines)
    alerts = (doc.get("alerts") or {}).get("open") or []
    if alerts:
        parts.append(Text.from_markup("[bold red]alerts[/] " + "; ".join(a["title"] for a in alerts)))
    return Group(*parts)


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        ctx: typer.Context,
        watch: bool = typer.Option(False, "--watch", "-w", help="redraw until Ctrl-C or the session ends"),
        every: float = typer.Option(2.0, "--every", min=0.2, help="seconds between redraws with --watch"),
        as_json: bool = typer.Option(False, "--json", help="print the status document as JSON (one per line "
                                                            "with --watch)"),
        url: str | None = typer.Option(None, "--url", help="the monitor's URL (default: found in the run "
                                                              "directory)"),
    ) -> None:
        """Show the running session: components, PnL, positions, balances, orders, books, latency."""
        from rich.console import Console
        from rich.live import Live

        from ctrader.monitor.client import find_session, read_status

        cfg = state(ctx).config()
        session = find_session(cfg)
        if session is None:
            if as_json:
                typer.echo(json.dumps({"running": False}))
            else:
                typer.secho("no ctrader session runs in this data directory "
                            "(another one? set CTRADER_DATA_DIR)", fg=typer.colors.YELLOW, err=True)
            raise typer.Exit(1)
        if not watch:
            doc = read_status(cfg, session, url)
            if as_json:
                typer.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))
            else:
                Console().print(render(doc))
            return
        console = Console()
        try:
            if as_json:
                while find_session(cfg) is not None:
                    typer.echo(json.dumps(read_status(cfg, session, url), sort_keys=True, default=str))
                    time.sleep(every)
                return
            with Live(render(read_status(cfg, session, url)), console=console, screen=False,
                      refresh_per_second=4, transient=False) as live:
                while True:
                    time.sleep(every)
                    if find_session(cfg) is None:
                        break
                    live.update(render(read_status(cfg, session, url)))
            console.print("[dim]the session ended[/]")
        except KeyboardInterrupt:
            pass
