"""The monitor's HTTP API on a real server (uvicorn on loopback), over a run's real rings, health
table and stats files: status, fills, metrics, the event stream, the token and the kill switch."""
from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ctrader.core.net import is_loopback
from ctrader.core.records import ExecKind
from ctrader.monitor.auth import TOKEN_ENV, MonitorSetupError, check_bind, load_token
from tests.monitor_harness import MonitorHarness

pytestmark = pytest.mark.timeout(120)

EXECUTOR = {"mode": "paper", "orders_sent": 3, "fills": 2, "cancels": 1, "refusals": {"RATE_BUDGET": 4},
            "rejects": {"-2010": 1}, "positions": {"BTC": -0.001, "USDT": 60.0}, "pnl": 1.25,
            "pnl_by_asset": {"BTC": -60.0, "USDT": 61.25}, "valuation_asset": "USDT", "daily_pnl": 1.25,
            "daily_loss_limit": 200.0, "kill_switch": "", "open_orders": 1, "backoff_s": 0.0,
            "open_order_list": [{"client_order_id": "ct1-0", "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                 "tif": "GTC", "status": "NEW", "price": "59000.00", "qty": "0.00100",
                                 "filled": "0.00000", "group_id": "1", "leg": 0, "unwind": False, "age_s": 1.5}],
            "rate_budget": {"orders_10s": {"used": 10, "limit": 40}},
            "tick_to_order": {"p50_us": 300.0, "p99_us": 900.0, "n": 3}}


