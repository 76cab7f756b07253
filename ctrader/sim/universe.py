"""The simulator's universe: which symbols exist, their exchangeInfo entries, fair-value anchors.

By default a built-in Binance-like universe: 11 assets and 35 symbols quoted in USDT, BTC, ETH,
BNB and FDUSD, forming dozens of triangles, with tick and step sizes, min notionals and price
bands like Binance's own. Or a saved ``/api/v3/exchangeInfo`` document (``sim.exchange_info_file``):
its symbols are served as they are, and each asset gets a starting fair value from the built-in
table, from ``sim.market.asset_prices``, or failing both from its tick size (Binance sizes ticks at
roughly 1e-4..1e-5 of the price, so tick x 30,000 is the right order of magnitude).

Either way the ``rateLimits`` advertised are the ones the simulator enforces (``sim.limits``).
"""
from __future__ import annotations

import itertools
import json
import math
import pathlib
from dataclasses import dataclass, replace

from ctrader.config.schema import SimConfig, SimLimitsConfig
from ctrader.venue.decimals import format_units, parse_units, units_to_float
from ctrader.venue.filters import SymbolRules, parse_exchange_info

# Starting fair values in USDT and each asset's volatility relative to sim.market.volatility_bps.
ASSETS: dict[str, tuple[float, float]] = {
    "USDT": (1.0, 0.0),     # the numeraire
    "FDUSD": (1.0, 0.02),   # a stablecoin: almost no drift against USDT
    "BTC": (60000.0, 1.0),
    "ETH": (3000.0, 1.2),
    "BNB": (600.0, 1.1),
    "SOL": (150.0, 1.5),
    "XRP": (0.6, 1.4),
    "ADA": (0.45, 1.4),
    "DOGE": (0.15, 1.6),
    "LTC": (80.0, 1.3),
    "TRX": (0.12, 1.2),
}

# Liquidity tiers: spread and level spacing in basis points, USDT notional of a typical level,
# and the share of sim.market.{book_events,trades}_per_s a symbol of this tier gets.
TIERS: dict[str, tuple[float, float, float, float]] = {
    "A": (0.4, 0.3, 40_000.0, 1.0),
    "B": (2.0, 1.5, 8_000.0, 0.5),
    "C": (6.0, 4.0, 1_500.0, 0.25),
}

# symbol: (base, quote, tickSize, stepSize, tier) -- close to Binance's own filters.
SYMBOLS: dict[str, tuple[str, str, str, str, str]] = {
    "BTCUSDT": ("BTC", "USDT", "0.01", "0.00001", "A"),
    "ETHUSDT": ("ETH", "USDT", "0.01", "0.0001", "A"),
    "BNBUSDT": ("BNB", "USDT", "0.01", "0.001", "A"),
    "SOLUSDT": ("SOL", "USDT", "0.01", "0.001", "A"),
    "XRPUSDT": ("XRP", "USDT", "0.0001", "0.1", "B"),
    "ADAUSDT": ("ADA", "USDT", "0.0001", "0.1", "B"),
    "DOGEUSDT": ("DOGE", "USDT", "0.00001", "1", "B"),
    "LTCUSDT": ("LTC", "USDT", "0.01", "0.001", "B"),
    "TRXUSDT": ("TRX", "USDT", "0.0001", "0.1", "B"),
    "FDUSDUSDT": ("FDUSD", "USDT", "0.0001", "1", "A"),
    "ETHBTC": ("ETH", "BTC", "0.00001", "0.0001", "A"),
    "BNBBTC": ("BNB", "BTC", "0.000001", "0.001", "B"),
    "SOLBTC": ("SOL", "BTC", "0.0000001", "0.001", "B"),
    "XRPBTC": ("XRP", "BTC", "0.00000001", "1", "C"),
    "ADABTC": ("ADA", "BTC", "0.00000001", "0.1", "C"),
    "DOGEBTC": ("DOGE", "BTC", "0.00000001", "1", "C"),
    "LTCBTC": ("LTC", "BTC", "0.000001", "0.001", "B"),
    "TRXBTC": ("TRX", "BTC", "0.00000001", "1", "C"),
    "BNBETH": ("BNB", "ETH", "0.00001", "0.001", "B"),
    "SOLETH": ("SOL", "ETH", "0.00001", "0.001", "C"),
    "XRPETH": ("XRP", "ETH", "0.0000001", "1", "C"),
    "ADAETH": ("ADA", "ETH", "0.0000001", "0.1", "C"),
    "LTCETH": ("LTC", "ETH", "0.00001", "0.001", "C"),
    "TRXETH": ("TRX", "ETH", "0.00000001", "1", "C"),
    "SOLBNB": ("SOL", "BNB", "0.0001", "0.001", "C"),
    "XRPBNB": ("XRP", "BNB", "0.0000001", "0.1", "C"),
    "ADABNB": ("ADA", "BNB", "0.0000001", "0.1", "C"),
    "LTCBNB": ("LTC", "BNB", "0.0001", "0.001", "C"),
    "TRXBNB": ("TRX", "BNB", "0.0000001", "1", "C"),
    "BTCFDUSD": ("BTC", "FDUSD", "0.01", "0.00001", "A"),
    "ETHFDUSD": ("ETH", "FDUSD", "0.01", "0.0001", "A"),
    "BNBFDUSD": ("BNB", "FDUSD", "0.01", "0.001", "B"),
    "SOLFDUSD": ("SOL", "FDUSD", "0.01", "0.001", "B"),
    "XRPFDUSD": ("XRP", "FDUSD", "0.0001", "0.1", "B"),
    "DOGEFDUSD": ("DOGE", "FDUSD", "0.00001", "1", "C"),
}

