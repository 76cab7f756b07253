"""Building blocks for executor tests and tools: md records and intents (a universe with the
simulator's real rules: ``ctrader.sim.testing.sim_universe``).

    uni = sim_universe(["BTCUSDT", "ETHBTC", "ETHUSDT"])
    md = depth_record(uni.symbol_id("BTCUSDT"), bids=[(60000, 1.0)], asks=[(60001, 0.5)], mono_ns=t)
    it = intent_record(uni, "BTCUSDT", Side.BUY, price=60001, qty=0.01, group_id=7)
"""
from __future__ import annotations

import numpy as np

from ctrader.core.records import (
    BOOK_DEPTH,
    EXEC_EVENT,
    MD_EVENT,
    ORDER_INTENT,
    ExecKind,
    IntentAction,
    MdKind,
    OrderType,
    Side,
    TimeInForce,
)
from ctrader.market.universe import Universe
from ctrader.venue.decimals import to_step


def depth_record(symbol_id: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
                 mono_ns: int, flags: int = 0, kind: MdKind = MdKind.DEPTH) -> np.ndarray:
    """One md record replacing a symbol's levels (best first)."""
    rec = np.zeros(1, MD_EVENT)
    r = rec[0]
    r["symbol_id"], r["kind"], r["flags"] = symbol_id, int(kind), flags
    r["n_bids"], r["n_asks"] = min(len(bids), BOOK_DEPTH), min(len(asks), BOOK_DEPTH)
    for i, (px, qty) in enumerate(bids[:BOOK_DEPTH]):
        r["bid_px"][i], r["bid_qty"][i] = px, qty
    for i, (px, qty) in enumerate(asks[:BOOK_DEPTH]):
        r["ask_px"][i], r["ask_qty"][i] = px, qty
    r["recv_mono_ns"] = mono_ns
    r["recv_ts_ns"] = mono_ns
    return rec


def intent_record(uni: Universe, symbol: str, side: Side, price: float, qty: float, group_id: int = 1,
                  leg: int = 0, n_legs: int = 1, order_type: OrderType = OrderType.LIMIT,
                  tif: TimeInForce = TimeInForce.IOC, client_order_id: str = "",
                  cause_mono_ns: int = 0, created_mono_ns: int = 0,
                  good_till_mono_ns: int = 0) -> np.ndarray:
    """One ORDER_INTENT with exact ticks/steps computed from ``price`` / ``qty``."""
    info = uni.by_name[symbol]
    rec = np.zeros(1, ORDER_INTENT)
    r = rec[0]
    r["group_id"], r["symbol_id"], r["leg"], r["n_legs"] = group_id, info.id, leg, n_legs
    r["side"], r["order_type"], r["tif"] = int(side), int(order_type), int(tif)
    r["price_ticks"] = to_step(price, info.tick_units, "nearest") // info.tick_units if price else 0
    r["qty_steps"] = to_step(qty, info.step_units, "floor") // info.step_units
    r["price"], r["qty"] = price, qty
    r["cause_recv_mono_ns"] = cause_mono_ns
    r["cause_recv_ts_ns"] = cause_mono_ns
    r["created_mono_ns"] = created_mono_ns
    r["score"] = np.nan
    r["client_order_id"] = client_order_id.encode()
    r["good_till_mono_ns"] = good_till_mono_ns
    return rec


def cancel_intent(target_client_order_id: str) -> np.ndarray:
    """One ORDER_INTENT asking the executor to cancel the open order ``target_client_order_id``."""
    rec = np.zeros(1, ORDER_INTENT)
    rec[0]["action"] = int(IntentAction.CANCEL)
    rec[0]["target_client_order_id"] = target_client_order_id.encode()
    return rec


def exec_record(intent: np.void, kind: ExecKind, qty: float) -> np.ndarray:
    """One EXEC_EVENT answering ``intent`` (an ORDER_INTENT record): ``kind`` for ``qty`` at its
    limit price, in one go (a venue that fills or cancels whole; no fees)."""
    rec = np.zeros(1, EXEC_EVENT)
    for f in ("group_id", "symbol_id", "side", "leg", "client_order_id", "cause_recv_mono_ns"):
        rec[0][f] = intent[f]
    rec[0]["kind"] = kind
    rec[0]["last_px"] = intent["price"]
    rec[0]["last_qty"] = rec[0]["cum_qty"] = qty
    rec[0]["cum_quote"] = qty * float(intent["price"])
    return rec
