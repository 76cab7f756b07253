"""The page comparing the variants `strategies rank` replayed: the ranking, then one plot per
metric (``rank_metrics.METRICS``) across the walk-forward windows, a line per variant; a
self-contained HTML file (plotly.js inlined once, no network)::

    write_rank_html(sweep_result, "rank.html")
"""
from __future__ import annotations

import html
import json
import pathlib

from ctrader.core.extras import require
from ctrader.replay.rank_metrics import METRICS
from ctrader.replay.report import CSS, plotly_sections

_TITLES = {
    "pnl": "PnL after fees", "max_drawdown": "max drawdown", "pnl_per_drawdown": "PnL per unit of drawdown",
    "inventory_max": "most inventory held (valued)", "hit_rate": "hit rate (groups that made money)",
    "fills": "fills", "orders": "orders sent", "maker_fill_share": "share of fills as maker",
    "maker_fill_rate": "resting orders that filled",
}


def _figures(sw) -> list[tuple[str, object]]:
    require("report", "plotly")
    import plotly.graph_objects as go

    windows = [f"window {i}" for i in range(len(sw.windows))]
    figs = []
    for metric in METRICS:
        fig = go.Figure()
        for e in sw.ranking:
            values = e.get("metrics_by_window", {}).get(metric, [None] * len(windows))
            fig.add_trace(go.Scatter(x=windows, y=values, mode="lines+markers", name=e["variant"]))
        fig.update_layout(height=320, margin={"t": 20, "b": 30}, yaxis_title=metric)
        figs.append((_TITLES.get(metric, metric), fig))
    return figs


def write_rank_html(sw, path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    title = f"ctrader strategies rank {sw.sweep_id}"
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>")
    intro = (f"<p>{len(sw.ranking)} variants x {len(sw.windows)} windows; walk-forward: each window's best "
             f"variant judged on the next (out-of-sample PnL {sw.oos_pnl:.4f}).</p>")
    columns = ("rank", "variant", "parameters", "out-of-sample mean PnL", "times chosen", "rank by window",
               "rank spread")
    parts = [head, intro, "<table><tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"]
    for e in sw.ranking:
        cells = (e["rank"], e["variant"], json.dumps(e["params"]), f"{e['oos_mean_pnl']:.4f}", e["times_chosen"],
                 " ".join(str(r) for r in e.get("rank_by_window", [])), e.get("rank_spread", ""))
        parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    errors = [f"{r.variant} window {r.window}: {r.error}" for r in sw.results if r.error]
    if errors:
        parts.append("<h2>Failed</h2><pre>" + html.escape("\n".join(errors)) + "</pre>")
    parts += plotly_sections(_figures(sw))
    parts.append("</body></html>")
    path.write_text("".join(parts))
    return path
