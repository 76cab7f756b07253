"""Executor benchmarks, each beside a baseline measured in the same run.

- per-order pipeline in paper mode (decode intent, risk gate, paper match walking depth, exec
  record out) beside the baseline of decoding the intent alone (``Order.from_intent``): the
  ratio says how much the gate and the fill model add to the least Python work an order needs;
- the risk gate alone and the paper fill model alone, beside the same baseline;
- the executor path a triangle's legs take on the real clock (intent batch seen -> each leg
  handed to the venue: what tick-to-order pays in the executor), p50 and p99, beside the same
  baseline;
- the write-ahead journal: one intent line with fdatasync beside the same line without it (the
  price of durability on this disk).

    results = run(quick=True)      # list of result dicts (see ctrader.benchmarks)
"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from ctrader.core.records import Side, TimeInForce
from ctrader.execution.bookview import BookView
from ctrader.execution.engine import Executor
from ctrader.execution.journal import Journal
from ctrader.execution.orders import Order
from ctrader.execution.paper import PaperFillModel, PaperVenue
from ctrader.execution.risk import RiskLimits
from ctrader.execution.testing import depth_record, intent_record
from ctrader.market.books import BookCache
from ctrader.sim.testing import sim_universe

LIMITS = RiskLimits(max_order_notional=1e12, max_group_notional=1e12, max_position=1e12, max_open_orders=10**6,
                    orders_per_10s=10**9, orders_per_day=10**12, weight_per_minute=10**12, daily_loss_limit=1e12)


def _setup():
    uni = sim_universe()
    cache = BookCache(len(uni.symbols))
    venue = PaperVenue(PaperFillModel(BookView(cache.books), uni))
    now = [time.monotonic_ns()]
    ex = Executor(uni, venue, None, lambda rec: None, LIMITS, clock=lambda: now[0], books=cache)
    levels = [(60001.0 + i, 0.002) for i in range(10)]
    ex.on_md(depth_record(uni.symbol_id("BTCUSDT"), [(60000.0, 1.0)], levels, now[0]), 1)
    ex.warm_up()
    return uni, ex, now


def _per_op_ns(fn, n: int) -> float:
    t0 = time.perf_counter_ns()
    for i in range(n):
        fn(i)
    return (time.perf_counter_ns() - t0) / n


def bench_pipeline(n: int) -> dict:
    uni, ex, now = _setup()
    info = uni.by_name["BTCUSDT"]
    # an IOC that walks three levels of the ask side (0.002 each)
    intents = [intent_record(uni, "BTCUSDT", Side.BUY, 60003.0, 0.006, group_id=g + 1, tif=TimeInForce.IOC)
               for g in range(n)]

    def decode(i):
        Order.from_intent(intents[i][0], "BTCUSDT", info.tick_units, info.step_units)

    def pipeline(i):
        ex.on_intents(intents[i], 1)
        if i % 64 == 63:        # fresh liquidity now and then, as market data would bring
            now[0] += 1
            ex.on_md(depth_record(info.id, [(60000.0, 1.0)], [(60001.0 + k, 0.002) for k in range(10)], now[0]), 1)

    gate_orders = [Order.from_intent(intents[i][0], "BTCUSDT", info.tick_units, info.step_units) for i in range(n)]

    def gate(i):
        ex.gate.check(gate_orders[i], now[0])

    model = ex.venue.model

    def fill(i):
        if i % 3 == 0:
            model.on_book(info.id, now[0])       # give the liquidity back
        model.submit(gate_orders[i], now[0])

    baseline = _per_op_ns(decode, n)
    return {"decode": baseline, "pipeline": _per_op_ns(pipeline, n), "gate": _per_op_ns(gate, n),
            "paper_fill": _per_op_ns(fill, n)}


def bench_batch_gate(n: int) -> dict:
    """A triangle's three legs through the gate: one compiled ``check_batch`` call against the
    reference ``check`` per leg (what the executor did before), same books, same verdicts."""
    uni, ex, now = _setup()
    for sym, bid, ask in (("ETHBTC", 0.05, 0.05001), ("ETHUSDT", 3000.0, 3000.5)):
        ex.on_md(depth_record(uni.symbol_id(sym), [(bid, 10.0)], [(ask, 10.0)], now[0]), 1)
    legs = np.concatenate([intent_record(uni, "BTCUSDT", Side.BUY, 60001.0, 0.01, leg=0, n_legs=3),
                           intent_record(uni, "ETHBTC", Side.BUY, 0.05001, 0.2, leg=1, n_legs=3),
                           intent_record(uni, "ETHUSDT", Side.SELL, 3000.0, 0.2, leg=2, n_legs=3)])
    infos = [uni.symbols[int(rec["symbol_id"])] for rec in legs]
    orders = [Order.from_intent(rec, info.name, info.tick_units, info.step_units) for rec, info in zip(legs, infos)]
    skip = [False] * 3
    gate = ex.gate
    if gate.check_batch(legs, 3, skip, now[0], record=False) != [int(gate.check(o, now[0])) for o in orders]:
        raise AssertionError("the compiled gate and the reference disagree on the benchmark's triangle")

    def compiled(i):
        gate.check_batch(legs, 3, skip, now[0], record=False)

    def reference(i):
        for o in orders:
            gate.dry_check(o, now[0])

    return {"compiled": _per_op_ns(compiled, n), "reference": _per_op_ns(reference, n)}


def bench_triangle_path(n: int) -> dict:
    """``n`` triangles of three IOC legs that fill at once, each batch through ``on_intents``
    on the real clock: the executor's own ``executor_path`` stage (seen -> handed to the venue,
    per leg), as a session's stats report it."""
    uni = sim_universe()
    cache = BookCache(len(uni.symbols))
    ex = Executor(uni, PaperVenue(PaperFillModel(BookView(cache.books), uni)), None, lambda rec: None, LIMITS,
                  books=cache)
    books = (("BTCUSDT", 60000.0, 60001.0), ("ETHBTC", 0.05, 0.05001), ("ETHUSDT", 3000.0, 3000.5))

    def refresh() -> None:
        for sym, bid, ask in books:
            ex.on_md(depth_record(uni.symbol_id(sym), [(bid, 100.0)], [(ask, 100.0)], time.monotonic_ns()), 1)

    refresh()
    ex.warm_up()
    batches = [np.concatenate([intent_record(uni, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=g + 1, leg=0, n_legs=3),
                               intent_record(uni, "ETHBTC", Side.BUY, 0.05001, 0.2, group_id=g + 1, leg=1, n_legs=3),
                               intent_record(uni, "ETHUSDT", Side.SELL, 3000.0, 0.2, group_id=g + 1, leg=2,
                                             n_legs=3)])
               for g in range(n)]
    for g, legs in enumerate(batches):
        if g % 64 == 63:
            refresh()
        legs["cause_recv_mono_ns"] = legs["created_mono_ns"] = time.monotonic_ns()
        ex.on_intents(legs, 3)
    return ex.accounting.stages["executor_path"].percentiles()


