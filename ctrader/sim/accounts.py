"""Simulated accounts: API keys, balances (free and locked), commission rates.

Accounts come from ``[[sim.accounts]]``. Each may have an HMAC key (key + secret) and an
Ed25519 key (key + public key); a request is verified with whichever key it names. Balances are
exact 1e-8 units and change only through the matching engine (locks for open orders, fills,
commission in the received asset).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ctrader.config.schema import SimAccountConfig
from ctrader.venue import signing
from ctrader.venue.decimals import parse_units
from ctrader.venue.fees import rate_units

from ctrader.venue.signing import DEMO_ED25519_SEED, demo_ed25519_private_key  # noqa: F401  (their home is venue)


@dataclass
class Balance:
    free: int = 0
    locked: int = 0


@dataclass(eq=False)
class Account:
    name: str
    uid: int
    maker_rate: int                       # commission rates in 1e-8 units (0.001 = 100_000)
    taker_rate: int
    balances: dict[str, Balance] = field(default_factory=dict)
    update_time: int = 0
    can_trade: bool = True

    def balance(self, asset: str) -> Balance:
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = Balance()
        return bal

    def lock(self, asset: str, amount: int) -> bool:
        """Move ``amount`` from free to locked; False (and no change) if free is short."""
        bal = self.balance(asset)
        if bal.free < amount:
            return False
        bal.free -= amount
        bal.locked += amount
        return True

    def unlock(self, asset: str, amount: int) -> None:
        bal = self.balance(asset)
        bal.locked -= amount
        bal.free += amount

    def spend_locked(self, asset: str, amount: int) -> None:
        self.balance(asset).locked -= amount

    def credit(self, asset: str, amount: int) -> None:
        self.balance(asset).free += amount


@dataclass(frozen=True, eq=False)
class ApiKey:
    key: str
    kind: str                                    # signing.HMAC_SHA256 | signing.ED25519
    account: Account
    secret: str = field(default="", repr=False)
    public_key: Ed25519PublicKey | None = field(default=None, repr=False)

    def verify(self, payload: bytes, signature: str) -> bool:
        if self.kind == signing.ED25519:
            return signing.verify_ed25519(self.public_key, payload, signature)
        return signing.verify_hmac(self.secret, payload, signature)


class AccountRegistry:
    """All accounts and the API keys that act for them."""

    def __init__(self, configs: tuple[SimAccountConfig, ...] | list[SimAccountConfig]) -> None:
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, ApiKey] = {}
        for i, cfg in enumerate(configs):
            self.add(cfg, uid=1000 + i)

    def add(self, cfg: SimAccountConfig, uid: int) -> Account:
        if cfg.name in self.accounts:
            raise ValueError(f"sim.accounts: duplicate account name {cfg.name!r}")
        account = Account(cfg.name, uid, rate_units(cfg.maker_commission), rate_units(cfg.taker_commission))
        for item in cfg.balances:
            asset, sep, amount = item.partition("=")
            if not sep:
                raise ValueError(f"sim.accounts[{cfg.name}].balances: expected ASSET=AMOUNT, got {item!r}")
            account.balance(asset.strip().upper()).free = parse_units(amount.strip())
        if cfg.api_key:
            self._add_key(ApiKey(cfg.api_key, signing.HMAC_SHA256, account, secret=cfg.api_secret))
        if cfg.ed25519_api_key:
            public = signing.load_ed25519_public_key(cfg.ed25519_public_key)
            self._add_key(ApiKey(cfg.ed25519_api_key, signing.ED25519, account, public_key=public))
        self.accounts[cfg.name] = account
        return account

    def _add_key(self, key: ApiKey) -> None:
        if key.key in self.keys:
            raise ValueError(f"sim.accounts: API key of {key.account.name!r} is already used")
        self.keys[key.key] = key

    def key(self, api_key: str) -> ApiKey | None:
        return self.keys.get(api_key)
