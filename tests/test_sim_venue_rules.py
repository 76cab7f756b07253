"""Venue rules shared by engine and simulator: exact decimals, filters, fees, signing vectors."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ctrader.venue import errors, fees
from ctrader.venue.decimals import (DecimalPrecisionError, DecimalSyntaxError, decimals_of, format_trimmed,
                                    format_units, parse_units, quote_amount, to_step)
from ctrader.venue.filters import OrderCheck, SymbolRules
from ctrader.venue.signing import (Signer, hmac_sha256_hex, load_ed25519_public_key, public_key_pem, rest_query,
                                   split_rest_signature, verify_ed25519, verify_hmac, ws_api_payload)

pytestmark = pytest.mark.timeout(60)

# Binance's documented example keys (rest-api.md / web-socket-api.md), not real credentials.
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


# --- decimals ------------------------------------------------------------------------------------

def test_decimal_strings_are_exact_and_never_scientific():
    assert parse_units("0.001") == 100_000
    assert parse_units("60000.01000000") == 6_000_001_000_000
    assert parse_units("1.100000000000") == 110_000_000          # trailing zeros beyond 8 are fine
    assert format_units(1_000) == "0.00001000"                    # never 1e-05
    assert format_units(0) == "0.00000000"
    assert format_trimmed(1_000_000, decimals_of(1_000_000)) == "0.01"
    assert decimals_of(1_000) == 5 and decimals_of(100_000_000) == 0
    with pytest.raises(DecimalSyntaxError):
        parse_units("1e-5")
    with pytest.raises(DecimalSyntaxError):
        parse_units("-1")
    with pytest.raises(DecimalPrecisionError):
        parse_units("0.000000001")


@given(st.integers(min_value=0, max_value=10 ** 20))
def test_format_then_parse_round_trips(units):
    assert parse_units(format_units(units)) == units


def test_float_rounding_to_steps_reads_the_shortest_repr():
    assert to_step(0.3, 10 ** 7) == 30_000_000                     # 0.3 is 0.3, not 0.29999...
    assert to_step(60000.005, 1_000_000, "floor") == 6_000_000_000_000
    assert to_step(60000.005, 1_000_000, "ceil") == 6_000_001_000_000
    assert to_step(0.123456789, 1_000, "nearest") == 12_346_000
    assert quote_amount(6_000_001_000_000, 1_000) == 60_000_010    # 60000.01 * 0.00001 = 0.6000001


# --- filters -------------------------------------------------------------------------------------

BTCUSDT = SymbolRules.from_exchange_info({
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"], "quoteOrderQtyMarketAllowed": True,
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
         "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "90.00000000",
         "stepSize": "0.00000000"},
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
         "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
         "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
    ]})
P = parse_units


def _check(**kw):
    args = dict(side="BUY", order_type="LIMIT", price=P("60000"), quantity=P("0.001"), reference_price=P("60000"))
    args.update(kw)
    BTCUSDT.check(OrderCheck(**args))


@pytest.mark.parametrize("kw, failure", [
    ({"price": P("60000.005")}, "PRICE_FILTER"),          # off tick, decided on integers
    ({"price": P("0.001")}, "PRICE_FILTER"),
    ({"quantity": P("0.000015")}, "LOT_SIZE"),
    ({"quantity": P("9000.00001")}, "LOT_SIZE"),
    ({"price": P("400000")}, "PERCENT_PRICE_BY_SIDE"),    # > 5x the average price
    ({"price": P("10000")}, "PERCENT_PRICE_BY_SIDE"),     # < 0.2x
    ({"quantity": P("0.00008")}, "NOTIONAL"),             # 4.8 USDT < 5
    ({"order_type": "MARKET", "price": None, "quantity": P("91")}, "MARKET_LOT_SIZE"),
    ({"order_type": "MARKET", "price": None, "quantity": P("0.00008")}, "NOTIONAL"),
    ({"open_orders": 200}, "MAX_NUM_ORDERS"),
])
def test_filter_failures_name_the_filter_like_binance(kw, failure):
    with pytest.raises(errors.BinanceError) as err:
        _check(**kw)
    assert (err.value.code, err.value.msg, err.value.http_status) == (-1013, f"Filter failure: {failure}", 400)


def test_orders_on_tick_and_step_pass():
    _check()
    _check(order_type="MARKET", price=None, quantity=P("0.5"))
    _check(order_type="MARKET", price=None, quantity=None, quote_order_qty=P("10"))
    assert BTCUSDT.tick_size == P("0.01") and BTCUSDT.step_size == P("0.00001") and BTCUSDT.min_notional == P("5")
    assert BTCUSDT.round_price(60000.004) == P("60000")
    assert BTCUSDT.round_qty(0.123456) == P("0.12345")


# --- fees ----------------------------------------------------------------------------------------

def test_commission_is_in_the_received_asset_and_rounded_up():
    rate = fees.rate_units(0.001)
    assert rate == 100_000 and fees.bps(rate) == 10
    quote, fee, net = fees.received_amounts("SELL", P("60000"), P("0.5"), rate)
    assert (quote, fee, net) == (P("30000"), P("30"), P("29970"))
    _, fee, net = fees.received_amounts("BUY", P("60000"), P("0.00001"), rate)
    assert fee == 1 and net == P("0.00000999")                     # 1e-8: ceil of 0.00000001


# --- signing -------------------------------------------------------------------------------------

def test_rest_hmac_vectors_from_the_docs():
    payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    assert hmac_sha256_hex(DOC_SECRET, payload) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    encoded = rest_query([("symbol", "１２３４５６"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
                          ("quantity", 1), ("price", "0.1"), ("recvWindow", 5000), ("timestamp", 1499827319559)])
    assert encoded.startswith("symbol=%EF%BC%91%EF%BC%92")
    assert hmac_sha256_hex(DOC_SECRET, encoded) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


def test_ws_api_payload_is_sorted_and_not_encoded():
    params = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01000000",
              "price": "52000.00", "newOrderRespType": "ACK", "recvWindow": 100, "timestamp": 1645423376532,
              "apiKey": DOC_KEY}
    assert hmac_sha256_hex(DOC_SECRET, ws_api_payload(params)) == \
        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    logon = {"apiKey": DOC_KEY, "timestamp": 1649729878532, "signature": "ignored"}
    assert hmac_sha256_hex(DOC_SECRET, ws_api_payload(logon)) == \
        "1cf54395b336b0a9727ef27d5d98987962bc47aca6e13fe978612d0adee066ed"


def test_verification_rules(sim_account):
    signer = sim_account.ed25519_signer()
    public = load_ed25519_public_key(public_key_pem(sim_account.ed25519_private_key().public_key()))
    sig = signer.sign("a=1&b=2")
    assert verify_ed25519(public, b"a=1&b=2", sig)
    assert not verify_ed25519(public, b"a=1&b=3", sig)
    assert not verify_ed25519(public, b"a=1&b=2", sig.swapcase())      # base64 is case-sensitive
    raw = sim_account.ed25519_private_key().public_key().public_bytes_raw()
    assert verify_ed25519(load_ed25519_public_key(base64.b64encode(raw).decode()), b"a=1&b=2", sig)
    hex_sig = hmac_sha256_hex("s", "a=1")
    assert verify_hmac("s", b"a=1", hex_sig.upper())                   # hex is case-insensitive


def test_rest_signature_payload_is_query_then_body_without_separator():
    signer = Signer("k", secret=DOC_SECRET)
    query = signer.signed_query({"symbol": "LTCBTC", "side": "BUY"})
    payload, sig = split_rest_signature(query, "")
    assert payload == "symbol=LTCBTC&side=BUY" and sig == hmac_sha256_hex(DOC_SECRET, payload)
    payload, sig = split_rest_signature("symbol=LTCBTC&side=BUY", "type=LIMIT&signature=abc")
    assert payload == "symbol=LTCBTC&side=BUYtype=LIMIT" and sig == "abc"


def test_ed25519_rest_signature_is_percent_encoded(sim_account):
    query = sim_account.ed25519_signer().signed_query({"symbol": "BTCUSDT", "timestamp": 1})
    assert query.endswith("%3D%3D")            # the base64 padding, percent-encoded
    payload, sig = split_rest_signature(query, "")
    public = sim_account.ed25519_private_key().public_key()
    assert verify_ed25519(public, payload.encode(), sig)
