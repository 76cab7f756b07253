"""Running race rounds: a fresh simulator, contenders as OS processes, the simulator's report.

A round starts a simulator in its own process (``SimProcess``: the plan's seed, random
dislocations off, one account per contender), gives every contender of the round its own
listener port (``listen``: the simulator tells their sockets apart by it), starts the contenders,
waits until each is connected and ready, schedules the race (``race_start``), waits until the
last dislocation has closed, reads ``race_report``, and stops everything. A round with one
contender is a solo round; with two, a head-to-head round.

    plan = RacePlan(dislocations=20)
    result = run_round([FLOOR, REFBOT], plan, workdir)
    result.report["answers"]            # see ctrader.sim.race
"""
from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ctrader.benchmarks.race.accounts import RaceAccount
from ctrader.config.schema import SimConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RacePlan:
    """One race: what every contender of every round sees."""
    dislocations: int = 16
    seed: int = 7                 # the market's seed and the schedule's
    interval_ms: int = 5000       # between dislocations (each closes before the next opens)
    duration_ms: int = 1000       # how long each stays open
    bps: float = 60.0             # how far the leg moves
    lead_ms: int = 3000           # market time from race_start to the first dislocation

    @property
    def seconds(self) -> float:
        return (self.lead_ms + self.dislocations * self.interval_ms) / 1000.0


# --- the simulator ------------------------------------------------------------------------------

def _serve(cfg: SimConfig, port_out, stop_event) -> None:
    import asyncio

    from ctrader.sim.server import SimServer

    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        server = SimServer(cfg)
        await server.start()
        port_out.put(server.port)
        loop = asyncio.get_running_loop()
        while not await loop.run_in_executor(None, stop_event.wait, 0.5):
            pass
        await server.stop()

    asyncio.run(main())


class SimProcess:
    """A simulator in its own process (spawned), driven over ``/sim/v1/control``."""

    def __init__(self, cfg: SimConfig) -> None:
        ctx = mp.get_context("spawn")
        self._port_q = ctx.Queue()
        self._stop = ctx.Event()
        self.proc = ctx.Process(target=_serve, args=(cfg, self._port_q, self._stop), name="race-sim", daemon=True)
        self.port = 0

    def start(self, timeout_s: float = 60.0) -> SimProcess:
        self.proc.start()
        self.port = self._port_q.get(timeout=timeout_s)
        return self

    def control(self, op: str, timeout_s: float = 60.0, **args) -> object:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/sim/v1/control",
                                     data=json.dumps({"op": op, "args": args}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return json.load(resp)["result"]

    def stop(self, timeout_s: float = 20.0) -> None:
        self._stop.set()
        self.proc.join(timeout_s)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def race_sim_config(plan: RacePlan, accounts: list[RaceAccount]) -> SimConfig:
    """The default ``[sim]`` with the plan's seed, no random dislocations, the contenders' accounts."""
    from ctrader.config import load_config

    cfg = load_config(env={}, overrides={"sim.port": "0", "sim.seed": str(plan.seed),
                                         "sim.market.dislocations_per_min": "0"}).sim
    return dataclasses.replace(cfg, accounts=tuple(a.config() for a in accounts))


# --- contenders ---------------------------------------------------------------------------------

@dataclass
class Launched:
    proc: subprocess.Popen
    out: Path
    err: Path
    started: float = field(default_factory=time.monotonic)

    def stderr_text(self) -> str:
        try:
            return self.err.read_text(errors="replace")
        except OSError:
            return ""


class Contender(Protocol):
    name: str                      # also its listener tag and its simulator account
    ready_timeout_s: float

    def launch(self, port: int, workdir: Path) -> Launched: ...

    def is_ready(self, launched: Launched, connections: dict) -> bool: ...

    def stop(self, launched: Launched) -> dict: ...


def _tag_connected(connections: dict, tag: str, api: bool, user_data: bool = False) -> bool:
    """``tag`` has a market-stream connection with streams (and a WS API session, subscribed to its
    user data when ``user_data``)."""
    streams = any(c["tag"] == tag and c["streams"] > 0 for c in connections["streams"])
    sessions = [c for c in connections["api"] if c["tag"] == tag]
    return streams and (not api or bool(sessions)) and (not user_data or any(c["subscriptions"] for c in sessions))


def _spawn(cmd: list[str], workdir: Path, name: str, env: dict | None = None) -> Launched:
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, start_new_session=True)
    return Launched(proc, out, err)


