"""run_executor as a run component: real rings, health slot, stats file; paper and live (simulator);
and the ``ctrader kill`` command."""
from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.core.records import EXEC_EVENT, ExecKind, RefusalReason, Side, TimeInForce
from ctrader.execution.process import run_executor
from ctrader.execution.testing import depth_record, intent_record
from ctrader.sim.testing import sim_universe
from ctrader.market.universe import Universe, fetch_exchange_info
from ctrader.runtime.resources import RunResources, consumer_id
from ctrader.core.stats import read_stats
from ctrader.runtime.stopping import ThreadStop
from ctrader.runtime.supervisor import ChildContext

pytestmark = pytest.mark.timeout(120)
SYMBOLS = ["BTCUSDT", "ETHBTC", "ETHUSDT"]


class Run:
    """The executor of a run on a thread, with the run's rings driven by the test."""

    def __init__(self, tmp_path, uni: Universe, overrides: dict):
        info = tmp_path / "exchange_info.json"
        info.write_text(json.dumps(uni.exchange_info))
        sets = {"run.data_dir": str(tmp_path), "market.exchange_info_file": str(info),
                "market.symbols": ",".join(SYMBOLS), "risk.max_order_notional": "100000",
                "execution.paper_latency_ms": "0"}
        sets.update(overrides)
        self.cfg = load_config(env={}, overrides=sets)
        self.uni = uni
        self.run_id = f"ex{os.getpid()}{id(self) & 0xfff}"
        self.res = RunResources.create(self.cfg, self.run_id, ["executor"])
        self.stop = ThreadStop()
        self.ctx = ChildContext("executor", self.cfg, self.run_id, self.stop, self.res.health.slot("executor"),
                                {k: r.name for k, r in self.res.rings.items()})
        self.md = self.res.rings["md"].producer()
        self.intents = self.res.rings["intents"].producer()
        self.exec = self.res.rings["exec"].consumer(consumer_id("exec", "strategy"))
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.seen: list = []

    def _run(self):
        try:
            run_executor(self.ctx)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def wait_attached(self, timeout_s=30.0):
        """Until the executor consumes the md ring (a broadcast consumer starts at the newest record)."""
        deadline = time.monotonic() + timeout_s
        while not self.res.rings["md"].stats()["consumers"] and time.monotonic() < deadline:
            assert self.error is None, self.error
            time.sleep(0.02)

    def books(self, levels: dict):
        for sym, (bids, asks) in levels.items():
            self.md.write(depth_record(self.uni.symbol_id(sym), bids, asks, time.monotonic_ns()))

    def wait_exec(self, n, timeout_s=20.0):
        buf = np.empty(64, EXEC_EVENT)
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < n and time.monotonic() < deadline:
            assert self.error is None, self.error
            got = self.exec.read_batch(buf, 0.05)
            self.seen += [buf[i].copy() for i in range(got)]
        return [(ExecKind(int(e["kind"])).name, int(e["reject_code"])) for e in self.seen]

    def close(self):
        """Stop the executor, collect what it published while stopping, remove the rings."""
        self.stop.set()
        self.thread.join(30)
        buf = np.empty(64, EXEC_EVENT)
        got = self.exec.read_batch(buf, 0.0)
        self.seen += [buf[i].copy() for i in range(got)]
        self.res.close()
        assert self.error is None, self.error


