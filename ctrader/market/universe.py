"""The trading universe: which symbols and assets a run uses, with stable integer ids.

Every process of a run numbers symbols and assets the same way, because the numbers travel in
ring records (``symbol_id``, ``fee_asset_id``): ids are positions in the *sorted* selected symbol
and asset names, and the supervisor saves the exchangeInfo document it fetched once per run
(``market.exchange_info_file``) so that no two processes can see different documents.

    uni = load_universe(cfg)                      # file if configured, else GET /api/v3/exchangeInfo
    uni = Universe.from_exchange_info(doc, start_assets=("USDT", "BTC"))
    uni.symbol_id("ETHBTC"); uni.by_name["ETHBTC"].tick; uni.triangles()[0].legs

Selection: ``symbols`` given -> exactly those (an unknown name is an error); otherwise every
TRADING symbol that belongs to a triangle through one of ``start_assets``.
"""
from __future__ import annotations

import itertools
import json
import pathlib
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ctrader.core.records import Side
from ctrader.venue.decimals import ONE, units_to_float
from ctrader.venue.filters import PercentPriceBySide, SymbolRules, parse_exchange_info


class UniverseError(ValueError):
    pass


@dataclass(frozen=True)
class SymbolInfo:
    id: int
    name: str
    base: str
    quote: str
    base_id: int
    quote_id: int
    rules: SymbolRules
    tick_units: int          # 1e-8 units (ctrader.venue.decimals)
    step_units: int
    min_qty_units: int
    min_notional_units: int
    tick: float
    step: float
    min_qty: float
    min_notional: float
    # PERCENT_PRICE_BY_SIDE multipliers (PERCENT_PRICE gives the same pair to both sides); 0 = none
    pp_bid_up: float = 0.0
    pp_bid_down: float = 0.0
    pp_ask_up: float = 0.0
    pp_ask_down: float = 0.0

    def meets_minimums(self, steps: int, ticks: int) -> bool:
        """Whether ``steps`` of quantity at a price of ``ticks`` is an order this symbol takes:
        more than nothing, at least LOT_SIZE minQty and the minimum notional (exact integers)."""
        units = steps * self.step_units
        return units > 0 and units >= self.min_qty_units and \
            units * ticks * self.tick_units >= self.min_notional_units * ONE


@dataclass(frozen=True)
class Leg:
    symbol_id: int
    side: Side               # BUY: pay quote, get base; SELL: pay base, get quote
    pay_asset_id: int
    get_asset_id: int


@dataclass(frozen=True)
class Triangle:
    """start -> a1 -> a2 -> start: three legs, each converting what the previous one got."""
    id: int
    start_asset_id: int
    assets: tuple[int, int, int]
    legs: tuple[Leg, Leg, Leg]

    def name(self, uni: "Universe") -> str:
        path = "->".join(uni.assets[a] for a in self.assets + (self.assets[0],))
        return f"{path} ({', '.join(uni.symbols[leg.symbol_id].name + ':' + leg.side.name for leg in self.legs)})"


