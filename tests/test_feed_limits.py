"""Request-weight budget for snapshots, SUBSCRIBE pacing and stream sharding (no network)."""
from __future__ import annotations

import pytest

from ctrader.feed.connection import Pacer
from ctrader.feed.shards import plan_shards
from ctrader.feed.weight import WeightBudget, depth_weight


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_depth_weights_follow_the_documented_table():
    assert [depth_weight(n) for n in (5, 100, 101, 500, 1000, 1001, 5000)] == [5, 5, 25, 25, 50, 250, 250]


def test_token_bucket_refills_at_the_budgeted_rate():
    clock = Clock()
    budget = WeightBudget(limit_per_min=6000, fraction=0.5, clock=clock)   # 3000/min = 50/s
    spent = 0
    while budget.try_spend(50):
        spent += 50
    assert spent == 300                       # a cold start may burst a tenth of the minute's budget
    assert budget.delay_for(50) == pytest.approx(1.0)
    clock.t += 1.0
    assert budget.try_spend(50) and not budget.try_spend(50)
    clock.t += 60.0                           # never more than the capacity, however long it idled
    assert sum(1 for _ in range(100) if budget.try_spend(50)) == 6


def test_retry_after_and_the_venue_count_pause_spending():
    clock = Clock()
    budget = WeightBudget(limit_per_min=6000, fraction=0.5, clock=clock)
    budget.back_off(7)
    assert budget.delay_for(5) == pytest.approx(7.0)
    clock.t += 7.0
    assert budget.try_spend(5)
    budget.observe_headers({"X-MBX-USED-WEIGHT-1M": "2999"})
    assert budget.delay_for(5) == 0.0
    budget.observe_headers({"X-MBX-USED-WEIGHT-1M": "3000"})     # other users of the IP spent it
    assert 0.5 <= budget.delay_for(5) <= 60.5


def test_pacer_allows_n_messages_in_any_second():
    clock = Clock()
    pacer = Pacer(4, clock=clock)
    for _ in range(4):
        assert pacer.delay() == 0.0
        pacer.note()
    assert pacer.delay() == pytest.approx(1.001)
    clock.t += 0.5
    assert pacer.delay() == pytest.approx(0.501)
    clock.t += 0.5
    assert pacer.delay() == 0.0 and pacer.in_last_second() == 0


def test_shards_keep_a_symbols_streams_together_within_the_limit():
    symbols = [f"S{i}USDT" for i in range(1000)]
    plans = plan_shards(symbols, ["bookTicker", "depth@100ms", "trade"], max_streams=1024)
    assert [len(p.streams) for p in plans] == [1023, 1023, 954]
    assert sum(len(p.symbols) for p in plans) == 1000
    assert plans[0].streams[:3] == ["s0usdt@bookTicker", "s0usdt@depth@100ms", "s0usdt@trade"]
    with pytest.raises(ValueError):
        plan_shards(symbols, ["bookTicker", "trade"], max_streams=1)


def test_the_venue_limit_comes_from_exchange_info_when_stated():
    from types import SimpleNamespace

    from ctrader.feed.engine import venue_weight_limit

    doc = {"rateLimits": [{"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 9},
                          {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}]}
    assert venue_weight_limit(SimpleNamespace(exchange_info=doc), 6000) == 1200
    assert venue_weight_limit(SimpleNamespace(exchange_info=doc), 600) == 600
    assert venue_weight_limit(SimpleNamespace(exchange_info={}), 6000) == 6000
    small = WeightBudget(limit_per_min=40, fraction=0.5, clock=Clock())    # 20 a minute, all of it at once
    assert small.capacity == 20 and small.try_spend(20) and not small.try_spend(5)
