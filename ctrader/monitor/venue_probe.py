"""The venue seen from the monitor, over REST, every ``monitor.venue_check_s``: its clock offset
to ours (``GET /api/v3/time``, weight 1) and, in live mode, the account's balances (``GET
/api/v3/account``, signed, weight 20). In a thread of its own, with timeouts: a slow venue
delays only the next probe. Paper mode has no balances at the venue: positions are then the
changes since the session started (the executor's stats).

    probe = VenueProbe(cfg).start(); probe.result  ->  {"clock_offset_ms": 3.1, "balances": {...}, ...}
"""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from typing import Any

from ctrader.config import Config

log = logging.getLogger(__name__)
FIRST_PROBE_S = 5.0


def clock_offset_ms(rest_url: str, timeout_s: float = 5.0) -> float:
    """The venue's clock minus ours, ms, from the midpoint of one round trip."""
    t0 = time.time()
    with urllib.request.urlopen(f"{rest_url.rstrip('/')}/api/v3/time", timeout=timeout_s) as resp:
        server_ms = json.loads(resp.read())["serverTime"]
    t1 = time.time()
    return server_ms - (t0 + t1) / 2 * 1000.0


def account_balances(rest_url: str, signer: Any, recv_window_ms: int, timeout_s: float = 5.0) -> dict[str, dict]:
    """Non-zero balances of the account: {asset: {"free": "1.5", "locked": "0"}} (exact strings)."""
    query = signer.signed_query({"omitZeroBalances": "true", "recvWindow": recv_window_ms,
                                 "timestamp": int(time.time() * 1000)})
    req = urllib.request.Request(f"{rest_url.rstrip('/')}/api/v3/account?{query}",
                                 headers={"X-MBX-APIKEY": signer.api_key})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        doc = json.loads(resp.read())
    return {b["asset"]: {"free": b["free"], "locked": b["locked"]} for b in doc.get("balances", [])
            if b["free"].strip("0.") or b["locked"].strip("0.")}


class VenueProbe:
    def __init__(self, cfg: Config, interval_s: float | None = None) -> None:
        from ctrader.config.venues import endpoints

        self.cfg = cfg
        self.rest = endpoints(cfg).rest
        self.interval_s = cfg.monitor.venue_check_s if interval_s is None else interval_s
        self.live = cfg.run.mode == "live"
        self.result: dict[str, Any] = {}          # replaced whole: readers never see half of it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signer = None

    def start(self) -> VenueProbe:
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._loop, name="ctrader-venue-probe", daemon=True)
            self._thread.start()
        return self

    def probe_once(self) -> dict[str, Any]:
        out: dict[str, Any] = {"checked_at": time.time()}
        try:
            out["clock_offset_ms"] = round(clock_offset_ms(self.rest), 1)
        except Exception as exc:               # noqa: BLE001  the venue down is a state to show, not a crash
            out["error"] = f"venue time: {type(exc).__name__}: {exc}"
        if self.live:
            try:
                if self._signer is None:
                    from ctrader.execution.signer import live_signer

                    self._signer = live_signer(self.cfg)
                out["balances"] = account_balances(self.rest, self._signer, self.cfg.venue.recv_window_ms)
                out["balances_at"] = time.time()
            except Exception as exc:           # noqa: BLE001
                out["error"] = f"account balances: {type(exc).__name__}: {exc}"
                out["balances"] = self.result.get("balances")     # the last good ones, with their time
                out["balances_at"] = self.result.get("balances_at")
        if "error" in out and out["error"] != self.result.get("error"):
            log.warning("venue probe: %s", out["error"])
        self.result = out
        return out

    def _loop(self) -> None:
        # the first probe waits for the session to start (the simulator, when it is the venue)
        self._stop.wait(min(FIRST_PROBE_S, self.interval_s))
        while not self._stop.is_set():
            self.probe_once()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
