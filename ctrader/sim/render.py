"""Binance's JSON shapes for orders, fills, trades, accounts and user-data events.

Field names, order and formatting follow rest-api.md / web-socket-api.md / user-data-stream.md:
decimals as 8-decimal strings, times as integer milliseconds.
"""
from __future__ import annotations

from ctrader.sim.accounts import Account
from ctrader.sim.orders import EXPIRED, Fill, Order, TradeRecord
from ctrader.venue.decimals import format_units as fmt
from ctrader.venue.fees import bps

STP_MODE = "NONE"


def order_ack(order: Order) -> dict:
    return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
            "clientOrderId": order.client_order_id, "transactTime": order.time}


def _common(order: Order) -> dict:
    return {"price": fmt(order.price), "origQty": fmt(order.orig_qty), "executedQty": fmt(order.executed_qty),
            "origQuoteOrderQty": fmt(order.orig_quote_qty), "cummulativeQuoteQty": fmt(order.cum_quote),
            "status": order.status, "timeInForce": order.time_in_force, "type": order.type, "side": order.side}


def _strategy(order: Order, doc: dict) -> dict:
    if order.strategy_id is not None:
        doc["strategyId"] = order.strategy_id
    if order.strategy_type is not None:
        doc["strategyType"] = order.strategy_type
    return doc


def order_result(order: Order) -> dict:
    doc = order_ack(order)
    doc.update(_common(order))
    doc["workingTime"] = order.working_time
    doc["selfTradePreventionMode"] = STP_MODE
    if order.status == EXPIRED and order.expiry_reason:
        doc["expiryReason"] = order.expiry_reason
    return _strategy(order, doc)


def fill(f: Fill) -> dict:
    return {"price": fmt(f.price), "qty": fmt(f.qty), "commission": fmt(f.commission),
            "commissionAsset": f.commission_asset, "tradeId": f.trade_id}


def order_full(order: Order, fills: list[Fill]) -> dict:
    doc = order_result(order)
    doc["fills"] = [fill(f) for f in fills]
    return doc


def order_response(order: Order, fills: list[Fill], resp_type: str) -> dict:
    if resp_type == "ACK":
        return order_ack(order)
    if resp_type == "RESULT":
        return order_result(order)
    return order_full(order, fills)


def order_query(order: Order) -> dict:
    doc = {"symbol": order.symbol, "orderId": order.order_id, "orderListId": -1,
           "clientOrderId": order.client_order_id}
    doc.update(_common(order))
    doc.update({"stopPrice": fmt(0), "icebergQty": fmt(0), "time": order.time, "updateTime": order.update_time,
                "isWorking": order.is_working, "workingTime": order.working_time,
                "origQuoteOrderQty": fmt(order.orig_quote_qty), "selfTradePreventionMode": STP_MODE})
    return _strategy(order, doc)


def order_canceled(order: Order, cancel_client_id: str) -> dict:
    doc = {"symbol": order.symbol, "origClientOrderId": order.client_order_id, "orderId": order.order_id,
           "orderListId": -1, "clientOrderId": cancel_client_id, "transactTime": order.update_time}
    doc.update(_common(order))
    doc["selfTradePreventionMode"] = STP_MODE
    return _strategy(order, doc)


def my_trade(rec: TradeRecord) -> dict:
    f = rec.fill
    return {"symbol": rec.symbol, "id": f.trade_id, "orderId": rec.order.order_id, "orderListId": -1,
            "price": fmt(f.price), "qty": fmt(f.qty), "quoteQty": fmt(f.quote), "commission": fmt(f.commission),
            "commissionAsset": f.commission_asset, "time": f.time, "isBuyer": rec.is_buyer, "isMaker": f.is_maker,
            "isBestMatch": True}


def account_info(account: Account, assets: list[str], omit_zero: bool) -> dict:
    balances = []
    for asset in sorted(set(assets) | set(account.balances)):
        bal = account.balance(asset)
        if omit_zero and not bal.free and not bal.locked:
            continue
        balances.append({"asset": asset, "free": fmt(bal.free), "locked": fmt(bal.locked)})
    return {
        "makerCommission": bps(account.maker_rate), "takerCommission": bps(account.taker_rate),
        "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": fmt(account.maker_rate), "taker": fmt(account.taker_rate),
                            "buyer": fmt(0), "seller": fmt(0)},
        "canTrade": account.can_trade, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": account.update_time,
        "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": account.uid,
    }


def execution_report(order: Order, exec_type: str, f: Fill | None, time_ms: int, execution_id: int,
                     cancel_client_id: str | None = None) -> dict:
    canceled = cancel_client_id is not None
    doc = {
        "e": "executionReport", "E": time_ms, "s": order.symbol,
        "c": cancel_client_id if canceled else order.client_order_id,
        "S": order.side, "o": order.type, "f": order.time_in_force, "q": fmt(order.orig_qty),
        "p": fmt(order.price), "P": fmt(0), "F": fmt(0), "g": -1,
        "C": order.client_order_id if canceled else "",
        "x": exec_type, "X": order.status, "r": "NONE", "i": order.order_id,
        "l": fmt(f.qty if f else 0), "z": fmt(order.executed_qty), "L": fmt(f.price if f else 0),
        "n": fmt(f.commission) if f else "0", "N": f.commission_asset if f else None,
        "T": f.time if f else time_ms, "t": f.trade_id if f else -1, "I": execution_id,
        "w": order.is_working, "m": f.is_maker if f else False, "M": False, "O": order.time,
        "Z": fmt(order.cum_quote), "Y": fmt(f.quote if f else 0), "Q": fmt(order.orig_quote_qty),
    }
    if order.is_working or order.working_time >= 0:
        doc["W"] = order.working_time
    doc["V"] = STP_MODE
    if exec_type == "EXPIRED" and order.expiry_reason:
        doc["eR"] = order.expiry_reason
    if order.strategy_id is not None:
        doc["j"] = order.strategy_id
    if order.strategy_type is not None:
        doc["J"] = order.strategy_type
    return doc


def account_position(account: Account, assets: list[str], time_ms: int) -> dict:
    return {"e": "outboundAccountPosition", "E": time_ms, "u": account.update_time,
            "B": [{"a": a, "f": fmt(account.balance(a).free), "l": fmt(account.balance(a).locked)} for a in assets]}
