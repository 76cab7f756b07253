"""The monitor with the real components: ``ctrader start --processes`` sessions against the
simulator, watched by a real Prometheus server, a real headless Chromium on the dashboard, and
loopback JSON webhooks for the alerts (one of them hanging).

Each session runs in the test's main thread (the supervisor handles signals there) and stops
when a driver thread, which checks what the test proves, says so; every wait is on an event or
polls with a deadline.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ctrader.config import load_config
from ctrader.execution.killfile import clear_kill_file, engage_kill_file
from ctrader.monitor.auth import TOKEN_ENV, load_token
from ctrader.runtime.session import run_session
from ctrader.venue.signing import Signer
from tests.monitor_harness import free_port
from tests.monitor_sinks import WebhookSink

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

ALL = ["monitor", "sim", "feed", "strategy", "executor", "recorder"]


@pytest.fixture(autouse=True)
def no_token_env(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def _cfg(tmp_path, **sets):
    overrides = {"sim.port": str(free_port()), "monitor.port": str(free_port()), "monitor.poll_ms": "100",
                 "sim.market.dislocations_per_min": "30", **sets}
    return load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides=overrides)


def _get(url: str, token: str | None = None, timeout_s: float = 5.0):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def _post(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url, data=b"{}", method="POST",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _until(predicate, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


class Driver:
    """Runs ``check(status_url)`` in a thread while the session runs; the session stops when it
    returns or raises (re-raised in the test)."""

    def __init__(self, cfg, check) -> None:
        self.base = f"http://127.0.0.1:{cfg.monitor.port}"
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(check,), daemon=True)

    def _run(self, check) -> None:
        try:
            _until(lambda: _get(self.base + "/healthz"), 120, "the monitor to answer")
            check(self)
        except BaseException as exc:         # noqa: BLE001  re-raised by the test
            self.error = exc
            traceback.print_exc()
        finally:
            self.done.set()

    def status(self) -> dict:
        return _get(self.base + "/api/status")

    def run(self, cfg, duration_s: float = 300) -> dict:
        self.thread.start()
        summary = run_session(cfg, ALL, duration_s=duration_s, processes=True, status_every_s=0.25,
                              stop_when=lambda _: self.done.is_set())
        self.thread.join(30)
        if self.error is not None:
            raise self.error
        assert self.done.is_set(), "the session ended before the test had seen what it waits for"
        return summary


# --- Prometheus -------------------------------------------------------------------------------------

PROMETHEUS = shutil.which("prometheus")


@pytest.fixture
def prometheus(tmp_path):
    if PROMETHEUS is None:
        pytest.skip("PROMETHEUS NOT INSTALLED: this test needs Debian's `prometheus` package "
                    "(tools/test installs it with apt-get when run as root)")
    port = free_port()
    target = {"port": free_port()}
    conf = tmp_path / "prometheus.yml"
    conf.write_text(f"global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n"
                    f"  - job_name: ctrader\n    static_configs:\n      - targets: ['127.0.0.1:{target['port']}']\n")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready():
        assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
        with urllib.request.urlopen(base + "/-/ready", timeout=2) as resp:
            return resp.status == 200

    _until(ready, 60, "prometheus to be ready")

    def query(expr: str) -> dict[tuple, float]:
        doc = _get(f"{base}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert doc["status"] == "success", doc
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("job", "instance", "__name__"))):
                float(r["value"][1]) for r in doc["data"]["result"]}

    def targets() -> str:
        doc = _get(f"{base}/api/v1/targets")
        return "; ".join(f"{t['scrapeUrl']} {t['health']} {t['lastError']}" for t in doc["data"]["activeTargets"])

    query.targets = targets
    try:
        yield target["port"], query
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_prometheus_scrapes_a_session_and_its_series_are_the_summarys_figures(tmp_path, prometheus):
    monitor_port, query = prometheus
    cfg = _cfg(tmp_path, **{"monitor.port": str(monitor_port)})
    seen = {}

    def check(d: Driver):
        # scraped while trading: the counter grows in Prometheus as fills happen
        try:
            first = _until(lambda: query("ctrader_executor_fills_total").get(()), 180, "fills scraped by Prometheus")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; prometheus targets: {query.targets()}") from None
        _until(lambda: query("ctrader_executor_fills_total").get((), 0) > first, 120, "a later scrape with more fills")
        # every component up in one scrape; on a loaded machine one scrape may catch a component
        # whose heartbeat or stats file is late, so wait for the scrape that shows them all
        all_up = {(("component", c),): 1.0 for c in ALL}
        try:
            _until(lambda: query("ctrader_component_up") == all_up, 60, "every component up in a scrape")
        finally:
            seen["up"] = query("ctrader_component_up")
        # stop trading, then wait for the figures to settle in a scrape
        assert _post(d.base + "/api/kill", load_token(cfg, create=False)) == 200

        def settled():
            # the executor saw the kill and nothing is open: fills and orders cannot change any more
            s = d.status()
            if not s["kill"]["executor_engaged"] or s["executor"].get("open_orders"):
                return False
            scraped = (query("ctrader_executor_fills_total").get(()), query("ctrader_executor_orders_total").get(()))
            return scraped == (s["executor"]["fills"], s["executor"]["orders_sent"])
        _until(settled, 60, "the scraped fills and orders to settle after the kill")

    summary = Driver(cfg, check).run(cfg)
    ex = summary["stats"]["executor"]
    assert summary["failed"] == [] and ex["fills"] >= 2
    assert seen["up"] == {(("component", c),): 1.0 for c in ALL}
    last = "last_over_time({}[10m])"
    assert query(last.format("ctrader_executor_fills_total")) == {(): ex["fills"]}
    assert query(last.format("ctrader_executor_orders_total")) == {(): ex["orders_sent"]}
    positions = query(last.format("ctrader_executor_position"))
    assert positions == {(("asset", a),): pytest.approx(v, abs=1e-9) for a, v in ex["positions"].items()}
    fees = query(last.format("ctrader_executor_fees_total"))
    assert fees == {(("asset", a),): pytest.approx(v, abs=1e-9) for a, v in ex["fees"].items()}
    timed = query(last.format("ctrader_executor_tick_to_order_seconds_count"))
    assert timed == {(): ex["tick_to_order"]["n"]}       # the monitor timed every order the executor did
    stale = query(last.format("ctrader_feed_book_stale"))
    assert len(stale) == len(summary["stats"]["feed"]["stale_s"])   # one series per symbol
    print(f"\nprometheus: fills {ex['fills']}, orders {ex['orders_sent']}, {len(positions)} positions "
          f"scraped equal to the summary")


# --- alerts ---------------------------------------------------------------------------------------


def _monitor_stats(summary) -> dict:
    return json.loads((summary_dir(summary) / "monitor.stats.json").read_text())


def summary_dir(summary):
    import pathlib

    return pathlib.Path(summary["run_dir"])


def test_alerts_reach_a_webhook_once_per_incident_and_never_beyond_the_rate_limit(tmp_path):
    with WebhookSink() as sink:
        cfg = _cfg(tmp_path, **{"alerts.urls": sink.apprise_url, "alerts.max_per_minute": "4"})
        kill = tmp_path / "KILL"

        def count(title):
            return sum(1 for t in sink.titles() if title in t)

        def check(d: Driver):
            assert sink.wait_for(lambda m: any("started" in x.get("title", "") for x in m), 60)
            for incident in range(1, 6):
                engage_kill_file(kill, f"test incident {incident}")
                # open for many polls (100 ms each): deduplicated, never repeated
                _until(lambda: d.status()["kill"]["engaged"] and
                       any(a["event"] == "kill_switch" for a in d.status()["alerts"]["open"]), 30, "the incident")
                time.sleep(1.0)
                clear_kill_file(kill)
                _until(lambda: not d.status()["alerts"]["open"], 30, "the incident to resolve")
            # started + 3 incidents fill the minute's 4; incidents 4 and 5 are held back
            assert sink.wait_for(lambda m: len(m) >= 4, 30)
            time.sleep(2.0)              # nothing more arrives within the minute
            assert len(sink.messages) == 4

        summary = Driver(cfg, check).run(cfg)
    assert summary["failed"] == []
    titles = sink.titles()
    assert len(titles) == 4 and "started" in titles[0]
    assert [t for t in titles[1:]] == ["[ctrader] kill switch engaged"] * 3
    bodies = [m["message"] for m in sink.messages[1:]]
    assert [f"test incident {i}" in b for i, b in enumerate(bodies, 1)] == [True] * 3
    stats = _monitor_stats(summary)["alerts"]
    assert stats["kill_switch:sent"] == 3 and stats["kill_switch:rate_limited"] == 2
    assert stats["kill_switch:deduplicated"] >= 5            # the open incidents were seen again and again
    assert stats["session_stopped:rate_limited"] == 1


def test_a_hanging_alert_endpoint_holds_up_nothing_but_alerts(tmp_path):
    with WebhookSink(hang_s=30, hang_after=1) as sink:
        # apprise waits up to 40 s for an answer (its default gives up after 4): the endpoint
        # really holds the monitor's sender for 30 s, from its second alert on
        cfg = _cfg(tmp_path, **{"alerts.urls": sink.apprise_url + "?rto=40", "alerts.flush_s": "1"})
        seen = {}

        def check(d: Driver):
            assert sink.wait_for(lambda m: len(m) == 1, 60)        # "session started" got through
            start = _until(lambda: (s := d.status())["executor"].get("fills") and s, 180, "the session to trade")
            engage_kill_file(tmp_path / "KILL", "test: the endpoint hangs from here")
            assert sink.wait_requests(2, 20)                       # the kill alert is stuck in the endpoint
            hung_at = time.monotonic()
            clear_kill_file(tmp_path / "KILL")
            _until(lambda: not d.status()["alerts"]["open"], 10, "the first incident to resolve")
            engage_kill_file(tmp_path / "KILL", "test: again")     # a second incident, queued behind it
            _until(lambda: d.status()["alerts"]["pending"] >= 2, 10, "the second alert queued")
            clear_kill_file(tmp_path / "KILL")
            t2o = start["latency_us"]["tick_to_order"]["n"]
            # trading and the monitor go on meanwhile
            now = _until(lambda: (s := d.status())["executor"]["fills"] > start["executor"]["fills"]
                         and s["latency_us"]["tick_to_order"]["n"] > t2o and s, 25,
                         "new orders and fills while the alert endpoint hangs")
            assert time.monotonic() - hung_at < 30 and len(sink.messages) == 1     # still hanging
            seen.update(start=start, during=now)

        summary = Driver(cfg, check).run(cfg)
    assert summary["failed"] == [] and set(summary["exit_codes"].values()) == {0}
    during = seen["during"]
    t2o = during["latency_us"]["tick_to_order"]
    print(f"\nwhile the endpoint hung: fills {seen['start']['executor']['fills']} -> {during['executor']['fills']}, "
          f"tick-to-order p50/p99 {t2o['p50']}/{t2o['p99']} us")


# --- the dashboard in Chromium ----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def page_until(page, expression: str, timeout_s: float):
    """Poll ``expression`` in the page until it is truthy. (Playwright's wait_for_function
    evaluates strings with eval(), which the dashboard's Content-Security-Policy forbids.)"""
    return _until(lambda: page.evaluate(expression), timeout_s, f"the page: {expression}", interval_s=0.1)


def _sim_open_orders(cfg) -> list[dict]:
    acct = cfg.sim.accounts[0]
    signer = Signer(acct.api_key, secret=acct.api_secret)
    query = signer.signed_query({"timestamp": int(time.time() * 1000)})
    req = urllib.request.Request(f"http://{cfg.sim.host}:{cfg.sim.port}/api/v3/openOrders?{query}",
                                 headers={"X-MBX-APIKEY": acct.api_key})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_dashboard_in_chromium_updates_live_and_its_kill_button_stops_trading(tmp_path):
    if CHROMIUM is None:
        pytest.skip("CHROMIUM NOT INSTALLED: this test needs Debian's `chromium` package "
                    "(tools/test installs it with apt-get when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="PLAYWRIGHT NOT INSTALLED (pip install playwright)")
    # Live trading against the simulator; GTC legs that reach the venue after the dislocation has
    # gone (1.6 s order delay) rest on its books: open orders for the kill switch to cancel.
    cfg = _cfg(tmp_path, **{"run.mode": "live", "strategy.tif": "GTC", "sim.faults.order_delay_ms": "1600",
                            "monitor.venue_check_s": "2"})
    shot = tmp_path / "dashboard.png"
    seen = {}

    def check(d: Driver):
        token = load_token(cfg, create=False)
        errors: list[str] = []
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(str(tmp_path / "chromium-profile"), headless=True,
                                                             executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                             viewport={"width": 1280, "height": 1600})
            try:
                page = browser.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.goto(d.base + "/", wait_until="load")
                page.wait_for_selector("#conn.on", timeout=30_000)               # the event stream is live
                # a fill reaches the table and the PnL curve within seconds of happening
                page_until(page, "document.querySelectorAll('#fills-table tbody tr').length > 0", 180)
                before = page.evaluate("document.getElementById('pnl-chart').data[0].x.length")
                last = _get(d.base + "/api/fills")[-1]["id"]
                new = _until(lambda: [f for f in _get(d.base + f"/api/fills?since={last}")], 180, "another fill")
                page.wait_for_selector(f"#fills-table tr[data-fill-id='{new[0]['id']}']", timeout=10_000)
                page_until(page, f"document.getElementById('pnl-chart').data[0].x.length > {before}", 10)
                page_until(page, "document.querySelectorAll('#balances tbody tr').length > 0", 30)
                _until(lambda: _sim_open_orders(cfg), 120, "GTC orders resting at the simulator")
                page_until(page, "document.querySelectorAll('#open-orders tbody tr').length > 0", 10)
                seen["open_before"] = len(_sim_open_orders(cfg))

                # without the token: nothing happens (the API answers 401)
                assert _post(d.base + "/api/kill") == 401
                assert _post(d.base + "/api/kill", "wrong-" + token) == 401
                page.click("#kill")
                page.wait_for_selector("#token-dialog[open]")
                page.click("#token-cancel")
                assert not (tmp_path / "KILL").exists()
                # with it: the kill switch trips
                page.click("#kill")
                page.fill("#token-input", token)
                page.click("#token-ok")
                page.wait_for_selector("#kill-state.killed", timeout=10_000)
                assert (tmp_path / "KILL").read_text().startswith("engaged by the monitor API (client 127.0.0.1)")
                _until(lambda: not _sim_open_orders(cfg), 30, "the simulator to see the open orders cancelled")
                status = _until(lambda: (s := d.status())["executor"]["refusals"].get("KILL_SWITCH") and s, 120,
                                "the executor to refuse a new order")
                seen["status"] = status
                page.wait_for_timeout(1500)        # one more redraw with the refusals
                page.screenshot(path=str(shot), full_page=True)
                seen["rows"] = page.evaluate("document.querySelectorAll('#fills-table tbody tr').length")
            finally:
                browser.close()
        seen["errors"] = errors

    summary = Driver(cfg, check).run(cfg)
    assert summary["failed"] == []
    assert seen["errors"] == [], seen["errors"]
    ex = seen["status"]["executor"]
    # the resting orders were cancelled (one may have filled first), and none is open now
    assert seen["open_before"] >= 1 and ex["cancels"] >= 1 and ex["open_orders"] == 0
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"\ndashboard: {seen['rows']} fills shown, {seen['open_before']} resting orders cancelled by the kill "
          f"button, refusals {ex['refusals']}; screenshot {shot}")
