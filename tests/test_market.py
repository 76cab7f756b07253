"""The run's universe (ids, selection, triangles) and the book cache built from md records."""
import numpy as np
import pytest

from ctrader.config import load_config
from ctrader.core.records import MD_EVENT, MdFlag, MdKind, Side
from ctrader.market.books import BookCache, apply_all, apply_md, mid, tradeable
from ctrader.market.universe import Universe, UniverseError, load_universe


def _symbol(name, base, quote, tick="0.01", step="0.001"):
    return {"symbol": name, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "100000", "stepSize": step},
                {"filterType": "NOTIONAL", "minNotional": "5", "maxNotional": "9000000",
                 "applyMinToMarket": True, "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
                 "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5}]}


DOC = {"symbols": [_symbol("BTCUSDT", "BTC", "USDT"), _symbol("ETHUSDT", "ETH", "USDT"),
                   _symbol("ETHBTC", "ETH", "BTC", "0.00001", "0.0001"),
                   _symbol("XRPUSDT", "XRP", "USDT", "0.0001", "0.1")]}


def test_selection_keeps_only_symbols_in_triangles_and_numbers_them_sorted():
    uni = Universe.from_exchange_info(DOC, start_assets=("USDT",))
    assert [s.name for s in uni.symbols] == ["BTCUSDT", "ETHBTC", "ETHUSDT"]   # XRPUSDT is in no triangle
    assert uni.assets == ["BTC", "ETH", "USDT"]
    eth_btc = uni.by_name["ETHBTC"]
    assert (eth_btc.id, eth_btc.base_id, eth_btc.quote_id) == (1, 1, 0)
    assert eth_btc.tick_units == 1000 and eth_btc.step == pytest.approx(0.0001)
    assert eth_btc.pp_bid_up == 5.0 and eth_btc.min_notional == 5.0


def test_triangles_both_directions_with_sides_from_base_and_quote():
    uni = Universe.from_exchange_info(DOC, start_assets=("USDT",))
    names = sorted(t.name(uni) for t in uni.triangles())
    assert names == ["USDT->BTC->ETH->USDT (BTCUSDT:BUY, ETHBTC:BUY, ETHUSDT:SELL)",
                     "USDT->ETH->BTC->USDT (ETHUSDT:BUY, ETHBTC:SELL, BTCUSDT:SELL)"]
    for tri in uni.triangles():   # each leg pays what the previous one got
        assert tri.legs[0].pay_asset_id == tri.start_asset_id == tri.legs[2].get_asset_id
        assert tri.legs[0].get_asset_id == tri.legs[1].pay_asset_id
        assert tri.legs[1].get_asset_id == tri.legs[2].pay_asset_id


def test_explicit_symbols_and_unknown_names():
    uni = Universe.from_exchange_info(DOC, symbols=["XRPUSDT", "BTCUSDT"])
    assert [s.name for s in uni.symbols] == ["BTCUSDT", "XRPUSDT"] and uni.triangles() == []
    with pytest.raises(UniverseError, match="NOPEUSDT"):
        Universe.from_exchange_info(DOC, symbols=["NOPEUSDT"])
    with pytest.raises(UniverseError, match="asset DOGE"):
        uni.asset_id("DOGE")


def test_default_config_universe_from_a_saved_exchange_info(tmp_path):
    from ctrader.sim.universe import build_universe
    import json

    cfg = load_config(env={})
    path = tmp_path / "exchange_info.json"
    path.write_text(json.dumps(build_universe(cfg.sim).exchange_info))
    uni = load_universe(load_config(env={}, overrides={"market.exchange_info_file": str(path)}))
    assert len(uni.symbols) >= 25 and len(uni.triangles()) >= 50
    assert uni.taker_fee == cfg.sim.accounts[0].taker_commission


def _md(kind, sid=0, bids=(), asks=(), uid=1, flags=0, mono=1000):
    rec = np.zeros(1, MD_EVENT)
    r = rec[0]
    r["symbol_id"], r["kind"], r["flags"], r["last_update_id"], r["recv_mono_ns"] = sid, kind, flags, uid, mono
    r["n_bids"], r["n_asks"] = len(bids), len(asks)
    for i, (p, q) in enumerate(bids):
        r["bid_px"][i], r["bid_qty"][i] = p, q
    for i, (p, q) in enumerate(asks):
        r["ask_px"][i], r["ask_qty"][i] = p, q
    return rec


def test_book_cache_depth_ticker_and_stale():
    cache = BookCache(2)
    books = cache.books
    assert not tradeable(books, 0, 1000, 10**9)                     # nothing known yet: stale
    apply_md(books, _md(MdKind.SNAPSHOT, bids=[(100, 1), (99, 2), (98, 3)], asks=[(101, 1), (102, 2)],
                        uid=10, flags=MdFlag.RESYNC), 0)
    assert tradeable(books, 0, 1000, 10**9) and mid(books, 0) == 100.5
    # a newer bookTicker improves the bid: levels it crosses go
    apply_md(books, _md(MdKind.BOOK_TICKER, bids=[(100.5, 4)], asks=[(102, 1)], uid=12), 0)
    assert list(books[0]["bid_px"][:4]) == [100.5, 100, 99, 98] and books[0]["n_bids"] == 4
    assert list(books[0]["ask_px"][:1]) == [102] and books[0]["n_asks"] == 1
    # an older depth record: its levels, with the newer ticker kept on top
    apply_md(books, _md(MdKind.DEPTH, bids=[(100, 1), (99, 2)], asks=[(101, 1), (102, 2)], uid=11), 0)
    assert books[0]["bid_px"][0] == 100.5 and books[0]["ask_px"][0] == 102
    # an old ticker is ignored
    apply_md(books, _md(MdKind.BOOK_TICKER, bids=[(90, 1)], asks=[(91, 1)], uid=5), 0)
    assert books[0]["bid_px"][0] == 100.5
    # the feed reports a gap: stale until a rebuilt book arrives
    apply_md(books, _md(MdKind.STATUS, flags=MdFlag.STALE | MdFlag.GAP, uid=13), 0)
    assert not tradeable(books, 0, 1000, 10**9)
    apply_md(books, _md(MdKind.SNAPSHOT, bids=[(100, 1)], asks=[(101, 1)], uid=20, flags=MdFlag.RESYNC), 0)
    assert tradeable(books, 0, 1000, 10**9)
    assert not tradeable(books, 0, 1000 + 2 * 10**9, 10**9)        # too old


def test_crossed_book_is_not_tradeable_and_unknown_symbols_are_skipped():
    cache = BookCache(1)
    batch = np.concatenate([_md(MdKind.SNAPSHOT, bids=[(101, 1)], asks=[(100, 1)]),
                            _md(MdKind.DEPTH, sid=7, bids=[(1, 1)], asks=[(2, 1)])])
    assert apply_all(cache.books, batch, 2) == 1
    assert cache.books[0]["flags"] & MdFlag.CROSSED and not tradeable(cache.books, 0, 1000, 10**9)
