"""A live session against the simulator, with faults on the venue and SIGKILLs of every
component, then the books checked against the venue: what the venue traded is what the journal,
the store and the executor's positions say, no client order id was sent twice, and the summary
counts the whole run and names the restarts.

The simulator runs in this process (its account's trades and orders are read directly); the
session is ``ctrader start --processes`` in live mode, detached, pointed at it.
"""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import time
from decimal import Decimal

import pytest

from ctrader.config import load_config
from ctrader.execution.journal import Journal
from ctrader.sim.testing import TEST_ACCOUNT, start_sim
from ctrader.store.store import Store
from tests.session_harness import Detached, all_gone, env_for, no_shm_of, started

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

VICTIMS = ["executor", "strategy", "feed", "recorder", "executor"]


def _orders_sent(term: Detached, after: int = 0) -> int:
    counts = [int(n) for n in re.findall(r"\| orders (\d+) \|", term.text[after:])]
    return counts[-1] if counts else 0


def _wait_orders_beyond(term: Detached, n: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _orders_sent(term) <= n:
        assert time.monotonic() < deadline, f"trading did not go on past {n} orders:\n{term.text[-5000:]}"
        time.sleep(0.5)


def _venue_books(sim):
    """(trades, client order ids of every order) of the session's account at the venue."""
    sim.control.pause()
    engine = sim.server.engine
    account = next(a for a in engine.trades if a.name == TEST_ACCOUNT.name)
    trades = list(engine.trades[account])
    coids = [o.client_order_id for o in list(engine.orders.values()) if o.account is account]
    return trades, coids


def _positions_of(trades, assets) -> dict[str, Decimal]:
    out: dict[str, Decimal] = collections.defaultdict(Decimal)
    for t in trades:
        base, quote = assets[t.symbol]
        qty, quote_qty = Decimal(t.fill.qty) / 10**8, Decimal(t.fill.quote) / 10**8
        sign = 1 if t.is_buyer else -1
        out[base] += sign * qty
        out[quote] -= sign * quote_qty
        out[t.fill.commission_asset] -= Decimal(t.fill.commission) / 10**8
    return {a: v for a, v in out.items() if v}


def test_a_live_session_under_faults_and_kills_keeps_its_books_straight(tmp_path):
    sim = start_sim({"market.dislocations_per_min": "40", "faults.diff_drop_rate": "0.01",
                     "faults.order_delay_ms": "30", "limits.orders_per_10s": "400"})
    env = env_for(tmp_path, CTRADER_API_KEY=TEST_ACCOUNT.api_key, CTRADER_API_SECRET=TEST_ACCOUNT.api_secret)
    sets = {"sim.port": sim.port, "run.mode": "live", "run.on_failure": "continue", "strategy.cooldown_ms": "200"}
    args = ["--log-level", "INFO", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
            "start", "--processes", "--without", "sim", "--status-every", "1"]
    term = Detached(args, env, tmp_path / "session.log")
    try:
        run_id, pids = started(term)
        _wait_orders_beyond(term, 4)
        for n, victim in enumerate(VICTIMS):
            if n == 2:
                sim.control.delay_orders(2500, 3)          # orders in flight across the next kill
                sim.control.timeout_orders(2)              # executed, answered -1007
            at = len(term.text)
            os.kill(pids[victim], signal.SIGKILL)
            found = term.expect(rf"{victim} exited \(code -9\); restarted as pid (\d+)", after=at)
            pids[victim] = int(found.group(1))
            _wait_orders_beyond(term, _orders_sent(term))      # and trading goes on
        sim.control.close_api_connections()                 # the WS API drops: the executor reconnects
        _wait_orders_beyond(term, _orders_sent(term))
        os.kill(term.pid, signal.SIGINT)
        code = term.wait()
        assert all_gone(pids.values())
    finally:
        term.kill()
    text = term.text
    assert code == 3, text[-3000:]           # ran to the end, with restarts
    assert no_shm_of(run_id)
    trades, coids = _venue_books(sim)
    try:
        assert trades
        # no client order id reached the venue twice
        repeated = [c for c, k in collections.Counter(coids).items() if k > 1]
        assert not repeated, repeated
        venue_trades = {(t.symbol, t.fill.trade_id) for t in trades}

        cfg = load_config(env={"CTRADER_DATA_DIR": str(tmp_path / "data")},
                          overrides={"run.mode": "live", "sim.port": str(sim.port)})
        journal_path = next((tmp_path / "data" / "journal").glob("executor-sim-live*.jsonl"))
        orders, fills = Journal.load(journal_path)
        journal_trades = {(orders[u.client_order_id].symbol, u.trade_id) for rid, u in fills
                          if rid == run_id and u.client_order_id in orders}
        assert journal_trades == venue_trades

        with Store.from_config(cfg) as store:
            rows = store.query_arrow(
                f"SELECT symbol, trade_id FROM {cfg.store.database}.executions WHERE run_id = '{run_id}' "
                f"AND kind IN ('fill', 'partial_fill')").to_pylist()
        assert {(r["symbol"], r["trade_id"]) for r in rows} == venue_trades

        run_dir = tmp_path / "data" / "runs" / run_id
        info = json.loads((run_dir / "exchange_info.json").read_text())
        assets = {s["symbol"]: (s["baseAsset"], s["quoteAsset"]) for s in info["symbols"]}
        executor = json.loads((run_dir / "executor.stats.json").read_text())
        expected = _positions_of(trades, assets)
        assert {a: Decimal(str(v)) for a, v in executor["positions"].items()} == expected

        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stop"]["restarts"] == {"executor": 2, "strategy": 1, "feed": 1, "recorder": 1}
        stats = summary["stats"]
        assert stats["executor"]["incarnations"] == 3 and stats["recorder"]["incarnations"] == 2
        assert stats["executor"]["orders_sent"] == len(set(coids))     # counted over every incarnation
        assert "md_restart_gap" in stats["recorder"]
        assert re.search(r"recorder restarted: (recording md from record|md records)", text)
    finally:
        sim.stop()