def test_paper_executor_component_fills_refuses_and_reports(tmp_path):
    uni = sim_universe(SYMBOLS)
    run = Run(tmp_path, uni, {"run.mode": "paper"})
    try:
        run.wait_attached()
        run.books({"BTCUSDT": ([(60000.0, 1.0)], [(60001.0, 0.004), (60002.0, 1.0)]),
                   "ETHUSDT": ([(3000.0, 5.0)], [(3000.5, 5.0)]), "ETHBTC": ([(0.05, 5.0)], [(0.05001, 5.0)])})
        time.sleep(0.2)
        run.intents.write(intent_record(uni, "BTCUSDT", Side.BUY, 60002.0, 0.01, group_id=1,
                                        cause_mono_ns=time.monotonic_ns()))
        run.intents.write(intent_record(uni, "BTCUSDT", Side.BUY, 60001.0, 0.00001, group_id=2))   # < min notional
        kinds = run.wait_exec(4)
        by_group = {g: [k for k, e in zip(kinds, run.seen) if e["group_id"] == g] for g in (1, 2)}
        assert by_group == {1: [("ACK", 0), ("PARTIAL_FILL", 0), ("FILL", 0)],
                            2: [("REFUSED", RefusalReason.FILTER)]}
        fill = next(e for e in run.seen if e["kind"] == ExecKind.FILL)
        assert fill["last_px"] == 60002.0 and fill["cum_qty"] == pytest.approx(0.01)
        assert fill["fee_asset_id"] == uni.asset_id("BTC") and fill["sent_mono_ns"] > fill["cause_recv_mono_ns"] > 0
    finally:
        run.close()
    stats = read_stats(run.ctx.run_dir)["executor"]
    assert stats["fills"] == 2 and stats["refusals"] == {"FILTER": 1}
    assert stats["positions"]["BTC"] == pytest.approx(0.01 - 0.00001)
    assert stats["tick_to_order"]["n"] == 1 and stats["tick_to_order"]["p99_us"] > 0
    assert stats["mode"] == "paper"


def test_live_executor_component_on_the_simulator(tmp_path, sim_server, sim_account, monkeypatch):
    sim_server.control.pause()
    uni = Universe.from_exchange_info(fetch_exchange_info(sim_server.rest_url), SYMBOLS)
    monkeypatch.setenv("CTRADER_API_KEY", sim_account.api_key)
    monkeypatch.setenv("CTRADER_API_SECRET", sim_account.api_secret)
    run = Run(tmp_path, uni, {"run.mode": "live", "venue.kind": "sim", "sim.port": str(sim_server.server.port)})
    try:
        run.wait_attached()
        levels = {}
        for s in SYMBOLS:
            _, bids, asks = sim_server.control.book(s, 10)
            levels[s] = ([(p / 1e8, q / 1e8) for p, q in bids], [(p / 1e8, q / 1e8) for p, q in asks])
        run.books(levels)
        time.sleep(0.2)
        ask = levels["BTCUSDT"][1][0][0]
        bid = levels["BTCUSDT"][0][0][0]
        run.intents.write(intent_record(uni, "BTCUSDT", Side.BUY, ask, 0.001, group_id=1))
        run.intents.write(intent_record(uni, "BTCUSDT", Side.BUY, round(bid * 0.98, 2), 0.001, group_id=2,
                                        tif=TimeInForce.GTC, client_order_id="ct-resting"))
        kinds = run.wait_exec(3)
        assert ("FILL", 0) in kinds and kinds.count(("ACK", 0)) == 2
    finally:
        run.close()          # stopping cancels the resting order on the venue
    assert ExecKind.CANCELED in [int(e["kind"]) for e in run.seen]
    stats = read_stats(run.ctx.run_dir)["executor"]
    assert stats["mode"] == "live" and stats["orders_sent"] == 2 and stats["open_orders"] == 0


def test_kill_command_creates_and_clears_the_kill_file(tmp_path):
    runner = CliRunner()
    env = {"CTRADER_DATA_DIR": str(tmp_path)}
    result = runner.invoke(app, ["kill"], env=env)
    assert result.exit_code == 0 and (tmp_path / "KILL").exists()
    result = runner.invoke(app, ["kill", "--clear"], env=env)
    assert result.exit_code == 0 and not (tmp_path / "KILL").exists()