# Binance's min notional per quote asset (NOTIONAL.minNotional), in the quote asset.
MIN_NOTIONAL = {"USDT": "5", "FDUSD": "5", "BTC": "0.0001", "ETH": "0.001", "BNB": "0.01"}
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]


@dataclass(frozen=True)
class SymbolSpec:
    """What the market model needs to know about one symbol."""
    symbol: str
    base: str
    quote: str
    rules: SymbolRules
    tier: str

    @property
    def tick(self) -> int:
        return self.rules.tick_size or 1

    @property
    def step(self) -> int:
        return self.rules.step_size or 1


class Universe:
    """The served exchangeInfo document and the symbols and assets the market model animates."""

    def __init__(self, exchange_info: dict, symbols: tuple[SymbolSpec, ...], asset_prices: dict[str, float],
                 asset_vol: dict[str, float]) -> None:
        self.exchange_info = exchange_info   # served as is; serverTime is filled per request
        self.symbols = symbols
        self.asset_prices = asset_prices     # starting fair values in USDT
        self.asset_vol = asset_vol           # volatility of each asset relative to the model's
        self.by_name = {s.symbol: s for s in symbols}

    @property
    def assets(self) -> list[str]:
        return sorted(self.asset_prices)

    def allow_cancel_replace(self, symbol: str, allowed: bool) -> None:
        """Turn ``cancelReplaceAllowed`` on or off for ``symbol``: in the exchangeInfo served and
        in the rules the endpoints check (off: "Order cancel-replace is not supported for this
        symbol."). ``by_name`` is changed in place: the engine and the endpoints share it."""
        spec = self.by_name[symbol]
        self.by_name[symbol] = replace(spec, rules=replace(spec.rules, cancel_replace_allowed=allowed))
        self.symbols = tuple(self.by_name[s.symbol] for s in self.symbols)
        for doc in self.exchange_info["symbols"]:
            if doc["symbol"] == symbol:
                doc["cancelReplaceAllowed"] = allowed

    def triangles(self) -> list[tuple[str, str, str]]:
        """Every set of three symbols whose assets form a cycle (A/B, B/C, A/C)."""
        pair = {frozenset((s.base, s.quote)): s.symbol for s in self.symbols}
        found = []
        for a, b, c in itertools.combinations(self.assets, 3):
            legs = [pair.get(frozenset(p)) for p in ((a, b), (b, c), (a, c))]
            if all(legs):
                found.append(tuple(sorted(legs)))
        return sorted(found)


def rate_limits(limits: SimLimitsConfig) -> list[dict]:
    """The exchangeInfo ``rateLimits`` array for the limits the simulator enforces."""
    return [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": limits.request_weight_per_minute},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": limits.orders_per_10s},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": limits.orders_per_day},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
         "limit": limits.raw_requests_per_5m},
    ]


def _fmt(text: str) -> str:
    return format_units(parse_units(text))


