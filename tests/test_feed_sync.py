"""Binance's local-book algorithm as a pure state machine (``BookSync``) and the sorted book (C)."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ctrader.feed.book import BadLevel, BookSide, LocalBook, parse_levels
from ctrader.feed.sync import BookSync, Reason, Result


def lv(*pairs):
    """Levels as BookSync and LocalBook take them: validated (price, qty) floats."""
    return [(float(p), float(q)) for p, q in pairs]


def test_local_book_keeps_levels_sorted_best_first_and_removes_zero_qty():
    book = LocalBook()
    book.replace(lv((100, 1), (99, 2), (101, 0)), lv((102, 1), (103, 4)))
    book.apply(lv((100.5, 3), (99, 0)), lv((101.5, 2), (103, 0)))
    px, qty = np.zeros(10), np.zeros(10)
    assert book.bids.top(px, qty) == 2 and px[:2].tolist() == [100.5, 100] and qty[:2].tolist() == [3, 1]
    assert book.asks.top(px, qty) == 2 and px[:2].tolist() == [101.5, 102]
    assert book.best_bid() == 100.5 and book.best_ask() == 101.5 and not book.crossed()
    book.apply(lv((101.5, 1)), [])
    assert book.crossed()


def test_local_book_matches_a_dict_model_under_random_updates():
    rng = random.Random(3)
    book, model = LocalBook(), {}
    for _ in range(5000):
        price = round(rng.uniform(90, 100), 2)
        qty = rng.choice([0, 0, rng.randint(1, 50)])
        book.apply(lv((price, qty)), [])
        if qty:
            model[price] = float(qty)
        else:
            model.pop(price, None)
    assert book.bids.levels() == sorted(model.items(), reverse=True)


@pytest.mark.parametrize("pair", [["1", "nan"], ["nan", "1"], ["1", "-1"], ["-5", "1"], ["0", "1"], ["1", "inf"],
                                  ["x", "1"], [1], None, ["1"], "12", ["1", "2", "3"], ["1_0.5", "1"],
                                  ["1e5", "1"], [1.5, "1"], ["1", True], ["01", "1"], ["1.", "1"], [" 1", "1"],
                                  ("1", "2")])
def test_bad_levels_are_refused(pair):
    with pytest.raises(BadLevel):
        parse_levels([pair])


@pytest.mark.parametrize("level", [(0.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (math.nan, 1.0), (1.0, math.nan),
                                   (math.inf, 1.0), (1.0, math.inf)])
def test_the_book_refuses_levels_that_would_break_its_order(level):
    book = LocalBook()
    with pytest.raises(BadLevel):
        book.apply([level], [])
    with pytest.raises(TypeError):
        book.apply([["1", "2"]], [])             # strings: parse them first
    assert not book.bids.levels()


def test_a_snapshot_naming_a_price_twice_is_refused_and_changes_nothing():
    book = LocalBook()
    book.replace(lv((10, 1)), lv((11, 1)))
    with pytest.raises(BadLevel):
        book.replace(lv((9, 1), (8, 2), (9, 3)), [])
    assert book.bids.levels() == [(10.0, 1.0)] and book.asks.levels() == [(11.0, 1.0)]


def _synced(last_id=100):
    s = BookSync()
    assert s.on_diff(last_id - 5, last_id + 2, 1, lv((10, 1)), []) == Result.NEED_SNAPSHOT
    assert s.on_snapshot(last_id, lv((9, 1), (8, 1)), lv((11, 1))) == Result.SYNCED
    return s


def test_snapshot_then_buffered_events_per_the_documented_algorithm():
    s = BookSync()
    assert s.stale
    assert s.on_diff(95, 99, 1, lv((9, 5)), []) == Result.NEED_SNAPSHOT
    assert s.on_diff(100, 103, 2, lv((10, 1)), []) == Result.BUFFERED
    assert s.on_snapshot(90, [], []) == Result.RETRY            # older than the first buffered U
    assert s.stale and s.snapshot_wanted
    assert s.on_snapshot(101, lv((9, 1)), lv((11, 1))) == Result.SYNCED
    # the event ending at 99 (<= 101) was discarded, the one straddling 101 applied
    assert s.update_id == 103 and s.book.best_bid() == 10 and not s.stale
    assert s.on_diff(100, 103, 3, lv((10, 7)), []) == Result.IGNORED   # duplicate
    assert s.on_diff(104, 104, 4, [], lv((11, 0), (12, 2))) == Result.APPLIED
    assert s.book.best_ask() == 12 and s.update_id == 104


def test_gap_marks_stale_buffers_and_asks_for_a_snapshot():
    s = _synced()
    assert s.on_diff(104, 110, 5, lv((10, 1)), []) == Result.WENT_STALE
    assert s.stale and s.stale_reason == Reason.GAP and s.gaps == 1 and s.snapshot_wanted
    assert s.on_diff(111, 112, 6, [], []) == Result.BUFFERED
    assert s.on_snapshot(111, lv((9, 2)), lv((11, 2))) == Result.SYNCED
    assert s.update_id == 112 and s.resyncs == 2


def test_gap_inside_the_buffer_waits_for_a_newer_snapshot():
    s = BookSync()
    s.on_diff(10, 12, 1, [], [])
    s.on_diff(13, 15, 1, [], [])
    s.on_diff(20, 22, 1, [], [])                                   # 16..19 missing
    assert s.on_snapshot(12, lv((1, 1)), lv((2, 1))) == Result.RETRY
    assert s.stale and s.snapshot_wanted
    assert s.on_snapshot(21, lv((1, 1)), lv((2, 1))) == Result.SYNCED and s.update_id == 22


def test_crossed_book_goes_stale():
    s = _synced()
    assert s.on_diff(103, 103, 7, lv((11.5, 1)), []) == Result.WENT_STALE
    assert s.stale_reason == Reason.CROSSED and s.crossed == 1
    assert s.on_diff(104, 104, 8, [], []) == Result.NEED_SNAPSHOT


def test_disconnect_discards_the_buffer():
    s = _synced()
    assert s.go_stale(Reason.DISCONNECT) is True and s.go_stale(Reason.DISCONNECT) is False
    assert not s.buffer and not s.snapshot_wanted
    assert s.on_snapshot(200, [], []) == Result.RETRY            # nothing buffered yet: wait for a diff
    assert math.isclose(s.book.best_bid(), 10)                   # the last good book stays readable


def test_the_c_book_equals_a_dict_model_under_random_updates_and_snapshots():
    rng = random.Random(11)
    for is_bid in (True, False):
        side, model = BookSide(is_bid), {}
        book = LocalBook()
        for step in range(3000):
            levels = [(round(rng.uniform(90, 100), 2), rng.choice([0.0, float(rng.randint(1, 9))]))
                      for _ in range(rng.randint(0, 8))]
            if step % 500 == 499:                   # now and then a snapshot replaces everything
                snap = {p: q for p, q in levels if q > 0}
                book.replace(list(snap.items()) if is_bid else [], [] if is_bid else list(snap.items()))
                model = dict(snap)
            else:
                book.apply(levels if is_bid else [], [] if is_bid else levels)
                for price, q in levels:
                    if q > 0:
                        model[price] = q
                    else:
                        model.pop(price, None)
            side = book.bids if is_bid else book.asks
            assert side.levels() == sorted(model.items(), reverse=is_bid)
        assert len(side) == len(model)
        px, qty = np.zeros(10), np.zeros(10)
        n = side.top(px, qty)
        assert list(zip(px[:n].tolist(), qty[:n].tolist())) == side.levels(10)


def test_apply_diff_is_binances_rule_for_a_book_in_sync():
    from ctrader.feed.book import STEP_APPLIED, STEP_CROSSED, STEP_GAP, STEP_IGNORED

    book = LocalBook()
    book.replace(lv((10, 1)), lv((11, 1)))
    book.update_id = 100
    assert book.apply_diff(99, 100, 1, lv((10, 5)), []) == STEP_IGNORED       # u <= id
    assert book.apply_diff(102, 103, 1, lv((10, 5)), []) == STEP_GAP          # U > id + 1
    assert book.bids.levels() == [(10.0, 1.0)] and book.update_id == 100      # neither changed anything
    assert book.apply_diff(95, 101, 7, lv((10, 5)), []) == STEP_APPLIED       # U <= id + 1 <= u
    assert book.update_id == 101 and book.last_exch_ms == 7 and book.bids.levels() == [(10.0, 5.0)]
    assert book.apply_diff(102, 102, 8, lv((11.5, 1)), []) == STEP_CROSSED    # applied, and crossed
    assert book.update_id == 102 and book.crossed()


def test_a_quiet_book_is_rebuilt_from_a_snapshot_alone_and_checked_by_the_next_diff():
    s = BookSync()
    assert s.want_quiet_snapshot() and not s.want_quiet_snapshot()      # asked once
    assert s.on_snapshot(50, lv((9, 1)), lv((11, 1))) == Result.SYNCED and s.update_id == 50
    assert s.on_diff(51, 52, 1, lv((9.5, 1)), []) == Result.APPLIED
    q = BookSync()
    assert q.want_quiet_snapshot()
    assert q.on_snapshot(50, lv((9, 1)), lv((11, 1))) == Result.SYNCED
    assert q.on_diff(53, 54, 1, [], []) == Result.WENT_STALE               # 51..52 never seen: a gap
    # a diff that arrives before the quiet snapshot makes it an ordinary rebuild
    r = BookSync()
    assert r.want_quiet_snapshot()
    assert r.on_diff(60, 61, 1, [], []) == Result.BUFFERED
    assert r.on_snapshot(50, [], []) == Result.RETRY and r.snapshot_wanted
    assert not _synced().want_quiet_snapshot()                               # in sync: nothing to do
