"""What `strategies rank` measures beside PnL (``ctrader.replay.rank_metrics``)."""
import numpy as np
import pytest

from ctrader.core.records import ORDER_INTENT, IntentAction, OrderType
from ctrader.replay.rank_metrics import METRICS, max_drawdown, ranks_by_window, window_metrics
from ctrader.replay.summary import FILL, resting_orders


def test_drawdown_is_the_largest_fall_from_a_running_peak_starting_flat():
    assert max_drawdown(np.array([1.0, 3.0, 2.0, 5.0, 1.5, 4.0])) == pytest.approx(3.5)
    assert max_drawdown(np.array([-2.0, -1.0])) == pytest.approx(2.0)      # from the flat start
    assert max_drawdown(np.array([1.0, 2.0])) == 0.0
    assert max_drawdown(np.zeros(0)) == 0.0


def test_ranks_by_window_put_a_failed_window_last_and_keep_ties_in_order():
    ranks = ranks_by_window({"a": [1.0, None, 2.0], "b": [3.0, 0.0, 2.0], "c": [float("nan"), 1.0, -1.0]})
    assert ranks == {"a": [2, 3, 1], "b": [1, 2, 2], "c": [3, 1, 3]}


def test_window_metrics_from_a_replay_summary_and_its_series():
    pnl = np.array([(1, 2.0), (2, -1.0), (3, 4.0)], dtype=[("ts_ns", np.int64), ("pnl", np.float64)])
    inventory = [{"USDT": -50.0, "BTC": 30.0, "ETH": -20.0}, {"USDT": 10.0, "BTC": -5.0}]
    fills = np.zeros(4, FILL)
    fills["is_maker"] = [1, 0, 0, 0]
    summary = {"pnl": 4.0, "valuation_asset": "USDT", "groups_traded": 4, "groups_won": 3, "fills": 4, "intents": 6,
               "resting_orders": {"placed": 4, "filled": 1}}
    m = window_metrics(summary, pnl, inventory, fills)
    assert set(m) == set(METRICS)
    assert m == {"pnl": 4.0, "max_drawdown": 3.0, "pnl_per_drawdown": pytest.approx(4 / 3), "inventory_max": 50.0,
                 "hit_rate": 0.75, "fills": 4, "orders": 6, "maker_fill_share": 0.25, "maker_fill_rate": 0.25}
    empty = window_metrics({"pnl": 0.0}, pnl[:0], [], np.zeros(0, FILL))
    assert empty["pnl_per_drawdown"] is None and empty["hit_rate"] is None and empty["maker_fill_share"] is None
    assert empty["maker_fill_rate"] is None


def test_resting_orders_count_each_placed_order_once_and_maker_fills_only():
    intents = np.zeros(6, ORDER_INTENT)
    intents["group_id"] = [1, 1, 2, 3, 3, 4]
    intents["order_type"] = [OrderType.LIMIT_MAKER, OrderType.LIMIT_MAKER, OrderType.LIMIT_MAKER, OrderType.LIMIT_MAKER,
                             OrderType.LIMIT, OrderType.LIMIT]
    intents["action"] = [IntentAction.NEW, IntentAction.REPLACE, IntentAction.NEW, IntentAction.NEW, IntentAction.NEW,
                         IntentAction.NEW]
    fills = np.zeros(4, FILL)
    fills["group_id"] = [1, 1, 3, 4]
    fills["is_maker"] = [1, 1, 0, 1]       # group 1 rested and filled twice; 3 only its hedge; 4 no resting order
    assert resting_orders(intents, fills) == {"placed": 3, "filled": 1}
    assert resting_orders(intents[:0], fills) == {"placed": 0, "filled": 0}
