"""The supervisor behind ``ctrader start --processes``.

It owns the run's shared memory, starts each component as its own OS process (``spawn``: a
forked child would inherit half-made numba/onnxruntime/chDB threads), watches exit codes and
heartbeats, restarts a crashed child a limited number of times, and stops the run:

- **Ctrl-C, SIGINT, SIGTERM or SIGHUP** (or ``--duration``): "stopping on SIGINT" at once, then an
  orderly stop in the reverse of the start order, one component at a time, each given its own
  time (``Component.stop_timeout_s``): the feed first, the strategy (no new intents), the
  executor (cancels its open orders and waits for the answers), the recorder (drains every ring
  into the store), the simulator last. Each stop is logged as it happens.
- **A second Ctrl-C** during that: a fast stop. The components still running are told to stop
  fast, in the same order (the executor still sends its cancels and the venue is still up to
  take them; nobody drains), each given ``FAST_STOP_S``.
- **A child that does not stop in its time** is killed, and ``killed`` says so.
- **The supervisor itself killed**: each child gets SIGTERM from the kernel
  (``PR_SET_PDEATHSIG``) and stops in the same order on its own; the last one out removes the
  shared memory (``ctrader.runtime.stopping``). A next start removes whatever is left anyway.

Signal handlers only set a flag and poke a self-pipe (``StopRequest``); the main loop does the
work. Stop levels travel to the children through the health table (shared memory), never
through a ``multiprocessing`` primitive.

A component is ``module:function``; the function is called in the child as
``function(ctx: ChildContext)`` and must return when ``ctx.stop.is_set()``; ``ctx.stop.fast``
says the stop is a fast one. Components start in the order given (a component with ``ready``
holds the next ones back until it answers).
"""
from __future__ import annotations

import importlib
import logging
import math
import multiprocessing as mp
import os
import pathlib
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ctrader.config import Config, data_dir
from ctrader.core.logs import setup_logging
from ctrader.runtime import cpus, stopping
from ctrader.runtime.health import HealthSlot, HealthTable
from ctrader.runtime.resources import RunResources, cleanup_stale, health_name, ring_name
from ctrader.runtime.stopping import ComponentStop, StopFlag, StopRequest

log = logging.getLogger("ctrader.supervisor")
CTX = mp.get_context("spawn")

FAST_STOP_S = 5.0          # each component's time in a fast stop (the executor's cancels), then kill
READY_POLL_S = 0.5         # a component's ``ready`` check is retried in slices this long


class StartFailed(RuntimeError):
    """A component could not start (it exited, or never answered its ``ready`` check)."""


@dataclass(frozen=True)
class Component:
    name: str
    target: str                  # "package.module:function"
    restart: bool = True
    ready: str = ""              # "module:function(cfg, timeout_s)" that returns once it serves
    stop_timeout_s: float = 15.0     # an orderly stop longer than this is killed
    critical: bool = True            # run.on_failure = stop applies when it fails for good


@dataclass
class ChildContext:
    """What a component's entry function receives in its own process."""
    name: str
    cfg: Config
    run_id: str
    stop: StopFlag
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
                supervisor_pid: int, log_format: str, log_level: str) -> None:
    setup_logging(component.name, fmt=log_format, level=log_level)
    table = HealthTable.attach(health_name(run_id), components)
    slot = table.slot(component.name)
    # Stops before us: the components started after us (the stop order is the start order reversed).
    after_us = components[components.index(component.name) + 1:]
    stop = ComponentStop(slot.stop_level, supervisor_pid,
                         stops_before=lambda: all(table.is_down(n) for n in after_us))
    # The supervisor handles Ctrl-C and a terminal's hang-up for everybody: they reach the whole
    # process group and must not kill a child mid-flush. SIGTERM asks this child for an orderly
    # stop; the kernel's signal on the supervisor's death starts an orderly stop on our own. All
    # were blocked while we started (``Supervisor._spawn``): unblocked now that handlers are set.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # SIGUSR1 is the executor's kill switch (it installs the handler); anywhere else, or before
    # that, it must not kill the process (its default action would).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop.on_sigterm)
    signal.signal(stopping.PARENT_DEATH_SIGNAL, stop.on_parent_death)
    stopping.die_with_parent()
    stopping.unblock_stop_signals()
    if os.getppid() != supervisor_pid:           # it died before we asked the kernel
        stop.on_parent_death()
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
        if stop.orphaned:
            _last_one_out(ctx, table, [ring_name(run_id, k) for k in ring_keys] + [health_name(run_id)])