@pytest.fixture(autouse=True)
def no_token_env(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def metric_values(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_status_fills_and_metrics_come_from_what_the_components_publish(tmp_path):
    with MonitorHarness(tmp_path) as mon:
        mon.write_stats("executor", EXECUTOR)
        mon.write_stats("feed", {"messages": 1234, "gaps": 2, "disconnects": 0, "stale_symbols": 0,
                                 "recv_to_ring_us_p50": 30.0, "recv_to_ring_us_p99": 90.0})
        mon.write_stats("strategy", {"events": 999, "taken": 5, "skipped": {"SKIP_EDGE": 7}, "model_calls": 5})
        mon.write_stats("recorder", {"store_up": True, "rows_md_book": 1200, "rows_executions": 6})
        t = time.monotonic_ns()
        mon.publish_fill("BTCUSDT", 60000.1, 0.001, "o1", sent_ns=t, cause_ns=t - 400_000)
        mon.publish_fill("ETHBTC", 0.05123, 0.25, "o2", kind=ExecKind.PARTIAL_FILL, sent_ns=t, cause_ns=t - 1_500_000)
        status = mon.wait_status(lambda s: s["executor"].get("fills") == 2 and len(s["fills"]["last"]) == 2)
        assert status["pnl"]["total"] == 1.25 and status["pnl"]["valuation_asset"] == "USDT"
        assert status["positions"] == {"BTC": -0.001, "USDT": 60.0}
        assert status["open_orders"][0]["price"] == "59000.00"
        assert status["components"]["monitor"]["state"] == "running"
        assert status["tick_to_order_histogram"]["count"] == 2
        assert {b["symbol"] for b in status["feed"]["books"]} == {"BTCUSDT", "ETHBTC", "ETHUSDT"}

        fills = mon.get("/api/fills?since=0").json()
        assert [(f["id"], f["symbol"], f["price"], f["qty"]) for f in fills] == [
            (1, "BTCUSDT", "60000.10", "0.00100"), (2, "ETHBTC", "0.05123", "0.2500")]
        assert [f["id"] for f in mon.get("/api/fills?since=1").json()] == [2]
        assert mon.get("/api/fills?since=-1").status == 422

        resp = mon.get("/metrics")
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        m = metric_values(resp.body.decode())
        assert m[("ctrader_executor_fills_total", ())] == 2
        assert m[("ctrader_executor_refusals_total", (("reason", "rate_budget"),))] == 4
        assert m[("ctrader_executor_rejects_total", (("code", "-2010"),))] == 1
        assert m[("ctrader_executor_pnl", (("valuation_asset", "USDT"),))] == 1.25
        assert m[("ctrader_feed_messages_total", ())] == 1234
        assert m[("ctrader_strategy_candidates_total", (("decision", "taken"),))] == 5
        assert m[("ctrader_strategy_candidates_total", (("decision", "skip_edge"),))] == 7
        assert m[("ctrader_recorder_rows_total", (("table", "md_book"),))] == 1200
        assert m[("ctrader_executor_tick_to_order_seconds_count", ())] == 2
        assert m[("ctrader_executor_tick_to_order_seconds_bucket", (("le", "0.0005"),))] == 1
        assert m[("ctrader_executor_rate_budget_used_ratio", (("window", "orders_10s"),))] == 0.25
        assert m[("ctrader_component_up", (("component", "monitor"),))] == 1
        assert m[("ctrader_ring_records_total", (("ring", "exec"),))] == 2


def test_control_needs_the_token_and_refusals_are_logged_without_it(tmp_path, caplog):
    with MonitorHarness(tmp_path) as mon:
        token = mon.token
        path = tmp_path / "monitor.token"
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert token and len(token) >= 32
        with caplog.at_level(logging.WARNING, logger="ctrader.monitor.api"):
            assert mon.post("/api/kill").status == 401
            wrong = mon.post("/api/kill", token="not-the-token-" + "x" * 20)
            assert wrong.status == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
            assert mon.post("/api/resume", token="").status == 401
        assert "refused POST /api/kill from 127.0.0.1: missing bearer token" in caplog.text
        assert "wrong token" in caplog.text and "not-the-token" not in caplog.text and token not in caplog.text
        assert not (tmp_path / "KILL").exists()
        m = metric_values(mon.get("/metrics").body.decode())
        assert m[("ctrader_monitor_auth_failures_total", (("endpoint", "/api/kill"),))] == 2

        resp = mon.post("/api/kill", token=token, body={"reason": "test\nrun"})
        assert resp.status == 200 and resp.json()["engaged"]
        note = (tmp_path / "KILL").read_text()
        assert note.startswith("engaged by the monitor API (client 127.0.0.1): test run at ")
        status = mon.wait_status(lambda s: s["kill"]["engaged"])
        assert "the monitor API" in status["kill"]["note"]
        status = mon.wait_status(lambda s: any(a["event"] == "kill_switch" for a in s["alerts"]["open"]))
        assert mon.post("/api/resume", token=token).json()["cleared"] is True
        assert not (tmp_path / "KILL").exists()
        mon.wait_status(lambda s: not s["kill"]["engaged"] and not s["alerts"]["open"])
    assert token not in (caplog.text + "".join(p.read_text() for p in tmp_path.rglob("*.stats.json")))


def test_the_event_stream_pushes_the_status_and_each_fill_as_it_happens(tmp_path):
    with MonitorHarness(tmp_path) as mon:
        events: list[tuple[str, dict]] = []
        got_fill = threading.Event()

        def listen():
            with urllib.request.urlopen(mon.url + "/api/events", timeout=30) as resp:
                assert resp.headers["Content-Type"].startswith("text/event-stream")
                event = None
                for raw in resp:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        events.append((event, json.loads(line[6:])))
                        if event == "fill":
                            got_fill.set()
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        deadline = time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            time.sleep(0.02)
        assert events and events[0][0] == "status" and events[0][1]["run_id"] == mon.run_id
        mon.publish_fill("BTCUSDT", 60000.1, 0.002, "live-1")
        assert got_fill.wait(20)
        kind, doc = events[-1]
        assert kind == "fill" and doc["client_order_id"] == "live-1" and doc["qty"] == "0.00200"
        listener.join(5)


def test_no_cors_by_default_security_headers_and_the_dashboard_is_self_contained(tmp_path):
    with MonitorHarness(tmp_path) as mon:
        resp = mon.get("/api/status", headers={"Origin": "https://evil.example"})
        assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
        page = mon.get("/")
        assert page.status == 200 and page.headers["X-Frame-Options"] == "DENY"
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        html = page.body.decode()
        assert "https://" not in html and "http://" not in html      # nothing from a CDN
        js = mon.get("/static/plotly.min.js")
        assert js.status == 200 and len(js.body) > 1_000_000
        assert mon.get("/static/dashboard.js").status == 200
        assert mon.get("/static/..%2Fapp.py").status == 404


def test_cors_only_for_the_configured_origins(tmp_path):
    with MonitorHarness(tmp_path, {"monitor.cors_origins": "https://grafana.example"}) as mon:
        ok = mon.get("/api/status", headers={"Origin": "https://grafana.example"})
        assert ok.headers["Access-Control-Allow-Origin"] == "https://grafana.example"
        other = mon.get("/api/status", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers


def test_token_sources_and_where_the_monitor_may_listen(tmp_path, monkeypatch):
    from ctrader.config import load_config

    cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path)})
    made = load_token(cfg)
    assert load_token(cfg) == made                                   # kept across starts
    assert load_token(cfg, env={TOKEN_ENV: "from-env"}) == "from-env"
    os.chmod(tmp_path / "monitor.token", 0o644)
    with pytest.raises(MonitorSetupError, match="chmod 600"):
        load_token(cfg)
    no_file = load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides={"monitor.token_file": ""})
    assert load_token(no_file, env={}) is None
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("myhost")
    check_bind("127.0.0.1", None)                                      # loopback: control disabled, fine
    check_bind("0.0.0.0", "a-token")
    with pytest.raises(MonitorSetupError, match="not a loopback address and no token"):
        check_bind("0.0.0.0", None)


