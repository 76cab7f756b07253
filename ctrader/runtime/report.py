"""The live status line and the exit summary of a run, built from the components' stats files.

Each component publishes its own counters (``ctrader.core.stats``); this module only picks
and formats them, so a component can add a counter without touching the report.
"""
from __future__ import annotations

import time
from typing import Any

# (component, key, label) shown on the status line when present
STATUS_FIELDS = [
    ("feed", "messages", "msgs"),
    ("feed", "stale_symbols", "stale"),
    ("feed", "gaps", "gaps"),
    ("strategy", "events", "events"),
    ("strategy", "candidates", "cands"),
    ("strategy", "taken", "taken"),
    ("executor", "orders_sent", "orders"),
    ("executor", "fills", "fills"),
    ("executor", "pnl", "pnl"),
    ("recorder", "rows_md_book", "stored"),
]
# (component, label, how to find p50/p99 in its stats)
LATENCY_FIELDS = [
    ("feed", "feed", lambda st: (st.get("recv_to_ring_us_p50"), st.get("recv_to_ring_us_p99"))),
    ("strategy", "tick->intent", lambda st: (st.get("tick_to_intent_p50_us"), st.get("tick_to_intent_p99_us"))),
    ("executor", "tick->order",
     lambda st: ((st.get("tick_to_order") or {}).get("p50_us"), (st.get("tick_to_order") or {}).get("p99_us"))),
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def render_status(stats: dict[str, dict]) -> str:
    """One line of the run's numbers; components that are not running (restarting, failed) are
    named first, since their numbers are the last they wrote."""
    parts = []
    down = [f"{name} {state}" for name, state in (stats.get("_health") or {}).items() if state != "running"]
    if down:
        parts.append("NOT RUNNING: " + ", ".join(down))
    for comp, key, label in STATUS_FIELDS:
        value = stats.get(comp, {}).get(key)
        if value is not None:
            parts.append(f"{label} {_fmt(value)}")
    for comp, label, find in LATENCY_FIELDS:
        p50, p99 = find(stats.get(comp, {}))
        if p50 is not None:
            parts.append(f"{label} p50/p99 {p50:.0f}/{p99 or 0:.0f}us")
    return time.strftime("%H:%M:%S ") + (" | ".join(parts) if parts else "starting...")


def summarise(result: dict) -> dict:
    """The machine-readable summary of a finished run (``ctrader start --json``)."""
    stats = result.get("stats", {})
    strip = {"pid", "written_at"}
    return {
        "run_id": result["run_id"],
        "run_dir": result["run_dir"],
        "duration_s": round(result["ended_at"] - result["started_at"], 3),
        "processes": result["processes"],
        "exit_codes": result["exit_codes"],
        "failed": result["failed"],
        "stop": result.get("stop", {}),
        "exit_code": exit_code(result),
        **{comp: {k: v for k, v in stats.get(comp, {}).items() if k not in strip}
           for comp in result["components"] if comp in stats},
    }


EXIT_OK, EXIT_FAILED = 0, 1
EXIT_RESTARTED = 3          # ran to the end, but components crashed and were restarted on the way
EXIT_FAST_STOP = 130        # 128 + SIGINT: what a shell reports for a program stopped by Ctrl-C


def exit_code(result: dict) -> int:
    """The exit code of ``ctrader start`` / ``record``: 130 after a fast stop (a second Ctrl-C),
    1 when a component failed or had to be killed, 3 when components were restarted during the
    run, 0 for a clean run and an orderly stop."""
    stop = result.get("stop") or {}
    if stop.get("fast"):
        return EXIT_FAST_STOP
    if result.get("failed") or stop.get("killed"):
        return EXIT_FAILED
    if stop.get("restarts"):
        return EXIT_RESTARTED
    return EXIT_OK


def render_stop(stop: dict) -> str:
    """One line: what stopped the run and how each component stopped."""
    if not stop:
        return ""
    how = "fast stop" if stop.get("fast") else "orderly stop"
    seconds = ", ".join(f"{name} {sec:.1f}s" for name, sec in (stop.get("seconds") or {}).items())
    line = f"stopped ({how}) on {stop.get('reason') or '?'}" + (f": {seconds}" if seconds else "")
    if stop.get("killed"):
        line += f"; KILLED (did not stop in time): {', '.join(stop['killed'])}"
    if stop.get("restarts"):
        line += "; RESTARTED during the run: " + ", ".join(f"{n} x{k}" for n, k in stop["restarts"].items())
    return line


def render_summary(summary: dict) -> str:
    lines = [f"run {summary['run_id']}: {summary['duration_s']:.1f}s, "
             f"{'processes' if summary['processes'] else 'one process'}; files in {summary['run_dir']}"]
    if summary.get("stop"):
        lines.append(render_stop(summary["stop"]))
    if summary["failed"]:
        lines.append(f"FAILED components: {', '.join(summary['failed'])}")
    for comp in ("feed", "strategy", "executor", "recorder", "sim", "monitor"):
        section = summary.get(comp)
        if not section:
            continue
        lines.append(f"{comp}:")
        for key in sorted(section):
            lines.append(f"  {key:<28} {_fmt(section[key])}")
    return "\n".join(lines)
