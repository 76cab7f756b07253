"""A paper session logs where each order met the market (``execution.match_points``: the md
record its executor had applied last, and when); a replay of it matches each order at that time
on those books, holding later records back from its executor, even records that share one
receive time with that one."""
import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.execution.latency import SampledLatency
from ctrader.execution.match_points import FILE, MatchPoints, RecordedMatch, read_match_points
from ctrader.replay.driver import ReplayOptions
from ctrader.replay.fidelity import SessionTiming
from ctrader.replay.history import simulated_md
from ctrader.replay.runner import replay_chunks, resolve_universe


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, overrides={"model.name": "none"})


@pytest.fixture(scope="module")
def uni(cfg):
    return resolve_universe(cfg)


@pytest.fixture(scope="module")
def md(cfg, uni):
    return simulated_md(cfg, uni, seconds=40, seed=11)


def _options(timing=None, batch=1024, latency_ms: float = 2):
    return ReplayOptions(feed_latency=SampledLatency.parse("0"), order_latency=SampledLatency.parse(str(latency_ms)),
                         batch_events=batch, session_timing=timing)


def test_points_are_written_and_read_back_in_arrival_order(tmp_path):
    points = MatchPoints(tmp_path)
    points.note(7, 0, "c-7-0", after_md_seq=41, after_md_recv_ns=1_000, arrived_mono_ns=1_500)
    points.note(7, 1, "c-7-1", after_md_seq=42, after_md_recv_ns=1_000, arrived_mono_ns=1_600)
    points.note(7, 0, "c-7-0r", after_md_seq=50, after_md_recv_ns=2_000, arrived_mono_ns=2_500)   # its replacement
    points.flush()
    with open(tmp_path / FILE, "a") as fh:
        fh.write("8,0,c-8-0,12")                   # a line cut short by a crash
    points.close()
    assert read_match_points(tmp_path) == {
        (7, 0): [RecordedMatch((1_000, 41), 1_500), RecordedMatch((2_000, 50), 2_500)],
        (7, 1): [RecordedMatch((1_000, 42), 1_600)]}
    assert read_match_points(tmp_path / "none") == {}


LAG_NS = 30_000_000


def _lagging_points(md: np.ndarray, first):
    """For each order of ``first`` (a replay with no order latency): the session this pretends
    to be had its executor reach each order 30 ms after its cause, its books still as of the
    cause (the last record sharing the cause's receive time): 30 ms of records were on their way."""
    mono, ts = md["recv_mono_ns"], md["recv_ts_ns"]
    points = {}
    for f in first.fills:
        key = (int(f["group_id"]), int(f["leg"]))
        if key in points or not f["cause_ts_ns"]:
            continue
        k = int(np.searchsorted(ts, int(f["cause_ts_ns"]), "right")) - 1      # the tie group's last
        points[key] = [RecordedMatch((int(mono[k]), int(md["seq"][k])), int(mono[k]) + LAG_NS)]
    return points


def _first_fills(result) -> dict:
    out = {}
    for f in result.fills:
        out.setdefault((int(f["group_id"]), int(f["leg"])), f)
    return out


def _orders(result) -> dict:
    """(group, leg) -> what the strategy asked for: its cause, symbol, side, price and quantity."""
    return {(int(i["group_id"]), int(i["leg"])): (int(i["cause_recv_ts_ns"]), int(i["symbol_id"]), int(i["side"]),
                                                  int(i["price_ticks"]), int(i["qty_steps"]))
            for i in result.intents}


def test_replay_matches_each_order_when_and_on_the_books_the_session_did(cfg, uni, md):
    # 1 ns after its cause: an order matches on the books after the records sharing its time
    at_cause = replay_chunks(cfg, uni, [md], options=_options(latency_ms=0.000001))
    points = _lagging_points(md, at_cause)
    assert len(points) > 20
    timing = SessionTiming({}, {}, paper_latency_ns=0)
    timing.match_points = points
    lagged = replay_chunks(cfg, uni, [md], options=_options(timing))
    assert lagged.summary["matched_at_recorded_points"] >= len(points) // 2
    before, after = _first_fills(at_cause), _first_fills(lagged)
    # the orders both replays placed alike (with 30 ms in flight, the strategy decides some later
    # groups differently)
    wanted_before, wanted_after = _orders(at_cause), _orders(lagged)
    same = [k for k in after if k in before and k in wanted_before and wanted_after.get(k) == wanted_before[k]]
    assert len(same) >= 10
    for k in same:
        # 30 ms later, on the books as they were at the cause: records received meanwhile were
        # held back from the executor until the order got there
        assert int(after[k]["ts_ns"]) == int(before[k]["ts_ns"]) - 1 + LAG_NS, k
        assert (after[k]["px"], after[k]["qty"]) == (before[k]["px"], before[k]["qty"]), k


def test_matching_at_points_does_not_depend_on_the_batching(cfg, uni, md):
    points = _lagging_points(md, replay_chunks(cfg, uni, [md], options=_options(latency_ms=0.000001)))
    runs = []
    for batch, chunks in ((1024, [md]), (97, [md[:5000], md[5000:5001], md[5001:]])):
        timing = SessionTiming({}, {}, paper_latency_ns=0)
        timing.match_points = points
        runs.append(replay_chunks(cfg, uni, chunks, options=_options(timing, batch)))
    assert runs[0].digests == runs[1].digests
    assert runs[0].fills.tobytes() == runs[1].fills.tobytes()
    assert runs[0].summary["fills"] > 0


def test_an_order_that_leaves_the_flight_unmatched_holds_nothing_back():
    from tests.test_models_contract import PaperRun

    run = PaperRun(replay=True)
    run.venue.recorded_match = lambda group, leg, nth: RecordedMatch((5, 1 + nth), run.now + 10**9)
    old = run.order("cap-old", run.bid - 100 * run.info.tick_units)
    run.place(old)
    assert run.venue.md_cap() == (5, 1)                  # in flight: no md record after (5, 1)
    new = run.order("cap-new", run.bid - 200 * run.info.tick_units)
    run.replace(old, new)                                # cancelled in flight; its replacement caps
    assert run.venue.md_cap() == (5, 2)
    run.apply(run.venue.cancel(new, run.now_ns()))
    assert run.venue.md_cap() is None
