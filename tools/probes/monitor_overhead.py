"""What the monitor costs the trading path: paper sessions against the simulator, alternately
without and with the monitor (which an operator's dashboard and a Prometheus-style scraper
poll throughout), compared on tick-to-order and its stages.

    .venv/bin/python tools/probes/monitor_overhead.py --pairs 3 --seconds 40

Same settings as ``ctrader bench --suite e2e`` (frequent dislocations). Each pair runs back to
back, so the machine's load is as similar as it gets; the ratio (with / without) is per pair.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import urllib.request

from ctrader.benchmarks.e2e import BENCH_OVERRIDES, _free_port, latency_figures, warm_up
from ctrader.config import load_config
from ctrader.runtime.session import run_session

TRADING = ["sim", "recorder", "executor", "strategy", "feed"]


def _poll(url: str, stop: threading.Event, every_s: float) -> int:
    """Read the dashboard's data and the metrics as clients would; returns the requests made."""
    n = 0
    while not stop.wait(every_s):
        for path in ("/api/status", "/metrics"):
            try:
                urllib.request.urlopen(url + path, timeout=2).read()
                n += 1
            except OSError:
                pass
    return n


def session(with_monitor: bool, seconds: float, data_dir: str) -> dict:
    overrides = {"run.data_dir": data_dir, "sim.port": str(_free_port()), "monitor.port": str(_free_port()),
                 "monitor.venue_check_s": "10", **BENCH_OVERRIDES}
    cfg = load_config(overrides=overrides, env={})
    stop = threading.Event()
    clients = []
    if with_monitor:
        url = f"http://127.0.0.1:{cfg.monitor.port}"
        for every in (1.0, 0.25):           # a Prometheus scrape a second, a dashboard-like poller
            t = threading.Thread(target=_poll, args=(url, stop, every), daemon=True)
            t.start()
            clients.append(t)
    load = os.getloadavg()[0]
    try:
        summary = run_session(cfg, (["monitor"] if with_monitor else []) + TRADING, duration_s=seconds,
                              processes=True, log_level="WARNING")
    finally:
        stop.set()
    if summary["failed"]:
        raise RuntimeError(f"session failed: {summary['failed']}")
    figures = latency_figures(summary["stats"])
    figures["load"] = load
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="ctrader-monitor-cost-") as tmp:
        warm_up(tmp)
        for i in range(args.pairs):
            pair = {}
            for with_monitor in ((False, True) if i % 2 == 0 else (True, False)):
                pair["with" if with_monitor else "without"] = session(with_monitor, args.seconds, tmp)
                time.sleep(1.0)
            rows.append(pair)
            a, b = pair["without"], pair["with"]
            print(f"pair {i + 1}: tick-to-order p50 {a['tick-to-order p50']} -> {b['tick-to-order p50']} us, "
                  f"p99 {a['tick-to-order p99']} -> {b['tick-to-order p99']} us, orders {a['orders']} / "
                  f"{b['orders']}, load {a['load']:.1f} / {b['load']:.1f}", flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
