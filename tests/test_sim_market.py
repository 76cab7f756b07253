"""The seeded market model: determinism, realistic books, trades, dislocations, saved universes."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import orjson
import pytest
import requests

from ctrader.sim.accounts import AccountRegistry
from ctrader.sim.clock import SimClock
from ctrader.sim.market import MarketModel
from ctrader.sim.matching import MatchingEngine
from ctrader.sim.testing import sim_config
from ctrader.sim.universe import build_universe
from ctrader.venue.decimals import parse_units

pytestmark = pytest.mark.timeout(90)

EPOCH = 1_767_225_600_000      # 2026-01-01: a fixed market clock makes event times part of the stream


class Tape:
    def __init__(self):
        self.events = []

    def book_update(self, book, bids, asks):
        self.events.append((book.symbol, book.update_id, tuple(sorted(bids)), tuple(sorted(asks))))

    def trade(self, symbol, trade_id, price, qty, buyer_is_maker, time_ms):
        self.events.append((symbol, trade_id, price, qty, buyer_is_maker, time_ms))


def _model_tape(seed: int, steps: int = 300) -> list:
    cfg = sim_config({"seed": seed, "market.epoch_ms": EPOCH, "market.dislocations_per_min": 30})
    clock = SimClock(cfg.market.epoch_ms)
    engine = MatchingEngine(build_universe(cfg), AccountRegistry(cfg.accounts), clock, cfg.seed)
    tape = Tape()
    engine.market_sinks.append(tape)
    model = MarketModel(engine.universe, engine, clock, cfg.market, cfg.seed)
    for _ in range(steps):
        model.step()
    return tape.events


def test_same_seed_same_market_different_seed_different_market():
    first, second, other = _model_tape(11), _model_tape(11), _model_tape(12)
    assert len(first) > 1000 and first == second
    assert first[:50] != other[:50]


async def _collect(url: str, n: int) -> list[dict]:
    out = []
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, max_msg_size=0) as ws:
            async for msg in ws:
                out.append(orjson.loads(msg.data))
                if len(out) >= n:
                    break
    return out


def test_the_wire_stream_is_a_function_of_the_seed(sim_factory):
    """Two servers, same seed, joined at different moments: where their streams overlap they are
    byte for byte the same (book updates by id, trades by id, depth windows by event time)."""
    names = "btcusdt@bookTicker/ethbtc@depth@100ms/solbnb@trade/btcusdt@trade"

    def keyed(sim) -> dict:
        msgs = asyncio.run(asyncio.wait_for(_collect(f"{sim.ws_url}/stream?streams={names}", 2500), 60))
        out, first_diff = {}, True
        for m in msgs:
            d = m["data"]
            if m["stream"].endswith("bookTicker"):
                out[("t", d["u"])] = d
            elif m["stream"].endswith("trade"):
                out[("x", d["s"], d["t"])] = d
            elif first_diff:
                first_diff = False          # the first window started when we joined
            else:
                out[("d", d["E"])] = d
        return out

    a = keyed(sim_factory({"seed": 5, "market.speed": 0, "market.epoch_ms": EPOCH}))
    b = keyed(sim_factory({"seed": 5, "market.speed": 0, "market.epoch_ms": EPOCH}))
    common = a.keys() & b.keys()
    assert len(common) > 500 and all(a[k] == b[k] for k in common)
    assert {k[0] for k in common} == {"t", "x", "d"}


def test_books_are_realistic_for_every_symbol(sim_server):
    info = requests.get(f"{sim_server.rest_url}/api/v3/exchangeInfo").json()
    assert len(info["symbols"]) == 35
    assert {s["quoteAsset"] for s in info["symbols"]} == {"USDT", "BTC", "ETH", "BNB", "FDUSD"}
    for s in info["symbols"]:
        filters = {f["filterType"]: f for f in s["filters"]}
        tick, step = parse_units(filters["PRICE_FILTER"]["tickSize"]), parse_units(filters["LOT_SIZE"]["stepSize"])
        book = requests.get(f"{sim_server.rest_url}/api/v3/depth", params={"symbol": s["symbol"], "limit": 50}).json()
        bids = [(parse_units(p), parse_units(q)) for p, q in book["bids"]]
        asks = [(parse_units(p), parse_units(q)) for p, q in book["asks"]]
        assert len(bids) >= 20 and len(asks) >= 20, s["symbol"]
        assert bids[0][0] < asks[0][0]
        assert [p for p, _ in bids] == sorted((p for p, _ in bids), reverse=True)
        assert [p for p, _ in asks] == sorted(p for p, _ in asks)
        assert all(p % tick == 0 and q % step == 0 and q > 0 for p, q in bids + asks), s["symbol"]
        spread_bps = (asks[0][0] - bids[0][0]) / bids[0][0] * 1e4
        # coarse ticks (DOGEBTC: one tick is 40 bps) force a wider spread, as on Binance
        assert spread_bps < 60 or asks[0][0] - bids[0][0] <= 2 * tick, (s["symbol"], spread_bps)


def _triangle_edge(ctl) -> float:
    """Profit (before fees) of selling ETH for BTC, BTC for USDT and buying the ETH back with USDT."""
    def top(symbol):
        _, bids, asks = ctl.book(symbol, 1)
        return bids[0][0] / 1e8, asks[0][0] / 1e8
    ethbtc_bid, _ = top("ETHBTC")
    btcusdt_bid, _ = top("BTCUSDT")
    _, ethusdt_ask = top("ETHUSDT")
    return ethbtc_bid * btcusdt_bid / ethusdt_ask - 1


def test_a_dislocation_opens_a_triangle_then_arbitrageurs_close_it(sim_factory):
    sim = sim_factory({"market.dislocations_per_min": 0, "market.speed": 1})
    ctl = sim.control
    ctl.pause()
    before = _triangle_edge(ctl)
    assert before < 0                                   # no free money in a quiet market
    ctl.dislocate("ETHBTC", 80, 2000)
    ctl.step(3)
    opened = _triangle_edge(ctl)
    assert opened > 0.005                               # ~80 bps less the spreads
    ctl.step(250)                                       # 2.5 s of market time later
    assert _triangle_edge(ctl) < 0
    status = ctl.status()
    assert status["dislocations"] == 1 and status["model_trades"] > 0


def test_dislocation_rate_is_a_parameter(sim_factory):
    quiet = sim_factory({"market.dislocations_per_min": 0, "market.speed": 0})
    busy = sim_factory({"market.dislocations_per_min": 600, "market.speed": 0})
    for sim in (quiet, busy):
        sim.control.pause()
        sim.control.step(1000)                          # 10 s of market time
    assert quiet.control.status()["dislocations"] == 0
    assert busy.control.status()["dislocations"] >= 50


def _model(overrides: dict) -> MarketModel:
    cfg = sim_config({"seed": 5, "market.epoch_ms": EPOCH, "market.dislocations_per_min": 0, **overrides})
    clock = SimClock(cfg.market.epoch_ms)
    engine = MatchingEngine(build_universe(cfg), AccountRegistry(cfg.accounts), clock, cfg.seed)
    return MarketModel(engine.universe, engine, clock, cfg.market, cfg.seed)


def test_cross_rate_residuals_wander_with_their_stdev_and_revert_with_their_half_life():
    import numpy as np

    model = _model({"market.residual_bps": 4.0, "market.residual_half_life_s": 2.0})
    quiet = _model({"market.residual_bps": 0.0})
    path = []
    for _ in range(3000):                               # 30 s of market time, 15 half-lives
        model.step()
        quiet.step()
        path.append(model.residual.copy())
    path = np.array(path) * 1e4                         # bps, one column per symbol
    # the assets' fair values walk as they would without residuals (a generator of their own) ...
    assert np.array_equal(model.log_price, quiet.log_price)
    assert not quiet.residual.any()
    # ... and each pair's cross rate is its implied rate times its residual
    implied = np.exp(model.log_price[model.base] - model.log_price[model.quote])
    assert np.allclose(np.array(list(model.fair_prices().values())) / implied, np.exp(model.residual))
    # stationary stdev over every symbol, from the start: 4 bps (sampling error a few percent)
    assert 3.4 < path[:300].std() < 4.6 and 3.4 < path[300:].std() < 4.6
    # the one-second autocorrelation is 0.5 ** (1 s / half-life) = 0.71
    x, y = path[300:-100].ravel(), path[400:].ravel()
    assert 0.6 < np.corrcoef(x, y)[0, 1] < 0.8


def test_the_residuals_are_in_the_simulators_log_line(sim_factory, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="ctrader.sim"):
        sim_factory({"market.residual_bps": 3.5, "market.residual_half_life_s": 12})
    assert any("cross-rate residuals 3.5 bps stdev, half-life 12 s" in r.getMessage() for r in caplog.records)


def test_a_saved_exchange_info_is_served_with_inferred_prices(sim_factory, tmp_path):
    source = sim_factory()
    info = requests.get(f"{source.rest_url}/api/v3/exchangeInfo",
                        params={"symbols": '["BTCUSDT","ETHUSDT","ETHBTC"]'}).json()
    extra = json.loads(json.dumps(info["symbols"][0]))
    extra.update(symbol="ABCUSDT", baseAsset="ABC")
    for f in extra["filters"]:
        if f["filterType"] == "PRICE_FILTER":
            f["tickSize"] = f["minPrice"] = "0.00100000"
        if f["filterType"] == "LOT_SIZE":
            f["stepSize"] = f["minQty"] = "0.10000000"
    info["symbols"].append(extra)
    saved = tmp_path / "exchangeInfo.json"
    saved.write_text(json.dumps(info))
    sim = sim_factory({"exchange_info_file": str(saved)})
    served = requests.get(f"{sim.rest_url}/api/v3/exchangeInfo").json()
    assert sorted(s["symbol"] for s in served["symbols"]) == ["ABCUSDT", "BTCUSDT", "ETHBTC", "ETHUSDT"]
    book = requests.get(f"{sim.rest_url}/api/v3/depth", params={"symbol": "ABCUSDT"}).json()
    mid = (float(book["bids"][0][0]) + float(book["asks"][0][0])) / 2
    assert 10 < mid < 100 and len(book["bids"]) >= 20     # tick 0.001 x 30,000: about 30 USDT