def _max_qty(price_usdt: float) -> str:
    # Binance caps LOT_SIZE.maxQty around 9,000 BTC / 9,000,000 DOGE: about $1e8-1e9 per order.
    return _fmt(str(9 * 10 ** max(3, round(math.log10(1e8 / price_usdt)) - 2)))


def _symbol_doc(symbol: str, base: str, quote: str, tick: str, step: str, prices: dict[str, float]) -> dict:
    fiat_like = quote in ("USDT", "FDUSD")
    max_qty = _max_qty(prices[base])
    return {
        "symbol": symbol, "status": "TRADING",
        "baseAsset": base, "baseAssetPrecision": 8,
        "quoteAsset": quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": list(ORDER_TYPES),
        "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False, "opoAllowed": False,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False, "cancelReplaceAllowed": True,
        "amendAllowed": False, "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": _fmt(tick),
             "maxPrice": _fmt("1000000" if fiat_like else "1000"), "tickSize": _fmt(tick)},
            {"filterType": "LOT_SIZE", "minQty": _fmt(step), "maxQty": max_qty, "stepSize": _fmt(step)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": _fmt("0"),
             "maxQty": format_units(parse_units(max_qty) // 100), "stepSize": _fmt("0")},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
             "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
             "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": _fmt(MIN_NOTIONAL[quote]), "applyMinToMarket": True,
             "maxNotional": _fmt("9000000"), "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE", "allowedSelfTradePreventionModes": ["NONE"],
    }


def _price_overrides(cfg: SimConfig) -> dict[str, float]:
    out = {}
    for item in cfg.market.asset_prices:
        asset, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"sim.market.asset_prices: expected ASSET=PRICE, got {item!r}")
        out[asset.strip().upper()] = float(value)
    return out


def build_universe(cfg: SimConfig) -> Universe:
    """The universe ``cfg`` describes: the built-in one or a saved exchangeInfo file."""
    prices = {a: p for a, (p, _) in ASSETS.items()}
    prices.update(_price_overrides(cfg))
    if cfg.exchange_info_file:
        doc = json.loads(pathlib.Path(cfg.exchange_info_file).expanduser().read_text())
        symbols = [s for s in doc.get("symbols", ()) if s.get("status") == "TRADING"]
    else:
        doc = {"timezone": "UTC", "serverTime": 0, "exchangeFilters": [], "symbols": []}
        symbols = [_symbol_doc(name, base, quote, tick, step, prices)
                   for name, (base, quote, tick, step, _) in SYMBOLS.items()]
    if cfg.symbols:
        wanted = {s.upper() for s in cfg.symbols}
        unknown = wanted - {s["symbol"] for s in symbols}
        if unknown:
            raise ValueError(f"sim.symbols: not in the universe: {', '.join(sorted(unknown))}")
        symbols = [s for s in symbols if s["symbol"] in wanted]
    if not symbols:
        raise ValueError("the simulator's universe has no TRADING symbols")
    doc = dict(doc, symbols=symbols, rateLimits=rate_limits(cfg.limits))
    rules = parse_exchange_info(doc)
    _infer_missing_prices(symbols, rules, prices)
    vol = {a: ASSETS.get(a, (0.0, 1.3))[1] for a in prices}
    specs = tuple(SymbolSpec(s["symbol"], s["baseAsset"], s["quoteAsset"], rules[s["symbol"]],
                             SYMBOLS.get(s["symbol"], ("", "", "", "", "C"))[4]) for s in symbols)
    used = {a for s in specs for a in (s.base, s.quote)}
    return Universe(doc, specs, {a: prices[a] for a in used}, {a: vol[a] for a in used})


def _infer_missing_prices(symbols: list[dict], rules: dict[str, SymbolRules], prices: dict[str, float]) -> None:
    """Give every asset of a saved universe a USDT price, walking symbols out from known assets."""
    while True:
        changed = True
        while changed:
            changed = False
            for s in symbols:
                base, quote = s["baseAsset"], s["quoteAsset"]
                cross = units_to_float(rules[s["symbol"]].tick_size or 1) * 30_000
                if base not in prices and quote in prices:
                    prices[base] = cross * prices[quote]
                    changed = True
                elif quote not in prices and base in prices:
                    prices[quote] = prices[base] / cross
                    changed = True
        missing = [a for s in symbols for a in (s["quoteAsset"], s["baseAsset"]) if a not in prices]
        if not missing:
            return
        prices[missing[0]] = 1.0   # an island of unknown assets: anchor one of them at 1 USDT
