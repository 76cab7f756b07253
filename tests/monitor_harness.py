"""The monitor component on a thread, over a run's real rings and health table, with the other
components played by the test (stats files and ring records it writes).

    with MonitorHarness(tmp_path, {"alerts.stale_s": "5"}) as mon:
        mon.write_stats("executor", {...}); mon.publish_fill("BTCUSDT", 60000.1, 0.001, "o1")
        mon.get("/api/status"); mon.post("/api/kill", token=mon.token)
        mon.wait_status(lambda s: s["fills"]["count"] == 1)
"""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np

from ctrader.config import load_config
from ctrader.core.records import EXEC_EVENT, ExecKind, Side
from ctrader.sim.testing import sim_universe
from ctrader.runtime.resources import RunResources
from ctrader.core.stats import StatsFile
from ctrader.runtime.supervisor import ChildContext, run_dir

SYMBOLS = ("BTCUSDT", "ETHBTC", "ETHUSDT")
COMPONENTS = ["monitor", "feed", "strategy", "executor", "recorder"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status: int, headers, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


class MonitorHarness:
    def __init__(self, tmp_path, overrides: dict | None = None, env: dict | None = None) -> None:
        self.port = free_port()
        sets = {"monitor.port": str(self.port), "monitor.poll_ms": "50", "monitor.venue_check_s": "0",
                "market.symbols": ",".join(SYMBOLS), **(overrides or {})}
        self.cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path), **(env or {})}, overrides=sets)
        self.uni = sim_universe(SYMBOLS)
        self.run_id = f"mon{time.monotonic_ns() % 10**9}"
        self.run_dir = run_dir(self.cfg, self.run_id)
        (self.run_dir / "exchange_info.json").write_text(json.dumps(self.uni.exchange_info))
        self.res = RunResources.create(self.cfg, self.run_id, COMPONENTS)
        self.stop = threading.Event()
        self.ctx = ChildContext("monitor", self.cfg, self.run_id, self.stop, self.res.health.slot("monitor"),
                                {k: r.name for k, r in self.res.rings.items()})
        self.exec = self.res.rings["exec"].producer()
        self.md = self.res.rings["md"].producer()
        self.error: BaseException | None = None
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from ctrader.monitor.process import run_monitor

        self.ctx.health.started()
        try:
            run_monitor(self.ctx)
        except BaseException as exc:        # noqa: BLE001  the test reports it
            self.error = exc
        finally:
            self.ctx.health.stopped(failed=self.error is not None)

    def __enter__(self) -> MonitorHarness:
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.error is None, self.error
            try:
                if self.get("/api/status").json().get("run_id") == self.run_id:
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"the monitor did not answer on {self.url}")

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)
        self.res.close()

    @property
    def token(self) -> str:
        from ctrader.monitor.auth import load_token

        return load_token(self.cfg, create=False)

    # --- the other components, played by the test ------------------------------------------------

    def write_stats(self, component: str, stats: dict) -> None:
        StatsFile(self.run_dir, component).write(stats)

    def publish_fill(self, symbol: str, px: float, qty: float, coid: str, kind=ExecKind.FILL,
                     sent_ns: int = 0, cause_ns: int = 0) -> None:
        rec = np.zeros(1, EXEC_EVENT)
        r = rec[0]
        r["symbol_id"], r["kind"], r["side"] = self.uni.symbol_id(symbol), int(kind), int(Side.SELL)
        r["last_px"], r["last_qty"], r["fee"], r["fee_asset_id"] = px, qty, 0.0001, self.uni.asset_id("USDT")
        r["client_order_id"], r["recv_ts_ns"] = coid.encode(), time.time_ns()
        r["sent_mono_ns"], r["cause_recv_mono_ns"] = sent_ns, cause_ns
        self.exec.write(rec)

    # --- HTTP -------------------------------------------------------------------------------------

    def request(self, method: str, path: str, token: str | None = None, body: dict | None = None,
                headers: dict | None = None) -> Response:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return Response(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, err.headers, err.read())

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> Response:
        return self.request("POST", path, **kw)

    def wait_status(self, predicate, timeout_s: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout_s
        status = {}
        while time.monotonic() < deadline:
            status = self.get("/api/status").json()
            if predicate(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"status never matched; last: {json.dumps(status)[:2000]}")
