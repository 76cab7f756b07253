"""A symbol's local order book: price levels kept sorted for fast top-N reads, in C.

The book is a C object (``ext/feed_book.pxi``) because the feed's C frame path applies depth
diffs to it directly; ``BookSync`` drives it from Python for everything else. Each side keeps
its levels in one array sorted with the best level last (inserts and deletes near the touch move
few entries); a level is keyed by the float of its price string (equal strings give equal floats,
so a level is always found again). Levels go in as validated floats: ``parse_levels`` (C, for
snapshots of thousands of levels) and ``ctrader.feed.parse.levels`` (Python) accept exactly the
same text.

    book = LocalBook()
    book.replace(parse_levels([["100.5", "2"]]), parse_levels([["100.6", "1"]]))   # a REST snapshot
    book.apply([(100.5, 0.0), (100.4, 3.0)], [])          # a diff: qty 0 removes the level
    book.best_bid(), book.best_ask()                      # 100.4, 100.6
    book.bids.levels(10)                                  # [(price, qty), ...] best first
    n = book.bids.top(px_out, qty_out)                    # fill float64 arrays with up to len(px_out) levels
    book.update_id, book.synced                           # the sync state BookSync keeps here
    book.apply_diff(U, u, E_ms, bids, asks)               # Binance's rule for a book in sync -> STEP_*
"""
from __future__ import annotations

from collections.abc import Sequence

from ctrader._ext.feed_parse import (
    STEP_APPLIED,
    STEP_CROSSED,
    STEP_GAP,
    STEP_IGNORED,
    BadLevel,
    BookSide,
    LocalBook,
    parse_levels,
)

Levels = Sequence[tuple[float, float]]   # validated (price, qty) floats

__all__ = ["STEP_APPLIED", "STEP_CROSSED", "STEP_GAP", "STEP_IGNORED", "BadLevel", "BookSide", "Levels",
           "LocalBook", "parse_levels"]
