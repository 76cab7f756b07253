"""The simulator's cancel-replace, over the WS API (``order.cancelReplace``) and REST
(``POST /api/v3/order/cancelReplace``): Binance's outcomes, errors, counts and user-data events."""
from __future__ import annotations

import pytest

from tests.test_sim_rest import Client, error_of
from tests.test_sim_ws_api import ApiConnection, run_with

pytestmark = pytest.mark.timeout(60)

RESTING = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
           "price": "50000.00"}
NEW_PRICE = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.02",
             "price": "50001.00"}
WOULD_TAKE = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.01", "price": "70000.00"}
UNKNOWN_ORDER = {"code": -2011, "msg": "Unknown order sent."}


def replace(mode: str, cancel_coid: str, new: dict, **extra) -> dict:
    return {**new, "cancelReplaceMode": mode, "cancelOrigClientOrderId": cancel_coid, **extra}


def counts(resp: dict) -> dict[tuple[str, str], int]:
    """The counts of an answer's ``rateLimits``. Order counts are compared in the DAY window: a
    10 SECOND window can roll over between two requests."""
    return {(r["rateLimitType"], r["interval"]): r["count"] for r in resp["rateLimits"]}


def test_ws_cancel_replace_success_moves_the_order_and_reports_both_halves(sim_server, sim_account):
    signer = sim_account.hmac_signer()

    async def scenario(api: ApiConnection):
        await api.call("userDataStream.subscribe.signature", {}, signer)
        placed = await api.call("order.place", dict(RESTING, newClientOrderId="old-1"), signer)
        assert placed["result"]["status"] == "NEW"
        await api.next_events(2)                                  # its NEW and the balance lock
        resp = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "old-1", NEW_PRICE,
                                                             newClientOrderId="new-1",
                                                             cancelNewClientOrderId="cx-1"), signer)
        assert resp["status"] == 200, resp
        result = resp["result"]
        assert (result["cancelResult"], result["newOrderResult"]) == ("SUCCESS", "SUCCESS")
        cancel, new = result["cancelResponse"], result["newOrderResponse"]
        assert (cancel["status"], cancel["origClientOrderId"], cancel["clientOrderId"]) == ("CANCELED", "old-1", "cx-1")
        assert cancel["orderId"] == placed["result"]["orderId"] and cancel["price"] == "50000.00000000"
        assert (new["status"], new["clientOrderId"], new["price"], new["origQty"]) == \
            ("NEW", "new-1", "50001.00000000", "0.02000000")
        assert new["fills"] == []                                 # FULL: the default for LIMIT
        # one more unfilled order counted; a successful order request weighs nothing
        assert counts(resp)[("ORDERS", "DAY")] == counts(placed)[("ORDERS", "DAY")] + 1
        weight = counts(resp)[("REQUEST_WEIGHT", "MINUTE")]
        assert weight in (counts(placed)[("REQUEST_WEIGHT", "MINUTE")], 0)      # 0: a new minute began
        events = []
        while sum(e["event"]["e"] == "executionReport" for e in events) < 2:
            events += await api.next_events(1)
        reports = [e["event"] for e in events if e["event"]["e"] == "executionReport"]
        assert [(r["x"], r["c"], r["C"]) for r in reports] == [("CANCELED", "cx-1", "old-1"), ("NEW", "new-1", "")]
        opened = await api.call("openOrders.status", {"symbol": "BTCUSDT"}, signer)
        assert [o["clientOrderId"] for o in opened["result"]] == ["new-1"]
    run_with(sim_server, scenario)


def test_ws_stop_on_failure_does_not_place_when_the_old_order_filled(sim_server, sim_account):
    signer = sim_account.hmac_signer()

    async def scenario(api: ApiConnection):
        gone = await api.call("order.place", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                              "quantity": "0.001", "newClientOrderId": "gone-1"}, signer)
        assert gone["result"]["status"] == "FILLED"
        resp = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "gone-1", NEW_PRICE,
                                                             newClientOrderId="new-2"), signer)
        assert resp["status"] == 400
        assert resp["error"] == {"code": -2022, "msg": "Order cancel-replace failed.", "data": {
            "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED", "cancelResponse": UNKNOWN_ORDER,
            "newOrderResponse": None}}
        # not attempted, yet counted as an order (web-socket-api.md); the market order that
        # filled no longer counts as unfilled
        assert counts(resp)[("ORDERS", "DAY")] == counts(gone)[("ORDERS", "DAY")] + 1
        status = await api.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "new-2"}, signer)
        assert status["error"]["code"] == -2013
    run_with(sim_server, scenario)


