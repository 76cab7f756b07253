"""Race contenders against the simulator: the floor and the reference bot answer dislocations with
valid signed orders; ccxt.pro's Binance client works against the simulator unchanged."""
from __future__ import annotations

import asyncio

import pytest

from ctrader.benchmarks.race.ccxt_bot import exchange
from ctrader.benchmarks.race.figures import contender_round
from ctrader.benchmarks.race.harness import RacePlan, ScriptContender, run_round

pytestmark = pytest.mark.timeout(180)


def test_floor_and_reference_bot_answer_dislocations(tmp_path):
    plan = RacePlan(dislocations=3, interval_ms=2000, duration_ms=800, lead_ms=1500)
    floor = ScriptContender("floor", "floor", ("--threshold-bps", "30"))
    refbot = ScriptContender("refbot", "refbot")
    result = run_round([floor, refbot], plan, tmp_path)      # both at once, each on its own port and account
    report = result.report
    assert len(report["dislocations"]) == 3 and report["pending"] == 0

    f = contender_round(report, "floor")
    assert f.seen == 3 and f.answered == 3 and all(r > 0 for r in f.reactions_us)
    floor_orders = [o for o in report["orders"] if o["account"] == "floor"]
    assert floor_orders and all(o["status"] == "EXPIRED" and o["tag"] == "floor" for o in floor_orders)
    assert f.fills == 0 and f.pnl_usdt == 0.0
    assert result.summaries["floor"]["exit_code"] == 0 and result.summaries["floor"]["answers_error"] == 0

    r = contender_round(report, "refbot")
    assert r.seen == 3 and r.answered >= 1 and r.fills > 0
    bot_orders = [o for o in report["orders"] if o["account"] == "refbot"]
    assert len(bot_orders) % 3 == 0 and all(o["status"] != "REJECTED" and o["tag"] == "refbot" for o in bot_orders)
    assert result.summaries["refbot"]["answers_error"] == 0
    assert result.summaries["refbot"]["orders_sent"] == len(bot_orders)


def test_ccxt_pro_watches_bids_asks_and_places_orders_over_the_ws_api(sim_server, sim_account):
    async def scenario():
        ex = exchange(sim_server.rest_url, sim_server.ws_url, sim_account.api_key, sim_account.api_secret)
        try:
            await ex.load_markets()
            tickers = await asyncio.wait_for(ex.watch_bids_asks(["BTC/USDT"]), 20)
            t = tickers["BTC/USDT"]
            assert 0 < t["bid"] < t["ask"] and t["info"]["s"] == "BTCUSDT"
            far = await asyncio.wait_for(ex.create_order_ws("BTC/USDT", "limit", "buy", 0.001,
                                                            round(t["bid"] * 0.98, 2), {"timeInForce": "IOC"}), 20)
            assert far["status"] == "expired" and far["filled"] == 0
            taken = await asyncio.wait_for(ex.create_order_ws("ETH/USDT", "market", "buy", 0.01), 20)
            assert taken["status"] == "closed" and taken["filled"] == pytest.approx(0.01)
        finally:
            await ex.close()
    asyncio.run(asyncio.wait_for(scenario(), 60))
