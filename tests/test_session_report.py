"""The report of a recorded session, from a store holding a session written the way the recorder
writes one (the same Arrow conversions): exact positions, PnL at the recorded mids, groups,
latency, refusals; the CLI's report, --json and runs list.

The session: one complete triangle USDT -> BTC -> ETH -> USDT and one broken group (its first
leg filled, the second expired), a refused and a rejected order, books for the three symbols.
"""
from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.core.records import (
    BOOK_DEPTH,
    CANDIDATE,
    EXEC_EVENT,
    MD_EVENT,
    Decision,
    ExecKind,
    MdKind,
    RefusalReason,
    Side,
)
from ctrader.replay.session_report import (
    SessionNotFound,
    format_summary,
    list_sessions,
    load_session,
    split_symbol,
    to_json,
    valuation_routes,
    write_html,
)
from ctrader.store.columns import Names, candidates_to_arrow, executions_to_arrow, md_to_arrow
from ctrader.store.store import Store

RUN = "20260101-120000-4242"
SYMBOLS = ["BTCUSDT", "ETHBTC", "ETHUSDT"]
ASSETS = ["BTC", "ETH", "USDT"]
T0 = 1_767_268_800_000_000_000          # 2026-01-01 12:00:00 UTC
S = 1_000_000_000
MONO0 = 5_000_000_000


def _order(group, leg, sym, side, coid, t, latency_us, cause):
    """The ack of an order sent ``latency_us`` after its cause event."""
    return {"group_id": group, "leg": leg, "symbol_id": SYMBOLS.index(sym), "side": side, "kind": ExecKind.ACK,
            "client_order_id": coid, "recv_ts_ns": t, "exch_ts_ns": t, "fee_asset_id": -1,
            "cause_recv_mono_ns": cause, "sent_mono_ns": cause + latency_us * 1000}


def _fill(group, leg, sym, side, coid, t, px, qty, fee, fee_asset, cause, latency_us):
    return {"group_id": group, "leg": leg, "symbol_id": SYMBOLS.index(sym), "side": side, "kind": ExecKind.FILL,
            "client_order_id": coid, "recv_ts_ns": t, "exch_ts_ns": t, "last_px": px, "last_qty": qty,
            "cum_qty": qty, "cum_quote": px * qty, "fee": fee, "fee_asset_id": ASSETS.index(fee_asset),
            "trade_id": leg + 100 * group, "cause_recv_mono_ns": cause, "sent_mono_ns": cause + latency_us * 1000}


def _book(sym, t, bid, ask, seq) -> dict:
    top = np.zeros(BOOK_DEPTH)
    return {"symbol_id": SYMBOLS.index(sym), "kind": MdKind.BOOK_TICKER, "n_bids": 1, "n_asks": 1, "seq": seq,
            "recv_ts_ns": t, "exch_ts_ns": t, "bid_px": np.r_[bid, top[1:]], "ask_px": np.r_[ask, top[1:]],
            "bid_qty": np.r_[1.0, top[1:]], "ask_qty": np.r_[1.0, top[1:]]}


def _candidate(group, decision, edge_bps, expected, legs, t):
    c = {"group_id": group, "decision": decision, "edge": edge_bps / 1e4, "expected_pnl": expected,
         "event_recv_ts_ns": t, "triangle_id": 7 if group else 9,
         "leg_symbol_id": [SYMBOLS.index(s) for s, _ in legs], "leg_side": [d for _, d in legs]}
    return c


def _records(dtype, rows) -> np.ndarray:
    out = np.zeros(len(rows), dtype)
    for i, r in enumerate(rows):
        for k, v in r.items():
            out[i][k] = v
    return out


TRIANGLE = [("BTCUSDT", Side.BUY), ("ETHBTC", Side.BUY), ("ETHUSDT", Side.SELL)]


