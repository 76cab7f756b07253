"""The race's figures from simulator reports: per contender, head to head, the table, the checks."""
from __future__ import annotations

import pytest

from ctrader.benchmarks.race import suite
from ctrader.benchmarks.race.figures import (
    ContenderSummary,
    contender_round,
    head_to_head,
    path_stages,
    percentile,
)


def report(answers: list[tuple[int, str, int]], arrivals: dict[tuple[int, str], int]) -> dict:
    """A report shaped like ``race_report``: 3 dislocations, contenders ``a`` (tag a) and ``b``."""
    orders, out = [], []
    for (d, acct), at in sorted(arrivals.items()):
        orders.append({"seq": len(orders), "account": acct, "arrived_ns": at})
    seq = {(o["account"], o["arrived_ns"]): o["seq"] for o in orders}
    for d, acct, reaction in answers:
        out.append({"dislocation": d, "account": acct, "order": seq[(acct, arrivals[(d, acct)])],
                    "reaction_ns": reaction, "stamps": "kernel"})
    return {
        "dislocations": [{"id": i, "symbol": "ETHBTC", "available_profit_usdt": 10.0 * i,
                          "frames": {"a": {}, "b": {}} if i < 3 else {"a": {}}} for i in (1, 2, 3)],
        "orders": orders, "answers": out,
        "accounts": {"a": {"orders": 9, "fills": 8, "pnl_usdt": 12.5, "captured_usdt": {"1": 5.0, "2": 10.0, "3": 0.0}},
                     "b": {"orders": 3, "fills": 3, "pnl_usdt": 1.5, "captured_usdt": {"1": 2.0, "2": -1.0}}},
    }


def test_percentile_interpolates_like_numpy():
    assert percentile([], 50) is None
    assert percentile([3.0], 90) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90) == pytest.approx(4.6)


def test_contender_round_and_head_to_head():
    rep = report([(1, "a", 300_000), (2, "a", 500_000), (1, "b", 900_000)],
                 {(1, "a"): 1_000, (2, "a"): 5_000, (1, "b"): 1_600})
    a = contender_round(rep, "a")
    assert (a.seen, a.answered, a.dislocations) == (3, 2, 3) and a.reactions_us == [300.0, 500.0]
    assert a.p50 == 400.0 and (a.orders, a.fills, a.pnl_usdt) == (9, 8, 12.5)
    assert a.captured_usdt == 15.0 and a.available_usdt == 60.0
    b = contender_round(rep, "b")
    assert (b.seen, b.answered) == (2, 1)

    h = head_to_head(rep, "a", "b")
    assert h["first"] == {"a": 2, "b": 0} and h["both_answered"] == 1 and h["lead_p50_us"] == pytest.approx(0.6)
    assert h["captured_usdt"] == {"a": 15.0, "b": 1.0} and h["available_usdt"] == 60.0
    assert h["captured_share"]["a"] == pytest.approx(0.25)

    summary = ContenderSummary("a", [a, contender_round(rep, "a")])
    d = summary.as_dict()
    assert d["p50_us"] == 400.0 and d["round_p50_us"] == [400.0, 400.0] and d["answered"] == 4 and d["min_us"] == 300.0


def detail(ctrader_p50: float | None, answered: int = 4) -> list[dict]:
    c = {"floor": {"p50_us": 200.0, "p90_us": 300.0, "min_us": 150.0, "round_p50_us": [200.0], "seen": 4,
                   "answered": 4, "dislocations": 4, "orders": [4], "fills": [0], "pnl_usdt": [0.0],
                   "captured_usdt": [0.0], "available_usdt": [100.0], "kernel_stamped": 4},
         "refbot": {"p50_us": 500.0, "p90_us": 700.0, "min_us": 400.0, "round_p50_us": [500.0], "seen": 4,
                    "answered": 4, "dislocations": 4, "orders": [12], "fills": [12], "pnl_usdt": [3.0],
                    "captured_usdt": [3.0], "available_usdt": [100.0], "kernel_stamped": 4},
         "ctrader": {"p50_us": ctrader_p50, "p90_us": None, "min_us": None, "round_p50_us": [ctrader_p50],
                     "seen": 4, "answered": answered, "dislocations": 4, "orders": [30], "fills": [28],
                     "pnl_usdt": [9.0], "captured_usdt": [9.0], "available_usdt": [100.0], "kernel_stamped": 4}}
    return suite._results({"plan": {"dislocations": 4, "bps": 60.0, "duration_ms": 1000, "interval_ms": 4000,
                                    "seed": 7}, "rounds": 1, "load_start": (1.0, 1.0, 1.0),
                           "load_end": (1.0, 1.0, 1.0), "wall_s": 60.0,
                           "stamps": {"clock": "CLOCK_MONOTONIC ns", "frame_out": "kernel TX", "order_in": "kernel RX"},
                           "contenders": c, "head_to_head": None, "ctrader_path": []})


def test_table_and_gross_regressions_only():
    healthy = detail(1_200.0)
    assert suite.check_regressions(healthy) == []
    rows = {r["name"]: r for r in healthy}
    assert rows["race ctrader / reference bot p50"]["value"] == pytest.approx(2.4)
    assert rows["race ctrader - floor p50 (added)"]["value"] == pytest.approx(1_000.0)
    table = suite.render(healthy)
    assert "ctrader / reference bot, reaction p50: 2.40x" in table and "+1,000 us" in table
    assert "kernel TX" in table and "4/4" in table

    slow = suite.check_regressions(detail(200.0 * 500))
    assert any("the floor's" in p for p in slow) and any("reference bot's" in p for p in slow)
    assert suite.check_regressions(detail(None, answered=0)) == ["ctrader answered none of the 4 race dislocations"]


def test_ctrader_path_stages_join_the_journal_with_the_venue_stamps():
    rep = {"dislocations": [{"id": 1, "frames": {"ctrader": {"user_ns": 1_500, "kernel_ns": 1_000}}},
                            {"id": 2, "frames": {"ctrader": {"user_ns": 9_500, "kernel_ns": 9_000}}}],
           "orders": [{"arrived_kernel_ns": 60_000, "arrived_user_ns": 61_000},
                      {"arrived_kernel_ns": 99_000, "arrived_user_ns": 99_500}],
           "answers": [{"dislocation": 1, "account": "ctrader", "order": 0, "client_order_id": "ct1", "stamps": "kernel"},
                       {"dislocation": 2, "account": "ctrader", "order": 1, "client_order_id": "ct2", "stamps": "kernel"}]}
    journal = {"ct1": {"cause_recv_mono_ns": 11_000, "created_mono_ns": 31_000, "seen_mono_ns": 36_000,
                       "sent_mono_ns": 50_000},
               "ct2": {"cause_recv_mono_ns": 8_000, "created_mono_ns": 9_000, "seen_mono_ns": 9_500,
                       "sent_mono_ns": 9_900}}      # caused by a frame read before dislocation 2's: left out
    stages = path_stages(rep, "ctrader", journal)
    assert [v for v in stages.values()] == [[10.0], [20.0], [5.0], [14.0], [10.0]]
    assert sum(v[0] for v in stages.values()) == (60_000 - 1_000) / 1e3      # the stages add up to the reaction
    assert all(v == [] for v in path_stages(rep, "ctrader", {}).values())