def test_a_taken_port_or_an_open_binding_is_refused_before_the_session_starts(tmp_path, monkeypatch):
    import socket

    from ctrader.config import load_config
    from ctrader.runtime.session import run_session

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides={"monitor.port": str(port)})
        with pytest.raises(MonitorSetupError, match=f"monitor.port {port} on 127.0.0.1 is not available"):
            run_session(cfg, ["monitor", "feed"], duration_s=1)
    cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path)},
                      overrides={"monitor.host": "0.0.0.0", "monitor.token_file": ""})
    with pytest.raises(MonitorSetupError, match="no token"):
        run_session(cfg, ["monitor", "feed"], duration_s=1)
    assert not (tmp_path / "runs").exists()                   # nothing was started


class FakeState:
    """The least a MonitorState needs, for the API's own rules."""

    def __init__(self) -> None:
        import collections

        from ctrader.monitor.app import EventHub

        self.hub = EventHub()
        self.auth_failures = collections.Counter()
        self.killed: list[str] = []

    def status(self) -> dict:
        return {"run_id": "fake"}

    def fills(self, since, since_ts, limit):
        return []

    def history(self) -> dict:
        return {"pnl": []}

    def kill(self, by, reason):
        self.killed.append(by)
        return {"engaged": True}

    def resume(self, by):
        return {"cleared": True}

    def metrics(self):
        return b"", "text/plain"


def test_beyond_loopback_reads_need_the_token_too_by_header_or_cookie_and_control_by_header_only():
    from ctrader.monitor.app import create_app
    from ctrader.monitor.auth import TokenCheck
    from ctrader.monitor.process import _Server, bind_socket
    from tests.monitor_harness import Response, free_port

    state = FakeState()
    sock = bind_socket("127.0.0.1", free_port())
    server = _Server(create_app(state, TokenCheck("s3cret-token"), open_reads=False), sock)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def call(method, path, headers=None):
        req = urllib.request.Request(base + path, method=method, headers=headers or {})
        for _ in range(200):
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return Response(r.status, r.headers, r.read())
            except urllib.error.HTTPError as err:
                return Response(err.code, err.headers, err.read())
            except urllib.error.URLError:
                time.sleep(0.05)           # not listening yet
        raise AssertionError("no answer")

    try:
        assert call("GET", "/api/status").status == 401
        assert call("GET", "/metrics").status == 401
        assert call("GET", "/api/status", {"Authorization": "Bearer s3cret-token"}).json() == {"run_id": "fake"}
        assert call("GET", "/api/status", {"Cookie": "ctrader_token=s3cret-token"}).status == 200
        assert call("GET", "/").status == 200 and call("GET", "/healthz").status == 200   # no data in them
        assert call("POST", "/api/kill", {"Cookie": "ctrader_token=s3cret-token"}).status == 401
        assert not state.killed
        assert call("POST", "/api/kill", {"Authorization": "Bearer s3cret-token"}).status == 200
        assert state.killed == ["the monitor API (client 127.0.0.1)"]
        assert state.auth_failures == {"/api/status": 1, "/metrics": 1, "/api/kill": 1}
    finally:
        server.stop()
        thread.join(10)