def test_sigkilled_executor_process_restarts_and_sends_no_intent_twice(tmp_path):
    """A real child process under the supervisor, killed with SIGKILL in the middle of a stream
    of intents: after the restart every intent has exactly one outcome and none was acked twice."""
    import signal

    from ctrader.runtime.supervisor import Component, Supervisor

    uni = sim_universe(SYMBOLS)
    info = tmp_path / "exchange_info.json"
    info.write_text(json.dumps(uni.exchange_info))
    cfg = load_config(env={}, overrides={
        "run.data_dir": str(tmp_path), "market.exchange_info_file": str(info), "market.symbols": ",".join(SYMBOLS),
        "risk.max_order_notional": "100000", "risk.max_group_notional": "100000", "risk.max_position": "1e9",
        "risk.orders_per_10s": "100000", "risk.daily_loss_limit": "1e9", "risk.max_open_orders": "1000",
        "execution.paper_latency_ms": "0"})
    sup = Supervisor(cfg, [Component("executor", "ctrader.execution.process:run_executor")], f"exk{os.getpid()}",
                     heartbeat_timeout_s=30)
    sup.start()
    rings = sup.resources.rings
    md, intents = rings["md"].producer(), rings["intents"].producer()
    strategy = rings["exec"].consumer(consumer_id("exec", "strategy"))
    recorder = rings["exec"].consumer(consumer_id("exec", "recorder"))
    seen: list = []
    buf = np.empty(256, EXEC_EVENT)

    def drain():
        n = strategy.read_batch(buf, 0.01)
        seen.extend(buf[i].copy() for i in range(n))
        recorder.read_batch(np.empty(256, EXEC_EVENT), 0.0)

    def fresh_books(timeout_s=60):
        pid = sup.children["executor"].process.pid      # wait until this very process reads md
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and pid not in [c["pid"] for c in rings["md"].stats()["consumers"]]:
            time.sleep(0.05)
        for sym, (bid, ask) in {"BTCUSDT": (60000.0, 60001.0), "ETHUSDT": (3000.0, 3000.5),
                                "ETHBTC": (0.05, 0.05001)}.items():
            md.write(depth_record(uni.symbol_id(sym), [(bid, 1000.0)], [(ask, 1000.0)], time.monotonic_ns()))

    def send(groups):
        for g in groups:
            intents.write(intent_record(uni, "BTCUSDT", Side.BUY, 60001.0, 0.001, group_id=g))

    try:
        fresh_books()
        time.sleep(0.2)
        send(range(1, 151))
        deadline = time.monotonic() + 30
        while len(seen) < 30 and time.monotonic() < deadline:
            drain()
        victim = sup.children["executor"].process.pid
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while sup.children["executor"].process.pid == victim and time.monotonic() < deadline:
            sup.check_children()
            time.sleep(0.05)
        fresh_books()          # the new process's md consumer starts at the newest record: show it the books
        time.sleep(0.2)
        send(range(151, 201))
        outcomes: dict[int, list[str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            drain()
            outcomes = {}
            for e in seen:
                kind = ExecKind(int(e["kind"])).name
                if kind == "REFUSED":
                    kind += f":{RefusalReason(int(e['reject_code'])).name}"
                outcomes.setdefault(int(e["group_id"]), []).append(kind)
            if len(outcomes) == 200 and all(k[-1].split(":")[0] in ("FILL", "CANCELED", "REFUSED", "REJECTED")
                                            for k in outcomes.values()):
                break
    finally:
        codes = sup.stop()
    assert codes == {"executor": 0}
    assert sorted(outcomes) == list(range(1, 201))
    # At least once, and again only for the order caught in the act: the one whose events reached
    # the exec ring before the kill but whose journal "published" line did not is published again
    # by the new process. One kill: at most one such order (seen in about one run in four).
    twice = {g: kinds for g, kinds in outcomes.items() if kinds.count("ACK") > 1 or kinds.count("FILL") > 1}
    assert len(twice) <= 1, twice
    # intents re-read after the restart were refused as stale (the new process had no book yet) or
    # recognised as journaled; the ones sent after it saw the books again filled
    assert all(outcomes[g] == ["ACK", "FILL"] for g in range(151, 201)), {g: k for g, k in outcomes.items() if g > 150 and k != ["ACK", "FILL"]}
