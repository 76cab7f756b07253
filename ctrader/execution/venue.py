"""The seam between the executor and whatever executes its orders.

One ``Executor`` (risk gate, duplicate check, unwind policy, accounting, journal) runs in every
mode; only the venue behind it differs:

| venue | module | what executes the orders |
| --- | --- | --- |
| ``LiveVenue`` | ``execution.live`` | Binance (or the simulator) over the WS API, REST as fallback |
| ``PaperVenue`` | ``execution.paper`` | ``PaperFillModel`` against the books the executor keeps, live market data |
| ``ReplayVenue`` | ``execution.paper`` | the same fill model with recorded latencies, in replay's market time |

What a venue reports comes back as ``orders.VenueUpdate``: an acknowledgement (``NEW``), fills
(``PARTIALLY_FILLED`` / ``FILLED`` with price, quantity, commission and trade id), the end of an
order (``CANCELED``, ``EXPIRED`` for an IOC/FOK/market remainder, ``REJECTED`` with Binance's
code: -2010 for insufficient balance or a LIMIT_MAKER that would take). Answers either return
from the call that caused them (a paper order with no latency) or arrive at a later ``poll``.

Venues that match against books (paper, replay) are shown every book update through
``before_md`` (before it is applied) and ``on_book`` (after) while ``wants_books`` is true;
the live venue never wants them.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ctrader.execution.orders import Order, VenueUpdate


@runtime_checkable
class Venue(Protocol):
    mode: str                    # "live", "paper" or "replay"
    backoff_until_ns: int        # monotonic: no new order before this (the venue's 429/418 retry time)

    def place(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        """Send ``order`` (it is journaled already). Stamps ``order.sent_mono_ns`` if the send
        happens later than ``now_ns`` says (live: after the frame is written)."""
        ...

    def cancel(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        """Ask for ``order`` to be cancelled; the CANCELED (or a fill that won the race) follows."""
        ...

    def cancel_replace(self, old: Order, new: Order, now_ns: int, allow_failure: bool = False) -> list[VenueUpdate]:
        """Cancel ``old`` and place ``new`` in one request (Binance's cancelReplace). Outcomes,
        the same from every venue: ``old`` CANCELED and ``new`` placed; ``old`` no longer open
        (it filled): ``new`` REJECTED -2022, not attempted (STOP_ON_FAILURE), or placed all the
        same with ``allow_failure`` (ALLOW_FAILURE); ``new`` refused by the venue (-2010, e.g. a
        LIMIT_MAKER that would take): ``old`` CANCELED all the same, ``new`` REJECTED."""
        ...

    def before_md(self, recv_ns: int) -> list[VenueUpdate]:
        """A market-data record received at ``recv_ns`` is next: match what was due before it
        on the books as they are (venues that match against books)."""
        ...

    def on_book(self, symbol_id: int, now_ns: int) -> list[VenueUpdate]:
        """The books of ``symbol_id`` changed at ``now_ns``: match what is due or crossed."""
        ...

    def on_trade(self, symbol_id: int, price: int, qty: int, buyer_maker: bool, now_ns: int) -> list[VenueUpdate]:
        """A market trade (exact units): resting orders matched by a model advance in their queue."""
        ...

    def wants_books(self) -> bool:
        """Whether ``on_book`` must see every book update now."""
        ...

    def quiet_prefix(self, recs: np.ndarray, n: int) -> int:
        """How many leading md records change nothing here but fresh liquidity (see paper)."""
        ...

    def poll(self, now_ns: int) -> list[VenueUpdate]:
        """Answers and events that arrived (or fell due) by ``now_ns``."""
        ...

    def reconcile(self, orders: list[Order]) -> list[VenueUpdate]:
        """After a restart: settle journaled orders whose outcome is unknown."""
        ...

    def balances(self) -> dict[str, dict[str, float]] | None:
        """{asset: {"free", "locked", "start"}} in whole units, or None when not modelled."""
        ...

    def account_check(self) -> tuple[dict[str, int], dict[str, tuple[int, int]]] | None:
        """(start totals, last (free, locked) reported) per asset, for checking our accounting
        against what the venue says it holds; None when the venue reports no account."""
        ...

    def stats(self) -> dict:
        ...

    def close(self) -> None:
        ...


__all__ = ["Venue"]
