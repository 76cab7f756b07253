"""Binance's local-book algorithm as a pure state machine (``BookSync``) and the sorted book."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from ctrader.feed.book import BadLevel, LocalBook, parse_levels
from ctrader.feed.sync import BookSync, Reason, Result


def lv(*pairs):
    return [[str(p), str(q)] for p, q in pairs]


def test_local_book_keeps_levels_sorted_best_first_and_removes_zero_qty():
    book = LocalBook()
    book.replace(lv((100, 1), (99, 2), (101, 0)), lv((102, 1), (103, 4)))
    book.apply(parse_levels(lv((100.5, 3), (99, 0))), parse_levels(lv((101.5, 2), (103, 0))))
    px, qty = np.zeros(10), np.zeros(10)
    assert book.bids.top(px, qty) == 2 and px[:2].tolist() == [100.5, 100] and qty[:2].tolist() == [3, 1]
    assert book.asks.top(px, qty) == 2 and px[:2].tolist() == [101.5, 102]
    assert book.best_bid() == 100.5 and book.best_ask() == 101.5 and not book.crossed()
    book.apply(parse_levels(lv((101.5, 1))), [])
    assert book.crossed()


def test_local_book_matches_a_dict_model_under_random_updates():
    rng = random.Random(3)
    book, model = LocalBook(), {}
    for _ in range(5000):
        price = round(rng.uniform(90, 100), 2)
        qty = rng.choice([0, 0, rng.randint(1, 50)])
        book.apply(parse_levels(lv((price, qty))), [])
        if qty:
            model[price] = float(qty)
        else:
            model.pop(price, None)
    assert book.bids.levels() == sorted(model.items(), reverse=True)


@pytest.mark.parametrize("pair", [["1", "nan"], ["nan", "1"], ["1", "-1"], ["-5", "1"], ["0", "1"], ["1", "inf"],
                                  ["x", "1"], [1], None, ["1"]])
def test_bad_levels_are_refused(pair):
    with pytest.raises(BadLevel):
        parse_levels([pair])


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


def test_disconnect_discards_the_buffer_and_malformed_levels_change_nothing():
    s = _synced()
    assert s.on_diff(103, 103, 1, lv((9, "nan")), []) == Result.BAD and s.update_id == 102
    assert s.go_stale(Reason.DISCONNECT) is True and s.go_stale(Reason.DISCONNECT) is False
    assert not s.buffer and not s.snapshot_wanted
    assert s.on_snapshot(200, [], []) == Result.RETRY            # nothing buffered yet: wait for a diff
    assert math.isclose(s.book.best_bid(), 10)                   # the last good book stays readable


def test_c_side_apply_equals_the_python_reference():
    from ctrader.feed.book import BookSide

    rng = random.Random(11)
    for is_bid in (True, False):
        fast, ref = BookSide(is_bid), BookSide(is_bid)
        for _ in range(3000):
            levels = [(round(rng.uniform(90, 100), 2), rng.choice([0.0, float(rng.randint(1, 9))]))
                      for _ in range(rng.randint(0, 8))]
            fast.apply(levels)
            ref.apply_py(levels)
            assert fast.keys == ref.keys and fast.qty == ref.qty


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
