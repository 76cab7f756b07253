"""The product's main job end to end: ``ctrader start --processes`` against the simulator.

Real OS processes (simulator, feed, strategy, executor, recorder) linked by shared memory, the
embedded store, the simulator's injected dislocations. Each run stops when what it proves has
happened (or a generous time limit passes), never on a wall-clock assertion.
"""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from decimal import Decimal

import pytest

from ctrader.config import load_config
from ctrader.core import shm
from ctrader.runtime.session import run_session
from ctrader.venue.signing import Signer

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]

ALL = ["sim", "feed", "strategy", "executor", "recorder"]


def _cfg(tmp_path, port, **sets):
    overrides = {"sim.port": str(port), "sim.market.dislocations_per_min": "30", **sets}
    return load_config(env={"CTRADER_DATA_DIR": str(tmp_path)}, overrides=overrides)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _executions(cfg, run_id):
    from ctrader.store.store import Store

    with Store.from_config(cfg) as store:
        tab = store.query_arrow(
            f"SELECT symbol, toString(kind) AS kind, toString(side) AS side, last_px, last_qty, fee, fee_asset, trade_id, client_order_id "
            f"FROM {cfg.store.database}.executions WHERE run_id = '{run_id}'")
    return tab.to_pylist()


def _assets(cfg, run_dir):
    doc = json.loads((run_dir / "exchange_info.json").read_text())
    return {s["symbol"]: (s["baseAsset"], s["quoteAsset"]) for s in doc["symbols"]}


def _position_changes(rows, assets) -> dict[str, Decimal]:
    """Per-asset change implied by the recorded fills and their fees (what the venue did)."""
    out: dict[str, Decimal] = {}
    for r in rows:
        if r["kind"] not in ("fill", "partial_fill") or not r["last_qty"]:
            continue
        base, quote = assets[r["symbol"]]
        qty = Decimal(repr(r["last_qty"]))
        notional = (Decimal(repr(r["last_px"])) * qty).quantize(Decimal("1e-8"), rounding="ROUND_DOWN")
        sign = 1 if r["side"] == "buy" else -1
        out[base] = out.get(base, Decimal(0)) + sign * qty
        out[quote] = out.get(quote, Decimal(0)) - sign * notional
        out[r["fee_asset"]] = out.get(r["fee_asset"], Decimal(0)) - Decimal(repr(r["fee"]))
    return out


def _no_shm_left(run_id):
    return not [n for n in shm.list_segments() if run_id in n]


def test_paper_session_trades_dislocations_and_pnl_matches_the_fills(tmp_path):
    cfg = _cfg(tmp_path, _free_port())
    summary = run_session(cfg, ALL, duration_s=240, processes=True, status_every_s=1.0,
                          stop_when=lambda st: st.get("executor", {}).get("fills", 0) >= 6)
    assert summary["failed"] == [] and set(summary["exit_codes"].values()) == {0}
    stats = summary["stats"]
    ex = stats["executor"]
    assert ex["mode"] == "paper" and ex["orders_sent"] > 0 and ex["fills"] >= 6
    assert stats["strategy"]["taken"] > 0 and stats["feed"]["parse_errors"] == 0

    # Every order carries its cause: tick-to-order is measured per order.
    assert ex["tick_to_order"]["n"] > 0 and ex["tick_to_order"]["p50_us"] > 0

    # Realised positions (what PnL is computed from) equal the recorded fills and fees.
    rows = _executions(cfg, summary["run_id"])
    fills = [r for r in rows if r["kind"] in ("fill", "partial_fill")]
    assert len(fills) == ex["fills"]
    implied = _position_changes(rows, _assets(cfg, tmp_path / "runs" / summary["run_id"]))
    for asset, change in implied.items():
        reported = Decimal(repr(ex["positions"].get(asset, 0.0)))
        assert abs(reported - change) <= Decimal("1e-8") * len(fills), (asset, reported, change)
    assert _no_shm_left(summary["run_id"])


