"""When the monitor alerts: each rule over successive snapshots of what the components publish."""
from __future__ import annotations

import os
import subprocess

import pytest

from ctrader.config import load_config
from ctrader.monitor.alerts import Alert
from ctrader.monitor.rules import AlertRules, Resolve
from ctrader.monitor.status import Snapshot


@pytest.fixture(scope="module")
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def rules():
    cfg = load_config(overrides={"alerts.stale_s": "10", "alerts.component_grace_s": "5",
                                 "alerts.disconnect_storm": "3", "alerts.reject_storm": "4",
                                 "alerts.storm_window_s": "60", "alerts.spill_batches": "2",
                                 "alerts.min_free_disk_mb": "100", "alerts.max_clock_offset_ms": "500"})
    return AlertRules(cfg.alerts)


def snap(t: float, stats=None, health=None, **kw) -> Snapshot:
    return Snapshot(run_id="r", wall=t, stats=stats or {}, health=health, **kw)


def alerts(actions, event=None) -> list[Alert]:
    return [a for a in actions if isinstance(a, Alert) and (event is None or a.event == event)]


def resolved(actions) -> set[str]:
    return {a.key for a in actions if isinstance(a, Resolve)}


def health(pid: int, state: str = "running", restarts: int = 0) -> dict:
    return {"pid": pid, "state": state, "restarts": restarts, "beat_age_s": 0.1, "events": 0, "errors": 0}


def test_a_component_dead_past_the_grace_has_failed_for_good_and_a_restart_resets_the_clock(rules, dead_pid):
    me = os.getpid()
    assert not alerts(rules.check(snap(0, health={"feed": health(dead_pid)})), "component_failed")
    assert not alerts(rules.check(snap(4, health={"feed": health(dead_pid)})), "component_failed")
    # restarted in between (the supervisor counted it): the grace starts again
    assert not alerts(rules.check(snap(6, health={"feed": health(dead_pid, "failed", 1)})), "component_failed")
    assert not alerts(rules.check(snap(10, health={"feed": health(dead_pid, "failed", 1)})), "component_failed")
    got = alerts(rules.check(snap(11.5, health={"feed": health(dead_pid, "failed", 1)})), "component_failed")
    assert [a.key for a in got] == ["component_failed:feed"] and got[0].severity == "critical"
    assert "1 restarts" in got[0].body
    assert "component_failed:feed" in resolved(rules.check(snap(20, health={"feed": health(me)})))
    # stopped at the end of a session is no failure
    assert not alerts(rules.check(snap(40, health={"feed": health(dead_pid, "stopped")})), "component_failed")


def test_kill_switch_says_by_what_and_resolves_when_cleared(rules):
    on = rules.check(snap(0, kill={"engaged": True, "note": "engaged by ctrader kill at 2026-12-04T10:00:00Z"}))
    (a,) = alerts(on, "kill_switch")
    assert "engaged by ctrader kill" in a.body
    (a,) = alerts(rules.check(snap(1, kill={"engaged": True, "reason": "SIGUSR1", "note": ""})), "kill_switch")
    assert a.body.startswith("SIGUSR1")
    assert "kill_switch" in resolved(rules.check(snap(2, kill={"engaged": False})))


def test_daily_loss_limit(rules):
    ex = {"daily_pnl": -150.0, "daily_loss_limit": 200.0, "valuation_asset": "USDT", "refusals": {}}
    assert not alerts(rules.check(snap(0, {"executor": ex})), "daily_loss")
    (a,) = alerts(rules.check(snap(1, {"executor": {**ex, "daily_pnl": -201.5}})), "daily_loss")
    assert "-201.50 USDT" in a.body
    # the gate refused on daily loss (its own view of today's PnL) while ours is above the limit
    assert alerts(rules.check(snap(2, {"executor": {**ex, "refusals": {"DAILY_LOSS": 2}}})), "daily_loss")
    assert "daily_loss" in resolved(rules.check(snap(4000, {"executor": {**ex, "daily_pnl": 5.0}})))


