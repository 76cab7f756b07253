"""The replay engine on in-memory history from the simulator's market model: determinism,
latency, the fill side, the summary and the HTML report."""
import numpy as np
import pytest

from ctrader.core.records import MD_EVENT, Decision, ExecKind
from ctrader.market.books import BookCache, apply_all
from ctrader.replay.driver import NullStrategy, ReplayEngine, ReplayOptions
from ctrader.execution.latency import SampledLatency as LatencyModel
from ctrader.replay.report import format_summary, write_html
from ctrader.replay.runner import options_from_config, replay_chunks


def opts(order="2", feed="0", seed=1, batch=1024):
    return ReplayOptions(feed_latency=LatencyModel.parse(feed, seed=seed),
                         order_latency=LatencyModel.parse(order, seed=seed + 1), batch_events=batch)


def test_history_has_the_shape_replay_needs(md, uni):
    assert md.dtype == MD_EVENT and len(md) > 10_000
    assert np.all(np.diff(md["recv_ts_ns"]) >= 0)                 # time order
    assert set(np.unique(md["symbol_id"])) <= set(range(len(uni.symbols)))


def test_same_data_same_decisions_and_fills_whatever_the_chunking(cfg, uni, md):
    a = replay_chunks(cfg, uni, [md], options=opts())
    b = replay_chunks(cfg, uni, [md[:777], md[777:20_000], md[20_000:]], options=opts())
    # chunks shorter than what the carried partial batch still needs, and one exactly filling it
    c = replay_chunks(cfg, uni, [md[:777], md[777:800], md[800:1024], md[1024:3000], md[3000:]], options=opts())
    assert a.summary["intents"] > 0 and a.summary["fills"] > 0, "the history must produce trades"
    assert a.digests == b.digests == c.digests
    for name in ("candidates", "intents"):
        x, y = getattr(a, name), getattr(b, name)
        for f in x.dtype.names:
            if f not in ("eval_mono_ns", "created_mono_ns"):       # compute-time clocks, not decisions
                assert x[f].tobytes() == y[f].tobytes(), (name, f)
    assert a.fills.tobytes() == b.fills.tobytes()
    assert a.summary["pnl"] == b.summary["pnl"]


def test_sampled_latency_is_reproducible_by_seed(cfg, uni, md):
    a = replay_chunks(cfg, uni, [md], options=opts(order="lognormal:3:0.6", seed=5))
    b = replay_chunks(cfg, uni, [md], options=opts(order="lognormal:3:0.6", seed=5))
    c = replay_chunks(cfg, uni, [md], options=opts(order="lognormal:3:0.6", seed=6))
    assert a.digests == b.digests
    assert not np.array_equal(a.fills["order_ns"], c.fills["order_ns"][:len(a.fills)])


def test_orders_match_no_earlier_than_their_latency(cfg, uni, md):
    r = replay_chunks(cfg, uni, [md], options=opts(order="25", feed="5"))
    legs = r.fills[r.fills["leg"] < 3]            # the strategy's legs; the executor's unwinds follow
    unwinds = r.fills[r.fills["leg"] >= 3]
    assert len(legs)
    assert np.all(legs["order_ns"] == 25_000_000) and np.all(legs["feed_ns"] == 5_000_000)
    assert np.all(legs["ts_ns"] - legs["cause_ts_ns"] >= 30_000_000)
    assert np.all(legs["latency_ns"] == legs["ts_ns"] - legs["cause_ts_ns"])
    assert np.all(unwinds["order_ns"] == 25_000_000) and np.all(unwinds["feed_ns"] == 0)
    f = r.fills
    # every fill belongs to a TAKEN candidate, whose walked price is the expected price
    taken = r.candidates[r.candidates["decision"] == Decision.TAKEN]
    assert set(f["group_id"]) <= set(taken["group_id"])
    assert not np.isnan(legs["expected_px"]).any()          # an unwind has no expected price


def test_latency_changes_what_fills(cfg, uni, md):
    fast = replay_chunks(cfg, uni, [md], options=opts(order="0"))
    slow = replay_chunks(cfg, uni, [md], options=opts(order="500"))
    assert fast.digests["fills"] != slow.digests["fills"]
    assert slow.summary["latency_ms"]["tick_to_match"]["p50"] >= 500


def test_exec_events_reach_the_strategy(cfg, uni, md):
    r = replay_chunks(cfg, uni, [md], options=opts())
    kinds = set(r.execs["kind"].tolist())
    assert int(ExecKind.ACK) in kinds and int(ExecKind.FILL) in kinds
    # every group ends: each leg filled, or its IOC remainder canceled
    assert r.summary["groups"] == len(set(r.intents["group_id"].tolist()))


def test_null_strategy_keeps_the_books_like_the_feed_would(uni, md):
    eng = ReplayEngine(uni, NullStrategy(), opts())
    res = eng.run([md[:5000], md[5000:]])
    ref = BookCache(len(uni.symbols))
    apply_all(ref.books, md, len(md))
    assert res.summary["events"] == len(md)
    assert eng.cache.books.tobytes() == ref.books.tobytes()
    assert res.summary["candidates"] == 0 and res.summary["fills"] == 0


def test_pnl_is_sampled_over_market_time(cfg, uni, md):
    o = options_from_config(cfg)
    o.pnl_interval_ns = 5_000_000_000
    r = replay_chunks(cfg, uni, [md], options=o)
    ts = r.pnl["ts_ns"]
    assert 6 <= len(ts) <= 12 and np.all(np.diff(ts) > 0)
    assert len(r.inventory) == len(ts)
    assert r.pnl["pnl"][-1] == pytest.approx(r.summary["pnl"])


def test_report_is_self_contained_html_with_every_plot(cfg, uni, md, tmp_path):
    r = replay_chunks(cfg, uni, [md], options=opts())
    r.summary["run_id"] = "test-run"
    out = write_html(r, tmp_path / "report.html", title="replay test-run")
    text = out.read_text()
    assert text.startswith("<!doctype html>")
    for title in ("PnL and inventory", "Edge distribution", "Fill slippage", "Latency percentiles",
                  "Per-triangle contribution"):
        assert title in text
    assert "<script src=" not in text                     # plotly.js inlined: no network needed
    assert text.count("Plotly.newPlot") == 5
    summary = format_summary(r.summary)
    assert "test-run" in summary and "PnL" in summary and "top triangles" in summary
