"""The feed against the simulator: every book it publishes as fresh is the simulator's true book.

Each test runs a ``FeedEngine`` (picows sockets, REST snapshots, the real book sync) against a
simulator at full speed, with faults injected, and then walks every published record:

* DEPTH / SNAPSHOT records not flagged STALE must hash equal to the simulator's top 10 levels
  at the record's update id (recorded by the simulator after every book update);
* BOOK_TICKER records not flagged STALE must match the simulator's best levels at their id;
* after a STATUS|STALE record, every record of that symbol is flagged STALE until a
  SNAPSHOT|RESYNC rebuilds the book.
"""
from __future__ import annotations

import pytest

from tests.feed_harness import FeedRun, verify

pytestmark = pytest.mark.timeout(300)

SYMBOLS = ("BTCUSDT", "ETHBTC", "ETHUSDT", "SOLBNB", "DOGEUSDT", "BNBUSDT")


def _start(sim_factory, **sim):
    s = sim_factory({"market.speed": 0, **sim})
    s.control.record_tops(list(SYMBOLS))
    return s


def test_clean_stream_books_equal_the_simulators(sim_factory):
    sim = _start(sim_factory)
    run = FeedRun(sim, SYMBOLS)
    run.run(until=lambda r: r.updates() >= 20000, timeout_s=60)
    report = verify(sim, run)
    print("\nclean:", report, run.engine.stats())
    assert report["depth_checked"] >= 1000 and report["ticker_checked"] >= 1000
    assert report["updates"] >= 20000
    assert run.engine.stats()["gaps"] == 0


@pytest.mark.slow   # a long fault-injection run: `tools/test --slow`
def test_gaps_duplicates_and_reordering_are_flagged_and_rebuilt(sim_factory):
    sim = _start(sim_factory)
    run = FeedRun(sim, SYMBOLS, feed={"streams": ["bookTicker", "depth@100ms", "trade"]})

    def inject(step: int) -> None:
        symbol = SYMBOLS[step % len(SYMBOLS)]
        fault = step % 3
        if fault == 0:
            sim.control.drop_diffs(symbol, 1)
        elif fault == 1:
            sim.control.reorder_diffs(symbol, 1)
        else:
            sim.control.duplicate_messages("*", 20)

    run.run(until=lambda r: r.updates() >= 40000 and r.engine.stats()["gaps"] >= 6, inject=inject,
            inject_every_s=0.15, timeout_s=90)
    report = verify(sim, run)
    stats = run.engine.stats()
    print("\ngaps:", report, stats)
    assert stats["gaps"] >= 6 and stats["resyncs"] >= len(SYMBOLS) + 6
    assert stats["duplicates"] >= 1
    assert report["status"] >= stats["gaps"] and report["stale_records"] >= 1
    assert report["depth_checked"] >= 2000 and report["trades"] >= 100
    assert report["updates"] >= 40000


@pytest.mark.slow   # a long fault-injection run: `tools/test --slow`
def test_disconnects_server_shutdown_and_planned_reconnects(sim_factory):
    sim = _start(sim_factory)
    run = FeedRun(sim, SYMBOLS, feed={"planned_reconnect_h": 0.001, "reconnect_min_s": 0.05})
    events = []

    def inject(step: int) -> None:
        if step == 3:
            events.append(("close", sim.control.close_stream_connections()))
        elif step == 5:
            events.append(("abort", sim.control.close_stream_connections(abort=True)))
        elif step == 8:
            events.append(("shutdown", sim.control.server_shutdown(grace_s=1.5)))

    def done(r: FeedRun) -> bool:
        s = r.engine.stats()
        return (s["handovers"] >= 2 and s["handovers_started"]["planned"] >= 1 and s["server_shutdowns"] >= 1 and r.updates() >= 40000 and len(events) == 3)

    run.run(until=done, inject=inject, inject_every_s=0.4, timeout_s=90)
    report = verify(sim, run)
    stats = run.engine.stats()
    print("\nconnections:", events, report, stats)
    assert stats["disconnects"] >= 2 and stats["connects"] >= 3
    # serverShutdown and the planned reconnect: make before break
    assert stats["handovers_started"]["server_shutdown"] >= 1 and stats["handovers_started"]["planned"] >= 1
    assert stats["handovers"] >= 2
    # STALE at start, at the first drop (books were in sync then) and at the end
    assert report["status"] >= 3 * len(SYMBOLS)
    assert report["depth_checked"] >= 2000 and report["updates"] >= 40000


