"""Shared fixtures: a running Binance Spot simulator on 127.0.0.1.

    def test_feed(sim_server):                 # default config, free port, market at speed 1
        sim_server.ws_url, sim_server.rest_url, sim_server.ws_api_url
        sim_server.control.drop_diffs("BTCUSDT")          # faults and market control, thread-safe

    def test_stress(sim_factory):              # own settings: dotted keys inside [sim]
        sim = sim_factory({"market.speed": 0, "limits.ping_interval_s": 0.5})

``sim_account`` is the account the simulator knows (``ctrader.sim.testing.TEST_ACCOUNT``): an
HMAC key and an Ed25519 key with generous balances; ``.hmac_signer()`` / ``.ed25519_signer()``
sign requests for it.
"""
from __future__ import annotations

import os
import socket

import pytest

from ctrader.sim.testing import TEST_ACCOUNT, SimCredentials, start_sim


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Sessions the tests start (in-process or as `ctrader start` subprocesses, which inherit this)
# serve their monitor on a port of this test run's own, not on the default 8780 that a session
# of the user's, or another test run on the same machine, may hold.
os.environ.setdefault("CTRADER_MONITOR_PORT", str(_free_port()))


@pytest.fixture
def sim_factory():
    started = []

    def make(overrides: dict | None = None, accounts: tuple[SimCredentials, ...] = (TEST_ACCOUNT,)):
        sim = start_sim(overrides, accounts)
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim_server(sim_factory):
    return sim_factory()


@pytest.fixture
def sim_account() -> SimCredentials:
    return TEST_ACCOUNT
