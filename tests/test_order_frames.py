"""The bytes an order puts on the wire: Binance's documented ``order.place`` request, signature
included, and the templates the executor uses giving exactly those bytes."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.execution.order_frames import OrderFrames, build_request
from ctrader.venue.signing import Signer

# web-socket-api.md, "Place new order (TRADE)" and its HMAC key (shared/reference/binance-spot-api.md)
DOC_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_REQUEST = {
    "id": "56374a46-3061-486b-a311-99ee972eb648",
    "method": "order.place",
    "params": {
        "symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
        "price": "23416.10000000", "quantity": "0.00847000",
        "apiKey": DOC_API_KEY,
        "signature": "15af09e41c36f3cc61378c2fbe2c33719a03dd5eba8d0f9206fbda44de717c88",
        "timestamp": 1660801715431,
    },
}


def test_a_signed_request_is_binances_documented_one():
    params = {k: v for k, v in DOC_REQUEST["params"].items() if k not in ("apiKey", "signature")}
    frame = build_request(DOC_REQUEST["id"], "order.place", params, Signer(DOC_API_KEY, secret=DOC_SECRET))
    assert orjson.loads(frame) == DOC_REQUEST


def test_a_logged_on_session_sends_no_signature():
    frame = build_request(3, "order.place", {"symbol": "BTCUSDT", "timestamp": 1}, Signer(DOC_API_KEY, secret=DOC_SECRET),
                          logged_on=True)
    assert frame == b'{"id":3,"method":"order.place","params":{"symbol":"BTCUSDT","timestamp":1}}'


decimals = st.decimals(min_value="0.00000001", max_value="99999.99999999", places=8).map(lambda d: format(d, "f"))


@settings(max_examples=200, deadline=None)
@given(logged_on=st.booleans(), recv_window=st.sampled_from([0, 5000]), side=st.sampled_from(["BUY", "SELL"]),
       kind=st.sampled_from([("LIMIT", "IOC"), ("LIMIT", "GTC"), ("LIMIT_MAKER", None), ("MARKET", None)]),
       symbol=st.sampled_from(["BTCUSDT", "ETHBTC", "SOLBNB"]), price=decimals, qty=decimals,
       coid=st.from_regex(r"[a-z]{2}[0-9a-f]{1,16}-[0-9]", fullmatch=True),
       ts=st.integers(1_600_000_000_000, 2_000_000_000_000), req_id=st.integers(1, 2**40))
def test_templates_give_the_same_bytes_as_the_plain_builder(logged_on, recv_window, side, kind, symbol, price,
                                                            qty, coid, ts, req_id):
    signer = Signer(DOC_API_KEY, secret=DOC_SECRET)
    frames = OrderFrames(signer, logged_on=logged_on, recv_window_ms=recv_window)
    order_type, tif = kind
    px = None if order_type == "MARKET" else price
    for _ in range(2):                     # the second time from the cached template
        frame = frames.place(req_id, symbol, side, order_type, tif, px, qty, coid, ts)
        expected = build_request(req_id, "order.place", frames.params(symbol, side, order_type, tif, px, qty, coid, ts),
                                 signer, logged_on)
        assert frame == expected