def _last_one_out(ctx: ChildContext, table: HealthTable, segments: list[str]) -> None:
    """An orphaned run: the last component to stop removes the run's shared memory (the
    supervisor that owned it is gone). Decided under a lock so that exactly one does it."""
    with stopping.RunLock(str(ctx.run_dir / "stop.lock")):
        others = [n for n in table.components if n != ctx.name]
        if all(table.is_down(n) for n in others):
            from ctrader.core import shm

            for name in segments:
                try:
                    os.unlink(os.path.join(shm.SHM_DIR, name))
                except FileNotFoundError:
                    pass
            log.warning("%s: last component of a run whose supervisor died: removed its shared memory",
                        ctx.name)


@dataclass
class _Child:
    component: Component
    process: mp.Process
    restarts: deque = field(default_factory=deque)   # monotonic times of recent restarts
    restarted: int = 0                                # restarts in the whole run


class Supervisor:
    def __init__(self, cfg: Config, components: list[Component], run_id: str, *,
                 max_restarts: int = 3, restart_window_s: float = 60.0,
                 heartbeat_timeout_s: float = 15.0, startup_timeout_s: float = 180.0, log_format: str = "text",
                 log_level: str = "INFO", ready_timeout_s: float = 30.0, fast_stop_s: float = FAST_STOP_S,
                 on_ready: Callable[["Supervisor", Component], None] | None = None) -> None:
        self.cfg = cfg
        self.on_ready = on_ready          # after a component with ``ready`` answers: may update self.cfg
        self.components = components
        self.run_id = run_id
        self.max_restarts = max_restarts
        self.restart_window_s = restart_window_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.startup_timeout_s = startup_timeout_s    # before the first beat: JIT warm-up, connecting
        self.ready_timeout_s = ready_timeout_s
        self.fast_stop_s = fast_stop_s
        self.log_format, self.log_level = log_format, log_level
        self.stop_request = StopRequest()       # signals and code ask; run() and stop() read it
        self.resources: RunResources | None = None
        self.children: dict[str, _Child] = {}
        self.failed: list[str] = []             # out of restarts (or not restartable) during the run
        self.killed: list[str] = []             # did not stop in their time
        self.stop_seconds: dict[str, float] = {}
        self.fast_stop = False
        self._announced = False                  # "stopping on ..." logged
        self._stopped = False

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.stop_request.install()
        leftovers = cleanup_stale() + stopping.cleanup_orphan_semaphores()
        if leftovers:
            log.warning("removed what a dead run left in /dev/shm: %s", ", ".join(leftovers))
        self.resources = RunResources.create(self.cfg, self.run_id, [c.name for c in self.components])
        for component in self.components:
            if self.stop_request.is_set():
                break                   # asked to stop while starting: run() returns at once
            self.children[component.name] = _Child(component, self._spawn(component))
            if component.ready:
                try:
                    if self._wait_ready(component) and self.on_ready is not None:
                        self.on_ready(self, component)
                except BaseException:
                    self.stop()
                    raise
        log.info("run %s started: %s; %s", self.run_id, ", ".join(
            f"{n}[{c.process.pid}]" for n, c in self.children.items()),
            cpus.cpu_plan([c.name for c in self.components], self.cfg.run.cpu_layout).describe())

    def _wait_ready(self, component: Component) -> bool:
        """Until ``component.ready`` answers (True), a stop is asked for (False), the child dies
        or ``ready_timeout_s`` passes (errors that say which)."""
        ready = _call(component.ready)
        deadline = time.monotonic() + self.ready_timeout_s
        proc = self.children[component.name].process
        while True:
            if self.stop_request.is_set():
                return False
            if not proc.is_alive():
                raise StartFailed(f"{component.name} exited (code {proc.exitcode}) before it was ready: "
                                  f"its error is in the log above")
            try:
                ready(self.cfg, READY_POLL_S)
                return True
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise StartFailed(f"{component.name} was not ready within {self.ready_timeout_s:g} s") from None

    def _spawn(self, component: Component) -> mp.Process:
        proc = CTX.Process(target=_child_main, name=f"ctrader-{component.name}", daemon=False,
                           args=(component, self.cfg, self.run_id, [c.name for c in self.components],
                                 list(self.resources.rings), os.getpid(), self.log_format, self.log_level))
        with stopping.blocked_stop_signals():
            proc.start()
        return proc

    def request_stop(self, reason: str) -> None:
        """Ask the run to stop (from code; signals do the same through their handler)."""
        self.stop_request.request(reason)

    def run(self, duration_s: float | None = None, on_tick: Callable[["Supervisor"], None] | None = None,
            tick_s: float = 1.0) -> None:
        """Watch the children until ``duration_s`` passes, a stop is asked for (signal,
        ``request_stop``) or nothing can run."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_tick = time.monotonic() + tick_s
        while True:
            # Woken by a signal, a child's exit (its sentinel), the next tick or the deadline.
            sentinels = [c.process.sentinel for c in self.children.values() if c.process.is_alive()]
            wake_at = min(next_tick if on_tick is not None else math.inf,
                          deadline if deadline is not None else math.inf, time.monotonic() + 0.25)
            if self.stop_request.wait(wake_at - time.monotonic(), fds=sentinels):
                break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                self.request_stop(f"duration of {duration_s:g} s reached")
                break
            self.check_children()
            if not any(c.process.is_alive() for c in self.children.values()):
                log.error("no component left running")
                self.request_stop("no component left running")
                break
            if on_tick is not None and now >= next_tick:
                on_tick(self)
                next_tick += tick_s
        self._log_requests()

    def _log_requests(self) -> None:
        """Say what asked for the stop, once each, as soon as the main loop sees it."""
        for request in self.stop_request.new_since_last_call():
            what = self.stop_request.describe(request)
            label = f"on {what}" if isinstance(request, int) else f"({what})"
            if self._announced:
                log.warning("%s during the stop: stopping fast (open orders are still cancelled; nothing is "
                            "drained)", what)
            else:
                log.info("stopping %s", label)
            self._announced = True

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
            if self.cfg.run.on_failure == "stop" and child.component.critical:
                self._stop_on_failure(name)
            return
        child.restarts.append(now)
        child.restarted += 1
        self.resources.health.slot(name).add_restart()
        child.process = self._spawn(child.component)
        log.warning("%s exited (code %s); restarted as pid %d", name, proc.exitcode, child.process.pid)

    def _stop_on_failure(self, name: str) -> None:
        """``run.on_failure = "stop"``: no trading without one of the parts. The executor's kill
        switch is engaged at once (SIGUSR1: no new order, open ones cancelled), then the session
        stops in order."""
        executor = self.children.get("executor")
        if executor is not None and name != "executor" and executor.process.is_alive():
            os.kill(executor.process.pid, signal.SIGUSR1)
        log.error("%s failed for good: kill switch engaged, stopping the session (run.on_failure = stop)", name)
        self.request_stop(f"{name} failed")

    # --- stopping ------------------------------------------------------------------------------

    def stop(self, timeout_s: float | None = None) -> dict[str, int | None]:
        """Stop the children in the reverse of the start order, each within its own time
        (``timeout_s``, when given, caps every component's); a second stop request switches to a
        fast stop. Kills what does not stop, removes the shared memory; returns exit codes."""
        if self._stopped:
            return {name: child.process.exitcode for name, child in self.children.items()}
        self._stopped = True
        if not self.stop_request.is_set():
            self.request_stop("stop")
        self._log_requests()
        try:
            for name in reversed(list(self.children)):
                if self._fast_requested():
                    break
                child = self.children[name]
                limit = child.component.stop_timeout_s if timeout_s is None else min(timeout_s,
                                                                                     child.component.stop_timeout_s)
                self._stop_one(child, limit)
            if self._fast_requested():
                self._stop_fast()
        finally:
            codes = {name: child.process.exitcode for name, child in self.children.items()}
            if self.resources is not None:
                self.resources.close()
                self.resources = None
            self.stop_request.close()           # handlers back, pipe closed (what it recorded stays)
        return codes

    def _fast_requested(self) -> bool:
        self._log_requests()
        return self.stop_request.count >= 2

    def _stop_one(self, child: _Child, limit_s: float) -> None:
        name, proc = child.component.name, child.process
        if not proc.is_alive():
            if name not in self.stop_seconds:
                log.info("%s was not running (exit code %s)", name, proc.exitcode)
            return
        log.info("stopping %s", name)
        t0 = time.monotonic()
        self.resources.health.request_stop(name, stopping.ORDERLY)
        self._wait_for([child], t0 + limit_s)
        self.stop_seconds[name] = round(time.monotonic() - t0, 3)
        if proc.is_alive():
            if self._fast_requested():
                return               # the fast stop takes it from here
            log.error("%s did not stop within %.0f s: killing it", name, limit_s)
            self._kill(child)
        else:
            log.info("%s stopped (exit code %s) in %.1f s", name, proc.exitcode, self.stop_seconds[name])

    def _stop_fast(self) -> None:
        """The rest of the stop, fast: still in order (the venue last, so that the executor's
        cancels reach it) but each component is told to skip draining and given ``fast_stop_s``."""
        self.fast_stop = True
        for name in reversed(list(self.children)):
            child = self.children[name]
            if not child.process.is_alive():
                continue
            t0 = time.monotonic()
            self.resources.health.request_stop(name, stopping.FAST)
            self._wait_for([child], t0 + self.fast_stop_s, stop_on_request=False)
            self.stop_seconds[name] = round(self.stop_seconds.get(name, 0.0) + time.monotonic() - t0, 3)
            if child.process.is_alive():
                log.error("%s did not stop within %.0f s of a fast stop: killing it", name, self.fast_stop_s)
                self._kill(child)
            else:
                log.info("%s stopped fast (exit code %s)", name, child.process.exitcode)

    def _wait_for(self, children: list[_Child], deadline: float, stop_on_request: bool = True) -> None:
        """Until every one of ``children`` exited or ``deadline``; returns early on a second stop
        request when ``stop_on_request``. Wakes on a child's exit or a signal, not on a timer."""
        while True:
            alive = [c.process for c in children if c.process.is_alive()]
            left = deadline - time.monotonic()
            if not alive or left <= 0 or (stop_on_request and self._fast_requested()):
                return
            self.stop_request.sleep(min(left, 0.25), fds=[p.sentinel for p in alive])

    def _kill(self, child: _Child) -> None:
        child.process.kill()
        child.process.join(5)
        self.killed.append(child.component.name)

    def summary(self) -> dict:
        """How the run stopped, for the session summary."""
        return {"reason": self.stop_request.reason, "requests": self.stop_request.count,
                "fast": self.fast_stop, "killed": list(self.killed), "seconds": dict(self.stop_seconds),
                "failed": list(self.failed),
                "restarts": {name: c.restarted for name, c in self.children.items() if c.restarted}}

    def __enter__(self) -> "Supervisor":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
