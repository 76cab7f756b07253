"""The simulator accounts of the race: one per contender, so that head-to-head rounds are fair.

The keys are loopback-only benchmark values that only the race's own simulator knows: not secrets.
"""
from __future__ import annotations

from dataclasses import dataclass

from ctrader.config.schema import SimAccountConfig

BALANCES = ("USDT=1000000", "FDUSD=1000000", "BTC=20", "ETH=300", "BNB=1500", "SOL=5000", "XRP=1000000",
            "ADA=1000000", "DOGE=5000000", "LTC=10000", "TRX=5000000")
TAKER_FEE = 0.001


@dataclass(frozen=True)
class RaceAccount:
    name: str

    @property
    def api_key(self) -> str:
        return f"race-{self.name}-hmac-key"

    @property
    def api_secret(self) -> str:
        return f"race-{self.name}-hmac-secret"

    def config(self) -> SimAccountConfig:
        return SimAccountConfig(name=self.name, api_key=self.api_key, api_secret=self.api_secret,
                                ed25519_api_key="", ed25519_public_key="", maker_commission=TAKER_FEE,
                                taker_commission=TAKER_FEE, balances=BALANCES)
