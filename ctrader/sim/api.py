"""The simulator's endpoints, independent of transport: REST and the WS API both call these.

Each endpoint is an ``Endpoint``: its handler, its request weight (a number or a function of the
parameters, as in Binance's weight tables) and whether it is SIGNED or places an order. Handlers
read their parameters, call ``params.check_all_read()`` before changing anything (an unknown
parameter is -1104), and return the JSON-able result. Errors are ``BinanceError``.

Order placement runs Binance's checks in Binance's order: parameters (-11xx), symbol trading and
order-type permissions (-2010), filters (-1013), the unfilled-order count (429 -1015), then the
matching engine (-2010 balance, duplicate id, post-only would take). A cancel-replace runs the
same checks and the same cancel and placement code (``ctrader.sim.cancel_replace``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import orjson

from ctrader.sim import render
from ctrader.sim.accounts import Account, AccountRegistry
from ctrader.sim.cancel_replace import DO_NOTHING, outcome, parse_cancel_replace
from ctrader.sim.clock import SimClock
from ctrader.sim.faults import Faults
from ctrader.sim.matching import MatchingEngine
from ctrader.sim.orders import OrderRequest
from ctrader.sim.params import Params, cancel_restriction, parse_order
from ctrader.sim.ratelimit import RateLimiter
from ctrader.sim.universe import Universe
from ctrader.venue import errors
from ctrader.venue.decimals import decimals_of, format_trimmed, format_units
from ctrader.venue.filters import OrderCheck


@dataclass
class Call:
    params: Params
    ip: str
    account: Account | None = None


@dataclass(frozen=True)
class Endpoint:
    handler: Callable[[Call], Any]
    weight: int | Callable[[Params], int]
    signed: bool = False
    places_order: bool = False     # ORDERS limit, weight 0 on success, order delay/timeout faults

    def weight_of(self, params: Params) -> int:
        return self.weight(params) if callable(self.weight) else self.weight


def depth_weight(p: Params) -> int:
    try:
        limit = int(p.raw("limit") or 100)
    except ValueError:
        return 5
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


class SimApi:
    def __init__(self, universe: Universe, engine: MatchingEngine, accounts: AccountRegistry, clock: SimClock,
                 limiter: RateLimiter, faults: Faults) -> None:
        self.universe = universe
        self.engine = engine
        self.accounts = accounts
        self.clock = clock
        self.limiter = limiter
        self.faults = faults
        self.specs = universe.by_name

    def endpoints(self) -> dict[str, Endpoint]:
        """Endpoints by name; REST and the WS API map their paths/methods onto these names."""
        return {
            "ping": Endpoint(self.ping, 1),
            "time": Endpoint(self.time, 1),
            "exchangeInfo": Endpoint(self.exchange_info, 20),
            "depth": Endpoint(self.depth, depth_weight),
            "avgPrice": Endpoint(self.avg_price, 2),
            "ticker.book": Endpoint(self.book_ticker, lambda p: 2 if "symbol" in p else 4),
            "account": Endpoint(self.account, 20, signed=True),
            "order.place": Endpoint(self.new_order, 1, signed=True, places_order=True),
            "order.test": Endpoint(self.test_order, lambda p: 20 if p.raw("computeCommissionRates") == "true" else 1,
                                   signed=True),
            "order.status": Endpoint(self.query_order, 4, signed=True),
            "order.cancel": Endpoint(self.cancel_order, 1, signed=True),
            "order.cancelReplace": Endpoint(self.cancel_replace, 1, signed=True, places_order=True),
            "openOrders.status": Endpoint(self.open_orders, lambda p: 6 if "symbol" in p else 80, signed=True),
            "openOrders.cancelAll": Endpoint(self.cancel_all, 1, signed=True),
            "myTrades": Endpoint(self.my_trades, lambda p: 5 if "orderId" in p else 20, signed=True),
            "tradeFee": Endpoint(self.trade_fee, 1, signed=True),
        }

    def _symbol(self, p: Params, required: bool = True) -> str | None:
        symbol = p.text("symbol", required)
        if symbol is not None and symbol not in self.specs:
            raise errors.bad_symbol()
        return symbol

    # --- market data ----------------------------------------------------------------------------

    def ping(self, call: Call) -> dict:
        call.params.check_all_read()
        return {}

    def time(self, call: Call) -> dict:
        call.params.check_all_read()
        return {"serverTime": self.clock.server_ms()}

    def exchange_info(self, call: Call) -> dict:
        p = call.params
        symbol = self._symbol(p, required=False)
        names_text = p.text("symbols")
        p.read("permissions", "showPermissionSets", "symbolStatus")
        p.check_all_read()
        doc = dict(self.universe.exchange_info, serverTime=self.clock.server_ms())
        wanted = None
        if symbol is not None:
            wanted = [symbol]
        elif names_text is not None:
            try:
                wanted = orjson.loads(names_text)
            except orjson.JSONDecodeError:
                raise errors.BinanceError(-1135, "JSON sent for parameter 'symbols' is not valid") from None
            if not isinstance(wanted, list) or any(s not in self.specs for s in wanted):
                raise errors.bad_symbol()
        if wanted is not None:
            doc["symbols"] = [s for s in doc["symbols"] if s["symbol"] in set(wanted)]
        return doc

    def depth(self, call: Call) -> dict:
        p = call.params
        symbol = self._symbol(p)
        limit = p.integer("limit")
        p.read("symbolStatus")
        p.check_all_read()
        limit = 100 if limit is None else limit
        if limit < 1:
            raise errors.illegal_chars("limit", "^[1-9][0-9]{0,3}$")
        update_id, bids, asks = self.engine.books[symbol].snapshot(min(limit, 5000))
        return {"lastUpdateId": update_id,
                "bids": [[format_units(px), format_units(q)] for px, q in bids],
                "asks": [[format_units(px), format_units(q)] for px, q in asks]}

    def avg_price(self, call: Call) -> dict:
        symbol = self._symbol(call.params)
        call.params.check_all_read()
        stats = self.engine.stats[symbol]
        price = self.engine.reference_price(symbol) or 0
        return {"mins": self.specs[symbol].rules.avg_price_mins, "price": format_units(price),
                "closeTime": stats.last_time}

    def book_ticker(self, call: Call) -> Any:
        symbol = self._symbol(call.params, required=False)
        call.params.check_all_read()

        def one(name: str) -> dict:
            bid, bid_qty, ask, ask_qty = self.engine.books[name].top()
            return {"symbol": name, "bidPrice": format_units(bid), "bidQty": format_units(bid_qty),
                    "askPrice": format_units(ask), "askQty": format_units(ask_qty)}
        return one(symbol) if symbol else [one(s) for s in self.specs]

    # --- account and orders ---------------------------------------------------------------------

    def account(self, call: Call) -> dict:
        p = call.params
        omit_zero = p.boolean("omitZeroBalances")
        p.check_all_read()
        return render.account_info(call.account, self.universe.assets, bool(omit_zero))

    def trade_fee(self, call: Call) -> list:
        """``GET /sapi/v1/asset/tradeFee``: the account's maker/taker rates per symbol ("0.001")."""
        symbol = self._symbol(call.params, required=False)
        call.params.check_all_read()
        a = call.account
        maker, taker = format_trimmed(a.maker_rate, decimals_of(a.maker_rate)), \
            format_trimmed(a.taker_rate, decimals_of(a.taker_rate))
        names = [symbol] if symbol else list(self.specs)
        return [{"symbol": name, "makerCommission": maker, "takerCommission": taker} for name in names]

    def _validate(self, call: Call, test: bool):
        p = call.params
        req = parse_order(p, self.specs)
        compute_rates = p.boolean("computeCommissionRates") if test else None
        p.check_all_read()
        self._check_new_order(call.account, req)
        return req, compute_rates

    def _check_new_order(self, account: Account, req: OrderRequest) -> None:
        """What Binance checks before the matching engine: trading status, order types, filters."""
        rules = self.specs[req.symbol].rules
        if rules.status != "TRADING":
            raise errors.new_order_rejected(errors.MARKET_CLOSED)
        if req.type not in rules.order_types:
            raise errors.new_order_rejected(errors.ORDER_TYPE_UNSUPPORTED.get(req.type, errors.UNSUPPORTED_COMBINATION))
        if req.quote_order_qty is not None and not rules.quote_order_qty_market_allowed:
            raise errors.new_order_rejected(errors.QUOTE_QTY_UNSUPPORTED)
        rules.check(OrderCheck(
            side=req.side, order_type=req.type, price=req.price, quantity=req.quantity,
            quote_order_qty=req.quote_order_qty, reference_price=self.engine.reference_price(req.symbol),
            open_orders=len(self.engine.open_orders_of(account, req.symbol)),
            exchange_open_orders=len(self.engine.open_orders_of(account))))

    def test_order(self, call: Call) -> dict:
        _, compute_rates = self._validate(call, test=True)
        if not compute_rates:
            return {}
        a = call.account
        return {"standardCommissionForOrder": {"maker": format_units(a.maker_rate), "taker": format_units(a.taker_rate)},
                "taxCommissionForOrder": {"maker": format_units(0), "taker": format_units(0)},
                "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB",
                             "discount": format_units(0)}}

    def new_order(self, call: Call) -> dict:
        req, _ = self._validate(call, test=False)
        account = call.account
        self.limiter.check_orders(account)
        self.limiter.count_order(account)
        try:
            return self._place(account, req)
        except errors.BinanceError:
            self.limiter.order_filled(account)      # not accepted: it never counted
            raise

    def _place(self, account: Account, req: OrderRequest) -> dict:
        """The matching engine's part of a new order (after every check), or a scripted reject."""
        reject = self.faults.order_reject()
        if reject is not None:
            raise errors.new_order_rejected(reject)
        order, fills = self.engine.place(account, req)
        return render.order_response(order, fills, req.resp_type)

    def _order_ref(self, p: Params) -> tuple[str, int | None, str | None]:
        symbol = self._symbol(p)
        order_id = p.integer("orderId")
        client_id = p.text("origClientOrderId")
        if order_id is None and client_id is None:
            raise errors.one_of_mandatory("origClientOrderId", "orderId")
        return symbol, order_id, client_id

    def query_order(self, call: Call) -> dict:
        symbol, order_id, client_id = self._order_ref(call.params)
        call.params.check_all_read()
        return render.order_query(self.engine.query(call.account, symbol, order_id, client_id))

    def cancel_order(self, call: Call) -> dict:
        p = call.params
        symbol, order_id, client_id = self._order_ref(p)
        new_client_id = p.text("newClientOrderId")
        restriction = cancel_restriction(p)
        p.check_all_read()
        return self._cancel(call.account, symbol, order_id, client_id, new_client_id, restriction)

    def _cancel(self, account: Account, symbol: str, order_id: int | None, client_id: str | None,
                new_client_id: str | None, restriction: str | None) -> dict:
        """Cancel one order (-2011 if it is not open or its status is not the one ``restriction`` wants)."""
        if restriction is not None:
            order = self.engine.find(account, symbol, order_id, client_id)
            wanted = "NEW" if restriction == "ONLY_NEW" else "PARTIALLY_FILLED"
            if order is not None and order.is_open and order.status != wanted:
                raise errors.cancel_rejected("Order was not canceled due to cancel restrictions.")
        order, cancel_id = self.engine.cancel(account, symbol, order_id, client_id, new_client_id)
        return render.order_canceled(order, cancel_id)

    def cancel_replace(self, call: Call) -> dict:
        """Cancel an order and place a new one on its symbol (``ctrader.sim.cancel_replace``)."""
        p, account = call.params, call.account
        cr = parse_cancel_replace(p, self.specs)
        p.check_all_read()
        req = cr.order
        if not self.specs[req.symbol].rules.cancel_replace_allowed:
            raise errors.new_order_rejected(errors.CANCEL_REPLACE_UNSUPPORTED)
        self._check_new_order(account, req)        # filters first: a filter failure changes nothing
        over_limit: errors.BinanceError | None = None
        try:
            self.limiter.check_orders(account)
        except errors.BinanceError as exc:
            if cr.rate_limit_mode == DO_NOTHING:
                raise                                # nothing is cancelled
            over_limit = exc                         # CANCEL_ONLY: the cancel goes ahead alone
        else:
            self.limiter.count_order(account)      # one order, even if the new one is not attempted
        cancel: dict | errors.BinanceError
        try:
            cancel = self._cancel(account, req.symbol, cr.cancel_order_id, cr.cancel_client_id,
                                  cr.cancel_new_client_id, cr.cancel_restriction)
        except errors.BinanceError as exc:
            cancel = exc
        placed: dict | errors.BinanceError | None = None
        if not isinstance(cancel, errors.BinanceError) or not cr.stop_on_failure:
            if over_limit is not None:
                placed = over_limit
            else:
                try:
                    placed = self._place(account, req)
                except errors.BinanceError as exc:
                    placed = exc
        return outcome(cancel, placed)

    def cancel_all(self, call: Call) -> list:
        symbol = self._symbol(call.params)
        call.params.check_all_read()
        orders = self.engine.open_orders_of(call.account, symbol)
        if not orders:
            raise errors.cancel_rejected()
        out = []
        for order in orders:
            order, cancel_id = self.engine.cancel(call.account, symbol, order.order_id, None)
            out.append(render.order_canceled(order, cancel_id))
        return out

    def open_orders(self, call: Call) -> list:
        symbol = self._symbol(call.params, required=False)
        call.params.check_all_read()
        return [render.order_query(o) for o in self.engine.open_orders_of(call.account, symbol)]

    def my_trades(self, call: Call) -> list:
        p = call.params
        symbol = self._symbol(p)
        order_id = p.integer("orderId")
        start, end = p.integer("startTime"), p.integer("endTime")
        from_id = p.integer("fromId")
        limit = p.integer("limit") or 500
        p.check_all_read()
        records = self.engine.trades_of(call.account, symbol)
        if order_id is not None:
            records = [r for r in records if r.order.order_id == order_id]
        if from_id is not None:
            records = [r for r in records if r.fill.trade_id >= from_id]
        if start is not None:
            records = [r for r in records if r.fill.time >= start]
        if end is not None:
            records = [r for r in records if r.fill.time <= end]
        records = records[:min(limit, 1000)] if from_id is not None else records[-min(limit, 1000):]
        return [render.my_trade(r) for r in records]
