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


# The default run is the lean one CI runs (under 20 minutes on a 2-vCPU machine); the tests
# marked ``slow`` (whole multi-process sessions, long fault-injection runs) are deselected unless
# asked for: ``tools/test --slow`` runs everything, ``tools/test -m slow`` only them. Naming a slow
# test's node id (``tools/test tests/test_stop_session.py::test_x``) also runs it.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run the tests marked slow (deselected by default)")


def _runs_slow_tests(config: pytest.Config) -> bool:
    if config.getoption("--slow") or os.environ.get("CTRADER_SLOW_TESTS") == "1":
        return True
    if "slow" in (config.getoption("markexpr") or ""):
        return True      # the -m expression decides
    return any("::" in arg for arg in config.args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _runs_slow_tests(config):
        return
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item.get_closest_marker("slow") is None]
        config.stash[_SLOW_DESELECTED] = len(slow)


_SLOW_DESELECTED = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    count = config.stash.get(_SLOW_DESELECTED, 0)
    if count:
        terminalreporter.write_line(f"{count} slow tests deselected: `tools/test --slow` runs them too")


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


# --- the replay tests' history: the default configuration unscored, its universe, 40 s of the
# simulator's market (seed 11); a module defining its own cfg/uni/md uses those instead

@pytest.fixture(scope="module")
def cfg():
    from ctrader.config import load_config

    return load_config(None, overrides={"model.name": "none"})


@pytest.fixture(scope="module")
def uni(cfg):
    from ctrader.replay.runner import resolve_universe

    return resolve_universe(cfg)


@pytest.fixture(scope="module")
def md(cfg, uni):
    from ctrader.replay.history import simulated_md

    return simulated_md(cfg, uni, seconds=40, seed=11)