def _stop(launched: Launched, sig: int, timeout_s: float) -> int:
    proc = launched.proc
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("race contender pid %d did not stop in %.0f s: killed", proc.pid, timeout_s)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


def _last_json(path: Path) -> dict:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return {}
    start = text.find("{")
    if start < 0:
        return {}
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError:
        for line in reversed(text.splitlines()):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


@dataclass(frozen=True)
class ScriptContender:
    """A Python contender module of this package (``floor``, ``refbot``, ``ccxt_bot``)."""
    name: str
    module: str
    args: tuple[str, ...] = ()
    api_at_start: bool = True        # opens its WS API connection before the first order
    ready_timeout_s: float = 60.0

    @property
    def account(self) -> RaceAccount:
        return RaceAccount(self.name)

    def launch(self, port: int, workdir: Path) -> Launched:
        a = self.account
        cmd = [sys.executable, "-m", f"ctrader.benchmarks.race.{self.module}", "--rest", f"http://127.0.0.1:{port}",
               "--ws", f"ws://127.0.0.1:{port}", "--key", a.api_key, "--secret", a.api_secret, *self.args]
        return _spawn(cmd, workdir, self.name)

    def is_ready(self, launched: Launched, connections: dict) -> bool:
        return _tag_connected(connections, self.name, self.api_at_start)

    def stop(self, launched: Launched) -> dict:
        code = _stop(launched, signal.SIGTERM, 20.0)
        return {"exit_code": code, **_last_json(launched.out)}


_STALE = re.compile(r"\bstale (\d+)")
_EVENTS = re.compile(r"\bevents (\d+)")


@dataclass(frozen=True)
class CtraderContender:
    """``ctrader start --processes`` in live mode against the race's simulator, default config otherwise.

    Its own data directory, the simulator's listener as the venue (``--without sim``), the race
    account's keys in ``CTRADER_API_KEY`` / ``CTRADER_API_SECRET``. Ready when its feed reports
    no stale book and its strategy has seen events (the status line), its streams are connected
    and its executor's WS API session has subscribed to the user data stream.
    """
    name: str = "ctrader"
    extra_sets: tuple[str, ...] = ()
    ready_timeout_s: float = 180.0

    @property
    def account(self) -> RaceAccount:
        return RaceAccount(self.name)

    def launch(self, port: int, workdir: Path) -> Launched:
        a = self.account
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTRADER_")}
        env.update(CTRADER_DATA_DIR=str(workdir / "ctrader-data"), CTRADER_API_KEY=a.api_key,
                   CTRADER_API_SECRET=a.api_secret)
        sets = ["run.mode=live", "venue.kind=sim", "sim.host=127.0.0.1", f"sim.port={port}", *self.extra_sets]
        cmd = [sys.executable, "-m", "ctrader.cli.main", *(x for s in sets for x in ("--set", s)),
               "start", "--processes", "--without", "sim", "--json", "--status-every", "0.5"]
        return _spawn(cmd, workdir, self.name, env)

    def is_ready(self, launched: Launched, connections: dict) -> bool:
        if not _tag_connected(connections, self.name, api=True, user_data=True):
            return False
        text = launched.stderr_text()
        stale, events = _STALE.findall(text), _EVENTS.findall(text)
        if stale and events:
            return int(stale[-1]) == 0 and int(events[-1]) > 0
        # The strategy reports events once its kernels are loaded (seconds when numba's cache is
        # warm: see warm_ctrader). A status line that never shows those fields (another version of
        # ctrader): connected for two minutes counts as ready.
        if time.monotonic() - launched.started > 120.0 and not events:
            log.warning("ctrader's status line shows no strategy events: taking it as ready after 120 s")
            return True
        return False

    def stop(self, launched: Launched) -> dict:
        code = _stop(launched, signal.SIGINT, 60.0)
        return {"exit_code": code, "summary": _last_json(launched.out),
                "journal": read_journal(launched.out.parent / "ctrader-data" / "journal" / "executor-sim-live.jsonl")}