def test_ws_partial_failures_answer_409_with_both_halves(sim_server, sim_account):
    signer = sim_account.hmac_signer()

    async def scenario(api: ApiConnection):
        # ALLOW_FAILURE: the cancel fails (no such order), the new order is placed all the same
        resp = await api.call("order.cancelReplace", replace("ALLOW_FAILURE", "nobody", NEW_PRICE,
                                                             newClientOrderId="new-3"), signer)
        assert resp["status"] == 409 and resp["error"]["code"] == -2021
        data = resp["error"]["data"]
        assert (data["cancelResult"], data["newOrderResult"]) == ("FAILURE", "SUCCESS")
        assert data["cancelResponse"] == UNKNOWN_ORDER and data["newOrderResponse"]["status"] == "NEW"
        # STOP_ON_FAILURE: the cancel succeeds, the new order fails; the cancel stands
        resp = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "new-3", WOULD_TAKE,
                                                             newClientOrderId="maker-3"), signer)
        assert resp["status"] == 409 and resp["error"]["msg"] == "Order cancel-replace partially failed."
        data = resp["error"]["data"]
        assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
        assert data["cancelResponse"]["status"] == "CANCELED" and data["cancelResponse"]["origClientOrderId"] == "new-3"
        assert data["newOrderResponse"] == {"code": -2010, "msg": "Order would immediately match and take."}
        # ALLOW_FAILURE, both fail: -2022
        resp = await api.call("order.cancelReplace", replace("ALLOW_FAILURE", "new-3", WOULD_TAKE), signer)
        assert resp["status"] == 400 and resp["error"]["code"] == -2022
        assert (resp["error"]["data"]["cancelResult"], resp["error"]["data"]["newOrderResult"]) == ("FAILURE", "FAILURE")
        opened = await api.call("openOrders.status", {"symbol": "BTCUSDT"}, signer)
        assert opened["result"] == []
    run_with(sim_server, scenario)


def test_ws_parameter_and_filter_errors_change_nothing(sim_server, sim_account):
    signer = sim_account.hmac_signer()

    async def scenario(api: ApiConnection):
        placed = await api.call("order.place", dict(RESTING, newClientOrderId="keep-1"), signer)
        order_id = placed["result"]["orderId"]
        missing = await api.call("order.cancelReplace", dict(NEW_PRICE, cancelOrigClientOrderId="keep-1"), signer)
        assert missing["error"]["code"] == -1102 and "'cancelReplaceMode'" in missing["error"]["msg"]
        bad_mode = await api.call("order.cancelReplace", replace("MAYBE", "keep-1", NEW_PRICE), signer)
        assert bad_mode["error"]["code"] == -1100 and "cancelReplaceMode" in bad_mode["error"]["msg"]
        no_ref = await api.call("order.cancelReplace", dict(NEW_PRICE, cancelReplaceMode="STOP_ON_FAILURE"), signer)
        assert no_ref["error"] == {"code": -1102, "msg": "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must "
                                                         "be sent, but both were empty/null!"}
        lot = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "keep-1", dict(NEW_PRICE,
                                                                                               quantity="0.000001")),
                             signer)
        assert (lot["status"], lot["error"]["code"], lot["error"]["msg"]) == (400, -1013, "Filter failure: LOT_SIZE")
        # with both references, the order found by id must carry the client id sent
        mismatch = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "someone-else", NEW_PRICE,
                                                                 cancelOrderId=order_id), signer)
        assert mismatch["error"]["code"] == -2022 and mismatch["error"]["data"]["cancelResponse"] == UNKNOWN_ORDER
        restricted = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "keep-1", NEW_PRICE,
                                                                   cancelRestrictions="ONLY_PARTIALLY_FILLED"), signer)
        assert restricted["error"]["code"] == -2022 and restricted["error"]["data"]["cancelResponse"] == {
            "code": -2011, "msg": "Order was not canceled due to cancel restrictions."}
        status = await api.call("order.status", {"symbol": "BTCUSDT", "orderId": order_id}, signer)
        assert status["result"]["status"] == "NEW"                # still resting after all of these
    run_with(sim_server, scenario)


