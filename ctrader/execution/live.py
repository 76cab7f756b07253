"""Live orders: Binance's WebSocket API (REST when it is down), user data, reconciliation.

``LiveVenue`` implements the venue interface the executor drives (``place``, ``cancel``,
``cancel_replace``, ``on_book``, ``poll``, ``reconcile``, ``close``). Orders go out as ``order.place`` with exact
decimal strings built from integer ticks/steps (never ``1e-05``), the intent's client order id
as ``newClientOrderId`` and ``newOrderRespType=FULL`` so the fills of a taker order come back in
the answer. The frame is written to the socket by the executor's own thread before ``place``
returns (``ws_api_client``, ``order_frames``); ``order.sent_mono_ns`` is stamped after the
write. The user data stream (``executionReport``) moves orders in between; a fill reported by
both is counted once (by trade id, ``orders.OrderBook``).

While the WebSocket is down, orders and cancels go over REST from a worker thread: ``place``
returns at once and the answer arrives at a later ``poll``, like a WS answer.

A 429 or 418 answer (-1003 too much weight or banned, -1015 too many new orders) sets
``backoff_until_ns`` from the venue's retry time (WS API ``error.data.retryAfter``, REST
``Retry-After``); the executor closes its rate budget until then, so no new order is sent
while the venue asks us to wait (Binance bans an IP that keeps sending after a 429).

When the venue's answer leaves the outcome unknown (HTTP 5xx, -1006, -1007, a dropped
connection) the order is asked about (``order.status`` by client id, then ``myTrades`` for its
fills) instead of being guessed, and asked again, with backoff, for as long as the answer does
not settle it (a status query can fail too: 503, -1021, no connection). After a reconnect every
open order is asked about, since user-data events may have been missed.

"No such order" (-2013) is provisional while the order may still reach the venue: a request
is refused once its timestamp is ``recvWindow`` old, so an order the venue does not know within
``recvWindow`` (+1 s of clock slack) of being sent never will; until then it is asked about
again, and executionReports for it are trusted.

A cancel-replace (``order.cancelReplace``, STOP_ON_FAILURE unless told ALLOW_FAILURE) answers
for both halves: the old order CANCELED (or, when its cancel failed, asked about: it filled), the
new one placed or REJECTED with the venue's code (-2022 when it was not attempted). Like a cancel,
a cancel-replace of an order whose place answer has not come waits for it.

    client = WsApiClient(url, signer, rest_url=rest).start()
    venue = LiveVenue(client, universe)
    venue.place(order, now_ns); updates = venue.poll(now_ns)
"""
from __future__ import annotations

import logging
import time
from typing import Any

from ctrader.core.records import OrderType
from ctrader.execution.order_frames import OrderFrames
from ctrader.execution.orders import FILLED, PARTIALLY_FILLED, REJECTED, Order, VenueUpdate
from ctrader.execution.ws_api_client import WsApiClient
from ctrader.venue.decimals import ONE, decimals_of, format_trimmed, parse_units, quote_amount
from ctrader.venue.errors import RATE_LIMITED, execution_status_unknown, retry_after_s

log = logging.getLogger(__name__)

NO_SUCH_ORDER = -2013
CANCEL_REJECTED = -2011
INVALID_TIMESTAMP = -1021
OUR_PREFIXES = ("ct", "uw")          # client ids this executor makes (orders.client_order_id_for, unwinds)
RATE_LIMIT_CODES = (-1003, -1015)     # too many requests / too much weight / banned; too many new orders
RECHECK_FIRST_S, RECHECK_MAX_S = 0.2, 5.0    # asking again about an order whose state is not settled
CLOCK_SLACK_S = 1.0                   # on top of recvWindow before "no such order" is final
STOP_ON_FAILURE, ALLOW_FAILURE = "STOP_ON_FAILURE", "ALLOW_FAILURE"     # cancelReplaceMode
CANCEL_REPLACE_FAILED = -2022         # the cancel failed and the new order was not attempted