def test_streams_are_sharded_over_connections_and_subscribes_are_paced(sim_factory):
    # 6 symbols x 2 streams, 4 streams per connection -> 3 sockets; 1 stream in the URL, the
    # other 3 by SUBSCRIBE: the simulator drops a socket sending more than 5 messages a second.
    sim = _start(sim_factory, **{"limits.max_streams_per_connection": 4})
    run = FeedRun(sim, SYMBOLS, feed={"max_streams_per_connection": 4, "url_streams": 1, "messages_per_s": 4})
    run.run(until=lambda r: r.updates() >= 10000 and r.engine.stats()["resyncs"] >= len(SYMBOLS), timeout_s=60)
    report = verify(sim, run)
    stats = run.engine.stats()
    print("\nshards:", report, stats)
    assert stats["shards"] == 3 and stats["connects"] == 3 and stats["disconnects"] == 0   # none dropped
    assert stats["gaps"] == 0 and report["depth_checked"] >= 500


def test_snapshot_rate_limit_answers_pause_the_snapshots(sim_factory):
    sim = _start(sim_factory)
    sim.control.fail_requests(count=3, status=429, code=-1003, msg="Too much request weight used.",
                              match="/api/v3/depth")
    run = FeedRun(sim, SYMBOLS, feed={"snapshot_workers": 1})
    run.run(until=lambda r: r.engine.stats()["resyncs"] >= len(SYMBOLS), timeout_s=60)
    stats = run.engine.stats()
    report = verify(sim, run)
    print("\n429:", report, stats)
    assert stats["snapshot_rate_limited"] == 3 and run.engine.budget.backoffs == 3
    assert stats["snapshots"] == len(SYMBOLS) + 3
    # one request at a time: each 429 paused the next request for Retry-After (1 s)
    assert min(stats["stale_s"].values()) >= 3.0


@pytest.mark.slow   # a long fault-injection run: `tools/test --slow`
def test_pings_are_answered_and_a_stall_that_drops_diffs_is_caught(sim_factory):
    # the simulator pings every 0.3 s and drops a socket that has not answered within 2 s
    sim = _start(sim_factory, **{"limits.ping_interval_s": 0.3, "limits.pong_timeout_s": 2.0})
    run = FeedRun(sim, SYMBOLS)

    def inject(step: int) -> None:
        if step == 4:
            sim.control.stall_streams(0.5, drop=True)        # everything due in 0.5 s is lost

    run.run(until=lambda r: r.engine.stats()["pongs"] >= 10 and r.engine.stats()["gaps"] >= 1
            and r.updates() >= 10000, inject=inject, inject_every_s=0.25, timeout_s=60)
    report = verify(sim, run)
    stats = run.engine.stats()
    print("\npings:", report, stats)
    assert stats["pongs"] >= 10 and stats["disconnects"] == 0          # no socket dropped
    assert stats["gaps"] >= 1 and stats["resyncs"] >= len(SYMBOLS) + 1


@pytest.mark.slow   # a long fault-injection run: `tools/test --slow`
def test_make_before_break_keeps_books_fresh_through_shutdowns_and_planned_reconnects(sim_factory):
    # serverShutdown (the old sockets close after 1 s, sockets opened meanwhile stay up) and the
    # planned reconnect (every 3.6 s here) both switch to a fresh socket before dropping the old
    # one: no book goes stale, nothing is missed.
    sim = _start(sim_factory)
    run = FeedRun(sim, SYMBOLS, feed={"planned_reconnect_h": 0.001})
    shutdowns = []

    def inject(step: int) -> None:
        if step in (4, 10):
            shutdowns.append(sim.control.server_shutdown(grace_s=1.0, only_notified=True))

    def done(r: FeedRun) -> bool:
        s = r.engine.stats()
        return (len(shutdowns) == 2 and s["handovers_started"]["planned"] >= 1 and s["handovers"] >= 3
                and r.updates() >= 20000)

    run.run(until=done, inject=inject, inject_every_s=0.5, timeout_s=90)
    report = verify(sim, run)
    stats = run.engine.stats()
    print("\nmake-before-break:", shutdowns, report, stats)
    # each shutdown was served by a handover started for it, or absorbed by one already under
    # way (its notice reached the socket being replaced; seen under load in CI)
    served = stats["handovers_started"]["server_shutdown"] + stats["shutdowns_absorbed"]
    assert served >= 2 and stats["handovers_started"]["server_shutdown"] >= 1 and stats["handovers"] >= 3
    assert stats["gaps"] == 0 and stats["disconnects"] == 0          # no socket dropped
    assert report["status"] == 2 * len(SYMBOLS) and stats["resyncs"] == len(SYMBOLS)
    assert report["depth_checked"] >= 2000


