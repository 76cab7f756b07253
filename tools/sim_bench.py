#!/usr/bin/env python3
"""Market-stream throughput of the simulator: messages per second a client receives.

Starts ``ctrader sim --speed 0`` (the model runs as fast as clients read) pinned to one CPU,
connects client processes pinned to the other CPU(s) with picows, each subscribed on one
combined connection to ``--streams`` for every symbol, counts frames for ``--seconds`` after a
warm-up, and prints messages/s, MB/s and the server's CPU use (so the figure is per server core).

    PYTHONPATH=. .venv/bin/python tools/sim_bench.py --seconds 10
    PYTHONPATH=. .venv/bin/python tools/sim_bench.py --streams bookTicker,trade --clients 2

``--json`` prints one JSON line instead (used by tests/test_sim_throughput.py).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/api/v3/ping", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("simulator did not start")


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(url: str, warmup_s: float, seconds: float, cpus: set[int], out: mp.Queue) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)
    from picows import WSListener, WSMsgType, ws_connect

    class Counter(WSListener):
        def __init__(self) -> None:
            self.messages = 0
            self.bytes = 0

        def on_ws_frame(self, transport, frame) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                self.messages += 1
                self.bytes += frame.payload_size

    async def main() -> tuple[int, int]:
        transport, listener = await ws_connect(Counter, url, max_frame_size=1 << 24)   # auto-pong is on
        await asyncio.sleep(warmup_s)
        m0, b0 = listener.messages, listener.bytes
        await asyncio.sleep(seconds)
        result = listener.messages - m0, listener.bytes - b0
        transport.disconnect()
        return result

    out.put(asyncio.run(main()))


def run(seconds: float, clients: int, streams: list[str], warmup_s: float) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ncpu = os.cpu_count() or 1
    server_cpus = {0}
    client_cpus = set(range(1, ncpu)) or {0}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen(
        [sys.executable, "-m", "ctrader.cli.main", "--log-level", "WARNING", "sim", "--port", str(port),
         "--speed", "0"], env=env, cwd=ROOT, preexec_fn=lambda: os.sched_setaffinity(0, server_cpus))
    try:
        wait_ready(base)
        with urllib.request.urlopen(base + "/api/v3/exchangeInfo") as resp:
            symbols = [s["symbol"].lower() for s in json.load(resp)["symbols"]]
        names = "/".join(f"{s}@{kind}" for s in symbols for kind in streams)
        url = f"ws://127.0.0.1:{port}/stream?streams={names}"
        queue: mp.Queue = mp.get_context("spawn").Queue()
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=client, args=(url, warmup_s, seconds, client_cpus, queue)) for _ in range(clients)]
        for p in procs:
            p.start()
        time.sleep(warmup_s)
        cpu0 = cpu_seconds(server.pid)
        results = [queue.get(timeout=seconds + warmup_s + 60) for _ in procs]
        cpu1 = cpu_seconds(server.pid)
        for p in procs:
            p.join()
        messages = sum(r[0] for r in results)
        nbytes = sum(r[1] for r in results)
        return {"messages_per_s": round(messages / seconds), "mb_per_s": round(nbytes / seconds / 1e6, 1),
                "server_cpu": round((cpu1 - cpu0) / seconds, 2), "clients": clients, "streams": len(symbols) *
                len(streams), "seconds": seconds, "avg_message_bytes": round(nbytes / max(messages, 1))}
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--streams", default="bookTicker,trade,depth@100ms",
                    help="stream kinds subscribed for every symbol (comma-separated)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = run(args.seconds, args.clients, args.streams.split(","), args.warmup)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['messages_per_s']:,} market messages/s ({result['mb_per_s']} MB/s, "
              f"{result['avg_message_bytes']} B/message) to {result['clients']} client(s) on "
              f"{result['streams']} streams; server CPU {result['server_cpu']:.0%} of one core")


if __name__ == "__main__":
    main()