def order_params(order: Order, info: Any) -> dict:
    """``order.place`` parameters with exact decimal strings from the order's integer units."""
    params = {"symbol": order.symbol, "side": order.side_name, "type": order.type_name,
              "quantity": format_trimmed(order.qty, decimals_of(info.step_units)),
              "newClientOrderId": order.client_order_id, "newOrderRespType": "FULL"}
    if order.order_type != OrderType.MARKET:
        params["price"] = format_trimmed(order.price, decimals_of(info.tick_units))
    if order.tif_name is not None and order.order_type == OrderType.LIMIT:
        params["timeInForce"] = order.tif_name
    return params


def updates_from_result(coid: str, res: dict) -> list[VenueUpdate]:
    """VenueUpdates from an order.place FULL answer (or an order.status / cancel answer)."""
    oid = int(res.get("orderId", -1))
    status = res.get("status", "NEW")
    ts = int(res.get("transactTime") or res.get("updateTime") or 0)
    fills = res.get("fills") or []
    out = []
    for i, f in enumerate(fills):
        px, qty = parse_units(f["price"]), parse_units(f["qty"])
        out.append(VenueUpdate(coid, status if i == len(fills) - 1 else PARTIALLY_FILLED, oid, last_qty=qty,
                               last_px=px, last_quote=quote_amount(px, qty), fee=parse_units(f["commission"]),
                               fee_asset=f["commissionAsset"], trade_id=int(f["tradeId"]), exch_ts_ms=ts))
    if not fills:
        out.append(VenueUpdate(coid, status, oid, exch_ts_ms=ts))
    return out


def update_from_execution_report(ev: dict) -> VenueUpdate:
    """An ``executionReport`` event (user-data-stream.md) as a VenueUpdate."""
    coid = ev.get("C") or ev["c"]          # on a cancel, "c" is the cancel's own id, "C" the order's
    qty = parse_units(ev["l"])
    return VenueUpdate(coid, ev["X"], int(ev["i"]), last_qty=qty, last_px=parse_units(ev["L"]) if qty else 0,
                       last_quote=parse_units(ev["Y"]) if qty else 0,
                       fee=parse_units(ev["n"]) if qty and ev.get("n") else 0, fee_asset=ev.get("N") or "",
                       trade_id=int(ev["t"]), is_maker=bool(ev.get("m")),
                       reject_code=0, exch_ts_ms=int(ev.get("T") or ev.get("E") or 0))


def updates_from_trades(coid: str, status: str, trades: list[dict]) -> list[VenueUpdate]:
    out = []
    for i, t in enumerate(trades):
        px, qty = parse_units(t["price"]), parse_units(t["qty"])
        out.append(VenueUpdate(coid, status if i == len(trades) - 1 else PARTIALLY_FILLED, int(t["orderId"]),
                               last_qty=qty, last_px=px, last_quote=parse_units(t["quoteQty"]),
                               fee=parse_units(t["commission"]), fee_asset=t["commissionAsset"],
                               trade_id=int(t["id"]), is_maker=bool(t.get("isMaker")), exch_ts_ms=int(t["time"])))
    return out