def test_rate_limit_answers_from_the_venue_or_for_feed_snapshots(rules):
    ex = {"venue": {"rate_limited": 0}, "backoff_s": 0.0}
    assert not alerts(rules.check(snap(0, {"executor": ex, "feed": {"snapshot_rate_limited": 0}})), "rate_limited")
    got = alerts(rules.check(snap(1, {"executor": {"venue": {"rate_limited": 1}, "backoff_s": 58.0},
                                      "feed": {"snapshot_rate_limited": 0}})), "rate_limited")
    assert [a.key for a in got] == ["rate_limited:executor"] and "58s" in got[0].body
    got = alerts(rules.check(snap(2, {"executor": {"venue": {"rate_limited": 1}, "backoff_s": 0.0},
                                      "feed": {"snapshot_rate_limited": 2}})), "rate_limited")
    assert {a.key for a in got} == {"rate_limited:executor", "rate_limited:feed"}    # executor: within the window
    later = rules.check(snap(100, {"executor": {"venue": {"rate_limited": 1}, "backoff_s": 0.0},
                                   "feed": {"snapshot_rate_limited": 2}}))
    assert {"rate_limited:executor", "rate_limited:feed"} <= resolved(later)


def book(symbol: str, age: float | None, stale_for: float = 0.0) -> dict:
    return {"symbol": symbol, "age_s": age, "stale": stale_for > 0, "stale_for_s": stale_for}


def test_books_stale_or_silent_longer_than_stale_s(rules):
    assert not alerts(rules.check(snap(0, books=[book("BTCUSDT", 0.2), book("ETHBTC", 9.0, 9.0)])))
    (a,) = alerts(rules.check(snap(1, books=[book("BTCUSDT", 0.2), book("ETHBTC", 0.1, 10.5),
                                             book("SOLBNB", 12.0)])), "books_stale")
    assert a.title.startswith("2 books") and a.body == "ETHBTC, SOLBNB"
    assert "books_stale" in resolved(rules.check(snap(2, books=[book("BTCUSDT", 0.2), book("ETHBTC", 0.1)])))
    # from the feed's count alone (no per-book ages): stale for stale_s in a row
    assert not alerts(rules.check(snap(10, {"feed": {"stale_symbols": 3}})))
    assert alerts(rules.check(snap(20.5, {"feed": {"stale_symbols": 3}})), "books_stale")


def test_disconnect_and_reject_storms_within_the_window(rules):
    def feed(n):
        return {"feed": {"disconnects": n}}
    rules.check(snap(0, feed(0)))
    assert not alerts(rules.check(snap(10, feed(2))), "disconnect_storm")
    assert alerts(rules.check(snap(20, feed(3))), "disconnect_storm")
    assert not alerts(rules.check(snap(200, feed(3))), "disconnect_storm")     # the window moved on
    # a restarted feed counts from zero: read as a reset (one more), not as minus two
    assert not alerts(rules.check(snap(201, feed(1))), "disconnect_storm")
    assert alerts(rules.check(snap(202, feed(3))), "disconnect_storm")

    def ex(**codes):
        return {"executor": {"rejects": codes}}
    rules.check(snap(0, ex()))
    assert not alerts(rules.check(snap(1, ex(**{"-2010": 3}))), "reject_storm")
    (a,) = alerts(rules.check(snap(2, ex(**{"-2010": 3, "-1013": 1}))), "reject_storm")
    assert "-1013: 1" in a.body


def test_store_down_only_after_a_failure_or_too_long_and_the_spill_backlog(rules):
    starting = {"recorder": {"store_up": False, "insert_errors": 0, "spill_pending_batches": 0}}
    assert not alerts(rules.check(snap(0, starting)), "store_down")          # still opening the store
    assert alerts(rules.check(snap(10.5, starting)), "store_down")           # ... for too long
    failed = {"recorder": {"store_up": False, "insert_errors": 1, "spill_pending_batches": 2}}
    got = rules.check(snap(11, failed))
    assert alerts(got, "store_down") and alerts(got, "spill_backlog")
    up = rules.check(snap(12, {"recorder": {"store_up": True, "insert_errors": 1, "spill_pending_batches": 0}}))
    assert {"store_down", "spill_backlog"} <= resolved(up)


def test_disk_space_with_hysteresis_and_clock_offset(rules):
    assert alerts(rules.check(snap(0, disk_free_mb=50.0)), "disk_low")
    assert "disk_low" not in resolved(rules.check(snap(1, disk_free_mb=102.0)))   # not clearly above yet
    assert "disk_low" in resolved(rules.check(snap(2, disk_free_mb=200.0)))
    (a,) = alerts(rules.check(snap(3, venue={"clock_offset_ms": -812.0})), "clock_offset")
    assert "-812 ms" in a.body
    assert "clock_offset" in resolved(rules.check(snap(4, venue={"clock_offset_ms": 3.0})))