@pytest.fixture
def store(tmp_path):
    st = Store.open(f"chdb://{tmp_path}/store")
    names, assets = Names(SYMBOLS), Names(ASSETS)
    st.write_run(RUN, started_ns=T0, ended_ns=T0 + 60 * S, symbols=SYMBOLS, assets=ASSETS, mode="paper",
                 venue="sim", counters={"rows_md_book": 6})
    g1, g2 = 0x1A0001, 0x1A0002
    execs = _records(EXEC_EVENT, [
        # group 1: complete
        _order(g1, 0, "BTCUSDT", Side.BUY, "c1-0", T0 + 10 * S, 300, MONO0),
        _fill(g1, 0, "BTCUSDT", Side.BUY, "c1-0", T0 + 10 * S + 1000, 50000.0, 0.01, 0.00001, "BTC", MONO0, 300),
        _order(g1, 1, "ETHBTC", Side.BUY, "c1-1", T0 + 10 * S, 320, MONO0),
        _fill(g1, 1, "ETHBTC", Side.BUY, "c1-1", T0 + 10 * S + 2000, 0.05, 0.2, 0.0002, "ETH", MONO0, 320),
        _order(g1, 2, "ETHUSDT", Side.SELL, "c1-2", T0 + 10 * S, 340, MONO0),
        _fill(g1, 2, "ETHUSDT", Side.SELL, "c1-2", T0 + 10 * S + 3000, 2510.0, 0.1998, 0.501498, "USDT", MONO0,
              340),
        # group 2: leg 0 filled, leg 1 expired, leg 2 refused by the gate
        _order(g2, 0, "BTCUSDT", Side.BUY, "c2-0", T0 + 30 * S, 5000, MONO0 + 20 * S),
        _fill(g2, 0, "BTCUSDT", Side.BUY, "c2-0", T0 + 30 * S + 1000, 50010.0, 0.001, 0.000001, "BTC",
              MONO0 + 20 * S, 5000),
        _order(g2, 1, "ETHBTC", Side.BUY, "c2-1", T0 + 30 * S, 5200, MONO0 + 20 * S),
        {**_order(g2, 1, "ETHBTC", Side.BUY, "c2-1", T0 + 30 * S + 2000, 5200, MONO0 + 20 * S),
         "kind": ExecKind.CANCELED},
        {"group_id": g2, "leg": 2, "symbol_id": 2, "side": Side.SELL, "kind": ExecKind.REFUSED,
         "reject_code": RefusalReason.RATE_BUDGET, "client_order_id": "c2-2", "recv_ts_ns": T0 + 30 * S,
         "fee_asset_id": -1},
        {"group_id": 0x1A0003, "leg": 0, "symbol_id": 0, "side": Side.BUY, "kind": ExecKind.REJECTED,
         "reject_code": -2010, "client_order_id": "c3-0", "recv_ts_ns": T0 + 40 * S, "fee_asset_id": -1,
         "cause_recv_mono_ns": MONO0 + 30 * S, "sent_mono_ns": MONO0 + 30 * S + 400_000},
    ])
    st.insert("executions", executions_to_arrow(execs, names, assets, RUN))
    books = _records(MD_EVENT, [
        _book("BTCUSDT", T0 + S, 49_000.0, 49_002.0, 1), _book("ETHUSDT", T0 + S, 2_400.0, 2_402.0, 2),
        _book("ETHBTC", T0 + S, 0.049, 0.0491, 3),
        _book("BTCUSDT", T0 + 50 * S, 49_999.0, 50_001.0, 4), _book("ETHUSDT", T0 + 50 * S, 2_499.0, 2_501.0, 5),
        _book("ETHBTC", T0 + 50 * S, 0.0499, 0.0501, 6),
    ])
    book_tab, _ = md_to_arrow(books, names, RUN)
    st.insert("md_book", book_tab)
    cands = _records(CANDIDATE, [
        _candidate(g1, Decision.TAKEN, 12.0, 1.2, TRIANGLE, T0 + 10 * S),
        _candidate(g2, Decision.TAKEN, 8.0, 0.4, TRIANGLE, T0 + 30 * S),
        _candidate(0, Decision.SKIP_EDGE, -3.0, -0.1, TRIANGLE, T0 + 31 * S),
    ])
    st.insert("candidates", candidates_to_arrow(cands, names, RUN))
    yield st
    st.close()


