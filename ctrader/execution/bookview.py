"""Column access to a ``market.books.BookCache``: ``view.ask_px[symbol, level]``.

``BookCache.books`` is one structured array (a row per symbol); the risk gate, the valuer and
the paper fill model read it by column. A field of a structured array is a view, so the columns
always show the books as ``apply_md`` left them, with no copy:

    cache = BookCache(len(universe.symbols))
    view = BookView(cache.books)
    view.n_asks[sid], view.ask_px[sid, 0], view.flags[sid], view.last_recv_mono_ns[sid]
"""
from __future__ import annotations

import numpy as np


class BookView:
    def __init__(self, books: np.ndarray) -> None:
        self.books = books
        for name in books.dtype.names:
            setattr(self, name, books[name])

    def __len__(self) -> int:
        return len(self.books)