class Universe:
    def __init__(self, exchange_info: Mapping[str, Any], names: Iterable[str], start_assets: Iterable[str],
                 maker_fee: float, taker_fee: float) -> None:
        self.exchange_info = exchange_info
        rules = parse_exchange_info(exchange_info)
        self.start_assets = tuple(start_assets)
        self.maker_fee, self.taker_fee = float(maker_fee), float(taker_fee)
        names = sorted(set(names))
        self.assets: list[str] = sorted({a for n in names for a in (rules[n].base_asset, rules[n].quote_asset)})
        self._asset_ids = {a: i for i, a in enumerate(self.assets)}
        self.symbols: list[SymbolInfo] = [self._info(i, rules[n]) for i, n in enumerate(names)]
        self.by_name: dict[str, SymbolInfo] = {s.name: s for s in self.symbols}
        self._triangles: list[Triangle] | None = None

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def from_exchange_info(cls, doc: Mapping[str, Any], symbols: Iterable[str] | None = None,
                           start_assets: Iterable[str] = ("USDT", "BTC"),
                           maker_fee: float = 0.001, taker_fee: float = 0.001) -> "Universe":
        rules = parse_exchange_info(doc)
        start_assets = tuple(start_assets)
        if symbols:
            names = list(symbols)
            unknown = [n for n in names if n not in rules]
            if unknown:
                raise UniverseError(f"symbols not in exchangeInfo: {', '.join(unknown)}")
        else:
            trading = {n: r for n, r in rules.items() if r.status == "TRADING"}
            names = sorted({leg for tri in _cycles(trading, start_assets) for leg in tri})
            if not names:
                raise UniverseError(f"no triangle through {', '.join(start_assets)} in exchangeInfo "
                                    f"({len(trading)} trading symbols)")
        return cls(doc, names, start_assets, maker_fee, taker_fee)

    def _info(self, sid: int, r: SymbolRules) -> SymbolInfo:
        pp = r.find("PERCENT_PRICE_BY_SIDE") or r.find("PERCENT_PRICE")
        mult = ((pp.bid_up, pp.bid_down, pp.ask_up, pp.ask_down) if isinstance(pp, PercentPriceBySide)
                else (0, 0, 0, 0))
        return SymbolInfo(
            id=sid, name=r.symbol, base=r.base_asset, quote=r.quote_asset,
            base_id=self._asset_ids[r.base_asset], quote_id=self._asset_ids[r.quote_asset], rules=r,
            tick_units=r.tick_size, step_units=r.step_size, min_qty_units=r.min_qty,
            min_notional_units=r.min_notional, tick=units_to_float(r.tick_size),
            step=units_to_float(r.step_size), min_qty=units_to_float(r.min_qty),
            min_notional=units_to_float(r.min_notional),
            pp_bid_up=units_to_float(mult[0]), pp_bid_down=units_to_float(mult[1]),
            pp_ask_up=units_to_float(mult[2]), pp_ask_down=units_to_float(mult[3]))

    # --- lookups -------------------------------------------------------------------------------

    def symbol_id(self, name: str) -> int:
        try:
            return self.by_name[name].id
        except KeyError:
            raise UniverseError(f"{name} is not in this run's universe") from None

    def asset_id(self, asset: str) -> int:
        try:
            return self._asset_ids[asset]
        except KeyError:
            raise UniverseError(f"asset {asset} is not in this run's universe") from None

    def pair(self, a: str, b: str) -> tuple[SymbolInfo, Side] | None:
        """The symbol converting asset ``a`` into ``b`` and the side that does it, if any."""
        s = self.by_name.get(a + b)            # a is base: sell a for b
        if s is not None:
            return s, Side.SELL
        s = self.by_name.get(b + a)            # b is base: buy b with a
        if s is not None:
            return s, Side.BUY
        return None

    def triangles(self) -> list[Triangle]:
        """Every 3-cycle start -> a1 -> a2 -> start (both directions) through the start assets.

        A cycle through two start assets is listed once per start asset, since PnL is counted
        in the asset a triangle starts from.
        """
        if self._triangles is None:
            out: list[Triangle] = []
            for start in self.start_assets:
                if start not in self._asset_ids:
                    continue
                for a1, a2 in itertools.permutations([a for a in self.assets if a != start], 2):
                    path = (start, a1, a2, start)
                    hops = [self.pair(path[i], path[i + 1]) for i in range(3)]
                    if any(h is None for h in hops):
                        continue
                    legs = tuple(Leg(s.id, side, self._asset_ids[path[i]], self._asset_ids[path[i + 1]])
                                 for i, (s, side) in enumerate(hops))
                    out.append(Triangle(len(out), self._asset_ids[start],
                                        (self._asset_ids[start], self._asset_ids[a1], self._asset_ids[a2]),
                                        legs))
            self._triangles = out
        return self._triangles

    def __repr__(self) -> str:
        return (f"Universe({len(self.symbols)} symbols, {len(self.assets)} assets, "
                f"start {'/'.join(self.start_assets)})")


def _cycles(rules: Mapping[str, SymbolRules], start_assets: tuple[str, ...]):
    """Symbol-name triples of every triangle through the start assets (for selection)."""
    by_pair = {frozenset((r.base_asset, r.quote_asset)): n for n, r in rules.items()}
    assets = sorted({a for r in rules.values() for a in (r.base_asset, r.quote_asset)})
    for start in start_assets:
        for a1, a2 in itertools.combinations([a for a in assets if a != start], 2):
            legs = [by_pair.get(frozenset(p)) for p in ((start, a1), (a1, a2), (a2, start))]
            if all(legs):
                yield legs


# --- loading ----------------------------------------------------------------------------------

def fetch_exchange_info(rest_url: str, timeout_s: float = 10.0) -> dict:
    """GET {rest_url}/api/v3/exchangeInfo (weight 20)."""
    with urllib.request.urlopen(f"{rest_url.rstrip('/')}/api/v3/exchangeInfo", timeout=timeout_s) as resp:
        return json.loads(resp.read())


def load_universe(cfg, doc: Mapping[str, Any] | None = None) -> Universe:
    """The run's universe from ``doc``, the configured file, or the venue's REST API."""
    if doc is None:
        if cfg.market.exchange_info_file:
            path = pathlib.Path(cfg.market.exchange_info_file).expanduser()
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise UniverseError(f"market.exchange_info_file {path}: {exc}") from exc
        else:
            from ctrader.config.venues import endpoints

            doc = fetch_exchange_info(endpoints(cfg).rest)
    maker, taker = _account_fees(cfg)
    return Universe.from_exchange_info(doc, cfg.market.symbols or None, cfg.market.start_assets, maker, taker)


def _account_fees(cfg) -> tuple[float, float]:
    """Commission rates: the simulator's first account when trading the simulator, else Binance's
    standard 0.1% (the live executor reads the real rates from account.status)."""
    if cfg.venue.kind == "sim" and cfg.sim.accounts:
        acct = cfg.sim.accounts[0]
        return float(acct.maker_commission), float(acct.taker_commission)
    return 0.001, 0.001
