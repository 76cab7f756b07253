"""Orders, fills and the requests that create them, as the matching engine keeps them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Order statuses and execution types (enums.md).
NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED = "NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"
OPEN_STATUSES = (NEW, PARTIALLY_FILLED)


@dataclass(frozen=True)
class OrderRequest:
    """A validated new-order request (prices and quantities in 1e-8 units)."""
    symbol: str
    side: str                       # BUY | SELL
    type: str                       # LIMIT | LIMIT_MAKER | MARKET
    time_in_force: str | None       # GTC | IOC | FOK for LIMIT, else None
    quantity: int | None
    quote_order_qty: int | None
    price: int | None
    client_order_id: str | None
    resp_type: str                  # ACK | RESULT | FULL
    strategy_id: int | None = None
    strategy_type: int | None = None


@dataclass(eq=False)
class Order:
    symbol: str
    order_id: int
    client_order_id: str
    account: Any                     # accounts.Account
    side: str
    type: str
    time_in_force: str
    price: int                       # 0 for MARKET
    orig_qty: int                    # 0 for a MARKET order by quoteOrderQty until it executes
    orig_quote_qty: int
    time: int
    strategy_id: int | None = None
    strategy_type: int | None = None
    executed_qty: int = 0
    cum_quote: int = 0
    status: str = NEW
    update_time: int = 0
    working_time: int = -1
    is_working: bool = False         # resting on the book
    locked_asset: str = ""
    locked: int = 0                  # funds still reserved for this order
    filled_once: bool = False        # the ORDERS count is decremented on the first fill
    expiry_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def remaining(self) -> int:
        return self.orig_qty - self.executed_qty


@dataclass(frozen=True)
class Fill:
    """One trade as seen by one order."""
    trade_id: int
    price: int
    qty: int
    quote: int
    commission: int
    commission_asset: str
    is_maker: bool
    time: int


@dataclass(eq=False)
class TradeRecord:
    """A fill kept for /api/v3/myTrades."""
    symbol: str
    order: Order
    fill: Fill
    is_buyer: bool
    order_list_id: int = -1
    extra: dict = field(default_factory=dict)