def test_no_dislocations_no_orders(tmp_path):
    cfg = _cfg(tmp_path, _free_port(), **{"sim.market.dislocations_per_min": "0"})
    summary = run_session(cfg, ALL, duration_s=240, processes=True, status_every_s=1.0,
                          stop_when=lambda st: st.get("strategy", {}).get("events", 0) >= 5000)
    assert summary["failed"] == []
    stats = summary["stats"]
    assert stats["strategy"]["events"] >= 5000
    assert stats["strategy"]["taken"] == 0 and stats["executor"]["orders_sent"] == 0
    assert _no_shm_left(summary["run_id"])


def _sim_trades(cfg) -> set[tuple[str, int]]:
    """(symbol, trade id) of every trade the simulator made for the demo account."""
    acct = cfg.sim.accounts[0]
    signer = Signer(acct.api_key, secret=acct.api_secret)
    base = f"http://{cfg.sim.host}:{cfg.sim.port}"
    doc = json.loads(urllib.request.urlopen(f"{base}/api/v3/exchangeInfo", timeout=10).read())
    out = set()
    for sym in (s["symbol"] for s in doc["symbols"]):
        query = signer.signed_query({"symbol": sym, "limit": 1000, "timestamp": int(time.time() * 1000)})
        req = urllib.request.Request(f"{base}/api/v3/myTrades?{query}", headers={"X-MBX-APIKEY": acct.api_key})
        for t in json.loads(urllib.request.urlopen(req, timeout=10).read()):
            out.add((sym, int(t["id"])))
    return out


@pytest.mark.parametrize("victim", ["executor", "strategy"])
def test_live_component_killed_mid_run_is_restarted_and_the_venue_agrees_with_the_run(tmp_path, victim):
    """Live mode against the simulator: SIGKILL the executor (or the strategy) once the run has
    traded; the supervisor restarts it (the executor reconciles from its journal), trading goes
    on, and afterwards the simulator's trades are exactly the fills the run recorded: nothing
    lost, nothing sent twice."""
    cfg = _cfg(tmp_path, _free_port(), **{"run.mode": "live"})
    state = {"killed": None, "venue_trades": None, "fills_at_kill": 0}
    kill_file = tmp_path / "KILL"

    def stop_when(stats) -> bool:
        ex, target = stats.get("executor", {}), stats.get(victim, {})
        if state["killed"] is None:
            if ex.get("fills", 0) >= 3:
                state["killed"], state["fills_at_kill"] = target["pid"], ex["fills"]
                os.kill(target["pid"], signal.SIGKILL)
            return False
        if target.get("pid") == state["killed"]:
            return False                      # not restarted yet
        traded_since = ex.get("fills", 0) if victim == "executor" else ex.get("fills", 0) - state["fills_at_kill"]
        if traded_since < 3:
            return False
        if not kill_file.exists():
            kill_file.write_text("test: stop trading before comparing with the venue\n")
            state["killed_at"] = time.monotonic()
            return False
        if time.monotonic() - state["killed_at"] < 3:
            return False
        state["venue_trades"] = _sim_trades(cfg)
        return True

    summary = run_session(cfg, ALL, duration_s=300, processes=True, status_every_s=1.0, stop_when=stop_when)
    assert state["killed"] is not None and state["venue_trades"] is not None, summary["stats"].get("executor")
    assert summary["failed"] == [] and summary["stats"][victim]["pid"] != state["killed"]
    rows = _executions(cfg, summary["run_id"])
    recorded = {(r["symbol"], int(r["trade_id"])) for r in rows if r["kind"] in ("fill", "partial_fill")}
    assert len(recorded) >= 3 and recorded == state["venue_trades"]
    print(f"\n{victim} SIGKILLed (pid {state['killed']}), restarted; venue trades {len(recorded)} == recorded fills")
    assert _no_shm_left(summary["run_id"])