def test_ws_cancel_replace_can_be_disabled_per_symbol(sim_server, sim_account):
    signer = sim_account.hmac_signer()
    sim_server.control.allow_cancel_replace("BTCUSDT", False)

    async def scenario(api: ApiConnection):
        info = await api.call("exchangeInfo", {"symbols": '["BTCUSDT","ETHUSDT"]'})
        assert {s["symbol"]: s["cancelReplaceAllowed"] for s in info["result"]["symbols"]} == \
            {"BTCUSDT": False, "ETHUSDT": True}
        await api.call("order.place", dict(RESTING, newClientOrderId="keep-2"), signer)
        resp = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "keep-2", NEW_PRICE), signer)
        assert resp["error"] == {"code": -2010, "msg": "Order cancel-replace is not supported for this symbol."}
        status = await api.call("order.status", {"symbol": "BTCUSDT", "origClientOrderId": "keep-2"}, signer)
        assert status["result"]["status"] == "NEW"
    run_with(sim_server, scenario)


def test_unfilled_order_limit_do_nothing_or_cancel_only(sim_factory, sim_account):
    # the DAY window: a 10 s window could roll over between two requests
    sim = sim_factory({"limits.orders_per_day": 2})
    signer = sim_account.hmac_signer()

    async def scenario(api: ApiConnection):
        await api.call("order.place", dict(RESTING, newClientOrderId="lim-1"), signer)
        await api.call("order.place", dict(RESTING, price="50000.01", newClientOrderId="lim-2"), signer)
        resp = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "lim-1", NEW_PRICE), signer)
        assert resp["status"] == 429 and resp["error"]["code"] == -1015      # DO_NOTHING: nothing cancelled
        resp = await api.call("order.cancelReplace", replace("STOP_ON_FAILURE", "lim-1", NEW_PRICE,
                                                             orderRateLimitExceededMode="CANCEL_ONLY"), signer)
        assert resp["status"] == 409 and resp["error"]["code"] == -2021
        data = resp["error"]["data"]
        assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
        assert data["newOrderResponse"]["code"] == -1015
        opened = await api.call("openOrders.status", {"symbol": "BTCUSDT"}, signer)
        assert [o["clientOrderId"] for o in opened["result"]] == ["lim-2"]
    run_with(sim, scenario)


def test_rest_cancel_replace_success_and_409(sim_server, sim_account):
    client = Client(sim_server.rest_url, sim_account.hmac_signer())
    path = "/api/v3/order/cancelReplace"
    assert client.order(**dict(RESTING, newClientOrderId="old-r")).json()["status"] == "NEW"
    resp = client.signed("POST", path, replace("STOP_ON_FAILURE", "old-r", NEW_PRICE, newClientOrderId="new-r",
                                               newOrderRespType="ACK"), in_body=True)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"cancelResult", "newOrderResult", "cancelResponse", "newOrderResponse"}
    assert body["cancelResponse"]["status"] == "CANCELED" and body["cancelResponse"]["origClientOrderId"] == "old-r"
    assert set(body["newOrderResponse"]) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    assert resp.headers["X-MBX-ORDER-COUNT-1D"] == "2"           # the order placed and this one
    # the cancel succeeds, the new order would take: HTTP 409, both halves in data
    resp = client.signed("POST", path, replace("STOP_ON_FAILURE", "new-r", WOULD_TAKE), in_body=True)
    assert error_of(resp) == (409, -2021, "Order cancel-replace partially failed.")
    data = resp.json()["data"]
    assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
    assert data["newOrderResponse"] == {"code": -2010, "msg": "Order would immediately match and take."}
    # nothing left to cancel: STOP_ON_FAILURE answers 400 -2022 and places nothing
    resp = client.signed("POST", path, replace("STOP_ON_FAILURE", "new-r", NEW_PRICE))
    assert error_of(resp) == (400, -2022, "Order cancel-replace failed.")
    assert resp.json()["data"] == {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                                   "cancelResponse": UNKNOWN_ORDER, "newOrderResponse": None}
    opened = client.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()
    assert opened == []