def test_symbols_split_and_value_through_a_bridge():
    assets = ["BTC", "FDUSD", "USDT", "SOL", "DUSD", "BTCF"]
    assert split_symbol("BTCFDUSD", assets) == ("BTC", "FDUSD")      # the longest quote wins
    assert split_symbol("SOLBTC", assets) == ("SOL", "BTC")
    assert split_symbol("XYZ", assets) is None
    pairs = {("BTC", "USDT"): "BTCUSDT", ("SOL", "BTC"): "SOLBTC", ("USDT", "TRY"): "USDTTRY"}
    routes = valuation_routes(pairs, {"BTC", "SOL", "USDT", "TRY", "DOGE"}, "USDT")
    assert routes["BTC"] == [("BTCUSDT", False)] and routes["USDT"] == []
    assert routes["TRY"] == [("USDTTRY", True)]
    assert routes["SOL"] == [("SOLBTC", False), ("BTCUSDT", False)]
    assert "DOGE" not in routes


def test_positions_are_exact_and_pnl_values_them_at_the_last_recorded_mids(store):
    rep = load_session(store, RUN, "USDT")
    s = rep.summary
    # complete group: BTC +0.01 -0.00001 fee -0.01; ETH +0.2 -0.0002 fee -0.1998; USDT -500 +501.498 -0.501498
    # broken group:   BTC +0.001 -0.000001 fee;    USDT -50.01
    want = {"BTC": Decimal("-0.00001") + Decimal("0.001") - Decimal("0.000001"),
            "USDT": Decimal(-500) + Decimal("501.498") - Decimal("0.501498") - Decimal("50.01")}
    assert {a: Decimal(v) for a, v in s["positions"].items()} == want
    assert s["fees"] == {"BTC": "0.00001100", "ETH": "0.00020000", "USDT": "0.50149800"}
    pnl = float(want["USDT"]) + float(want["BTC"]) * 50_000.0
    assert s["pnl"] == pytest.approx(pnl, abs=1e-9)
    assert s["pnl_by_asset"]["BTC"] == pytest.approx(float(want["BTC"]) * 50_000.0)
    # counts
    assert s["fills"] == 4 and s["orders_sent"] == 6 and s["orders_acked"] == 5 and s["cancels"] == 1
    assert s["refusals"] == {"RATE_BUDGET": 1} and s["rejects"] == {"-2010": 1}
    assert s["groups"] == 2 and s["groups_complete"] == 1 and s["groups_broken"] == 1
    assert s["decisions"] == {"taken": 2, "skip_edge": 1} and s["candidates"] == 3
    assert s["md_rows"] == {"md_book": 6, "md_trade": 0}
    assert s["tick_to_order_us"]["n"] == 6 and s["tick_to_order_us"]["p50"] == pytest.approx(370.0)
    assert s["tick_to_order_us"]["max"] == pytest.approx(5200.0)
    assert s["duration_s"] == 60.0 and s["ended"] is not None


def test_groups_triangles_curve_and_edges(store):
    rep = load_session(store, RUN, "USDT")
    g1, g2 = rep.groups
    assert g1["complete"] and g1["legs_filled"] == 3 and g1["expected_pnl"] == 1.2
    assert g1["triangle"] == "USDT->BTC->ETH->USDT (BTCUSDT:BUY, ETHBTC:BUY, ETHUSDT:SELL)"
    assert g1["pnl"] == pytest.approx(0.996502 - 0.00001 * 50_000.0)
    assert not g2["complete"] and g2["legs_filled"] == 1 and g2["tick_to_order_us"] == 5000.0
    assert rep.summary["triangles"][0]["groups"] == 2
    # the curve: flat before the first fill, the headline PnL at the end
    assert rep.curve_pnl[0] == 0.0 and rep.curve_pnl[-1] == pytest.approx(rep.summary["pnl"])
    assert set(rep.curve_values) == {"BTC", "ETH", "USDT"}
    assert sum(rep.edge_hist["taken"]) == 2 and sum(rep.edge_hist["skipped"]) == 1