def test_quiet_books_are_rebuilt_from_a_snapshot_alone(sim_factory):
    # A symbol without trading sends no diffs, so the documented algorithm (buffer a diff, then
    # fetch a snapshot) never starts. With the market paused the feed must still build every
    # book from a snapshot alone, then carry on with the diffs once the market moves again.
    from ctrader.sim.control import top_hash
    from tests.feed_harness import levels_hash

    sim = _start(sim_factory)
    sim.control.pause()
    truth = {s: sim.control.book(s, 10) for s in SYMBOLS}
    run = FeedRun(sim, SYMBOLS, feed={"quiet_book_snapshot_s": 0.3})
    resumed = []

    def inject(step: int) -> None:
        if not resumed and run.engine.stats()["resyncs"] == len(SYMBOLS):
            resumed.append(step)
            sim.control.resume()

    run.run(until=lambda r: bool(resumed) and r.updates() >= 10000, inject=inject, inject_every_s=0.2,
            timeout_s=60)
    report = verify(sim, run)
    stats = run.engine.stats()
    print("\nquiet:", report, stats)
    assert stats["quiet_snapshots"] == len(SYMBOLS) and stats["resyncs"] == len(SYMBOLS) and stats["gaps"] == 0
    records = run.records()
    for s in SYMBOLS:
        sid = run.engine.symbol_ids[s]
        snap = records[(records["symbol_id"] == sid) & (records["kind"] == 3)][0]
        u, bids, asks = truth[s]
        assert snap["last_update_id"] == u
        assert levels_hash(snap["bid_px"].tolist(), snap["bid_qty"].tolist(), snap["ask_px"].tolist(),
                           snap["ask_qty"].tolist(), int(snap["n_bids"]), int(snap["n_asks"]), 10) == \
            top_hash(bids, asks)
    assert report["depth_checked"] >= 1000


@pytest.mark.slow   # a long fault-injection run: `tools/test --slow`
def test_everything_at_once_over_three_sockets(sim_factory):
    # 3 sockets (2 symbols each) with trades; diffs dropped, reordered and duplicated; sockets
    # closed, aborted, told to shut down and replaced on schedule -- all in one run.
    sim = _start(sim_factory, **{"limits.max_streams_per_connection": 6})
    run = FeedRun(sim, SYMBOLS, feed={"streams": ["bookTicker", "depth@100ms", "trade"],
                                      "max_streams_per_connection": 6, "planned_reconnect_h": 0.001,
                                      "reconnect_min_s": 0.05})
    faults = ["drop", "reorder", "dup", "close", "drop", "shutdown", "reorder", "abort", "dup", "drop"]
    done_faults = []

    def inject(step: int) -> None:
        if len(done_faults) == len(faults):
            return
        fault, symbol = faults[len(done_faults)], SYMBOLS[step % len(SYMBOLS)]
        if fault == "drop":
            sim.control.drop_diffs(symbol, 1)
        elif fault == "reorder":
            sim.control.reorder_diffs(symbol, 1)
        elif fault == "dup":
            sim.control.duplicate_messages("*", 30)
        elif fault == "close":
            sim.control.close_stream_connections()
        elif fault == "abort":
            sim.control.close_stream_connections(abort=True)
        else:
            sim.control.server_shutdown(grace_s=0.5, only_notified=True)
        done_faults.append(fault)

    def done(r: FeedRun) -> bool:
        s = r.engine.stats()
        # wait for handovers that completed, not merely started: the run ending mid-handover left
        # 3 of 6 started complete once (CI, stop 10)
        return (len(done_faults) == len(faults) and s["handovers_started"]["planned"] >= 3
                and s["handovers"] >= 4 and r.updates() >= 30000)

    run.run(until=done, inject=inject, inject_every_s=0.4, timeout_s=90)
    report = verify(sim, run)
    stats = run.engine.stats()
    print("\nchaos:", report, stats)
    # a handover may be cut short by a close/abort landing in the middle of it
    assert stats["shards"] == 3 and stats["handovers"] >= 4 and stats["connections"] == 0
    assert stats["gaps"] >= 1 and stats["disconnects"] >= 6 and stats["parse_errors"] == 0
    assert report["depth_checked"] >= 2000 and report["trades"] >= 100 and report["updates"] >= 30000
