"""The supervisor behind ``ctrader start --processes``.

It owns the run's shared memory, starts each component as its own OS process (``spawn``: a
forked child would inherit half-made numba/onnxruntime/chDB threads), watches exit codes and
heartbeats, restarts a crashed child a limited number of times, and on stop (Ctrl-C, SIGTERM,
``--duration``) asks every child to finish, waits for them, and removes the shared memory.

A component is ``module:function``; the function is called in the child as
``function(ctx: ChildContext)`` and must return when ``ctx.stop`` is set. Components start in
the order given (a component with ``ready`` holds the next ones back until it answers) and stop
in the reverse order, each after the one started after it has finished: the feed stops first and
the recorder, which drains every ring into the store, after the components that write them.
"""
from __future__ import annotations

import importlib
import logging
import multiprocessing as mp
import pathlib
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ctrader.config import Config, data_dir
from ctrader.core.logs import setup_logging
from ctrader.runtime import cpus
from ctrader.runtime.health import HealthSlot, HealthTable
from ctrader.runtime.resources import RunResources, cleanup_stale, health_name, ring_name

log = logging.getLogger("ctrader.supervisor")
CTX = mp.get_context("spawn")


@dataclass(frozen=True)
class Component:
    name: str
    target: str                  # "package.module:function"
    restart: bool = True
    ready: str = ""              # "module:function(cfg, timeout_s)" that returns once it serves


@dataclass
class ChildContext:
    """What a component's entry function receives in its own process."""
    name: str
    cfg: Config
    run_id: str
    stop: "mp.synchronize.Event"
    health: HealthSlot
    ring_names: dict[str, str] = field(default_factory=dict)
    owns_core: bool = False      # alone on a core (``ctrader.runtime.cpus``): it may spin there

    @property
    def run_dir(self) -> pathlib.Path:
        """``{data_dir}/runs/{run_id}``: the run's files (stats, saved exchangeInfo, summaries)."""
        return run_dir(self.cfg, self.run_id)


def run_dir(cfg: Config, run_id: str) -> pathlib.Path:
    path = data_dir(cfg) / "runs" / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def _call(target: str):
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _child_main(component: Component, cfg: Config, run_id: str, components: list[str], ring_keys: list[str],
                stop, log_format: str, log_level: str) -> None:
    setup_logging(component.name, fmt=log_format, level=log_level)
    # The supervisor handles Ctrl-C for everybody: children stop through ``stop`` only, so a
    # terminal's SIGINT to the whole process group does not kill them mid-flush.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    table = HealthTable.attach(health_name(run_id), components)
    slot = table.slot(component.name)
    slot.started()
    entry: Callable[[ChildContext], None] = _call(component.target)
    plan = cpus.cpu_plan(components, cfg.run.cpu_layout)
    cpus.apply(plan, component.name)
    ctx = ChildContext(component.name, cfg, run_id, stop, slot, {k: ring_name(run_id, k) for k in ring_keys},
                       owns_core=plan.owns_core(component.name))
    failed = False
    try:
        entry(ctx)
    except BaseException:
        failed = True
        log.exception("%s failed", component.name)
        raise
    finally:
        slot.stopped(failed=failed)


@dataclass
class _Child:
    component: Component
    process: mp.Process
    restarts: deque = field(default_factory=deque)   # monotonic times of recent restarts


