"""The replay report: a self-contained HTML page with interactive plots, and a terminal summary.

    write_html(result, "out.html", title="replay re2026...")   # plotly.js inlined once: no CDN
    print(format_summary(result.summary))

Plots: PnL and inventory over time; edge distribution of candidates taken and skipped; fill
slippage against the candidate's expected price (and against latency); latency percentiles;
per-triangle contribution (realised against expected).
"""
from __future__ import annotations

import html
import json
import pathlib
from datetime import UTC, datetime

import numpy as np

from ctrader.core.extras import require
from ctrader.replay.summary import EDGE_BINS_BPS


def _ts(ns) -> list[str]:
    return [datetime.fromtimestamp(int(t) / 1e9, tz=UTC).isoformat() for t in ns]


def triangle_contribution_figure(triangles: list[dict], valuation_asset: str):
    """Realised against expected PnL per triangle (the 30 largest contributions), a horizontal
    bar chart shared by replay and session reports."""
    import plotly.graph_objects as go

    tri = triangles[:30]
    fig = go.Figure()
    if tri:
        names = [t["name"] for t in tri][::-1]
        fig.add_trace(go.Bar(y=names, x=[t["pnl"] for t in tri][::-1], orientation="h", name="realised"))
        fig.add_trace(go.Bar(y=names, x=[t["expected_pnl"] for t in tri][::-1], orientation="h",
                             name="expected when taken"))
    fig.update_layout(barmode="group", height=max(300, 28 * len(tri) + 120), margin={"l": 380},
                      xaxis_title=valuation_asset)
    return fig


def _figures(result) -> list[tuple[str, object]]:
    require("report", "plotly")
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = result.summary
    figs = []

    # 1. PnL and inventory over time
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"PnL ({s['valuation_asset']})",
                                        f"inventory by asset (value in {s['valuation_asset']})"))
    p = result.pnl
    x = _ts(p["ts_ns"]) if len(p) else []
    fig.add_trace(go.Scatter(x=x, y=p["pnl"].tolist() if len(p) else [], name="PnL", mode="lines"), 1, 1)
    assets = sorted({a for d in result.inventory for a in d})
    for a in assets:
        fig.add_trace(go.Scatter(x=x, y=[d.get(a, 0.0) for d in result.inventory], name=a, mode="lines"), 2, 1)
    fig.update_layout(height=600)
    figs.append(("PnL and inventory", fig))

    # 2. edge distribution, taken and skipped
    taken, skipped = s.get("edge_hist", {}).get("taken"), s.get("edge_hist", {}).get("skipped")
    centers = ((EDGE_BINS_BPS[:-1] + EDGE_BINS_BPS[1:]) / 2).tolist()
    fig = go.Figure()
    if taken is not None:
        nz = np.flatnonzero(np.asarray(taken) + np.asarray(skipped))
        lo, hi = (nz[0], nz[-1] + 1) if len(nz) else (0, len(centers))
        fig.add_trace(go.Bar(x=centers[lo:hi], y=list(skipped)[lo:hi], name="skipped", opacity=0.6))
        fig.add_trace(go.Bar(x=centers[lo:hi], y=list(taken)[lo:hi], name="taken", opacity=0.8))
    fig.update_layout(barmode="overlay", xaxis_title="net edge after fees (bps)", yaxis_title="candidates",
                      height=380)
    figs.append(("Edge distribution of candidates", fig))

    # 3. fill slippage against the expected price
    f = result.fills
    fig = make_subplots(rows=1, cols=2, subplot_titles=("slippage (bps, + = worse than expected)",
                                                        "slippage against tick-to-match latency"))
    if len(f):
        ok = ~np.isnan(f["slippage_bps"])
        fig.add_trace(go.Histogram(x=f["slippage_bps"][ok].tolist(), nbinsx=60, name="fills"), 1, 1)
        fig.add_trace(go.Scatter(x=(f["latency_ns"][ok] / 1e6).tolist(), y=f["slippage_bps"][ok].tolist(),
                                 mode="markers", name="fill", marker={"size": 5}), 1, 2)
    fig.update_xaxes(title_text="ms", row=1, col=2)
    fig.update_layout(height=380, showlegend=False)
    figs.append(("Fill slippage", fig))

    # 4. latency percentiles
    fig = go.Figure()
    if len(f):
        qs = [50, 75, 90, 95, 99, 99.9]
        fig.add_trace(go.Bar(x=[f"p{q}" for q in qs], y=np.percentile(f["latency_ns"] / 1e6, qs).tolist(),
                             name="tick to match"))
        fig.add_trace(go.Bar(x=[f"p{q}" for q in qs], y=np.percentile(f["order_ns"] / 1e6, qs).tolist(),
                             name="order latency (sampled)"))
        fig.add_trace(go.Bar(x=[f"p{q}" for q in qs], y=np.percentile(f["feed_ns"] / 1e6, qs).tolist(),
                             name="feed latency (sampled)"))
    fig.update_layout(barmode="group", yaxis_title="ms", height=380)
    figs.append(("Latency percentiles", fig))

    # 5. per-triangle contribution
    fig = triangle_contribution_figure(s.get("triangles", []), s["valuation_asset"])
    figs.append(("Per-triangle contribution", fig))
    return figs