class LiveVenue:
    mode = "live"

    def __init__(self, client: WsApiClient, universe: Any, use_ws_api: bool = True) -> None:
        self.client = client
        self.universe = universe
        self.use_ws_api = use_ws_api
        self.orders: dict[str, Order] = {}       # what we sent, for reconciliation
        self.rest_fallbacks = 0
        self.reconciles = 0
        self.unknown_outcomes = 0
        self.status_queries = 0
        self._pending_status: dict[str, str] = {}    # status to apply once an order's trades arrive
        self.backoff_until_ns = 0      # monotonic: send no new order before (the venue's retry time)
        self.rate_limited = 0          # 429 / 418 answers
        self._frames: OrderFrames | None = None
        self._frames_key: tuple = ()
        self.venue_balances: dict[str, tuple[int, int]] = {}  # asset -> (free, locked) as the venue last said
        self.start_balances: dict[str, int] = {}              # free + locked at start (load_balances)
        self._recheck: dict[str, tuple[float, int]] = {}    # client id -> (when to ask again, attempts)
        self._first_asked: dict[str, int] = {}     # orders with no known send time: first "no such order"
        # A cancel sent before the venue has the order fails (-2011), and asking about the order
        # then says it does not exist (-2013) although it will rest on the book a moment later
        # (the kill switch left such orders open). So a cancel waits for its order's place answer.
        self._placing: set[str] = set()            # order.place sent over WS, not answered yet
        self._cancel_when_placed: set[str] = set()
        self.deferred_cancels = 0
        # A cancel-replace of such an order waits the same way (else its cancel fails and the new
        # order is not placed): old client id -> (old, new, allow_failure).
        self._replace_when_placed: dict[str, tuple[Order, Order, bool]] = {}
        self.deferred_replaces = 0

    # --- sending ----------------------------------------------------------------------------------

    def _ws_up(self) -> bool:
        return self.use_ws_api and self.client.connected.is_set()

    def place(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        """Write the order to the venue now (WS API; REST from a worker thread when the socket is
        down). Answers come through ``poll``."""
        self.orders[order.client_order_id] = order
        info = self.universe.symbols[order.symbol_id]
        tag = ("place", order.client_order_id)
        if self._ws_up():
            self._placing.add(order.client_order_id)
            client = self.client
            req_id = client.next_id()
            price = (format_trimmed(order.price, decimals_of(info.tick_units))
                     if order.order_type != OrderType.MARKET else None)
            tif = order.tif_name if order.order_type == OrderType.LIMIT else None
            client.send_frame(req_id, self._order_frames().place(
                req_id, order.symbol, order.side_name, order.type_name, tif, price,
                format_trimmed(order.qty, decimals_of(info.step_units)), order.client_order_id,
                client.timestamp_ms()), tag)
            order.sent_mono_ns = time.monotonic_ns()       # the frame is in the kernel's hands
            return []
        self.rest_fallbacks += 1
        self.client.rest_send("order.place", order_params(order, info), tag)
        return []

    def _order_frames(self) -> OrderFrames:
        """Templates for the session as it is now (logged on or not: a reconnect may change it)."""
        key = (self.client.logged_on, self.client.recv_window_ms)
        if self._frames is None or key != self._frames_key:
            self._frames = OrderFrames(self.client.signer, self.client.logged_on, self.client.recv_window_ms)
            self._frames_key = key
        return self._frames

    def cancel_replace(self, old: Order, new: Order, now_ns: int, allow_failure: bool = False) -> list[VenueUpdate]:
        """``order.cancelReplace``: the venue cancels ``old`` and places ``new`` in one request
        (REST ``POST /api/v3/order/cancelReplace`` while the socket is down). STOP_ON_FAILURE by
        default: ``new`` is not placed when ``old`` could not be cancelled (it filled, or is
        gone); ``allow_failure`` places it anyway (ALLOW_FAILURE). The answer comes through
        ``poll`` as the outcome of each half (``_on_replace``)."""
        self.orders[new.client_order_id] = new
        if old.client_order_id in self._placing:
            self._replace_when_placed[old.client_order_id] = (old, new, allow_failure)   # sent once the venue has it
            self.deferred_replaces += 1
            return []
        self._send_replace(old, new, allow_failure)
        return []

    def _send_replace(self, old: Order, new: Order, allow_failure: bool) -> None:
        info = self.universe.symbols[new.symbol_id]
        params = {**order_params(new, info), "cancelReplaceMode": ALLOW_FAILURE if allow_failure else STOP_ON_FAILURE,
                  "cancelOrigClientOrderId": old.client_order_id}
        tag = ("replace", old.client_order_id, new.client_order_id)
        if self._ws_up():
            self._placing.add(new.client_order_id)
            self.client.send("order.cancelReplace", params, tag=tag)
        else:
            self.rest_fallbacks += 1
            self.client.rest_send("order.cancelReplace", params, tag)
        new.sent_mono_ns = time.monotonic_ns()

    def quiet_prefix(self, recs, n: int) -> int:
        return n                 # the venue matches, not us: every record is quiet here

    def account_check(self) -> tuple[dict[str, int], dict[str, tuple[int, int]]] | None:
        return (self.start_balances, self.venue_balances) if self.start_balances else None

    def cancel(self, order: Order, now_ns: int) -> list[VenueUpdate]:
        if order.client_order_id in self._placing:
            self._cancel_when_placed.add(order.client_order_id)     # sent once the venue has it
            self.deferred_cancels += 1
            return []
        params = {"symbol": order.symbol, "origClientOrderId": order.client_order_id}
        tag = ("cancel", order.client_order_id)
        if self._ws_up():
            self.client.send("order.cancel", params, tag=tag)
        else:
            self.client.rest_send("order.cancel", params, tag)
        return []

    def before_md(self, recv_ns: int) -> list[VenueUpdate]:
        return []        # the venue matches, not us

    def on_book(self, symbol_id: int, now_ns: int) -> list[VenueUpdate]:
        return []

    def on_trade(self, symbol_id: int, price: int, qty: int, buyer_maker: bool, now_ns: int) -> list[VenueUpdate]:
        return []

    def wants_books(self) -> bool:
        return False

    # --- receiving ----------------------------------------------------------------------------------

    def poll(self, now_ns: int) -> list[VenueUpdate]:
        out: list[VenueUpdate] = []
        self.client.pump()
        if self._recheck:
            self._ask_again()
        inbox = self.client.inbox
        while inbox:
            kind, tag, doc = inbox.popleft()
            if kind == "response":
                out += self._on_response(tag, doc)
            elif kind == "event":
                if doc.get("e") == "executionReport":
                    out.append(update_from_execution_report(doc))
                elif doc.get("e") == "outboundAccountPosition":
                    for b in doc.get("B", ()):
                        self.venue_balances[b["a"]] = (parse_units(b["f"]), parse_units(b["l"]))
                elif doc.get("e") == "eventStreamTerminated":
                    log.warning("user data stream terminated by the venue")
            elif kind == "connected" and doc.get("connects", 1) > 1:
                log.warning("WS API reconnected: asking about every open order")
                for o in self.orders.values():
                    if o.is_open:
                        self._ask_status(o.client_order_id)
        return out

    def _on_response(self, tag: Any, doc: dict) -> list[VenueUpdate]:
        if tag is None:
            return []
        if tag[0] == "replace":
            return self._on_replace(tag[1], tag[2], doc)
        what, coid = tag
        if what == "place":
            self._placing.discard(coid)
        ups = self._answer(what, coid, doc)
        if coid in self._replace_when_placed and what in ("place", "status"):
            ups += self._replace_deferred(coid, what, doc)
        if coid in self._cancel_when_placed and what in ("place", "status"):
            self._cancel_deferred(coid, what, doc)
        return ups

    def _replace_deferred(self, coid: str, what: str, doc: dict) -> list[VenueUpdate]:
        """The answer about an order whose cancel-replace waited for it: send the cancel-replace
        if the order rests; else it is as if the venue had answered it: the new order is
        placed anyway (ALLOW_FAILURE) or not attempted (REJECTED -2022). A cancel asked for
        meanwhile (the kill switch) wins: the new order is not sent."""
        if "result" not in doc:
            err = doc.get("error", {})
            if what == "place" and execution_status_unknown(int(doc.get("status", 0)), int(err.get("code", 0))):
                return []                                  # asked about: the status answer decides
            if what == "status" and coid in self._recheck:
                return []                                  # perhaps still on its way: asked again later
        old, new, allow_failure = self._replace_when_placed.pop(coid)
        cancelled = coid in self._cancel_when_placed
        if not cancelled and "result" in doc and doc["result"].get("status") in ("NEW", "PARTIALLY_FILLED"):
            self._send_replace(old, new, allow_failure)
            return []
        if allow_failure and not cancelled:
            return self.place(new, time.monotonic_ns())
        log.warning("cancel-replace %s -> %s: %s is not resting: the new order is not sent", coid,
                    new.client_order_id, coid)
        return [VenueUpdate(new.client_order_id, REJECTED, reject_code=CANCEL_REPLACE_FAILED)]

    def _cancel_deferred(self, coid: str, what: str, doc: dict) -> None:
        """The answer about an order whose cancel waited for it: cancel it now if it rests."""
        if "result" in doc:
            if doc["result"].get("status") in ("NEW", "PARTIALLY_FILLED"):
                self.client.send("order.cancel", {"symbol": self.orders[coid].symbol, "origClientOrderId": coid},
                                 tag=("cancel", coid))
            self._cancel_when_placed.discard(coid)         # sent now, or filled / expired: nothing to cancel
            return
        err = doc.get("error", {})
        if what == "place" and execution_status_unknown(int(doc.get("status", 0)), int(err.get("code", 0))):
            return                                         # asked about: the status answer decides
        self._cancel_when_placed.discard(coid)             # refused or unknown to the venue: nothing rests

    def _answer(self, what: str, coid: str, doc: dict) -> list[VenueUpdate]:
        order = self.orders.get(coid)
        if "result" in doc:
            res = doc["result"]
            if what == "trades":
                status = order.status if order is not None else FILLED
                return updates_from_trades(coid, self._pending_status.pop(coid, status), res)
            ups = updates_from_result(coid, res)
            if what == "status" and parse_units(res.get("executedQty", "0")) > (order.cum_qty if order else 0):
                # fills we have not seen: fetch them (with commissions) before settling the status
                self._pending_status[coid] = res.get("status")
                self.client.send("myTrades", {"symbol": res["symbol"], "orderId": res["orderId"]},
                                 tag=("trades", coid))
                return [VenueUpdate(coid, PARTIALLY_FILLED, int(res["orderId"]))]
            return ups
        err = doc.get("error", {})
        code, status = int(err.get("code", 0)), int(doc.get("status", 0))
        if status in RATE_LIMITED or code in RATE_LIMIT_CODES:
            self._back_off(status, code, err, doc)
        if what == "place":
            if execution_status_unknown(status, code):
                self.unknown_outcomes += 1
                log.warning("order %s: outcome unknown (%s %s): asking the venue", coid, status, err.get("msg"))
                self._ask_status(coid)
                return []
            if code == INVALID_TIMESTAMP:
                self.client.resync_clock()
            log.warning("order %s rejected: %s %s", coid, code, err.get("msg"))
            return [VenueUpdate(coid, REJECTED, reject_code=code)]
        if what == "status" and code == NO_SUCH_ORDER:
            if order is not None and self.may_still_arrive(order):
                self._schedule_recheck(coid)      # still in flight, perhaps: ask again
                return []
            # it never reached the venue and no longer can: dead, and not sent again
            log.warning("order %s never reached the venue: marked dead, not resent", coid)
            return [VenueUpdate(coid, REJECTED, reject_code=code)]
        if what in ("cancel", "status", "trades"):
            if what == "cancel" and code == CANCEL_REJECTED:
                self._ask_status(coid)           # filled or gone meanwhile: find out which
            else:
                log.warning("%s %s failed: %s %s: asking again", what, coid, code, err.get("msg"))
                if what != "cancel":
                    self._schedule_recheck(coid)
        return []

    def _on_replace(self, old: str, new: str, doc: dict) -> list[VenueUpdate]:
        """An ``order.cancelReplace`` answer, as the outcome of each half. 200: both done. 409
        -2021 / 400 -2022 carry both halves in ``error.data``: a cancel that failed means ``old``
        filled or is gone (asked about); a new order that failed or was not attempted is
        REJECTED. Any other error (a filter, the symbol, a rate limit) changed nothing: ``old``
        rests as it was and ``new`` is REJECTED. An unknown outcome (5xx, -1006/-1007) asks the
        venue about both. The executionReports of both halves arrive too; ``OrderBook`` counts
        each status and fill once."""
        self._placing.discard(new)
        if "result" in doc:
            body = doc["result"]
        else:
            err = doc.get("error", {})
            code, status = int(err.get("code", 0)), int(doc.get("status", 0))
            body = err.get("data") or {}
            if not body:
                return self._replace_refused(old, new, doc, status, code, err)
        out: list[VenueUpdate] = []
        cancel = body.get("cancelResponse") or {}
        if "orderId" in cancel:
            # read as a status answer: fills it reports that we have not seen are fetched first
            out += self._answer("status", old, {"result": cancel})
        else:
            log.warning("cancel-replace of %s: cancel failed (%s): asking about it", old, cancel.get("msg"))
            self._ask_status(old)              # filled or gone: find out which
        placed = body.get("newOrderResponse") or {}
        if "orderId" in placed:
            out += updates_from_result(new, placed)
            placed_doc = {"result": placed}
        else:
            code = int(placed.get("code") or doc.get("error", {}).get("code") or 0)
            if code in RATE_LIMIT_CODES:
                self._back_off(RATE_LIMITED[0], code, placed, doc)
            log.warning("cancel-replace %s -> %s: new order %s (%s)", old, new,
                        body.get("newOrderResult", "FAILURE").lower(), placed.get("msg", "not attempted"))
            out.append(VenueUpdate(new, REJECTED, reject_code=code))
            placed_doc = {"status": 400, "error": {"code": code}}
        if new in self._cancel_when_placed:
            self._cancel_deferred(new, "place", placed_doc)
        return out

    def _replace_refused(self, old: str, new: str, doc: dict, status: int, code: int,
                         err: dict) -> list[VenueUpdate]:
        """A cancel-replace answered with a plain error: nothing was done, or nobody knows."""
        if execution_status_unknown(status, code):
            self.unknown_outcomes += 1
            log.warning("cancel-replace %s -> %s: outcome unknown (%s %s): asking the venue", old, new, status,
                        err.get("msg"))
            self._ask_status(old)
            self._ask_status(new)
            return []
        if status in RATE_LIMITED or code in RATE_LIMIT_CODES:
            self._back_off(status, code, err, doc)
        if code == INVALID_TIMESTAMP:
            self.client.resync_clock()
        log.warning("cancel-replace %s -> %s refused: %s %s", old, new, code, err.get("msg"))
        self._cancel_when_placed.discard(new)
        return [VenueUpdate(new, REJECTED, reject_code=code)]

    def may_still_arrive(self, order: Order) -> bool:
        """Whether ``order`` could still reach the venue: sent less than recvWindow (+ slack) ago.
        The send time is the one journaled, else when the executor read or the strategy made the
        intent; with none known, the window starts the first time we ask."""
        sent = order.sent_mono_ns or order.seen_mono_ns or order.created_mono_ns
        if not sent:
            sent = self._first_asked.setdefault(order.client_order_id, time.monotonic_ns())
        window_s = self.client.recv_window_ms / 1000 + CLOCK_SLACK_S
        return time.monotonic_ns() - sent < window_s * 1e9

    def _schedule_recheck(self, coid: str) -> None:
        _, attempts = self._recheck.get(coid, (0.0, 0))
        delay = min(RECHECK_FIRST_S * 2 ** attempts, RECHECK_MAX_S)
        self._recheck[coid] = (time.monotonic() + delay, attempts + 1)

    def _ask_again(self) -> None:
        """Orders whose state is not settled: ask the venue again when their time comes; those
        that ended meanwhile (an executionReport settled them) are dropped."""
        now = time.monotonic()
        for coid, (due, attempts) in list(self._recheck.items()):
            order = self.orders.get(coid)
            if order is None or not order.is_open:
                del self._recheck[coid]
            elif now >= due:
                self._recheck[coid] = (now + min(RECHECK_FIRST_S * 2 ** attempts, RECHECK_MAX_S), attempts + 1)
                self._ask_status(coid)

    def _back_off(self, status: int, code: int, err: dict, doc: dict) -> None:
        """Note the venue's retry time: ``error.data`` (WS API: ``retryAfter`` and ``serverTime``,
        both venue ms, so our clock offset does not matter) or REST's ``Retry-After`` seconds."""
        data = err.get("data") or {}
        if "retryAfter" in data and "serverTime" in data:
            wait_s = max(0.0, (int(data["retryAfter"]) - int(data["serverTime"])) / 1000)
        else:
            wait_s = retry_after_s(status if status in RATE_LIMITED else 429, doc.get("retry_after"))
        self.rate_limited += 1
        until = time.monotonic_ns() + int(wait_s * 1e9)
        if until > self.backoff_until_ns:
            self.backoff_until_ns = until
            log.warning("venue rate limit (%s %s %s): no new orders for %.1f s", status, code, err.get("msg"),
                        wait_s)

    def _ask_status(self, coid: str) -> None:
        order = self.orders.get(coid)
        if order is None:
            return
        self.status_queries += 1
        self.client.send("order.status", {"symbol": order.symbol, "origClientOrderId": coid}, tag=("status", coid))

    # --- the account -----------------------------------------------------------------------------

    def load_balances(self, timeout_s: float = 10.0) -> dict[str, int]:
        """The account's balances now (``account.status``): free + locked per asset, also kept as
        the start that the executor's own accounting is checked against."""
        doc = self.client.call("account.status", {"omitZeroBalances": "true"}, timeout_s)
        if "error" in doc:
            raise RuntimeError(f"cannot read the account's balances: {doc['error'].get('msg')}")
        for b in doc["result"]["balances"]:
            self.venue_balances[b["asset"]] = (parse_units(b["free"]), parse_units(b["locked"]))
        self.start_balances = {a: f + lk for a, (f, lk) in self.venue_balances.items()}
        return dict(self.start_balances)

    def balances(self) -> dict[str, dict[str, float]]:
        """{asset: {"free", "locked", "start"}} as the venue reports them (whole units)."""
        assets = sorted(set(self.venue_balances) | set(self.start_balances))
        return {a: {"free": self.venue_balances.get(a, (0, 0))[0] / ONE,
                    "locked": self.venue_balances.get(a, (0, 0))[1] / ONE,
                    "start": self.start_balances.get(a, 0) / ONE} for a in assets}

    # --- recovery ------------------------------------------------------------------------------------

    def reconcile(self, orders: list[Order], timeout_s: float = 10.0) -> list[VenueUpdate]:
        """Settle journaled orders whose outcome is unknown (blocking, before trading resumes), and
        cancel open orders of ours the journal does not know."""
        self.reconciles += 1
        out: list[VenueUpdate] = []
        for o in orders:
            self.orders[o.client_order_id] = o
            doc = self.client.call("order.status", {"symbol": o.symbol, "origClientOrderId": o.client_order_id},
                                   timeout_s)
            if "error" in doc:
                if int(doc["error"].get("code", 0)) == NO_SUCH_ORDER and not self.may_still_arrive(o):
                    log.warning("order %s never reached the venue: marked dead, not resent", o.client_order_id)
                    out.append(VenueUpdate(o.client_order_id, REJECTED, reject_code=NO_SUCH_ORDER))
                else:
                    log.warning("order %s: not settled after restart (%s): asking again", o.client_order_id,
                                doc["error"].get("msg"))
                    self._schedule_recheck(o.client_order_id)
                continue
            res = doc["result"]
            if parse_units(res.get("executedQty", "0")) > 0:
                trades = self.client.call("myTrades", {"symbol": o.symbol, "orderId": res["orderId"]}, timeout_s)
                out += updates_from_trades(o.client_order_id, res["status"], trades.get("result", []))
            out.append(VenueUpdate(o.client_order_id, res["status"], int(res["orderId"])))
        known = {o.client_order_id for o in orders} | set(self.orders)
        opened = self.client.call("openOrders.status", {}, timeout_s)
        for res in opened.get("result", []):
            coid = res["clientOrderId"]
            if coid not in known and coid.startswith(OUR_PREFIXES):
                log.warning("open order %s %s is not in the journal: cancelling it", coid, res["symbol"])
                self.client.call("order.cancel", {"symbol": res["symbol"], "origClientOrderId": coid}, timeout_s)
        return out

    def stats(self) -> dict:
        return {"ws_connects": self.client.connects, "rest_fallbacks": self.rest_fallbacks,
                "logged_on": self.client.logged_on,
                "unknown_outcomes": self.unknown_outcomes, "status_queries": self.status_queries,
                "deferred_cancels": self.deferred_cancels, "deferred_replaces": self.deferred_replaces,
                "rate_limited": self.rate_limited,
                "clock_offset_ms": round(self.client.clock_offset_ms, 1)}

    def close(self, sweep_timeout_s: float = 2.0) -> None:
        """Before the connection goes, a last guard: ask the venue for open orders of ours (client
        ids ``ct``/``uw``) and cancel them. An order whose answer never came (in flight when the
        executor cancelled, or its answer lost) would otherwise rest at the venue after we stop."""
        if self.client.connected.is_set():
            try:
                opened = self.client.call("openOrders.status", {}, sweep_timeout_s)
                for res in opened.get("result", []):
                    coid = res["clientOrderId"]
                    if coid.startswith(OUR_PREFIXES):
                        log.warning("order %s %s is still open at the venue: cancelling it", coid, res["symbol"])
                        answer = self.client.call("order.cancel", {"symbol": res["symbol"], "origClientOrderId": coid},
                                                  sweep_timeout_s)
                        if "error" in answer:
                            log.error("order %s: cancel refused while stopping: %s", coid, answer["error"])
            except (TimeoutError, OSError, RuntimeError) as exc:
                log.error("could not ask the venue for open orders while stopping: %s", exc)
        self.client.close()
