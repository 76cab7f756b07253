"""exchangeInfo symbol filters: parsed once into exact integers, checked as Binance checks them.

``SymbolRules.from_exchange_info(symbol_doc)`` reads one entry of ``exchangeInfo["symbols"]``;
``rules.check(OrderCheck(...))`` raises ``BinanceError(-1013, "Filter failure: <TYPE>")`` for the
first filter (in exchangeInfo order) that the order breaks, exactly the error a client gets from
Binance. Every comparison is integer arithmetic on 1e-8 units (see ``decimals``): ``price %
tickSize == 0`` is decided on integers, never on floats.

The engine uses the same object to round what it sends (``round_price``, ``round_qty``) so that
an order the strategy builds passes the venue's filters by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ctrader.venue import errors
from ctrader.venue.decimals import ONE, parse_units, to_step


@dataclass(frozen=True)
class OrderCheck:
    """What the filters look at for one new order (prices and quantities in 1e-8 units)."""
    side: str                          # BUY | SELL
    order_type: str                    # LIMIT | LIMIT_MAKER | MARKET | ...
    price: int | None = None           # None for MARKET
    quantity: int | None = None        # None for a MARKET order by quoteOrderQty
    quote_order_qty: int | None = None
    reference_price: int | None = None  # average/reference price for PERCENT_PRICE and market notional
    open_orders: int = 0               # the account's open orders on this symbol (before this one)
    exchange_open_orders: int = 0      # the account's open orders on all symbols


def _units(doc: Mapping, key: str) -> int:
    return parse_units(str(doc[key]))


@dataclass(frozen=True)
class Filter:
    filter_type: str

    def passes(self, order: OrderCheck) -> bool:  # pragma: no cover - overridden
        return True


@dataclass(frozen=True)
class PriceFilter(Filter):
    min_price: int
    max_price: int
    tick_size: int

    def passes(self, o: OrderCheck) -> bool:
        if o.price is None:
            return True
        # Each rule is disabled when its value is 0 (filters.md).
        return ((not self.min_price or o.price >= self.min_price)
                and (not self.max_price or o.price <= self.max_price)
                and (not self.tick_size or o.price % self.tick_size == 0))


@dataclass(frozen=True)
class LotSize(Filter):
    min_qty: int
    max_qty: int
    step_size: int
    market_only: bool = False   # MARKET_LOT_SIZE applies to MARKET orders only

    def passes(self, o: OrderCheck) -> bool:
        if o.quantity is None or (self.market_only and o.order_type != "MARKET"):
            return True
        # MARKET_LOT_SIZE ships with stepSize/maxQty 0 on many symbols: 0 disables the rule.
        return (o.quantity >= self.min_qty
                and (not self.max_qty or o.quantity <= self.max_qty)
                and (not self.step_size or o.quantity % self.step_size == 0))


@dataclass(frozen=True)
class Notional(Filter):
    """NOTIONAL and the older MIN_NOTIONAL (which has only a minimum and ``applyToMarket``)."""
    min_notional: int
    max_notional: int            # 0 = no maximum
    apply_min_to_market: bool
    apply_max_to_market: bool
    avg_price_mins: int

    def passes(self, o: OrderCheck) -> bool:
        market = o.order_type == "MARKET"
        if market and not (self.apply_min_to_market or self.apply_max_to_market):
            return True
        notional = self._notional_scaled(o)
        if notional is None:
            return True
        if (not market or self.apply_min_to_market) and notional < self.min_notional * ONE:
            return False
        if self.max_notional and (not market or self.apply_max_to_market) and notional > self.max_notional * ONE:
            return False
        return True

    @staticmethod
    def _notional_scaled(o: OrderCheck) -> int | None:
        """price * quantity at scale 1e-16 (exact), or None when it cannot be known yet."""
        if o.quote_order_qty is not None:
            return o.quote_order_qty * ONE
        price = o.price if o.price is not None else o.reference_price
        if price is None or o.quantity is None:
            return None
        return price * o.quantity


@dataclass(frozen=True)
class PercentPriceBySide(Filter):
    """PERCENT_PRICE_BY_SIDE; PERCENT_PRICE is the same with one pair of multipliers for both sides."""
    bid_up: int
    bid_down: int
    ask_up: int
    ask_down: int
    avg_price_mins: int

    def passes(self, o: OrderCheck) -> bool:
        if o.price is None or o.reference_price is None:
            return True
        up, down = (self.bid_up, self.bid_down) if o.side == "BUY" else (self.ask_up, self.ask_down)
        scaled = o.price * ONE
        return o.reference_price * down <= scaled <= o.reference_price * up


@dataclass(frozen=True)
class MaxNumOrders(Filter):
    max_num_orders: int
    exchange_wide: bool = False   # EXCHANGE_MAX_NUM_ORDERS counts all symbols

    def passes(self, o: OrderCheck) -> bool:
        count = o.exchange_open_orders if self.exchange_wide else o.open_orders
        return count + 1 <= self.max_num_orders


@dataclass(frozen=True)
class UncheckedFilter(Filter):
    """A filter this module reads but does not evaluate: it only constrains order kinds that the
    simulator refuses before filters run (iceberg, trailing-stop, algo orders)."""
    doc: Mapping[str, Any] = field(default_factory=dict)


def parse_filter(doc: Mapping[str, Any]) -> Filter:
    kind = doc["filterType"]
    if kind == "PRICE_FILTER":
        return PriceFilter(kind, _units(doc, "minPrice"), _units(doc, "maxPrice"), _units(doc, "tickSize"))
    if kind in ("LOT_SIZE", "MARKET_LOT_SIZE"):
        return LotSize(kind, _units(doc, "minQty"), _units(doc, "maxQty"), _units(doc, "stepSize"),
                       market_only=kind == "MARKET_LOT_SIZE")
    if kind == "NOTIONAL":
        return Notional(kind, _units(doc, "minNotional"), _units(doc, "maxNotional"),
                        bool(doc.get("applyMinToMarket", True)), bool(doc.get("applyMaxToMarket", False)),
                        int(doc.get("avgPriceMins", 5)))
    if kind == "MIN_NOTIONAL":
        return Notional(kind, _units(doc, "minNotional"), 0, bool(doc.get("applyToMarket", True)), False,
                        int(doc.get("avgPriceMins", 5)))
    if kind == "PERCENT_PRICE_BY_SIDE":
        return PercentPriceBySide(kind, _units(doc, "bidMultiplierUp"), _units(doc, "bidMultiplierDown"),
                                  _units(doc, "askMultiplierUp"), _units(doc, "askMultiplierDown"),
                                  int(doc.get("avgPriceMins", 5)))
    if kind == "PERCENT_PRICE":
        up, down = _units(doc, "multiplierUp"), _units(doc, "multiplierDown")
        return PercentPriceBySide(kind, up, down, up, down, int(doc.get("avgPriceMins", 5)))
    if kind == "MAX_NUM_ORDERS":
        return MaxNumOrders(kind, int(doc["maxNumOrders"]))
    if kind == "EXCHANGE_MAX_NUM_ORDERS":
        return MaxNumOrders(kind, int(doc["maxNumOrders"]), exchange_wide=True)
    return UncheckedFilter(kind, dict(doc))


@dataclass(frozen=True)
class SymbolRules:
    """One symbol's trading rules from exchangeInfo, ready for exact checks and rounding."""
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    base_precision: int
    quote_precision: int
    order_types: frozenset[str]
    iceberg_allowed: bool
    quote_order_qty_market_allowed: bool
    filters: tuple[Filter, ...]
    exchange_filters: tuple[Filter, ...] = ()
    cancel_replace_allowed: bool = False      # order.cancelReplace / POST /api/v3/order/cancelReplace

    @classmethod
    def from_exchange_info(cls, doc: Mapping[str, Any],
                           exchange_filters: tuple[Filter, ...] = ()) -> "SymbolRules":
        return cls(
            symbol=doc["symbol"], status=doc.get("status", "TRADING"),
            base_asset=doc["baseAsset"], quote_asset=doc["quoteAsset"],
            base_precision=int(doc.get("baseAssetPrecision", 8)),
            quote_precision=int(doc.get("quoteAssetPrecision", doc.get("quotePrecision", 8))),
            order_types=frozenset(doc.get("orderTypes", ())),
            iceberg_allowed=bool(doc.get("icebergAllowed", False)),
            quote_order_qty_market_allowed=bool(doc.get("quoteOrderQtyMarketAllowed", False)),
            filters=tuple(parse_filter(f) for f in doc.get("filters", ())),
            exchange_filters=exchange_filters,
            cancel_replace_allowed=bool(doc.get("cancelReplaceAllowed", False)),
        )

    def find(self, filter_type: str) -> Filter | None:
        for f in self.filters:
            if f.filter_type == filter_type:
                return f
        return None

    @property
    def tick_size(self) -> int:
        f = self.find("PRICE_FILTER")
        return f.tick_size if isinstance(f, PriceFilter) else 0

    @property
    def step_size(self) -> int:
        f = self.find("LOT_SIZE")
        return f.step_size if isinstance(f, LotSize) else 0

    @property
    def min_qty(self) -> int:
        f = self.find("LOT_SIZE")
        return f.min_qty if isinstance(f, LotSize) else 0

    @property
    def min_notional(self) -> int:
        f = self.find("NOTIONAL") or self.find("MIN_NOTIONAL")
        return f.min_notional if isinstance(f, Notional) else 0

    @property
    def avg_price_mins(self) -> int:
        for f in self.filters:
            if isinstance(f, (Notional, PercentPriceBySide)):
                return f.avg_price_mins
        return 5

    def check(self, order: OrderCheck) -> None:
        """Raise Binance's -1013 "Filter failure: X" for the first filter ``order`` breaks."""
        for f in self.filters + self.exchange_filters:
            if not f.passes(order):
                raise errors.filter_failure(f.filter_type)

    def round_price(self, price: float, mode: str = "nearest") -> int:
        """A float price on this symbol's tick (mode floor | ceil | nearest), in units."""
        return to_step(price, self.tick_size or 1, mode)

    def round_qty(self, qty: float, mode: str = "floor") -> int:
        """A float quantity on this symbol's step (floor by default: never more than intended)."""
        return to_step(qty, self.step_size or 1, mode)


def parse_exchange_info(doc: Mapping[str, Any]) -> dict[str, SymbolRules]:
    """All symbols of an exchangeInfo document, by symbol name."""
    exchange_filters = tuple(parse_filter(f) for f in doc.get("exchangeFilters", ()))
    return {s["symbol"]: SymbolRules.from_exchange_info(s, exchange_filters) for s in doc.get("symbols", ())}