# The style of every ctrader HTML report (replay and session reports).
CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}h2{margin-top:32px}
code{background:#f4f4f4;padding:1px 4px}table.rows{font-size:13px;font-variant-numeric:tabular-nums}
table.rows th{position:sticky;top:0;background:#fafafa}"""


def plotly_sections(figures: list[tuple[str, object]]) -> list[str]:
    """HTML of each (title, figure): plotly.js inlined with the first one only, so the page
    opens with no network and carries the library once."""
    parts = []
    for i, (name, fig) in enumerate(figures):
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False}))
    return parts


def summary_rows(s: dict) -> list[tuple[str, str]]:
    lat = s.get("latency_ms", {})
    t2m = lat.get("tick_to_match", {})
    slip = s.get("slippage_bps", {})
    rows = [
        ("run", str(s.get("run_id", "-"))),
        ("events", f"{s['events']:,}" + (f" ({s['events_per_s']:,.0f}/s)" if s.get("events_per_s") else "")),
        ("data", f"{_iso(s['first_ts_ns'])} .. {_iso(s['last_ts_ns'])}"),
        ("candidates", f"{s['candidates']:,}  " + ", ".join(f"{k} {v:,}" for k, v in s["decisions"].items())),
        ("groups", (f"{s['groups']:,} ({s['groups_complete']:,} complete), intents {s['intents']:,}, "
                    f"fills {s['fills']:,}, cancels {s['cancels']:,}")),
        ("PnL", (f"{s['pnl']:,.4f} {s['valuation_asset']} (expected of taken: {s['expected_pnl_taken']:,.4f} at the "
                 f"prices when taken)")),
        ("latency", (f"feed {lat.get('feed')}, order {lat.get('order')}, exec {lat.get('exec', '-')}; "
                     f"tick->match p50 {_f(t2m.get('p50'))} p99 {_f(t2m.get('p99'))} ms")),
        ("slippage", f"mean {_f(slip.get('mean'))} bps, p50 {_f(slip.get('p50'))}, p99 {_f(slip.get('p99'))}"),
        ("model", str(s.get("model_version", "-"))),
        ("digests", " ".join(f"{k}={v[:10]}" for k, v in s.get("digests", {}).items())),
        ("wall", f"{s['wall_s']:.2f} s" if s.get("wall_s") else "-"),
    ]
    return rows


def _f(v) -> str:
    return "-" if v is None else f"{v:.3g}"


def _iso(ns: int) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def format_summary(s: dict) -> str:
    rows = summary_rows(s)
    w = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(w)}  {v}" for k, v in rows]
    tri = s.get("triangles", [])
    if tri:
        lines.append("top triangles:")
        for t in tri[:5]:
            lines.append(f"  {t['pnl']:+12.4f}  {t['groups']:4d} groups  {t['name']}")
    return "\n".join(lines)


def write_html(result, path: str | pathlib.Path, title: str = "ctrader replay") -> pathlib.Path:
    """Write the report; plotly.js is inlined once, so the page opens with no network."""
    path = pathlib.Path(path)
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><table>")
    parts = [head]
    for k, v in summary_rows(result.summary):
        parts.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>")
    parts.append("</table>")
    parts += plotly_sections(_figures(result))
    parts.append("<h2>Summary (JSON)</h2><pre>")
    parts.append(html.escape(json.dumps(result.summary, indent=1, default=str)))
    parts.append("</pre></body></html>")
    path.write_text("".join(parts))
    return path