def test_report_outputs(store, tmp_path):
    rep = load_session(store, RUN, "USDT")
    text = format_summary(rep.summary)
    assert "RATE_BUDGET 1" in text and "1 complete, 1 broken" in text and "USDT->BTC->ETH->USDT" in text
    page = write_html(rep, tmp_path / "r.html").read_text()
    assert "<script src=" not in page and "PnL and positions" in page
    assert page.count("<tr>") >= 4 + 2 + 1                   # fills and groups tables
    doc = to_json(rep)
    assert [f["client_order_id"] for f in doc["fill_rows"]] == ["c1-0", "c1-1", "c1-2", "c2-0"]
    assert doc["fill_rows"][2]["quote"] == "501.49800000" and doc["fill_rows"][2]["fee"] == "0.50149800"


def test_cross_check_with_the_executors_figures(store):
    ok = {"positions": {"BTC": 0.000989, "USDT": -49.013498}, "pnl": 0.44, "fills": 4, "orders_sent": 6}
    assert load_session(store, RUN, "USDT", executor_stats=ok).summary["executor"]["positions_match"]
    off = dict(ok, positions={"BTC": 0.000989, "USDT": -49.0})
    ex = load_session(store, RUN, "USDT", executor_stats=off).summary["executor"]
    assert not ex["positions_match"] and ex["positions_differ"] == ["USDT"]


def test_unknown_and_replay_runs_are_refused(store):
    with pytest.raises(SessionNotFound, match="no session nosuch"):
        load_session(store, "nosuch")
    store.write_run("re2026", started_ns=T0, ended_ns=T0 + S, mode="replay", venue="replay")
    with pytest.raises(SessionNotFound, match="replay run"):
        load_session(store, "re2026")
    with pytest.raises(SessionNotFound, match="not a run id"):
        load_session(store, "x'; DROP TABLE runs")


def test_list_sessions(store):
    store.write_run("re2026", started_ns=T0, ended_ns=T0 + S, mode="replay", venue="replay")
    store.write_run("20260102-000000-1", started_ns=T0 + 86_400 * S, symbols=SYMBOLS, mode="live", venue="binance")
    listed = list_sessions(store)
    assert [r["run_id"] for r in listed] == ["20260102-000000-1", RUN]          # newest first, no replays
    assert listed[1]["orders"] == 6 and listed[1]["fills"] == 4 and listed[1]["md_rows"] == 6
    assert listed[0]["ended"] is None and listed[0]["duration_s"] is None and listed[0]["fills"] == 0


def test_cli_report_and_runs_list(store, tmp_path, monkeypatch):
    data = store.url.removeprefix("chdb://").removesuffix("/store")
    store.close()                               # the CLI opens the embedded store itself
    argv = ["--set", f"run.data_dir={data}"]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, argv + ["report", RUN])
    assert res.exit_code == 0, res.output
    assert (tmp_path / f"report-{RUN}.html").stat().st_size > 100_000 and "PnL" in res.output
    res = runner.invoke(app, argv + ["report", RUN, "--json", "--valuation-asset", "BTC"])
    doc = json.loads(res.stdout)
    assert doc["valuation_asset"] == "BTC" and len(doc["fill_rows"]) == 4
    res = runner.invoke(app, argv + ["report", "nosuch"])
    assert res.exit_code == 1 and "no session nosuch" in res.output
    res = runner.invoke(app, argv + ["runs", "list"])
    assert res.exit_code == 0 and RUN in res.output and "session" in res.output
    listed = json.loads(runner.invoke(app, argv + ["runs", "list", "--kind", "session", "--json"]).stdout)
    assert [r["run_id"] for r in listed] == [RUN]
    assert runner.invoke(app, argv + ["runs", "list", "--kind", "bogus"]).exit_code != 0
