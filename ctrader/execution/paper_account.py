"""A paper trading account: free and locked balances per asset, exact 1e-8 units.

Paper and replay orders draw on it as Binance's would: an order arriving at the venue locks its
reserve (``venue.balances.reserve``) or is refused -2010 when the free balance is short; each
fill spends from the lock and credits what was received (less commission); an order that ends
releases what it still locks. Balances never go below zero, so a paper session cannot end with
the negative positions a venue would have refused.

    account = PaperAccount.parse(["USDT=1000", "BTC=0.015"])
    if account.lock(order.client_order_id, "USDT", 65_000 * 10**8): ...
    account.fill(order.client_order_id, spent=("USDT", quote), received=("BTC", qty - fee))
    account.release(order.client_order_id)
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ctrader.venue.decimals import ONE, parse_units


@dataclass
class Balance:
    free: int = 0
    locked: int = 0


class PaperAccount:
    def __init__(self, balances: Mapping[str, int]) -> None:
        self.balances: dict[str, Balance] = {a: Balance(free=int(v)) for a, v in balances.items()}
        self.start = {a: int(v) for a, v in balances.items()}
        self._locks: dict[str, tuple[str, int]] = {}       # client id -> (asset, amount still locked)
        self.refusals = 0

    @classmethod
    def parse(cls, items: Iterable[str]) -> PaperAccount:
        """From ``ASSET=AMOUNT`` strings (the config's form)."""
        out: dict[str, int] = {}
        for item in items:
            asset, _, amount = item.partition("=")
            out[asset.strip().upper()] = out.get(asset.strip().upper(), 0) + parse_units(amount.strip())
        return cls(out)

    def _bal(self, asset: str) -> Balance:
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = Balance()
        return bal

    def free(self, asset: str) -> int:
        return self._bal(asset).free

    def lock(self, client_id: str, asset: str, amount: int) -> bool:
        """Reserve ``amount`` of ``asset`` for an order; False (nothing changes) if free is short."""
        bal = self._bal(asset)
        if amount > bal.free:
            self.refusals += 1
            return False
        bal.free -= amount
        bal.locked += amount
        self._locks[client_id] = (asset, amount)
        return True

    def fill(self, client_id: str, spent: tuple[str, int], received: tuple[str, int]) -> None:
        """A fill of the order: ``spent`` comes out of its lock (the rest of a lock stays for the
        order's remainder; what exceeds it, a MARKET buy walking deeper than reserved, out of
        the free balance), ``received`` (net of commission) is credited."""
        asset, amount = spent
        held_asset, held = self._locks.get(client_id, (asset, 0))
        from_lock = min(amount, held) if held_asset == asset else 0
        bal = self._bal(asset)
        bal.locked -= from_lock
        bal.free -= amount - from_lock
        if client_id in self._locks:
            self._locks[client_id] = (held_asset, held - from_lock)
        got_asset, got = received
        self._bal(got_asset).free += got

    def release(self, client_id: str) -> None:
        """The order ended: what it still locks is free again."""
        asset, amount = self._locks.pop(client_id, ("", 0))
        if amount:
            bal = self._bal(asset)
            bal.locked -= amount
            bal.free += amount

    def snapshot(self) -> dict[str, dict[str, float]]:
        """{asset: {"free", "locked", "start"}} in whole units (JSON for summaries)."""
        assets = sorted(set(self.balances) | set(self.start))
        return {a: {"free": self._bal(a).free / ONE, "locked": self._bal(a).locked / ONE,
                    "start": self.start.get(a, 0) / ONE}
                for a in assets if self._bal(a).free or self._bal(a).locked or self.start.get(a)}


__all__ = ["Balance", "PaperAccount"]
