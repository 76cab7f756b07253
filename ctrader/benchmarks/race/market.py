"""What every race contender needs to know about the venue: symbol rules and triangles.

Plain Python on purpose (``decimal``, ``urllib``): the floor and the reference bot are clients a
developer writes without ctrader, so they share only this small helper, not ctrader's engine.

    rules = load_rules("http://127.0.0.1:19600")
    cycles = triangle_cycles(rules)        # both directions of every triangle
"""
from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal

    def price_text(self, price: float | Decimal) -> str:
        """A price on the tick, rounded down, as an exact decimal string."""
        return str((Decimal(str(price)) / self.tick).to_integral_value(ROUND_DOWN) * self.tick)

    def qty(self, qty: float | Decimal) -> Decimal:
        """A quantity on the step, rounded down."""
        return (Decimal(str(qty)) / self.step).to_integral_value(ROUND_DOWN) * self.step


@dataclass(frozen=True)
class Leg:
    symbol: str
    side: str          # BUY: pay the quote for the base; SELL: the base for the quote


@dataclass(frozen=True)
class Cycle:
    """asset -> asset -> asset -> back, as three legs; ``start`` is the asset it begins with."""
    start: str
    legs: tuple[Leg, Leg, Leg]


def load_rules(rest_url: str, timeout_s: float = 10.0) -> dict[str, SymbolRules]:
    """Every TRADING symbol's tick, step and minimums from ``GET /api/v3/exchangeInfo``."""
    with urllib.request.urlopen(f"{rest_url}/api/v3/exchangeInfo", timeout=timeout_s) as resp:
        info = json.load(resp)
    out = {}
    for s in info["symbols"]:
        if s.get("status") != "TRADING":
            continue
        filters = {f["filterType"]: f for f in s["filters"]}
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        out[s["symbol"]] = SymbolRules(
            s["symbol"], s["baseAsset"], s["quoteAsset"], Decimal(filters["PRICE_FILTER"]["tickSize"]).normalize(),
            Decimal(filters["LOT_SIZE"]["stepSize"]).normalize(), Decimal(filters["LOT_SIZE"]["minQty"]),
            Decimal(notional.get("minNotional", "0")))
    return out


def triangle_cycles(rules: dict[str, SymbolRules]) -> list[Cycle]:
    """Both directions of every triangle (three symbols whose assets form a cycle)."""
    pair = {frozenset((r.base, r.quote)): r for r in rules.values()}
    assets = sorted({a for r in rules.values() for a in (r.base, r.quote)})
    out = []
    for i, a in enumerate(assets):
        for j in range(i + 1, len(assets)):
            b = assets[j]
            for c in assets[j + 1:]:
                ab, bc, ca = pair.get(frozenset((a, b))), pair.get(frozenset((b, c))), pair.get(frozenset((c, a)))
                if not (ab and bc and ca):
                    continue
                for path in ((a, b, c), (a, c, b)):
                    legs = []
                    for have, want in zip(path, path[1:] + path[:1]):
                        r = pair[frozenset((have, want))]
                        legs.append(Leg(r.symbol, "SELL" if r.base == have else "BUY"))
                    out.append(Cycle(a, tuple(legs)))
    return out