def read_journal(path: Path) -> dict[str, dict]:
    """Per client order id, the CLOCK_MONOTONIC stamps ctrader's executor journals: the feed's
    receipt of the frame that caused the order, the intent built, read by the executor, sent.
    Empty when the journal is not there or has another shape (it is ctrader's own file)."""
    out: dict[str, dict] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("k") == "intent" and "client_order_id" in rec:
            out[rec["client_order_id"]] = {k: rec.get(k) for k in ("cause_recv_mono_ns", "created_mono_ns",
                                                                    "seen_mono_ns")}
        elif rec.get("k") == "state" and rec.get("coid") in out and rec.get("sent"):
            out[rec["coid"]].setdefault("sent_mono_ns", rec["sent"])
    return out


def warm_ctrader(workdir: Path) -> None:
    """Compile (or load) ctrader's numba kernels before its rounds, as ``ctrader bench --suite e2e``
    does: after a source change the first start compiles for a minute on a loaded machine."""
    from ctrader.benchmarks.e2e import warm_up

    warm_up(str(workdir / "warm-up"))


# --- a round ------------------------------------------------------------------------------------

class RaceError(RuntimeError):
    pass


@dataclass
class RoundResult:
    contenders: list[str]
    report: dict
    summaries: dict[str, dict]
    load: tuple[float, float, float]
    wall_s: float


def run_round(contenders: list[Contender], plan: RacePlan, workdir: Path) -> RoundResult:
    """One round: these contenders (each on its own listener and account) against one fresh simulator."""
    t0 = time.monotonic()
    sim = SimProcess(race_sim_config(plan, [RaceAccount(c.name) for c in contenders])).start()
    launched: dict[str, Launched] = {}
    summaries: dict[str, dict] = {}
    try:
        for c in contenders:
            port = sim.control("listen", tag=c.name)
            launched[c.name] = c.launch(port, workdir / c.name)
        for c in contenders:
            deadline = time.monotonic() + c.ready_timeout_s
            while not c.is_ready(launched[c.name], sim.control("connections")):
                proc = launched[c.name].proc
                if proc.poll() is not None:
                    raise RaceError(f"race contender {c.name} exited with {proc.returncode} before it was ready: "
                                    f"{launched[c.name].stderr_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RaceError(f"race contender {c.name} not ready within {c.ready_timeout_s:.0f} s: "
                                    f"{launched[c.name].stderr_text()[-2000:]}")
                time.sleep(0.2)
        sim.control("race_start", count=plan.dislocations, seed=plan.seed, interval_ms=plan.interval_ms,
                    duration_ms=plan.duration_ms, bps=plan.bps, lead_ms=plan.lead_ms)
        deadline = time.monotonic() + plan.seconds * 3 + 30
        while sim.control("race_pending"):
            if time.monotonic() > deadline:
                raise RaceError("the race did not end in time (the simulator's market clock is far behind)")
            for name, one in launched.items():
                if one.proc.poll() is not None:
                    raise RaceError(f"race contender {name} exited with {one.proc.returncode} during the race: "
                                    f"{one.stderr_text()[-2000:]}")
            time.sleep(0.25)
        time.sleep(0.5)                      # answers to the last dislocation still in flight
        report = sim.control("race_report")
        load = os.getloadavg()
    finally:
        for c in contenders:
            if c.name in launched:
                summaries[c.name] = c.stop(launched[c.name])
        sim.stop()
    return RoundResult([c.name for c in contenders], report, summaries, load, time.monotonic() - t0)