def bench_journal(n: int) -> dict:
    uni = sim_universe()
    info = uni.by_name["BTCUSDT"]
    order = Order.from_intent(intent_record(uni, "BTCUSDT", Side.BUY, 60000.0, 0.01)[0], "BTCUSDT",
                              info.tick_units, info.step_units)
    out = {}
    with tempfile.TemporaryDirectory(dir=os.path.expanduser("~")) as tmp:
        for sync in (False, True):
            journal = Journal(os.path.join(tmp, f"j{sync}.jsonl"), sync=sync)
            out["fsync" if sync else "nosync"] = _per_op_ns(lambda i, j=journal: j.intent(order),
                                                            n if not sync else n // 10)
            journal.close()
    return out


def run(quick: bool = False) -> list[dict]:
    n = 20_000 if quick else 100_000
    p = bench_pipeline(n)
    j = bench_journal(2_000 if quick else 10_000)
    base = p["decode"]
    results = []
    for key, name in (("pipeline", "executor order pipeline (paper, no journal)"),
                      ("gate", "risk gate check"), ("paper_fill", "paper fill, 3 levels walked")):
        results.append({"name": name, "value": p[key] / 1e3, "unit": "us/order",
                        "baseline_name": "decode intent (Order.from_intent)", "baseline_value": base / 1e3,
                        "ratio": p[key] / base, "note": f"{n} orders, one process"})
    path = bench_triangle_path(n // 4)
    for q in ("p50", "p99"):
        results.append({"name": f"executor path, a triangle's legs, {q}", "value": path[f"{q}_us"], "unit": "us",
                        "baseline_name": "decode intent (Order.from_intent)", "baseline_value": base / 1e3,
                        "ratio": path[f"{q}_us"] / (base / 1e3),
                        "note": f"{path['n']} legs: intent batch seen -> each leg handed to the paper venue, "
                                f"real clock"})
    g = bench_batch_gate(n // 4)
    results.append({"name": "risk gate, a triangle's 3 legs in one compiled call", "value": g["compiled"] / 1e3,
                    "unit": "us/batch", "baseline_name": "reference gate, 3 x RiskGate.check (Python)",
                    "baseline_value": g["reference"] / 1e3, "ratio": g["compiled"] / g["reference"],
                    "note": "same books and verdicts; includes the per-batch Python set-up"})
    results.append({"name": "journal intent + fdatasync", "value": j["fsync"] / 1e3, "unit": "us/order",
                    "baseline_name": "journal intent, no sync", "baseline_value": j["nosync"] / 1e3,
                    "ratio": j["fsync"] / j["nosync"], "note": "in the home directory's file system"})
    return results


def check_regressions(results: list[dict]) -> list[str]:
    """Gross regressions of same-run ratios only (absolute times differ between machines)."""
    problems = []
    for r in results:
        if r["name"].startswith("executor order pipeline") and r["ratio"] > 100:
            problems.append(f"{r['name']}: {r['ratio']:.0f}x decoding the intent (limit 100x)")
        if r["name"].startswith("risk gate, a triangle") and r["ratio"] > 1.0:
            problems.append(f"{r['name']}: slower than the Python reference ({r['ratio']:.2f}x)")
        if r["name"] == "risk gate check" and r["ratio"] > 50:
            problems.append(f"risk gate: {r['ratio']:.0f}x decoding the intent (limit 50x)")
    return problems


if __name__ == "__main__":  # pragma: no cover
    for row in run(quick=True):
        print(row)
