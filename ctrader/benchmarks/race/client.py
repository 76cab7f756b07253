"""What the race's Python contenders share: their command line, signing, stopping, the summary.

A contender is a separate OS process started by the race harness::

    python -m ctrader.benchmarks.race.floor --rest http://127.0.0.1:P --ws ws://127.0.0.1:P \
        --key KEY --secret SECRET [--threshold-bps 30]

It trades until SIGTERM/SIGINT, then prints one JSON line (its own counters) on stdout and
exits 0. Signing is plain ``hmac`` over the WS API payload (params sorted by name, not
percent-encoded), as any client writes it.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any


def parse_args(description: str, argv: list[str] | None = None, **extra: tuple[type, Any, str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rest", required=True, help="REST base URL, e.g. http://127.0.0.1:19600")
    ap.add_argument("--ws", required=True, help="WebSocket base URL, e.g. ws://127.0.0.1:19600")
    ap.add_argument("--key", required=True, help="HMAC API key")
    ap.add_argument("--secret", required=True, help="HMAC secret")
    ap.add_argument("--fee", type=float, default=0.001, help="taker commission rate")
    for name, (kind, default, text) in extra.items():
        ap.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default, help=text)
    return ap.parse_args(argv)


def signed_params(params: dict, key: str, secret: str) -> dict:
    """``params`` with ``apiKey`` and the HMAC-SHA256 ``signature`` of the WS API payload."""
    params = dict(params, apiKey=key)
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return params


def run(main: Callable[[asyncio.Event], Awaitable[dict]]) -> None:
    """Run ``main(stop)`` until SIGTERM/SIGINT sets ``stop``; print its summary as one JSON line."""
    async def wrapper() -> dict:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    summary = asyncio.run(wrapper())
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
