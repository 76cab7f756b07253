"""Running simulators for tests and tools: configs, a test account with known keys, clients.

    from ctrader.sim.testing import start_sim, TEST_ACCOUNT

    sim = start_sim({"market.speed": 0, "limits.request_weight_per_minute": 100})
    try:
        signer = TEST_ACCOUNT.hmac_signer()           # or .ed25519_signer()
        ...  sim.rest_url, sim.ws_url, sim.ws_api_url, sim.control.drop_diffs("BTCUSDT")
    finally:
        sim.stop()

``tests/conftest.py`` wraps this in the ``sim_server`` / ``sim_factory`` fixtures. Overrides are
keys of the ``[sim]`` section in dotted form (``"market.speed"``, ``"faults.clock_skew_ms"``); the
simulator listens on a free port unless ``"port"`` is given. The test account's keys are
deterministic loopback-only test values.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ctrader.config import load_config
from ctrader.config.schema import SimAccountConfig, SimConfig
from ctrader.market.universe import Universe
from ctrader.sim.server import SimThread
from ctrader.venue.signing import Signer, private_key_pem, public_key_pem


@dataclass(frozen=True)
class SimCredentials:
    """An account the simulator knows, with both of its keys (test values, loopback only)."""
    name: str
    api_key: str
    api_secret: str
    ed25519_api_key: str
    ed25519_seed: bytes
    balances: tuple[str, ...]
    maker_commission: float = 0.001
    taker_commission: float = 0.001

    def ed25519_private_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(self.ed25519_seed).digest())

    def ed25519_private_pem(self) -> bytes:
        return private_key_pem(self.ed25519_private_key())

    def hmac_signer(self) -> Signer:
        return Signer(self.api_key, secret=self.api_secret)

    def ed25519_signer(self) -> Signer:
        return Signer(self.ed25519_api_key, private_key_pem=self.ed25519_private_pem())

    def account_config(self) -> SimAccountConfig:
        return SimAccountConfig(
            name=self.name, api_key=self.api_key, api_secret=self.api_secret,
            ed25519_api_key=self.ed25519_api_key,
            ed25519_public_key=public_key_pem(self.ed25519_private_key().public_key()),
            maker_commission=self.maker_commission, taker_commission=self.taker_commission,
            balances=self.balances)


TEST_ACCOUNT = SimCredentials(
    name="test", api_key="sim-test-hmac-key", api_secret="sim-test-hmac-secret",
    ed25519_api_key="sim-test-ed25519-key", ed25519_seed=b"ctrader-sim-test-ed25519",
    balances=("USDT=1000000", "FDUSD=1000000", "BTC=20", "ETH=300", "BNB=1500", "SOL=5000", "XRP=1000000",
              "ADA=1000000", "DOGE=5000000", "LTC=10000", "TRX=5000000"))

OTHER_ACCOUNT = dataclasses.replace(
    TEST_ACCOUNT, name="other", api_key="sim-other-hmac-key", api_secret="sim-other-hmac-secret",
    ed25519_api_key="sim-other-ed25519-key", ed25519_seed=b"ctrader-sim-other-ed25519")


def sim_config(overrides: Mapping[str, Any] | None = None,
               accounts: tuple[SimCredentials, ...] = (TEST_ACCOUNT,)) -> SimConfig:
    """The default ``[sim]`` config with ``overrides`` (dotted keys inside [sim]) and test accounts."""
    sets = {"sim.port": "0"}
    for key, value in (overrides or {}).items():
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        sets[f"sim.{key}"] = str(value).lower() if isinstance(value, bool) else str(value)
    cfg = load_config(env={}, overrides=sets).sim
    return dataclasses.replace(cfg, accounts=tuple(a.account_config() for a in accounts))


def start_sim(overrides: Mapping[str, Any] | None = None,
              accounts: tuple[SimCredentials, ...] = (TEST_ACCOUNT,)) -> SimThread:
    """A simulator running on a background thread; call ``.stop()`` when done."""
    return SimThread(sim_config(overrides, accounts)).start()


def sim_universe(symbols: Iterable[str] | None = ("BTCUSDT", "ETHBTC", "ETHUSDT"),
                 start_assets=("USDT", "BTC")) -> Universe:
    """The simulator's built-in exchangeInfo as a Universe (no server needed)."""
    from ctrader.sim.universe import build_universe

    doc = build_universe(sim_config()).exchange_info
    return Universe.from_exchange_info(doc, list(symbols) if symbols else None, start_assets)