class Supervisor:
    def __init__(self, cfg: Config, components: list[Component], run_id: str, *,
                 max_restarts: int = 3, restart_window_s: float = 60.0,
                 heartbeat_timeout_s: float = 15.0, startup_timeout_s: float = 180.0, log_format: str = "text", log_level: str = "INFO",
                 on_ready: Callable[["Supervisor", Component], None] | None = None) -> None:
        self.cfg = cfg
        self.on_ready = on_ready          # after a component with ``ready`` answers: may update self.cfg
        self.components = components
        self.run_id = run_id
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.startup_timeout_s = startup_timeout_s    # before the first beat: JIT warm-up, connecting
        self.log_format, self.log_level = log_format, log_level
        self.stop_event = CTX.Event()                       # ends run()
        self.child_stops = {c.name: CTX.Event() for c in components}  # one per child: ordered stop
        self.resources: RunResources | None = None
        self.children: dict[str, _Child] = {}
        self.failed: list[str] = []

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        stale = cleanup_stale()
        if stale:
            log.warning("removed shared memory left by a crashed run: %s", ", ".join(stale))
        self.resources = RunResources.create(self.cfg, self.run_id, [c.name for c in self.components])
        for component in self.components:
            self.children[component.name] = _Child(component, self._spawn(component))
            if component.ready:
                try:
                    _call(component.ready)(self.cfg, 30.0)
                    if self.on_ready is not None:
                        self.on_ready(self, component)
                except BaseException:
                    self.stop()
                    raise
        log.info("run %s started: %s; %s", self.run_id, ", ".join(
            f"{n}[{c.process.pid}]" for n, c in self.children.items()),
            cpus.cpu_plan([c.name for c in self.components], self.cfg.run.cpu_layout).describe())

    def _spawn(self, component: Component) -> mp.Process:
        proc = CTX.Process(target=_child_main, name=f"ctrader-{component.name}", daemon=False,
                           args=(component, self.cfg, self.run_id, [c.name for c in self.components],
                                 list(self.resources.rings), self.child_stops[component.name], self.log_format,
                                 self.log_level))
        proc.start()
        return proc

    def run(self, duration_s: float | None = None, on_tick: Callable[["Supervisor"], None] | None = None,
            tick_s: float = 1.0) -> None:
        """Watch the children until ``duration_s`` passes, a signal arrives or nothing can run."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        interrupted = []

        def on_signal(signum, _frame):
            interrupted.append(signum)
            self.stop_event.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            next_tick = time.monotonic() + tick_s
            while not self.stop_event.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self.check_children()
                if not any(c.process.is_alive() for c in self.children.values()):
                    log.error("no component left running")
                    break
                if on_tick is not None and time.monotonic() >= next_tick:
                    on_tick(self)
                    next_tick += tick_s
                self.stop_event.wait(0.05)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if interrupted:
            log.info("stopping on %s", signal.Signals(interrupted[0]).name)

    def check_children(self) -> None:
        """Restart a child that died or stopped beating, within its restart budget."""
        health = self.resources.health.snapshot()
        for name, child in self.children.items():
            if child.component.name in self.failed:
                continue
            proc = child.process
            beat_age = health[name]["beat_age_s"]
            limit = self.startup_timeout_s if health[name]["state"] == "starting" else self.heartbeat_timeout_s
            hung = proc.is_alive() and beat_age is not None and beat_age > limit
            if proc.is_alive() and not hung:
                continue
            if hung:
                log.error("%s[%d] sent no heartbeat for %.1fs: killing it", name, proc.pid, beat_age)
                proc.kill()
                proc.join(5)
            elif proc.exitcode == 0 and not child.component.restart:
                continue
            self._restart(child)

    def _restart(self, child: _Child) -> None:
        name, proc = child.component.name, child.process
        now = time.monotonic()
        while child.restarts and now - child.restarts[0] > self.restart_window_s:
            child.restarts.popleft()
        if not child.component.restart or len(child.restarts) >= self.max_restarts:
            log.error("%s exited (code %s); not restarting (%d restarts in %.0fs)", name, proc.exitcode,
                      len(child.restarts), self.restart_window_s)
            self.failed.append(name)
            return
        child.restarts.append(now)
        self.resources.health.slot(name).add_restart()
        child.process = self._spawn(child.component)
        log.warning("%s exited (code %s); restarted as pid %d", name, proc.exitcode, child.process.pid)

    def stop(self, timeout_s: float = 20.0) -> dict[str, int | None]:
        """Ask every child to finish, wait, then force; remove the shared memory. Exit codes."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        for name in reversed(list(self.children)):
            self.child_stops[name].set()
            self.children[name].process.join(max(0.0, deadline - time.monotonic()))
        for name, child in self.children.items():
            if child.process.is_alive():
                log.error("%s did not stop within %.0fs: terminating", name, timeout_s)
                child.process.terminate()
                child.process.join(3)
                if child.process.is_alive():
                    child.process.kill()
                    child.process.join(3)
        codes = {name: child.process.exitcode for name, child in self.children.items()}
        if self.resources is not None:
            self.resources.close()
            self.resources = None
        return codes

    def __enter__(self) -> "Supervisor":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
