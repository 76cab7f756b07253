"""A run of ctrader's components: ``ctrader start`` and ``ctrader record`` are thin wrappers.

    summary = run_session(cfg, ["sim", "feed", "strategy", "executor", "recorder"],
                          duration_s=60, processes=True, on_status=print)

Components start in dependency order (simulator, then the consumers, the feed last, so that
every consumer is attached before the first market record is written) and stop in the reverse
order (feed first, recorder after everything it drains, simulator last so that open orders can
still be cancelled). The venue's exchangeInfo is fetched once and saved in the run directory;
every process builds its universe from that file, so symbol ids agree across processes.

The simulator and the recorder are off the tick-to-order path: in their own processes they run
at a lower CPU priority (``BACKGROUND_NICE``), so that on a 2-core machine the feed, strategy and
executor get a core as soon as they have work.

One session at a time per data directory (its store, journals, kill file and runs): a second
``start`` with the same one stops before starting anything, naming the session that holds it
(``SessionInUse``), as it does when the simulator's port is taken.

``processes=True`` runs each component as its own OS process under the Supervisor;
``processes=False`` runs the same entry functions as threads of this process (debugging, small
machines): same rings, same code, one PID.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import threading
import time
from collections.abc import Callable

from ctrader.config import Config
from ctrader.config.loader import data_dir
from ctrader.core import proclock
from ctrader.runtime import preflight, stopping
from ctrader.runtime.resources import RING_SPECS, RunResources, cleanup_stale
from ctrader.core.stats import read_stats
from ctrader.runtime.supervisor import ChildContext, Component, Supervisor, _call, run_dir

log = logging.getLogger("ctrader.session")

# Stop timeouts: the recorder drains every ring into the store (its drain gives up after 30 s),
# the executor cancels open orders and waits up to 3 s for the answers.
COMPONENTS: dict[str, Component] = {
    # first to start, last to stop: it sees the whole session, and its last poll its final stats;
    # not critical: a dashboard that fails stops no trading (run.on_failure)
    "monitor": Component("monitor", "ctrader.monitor.process:run_monitor", stop_timeout_s=30.0, critical=False),
    "sim": Component("sim", "ctrader.runtime.session:run_sim_in_background", ready="ctrader.sim.process:wait_ready",
                     stop_timeout_s=10.0),
    "recorder": Component("recorder", "ctrader.runtime.session:run_recorder_in_background", stop_timeout_s=60.0),
    "executor": Component("executor", "ctrader.execution.process:run_executor", stop_timeout_s=20.0),
    "strategy": Component("strategy", "ctrader.strategy.process:run_strategy", stop_timeout_s=15.0),
    "feed": Component("feed", "ctrader.feed.process:run_feed", stop_timeout_s=15.0),
}
START_ORDER = list(COMPONENTS)
# What a component checks before the session starts anything ("module:function(cfg)", raising):
# the monitor's port and binding, so that a session does not start only to lose its monitor.
PREFLIGHT = {"monitor": "ctrader.monitor.process:preflight"}


# Nice increment of the components off the tick-to-order path. On a 2-core machine the five
# processes share two cores: the feed, strategy and executor must get a core as soon as they
# have work, so the simulator (a stand-in for the exchange) and the recorder (batches rows for
# the store, never waited on) yield to them.
BACKGROUND_NICE = 10


def in_background(nice: int = BACKGROUND_NICE) -> None:
    """Lower the CPU priority of a component's own process. Not in threads mode: a niced thread
    holding the GIL would hold up the others (priority inversion). Best effort: a platform
    without it keeps the normal priority."""
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, min(os.getpriority(os.PRIO_PROCESS, 0) + nice, 19))
    except (AttributeError, OSError) as exc:
        log.debug("cannot lower the priority: %s", exc)


def run_sim_in_background(ctx: ChildContext) -> None:
    in_background()
    _call("ctrader.sim.process:run_sim")(ctx)


def run_recorder_in_background(ctx: ChildContext) -> None:
    in_background()
    _call("ctrader.store.recorder:run_recorder")(ctx)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}"


def ordered(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(COMPONENTS)}")
    return [n for n in START_ORDER if n in names]


def save_exchange_info(cfg: Config, path: pathlib.Path) -> Config:
    """Fetch exchangeInfo once, save it, and point ``market.exchange_info_file`` at the copy."""
    from ctrader.config.venues import endpoints
    from ctrader.market.universe import fetch_exchange_info

    doc = fetch_exchange_info(endpoints(cfg).rest)
    path.write_text(json.dumps(doc))
    return dataclasses.replace(cfg, market=dataclasses.replace(cfg.market, exchange_info_file=str(path)))


SESSION_LOCK = ".ctrader-session.lock"


class SessionInUse(RuntimeError):
    """What this session needs (its data directory, the simulator's port) is another's."""


def claim(cfg: Config, names: list[str]) -> int:
    """Lock the data directory for this session (``proclock``: released by the kernel if we
    die) and check that the simulator's port is free; returns the lock's descriptor."""
    directory = data_dir(cfg)
    try:
        fd = proclock.take(str(directory / SESSION_LOCK))
    except proclock.Held as exc:
        raise SessionInUse(f"another ctrader session uses the data directory {directory}: {exc.holder}; stop "
                           f"it, or give this one its own data directory (CTRADER_DATA_DIR) and, against the "
                           f"simulator, its own sim.port") from None
    if "sim" in names and cfg.sim.port and not _port_free(cfg.sim.host, cfg.sim.port):
        proclock.give_back(fd)
        raise SessionInUse(f"sim.port {cfg.sim.port} on {cfg.sim.host} is in use (another simulator?): "
                           f"set another sim.port")
    try:
        for name in names:
            if name in PREFLIGHT:
                _call(PREFLIGHT[name])(cfg)
    except BaseException:
        proclock.give_back(fd)
        raise
    return fd


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as the simulator binds
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def run_session(cfg: Config, components: list[str], duration_s: float | None = None, processes: bool = True,
                on_status: Callable[[dict], None] | None = None, status_every_s: float = 5.0,
                run_id: str | None = None, log_format: str = "text", log_level: str = "INFO",
                stop_when: Callable[[dict], bool] | None = None) -> dict:
    """Run ``components`` until ``duration_s`` passes, Ctrl-C/SIGTERM, or ``stop_when(stats)``
    (checked with the components' stats every ``status_every_s``) is true; returns the summary."""
    names = ordered(components)
    if "sim" in names and cfg.venue.kind != "sim":
        names.remove("sim")
    preflight.require(cfg, names)           # everything checkable, before anything starts (PreflightFailed)
    lock = claim(cfg, names)
    try:
        return _run_session(cfg, names, duration_s, processes, on_status, status_every_s, run_id, log_format,
                            log_level, stop_when)
    finally:
        proclock.give_back(lock)


def _run_session(cfg: Config, names: list[str], duration_s: float | None, processes: bool,
                 on_status: Callable[[dict], None] | None, status_every_s: float, run_id: str | None,
                 log_format: str, log_level: str, stop_when: Callable[[dict], bool] | None) -> dict:
    run_id = run_id or new_run_id()
    rdir = run_dir(cfg, run_id)
    info_path = rdir / "exchange_info.json"
    started = time.time()
    if "sim" not in names and not cfg.market.exchange_info_file:
        cfg = save_exchange_info(cfg, info_path)

    def status_tick(sup=None) -> bool:
        """Report the status; True (and the supervisor told) when ``stop_when`` says stop."""
        stats = read_stats(rdir)
        if sup is not None and sup.resources is not None:
            # so that the status line never shows a dead component's last numbers as if it ran
            stats["_health"] = {n: h["state"] for n, h in sup.resources.health.snapshot().items()}
        if on_status is not None:
            on_status(stats)
        done = stop_when is not None and bool(stop_when(stats))
        if done and sup is not None:
            sup.request_stop("its stop condition was met")
        return done

    if processes:
        def on_ready(sup: Supervisor, component: Component) -> None:
            if component.name == "sim" and not sup.cfg.market.exchange_info_file:
                sup.cfg = save_exchange_info(sup.cfg, info_path)

        sup = Supervisor(cfg, [COMPONENTS[n] for n in names], run_id, log_format=log_format,
                         log_level=log_level, on_ready=on_ready)
        try:
            sup.start()
            sup.run(duration_s, on_tick=status_tick if (on_status or stop_when) else None, tick_s=status_every_s)
        finally:
            codes = sup.stop()
        failed, stopped = list(sup.failed), sup.summary()
    else:
        codes, failed, stopped = _run_threads(cfg, names, run_id, info_path, duration_s, status_tick,
                                              status_every_s)
    summary = {"run_id": run_id, "run_dir": str(rdir), "started_at": started, "ended_at": time.time(),
               "components": names, "processes": processes, "exit_codes": codes, "failed": failed,
               "stop": stopped, "stats": read_stats(rdir)}
    (rdir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return summary


def warm_strategy(cfg: Config) -> None:
    """Threads mode: compile the strategy's kernels before its thread starts. numba holds the GIL
    while it compiles (10+ s after a source change), which would stall every other thread of the
    run; done here, before the feed starts, no market data is missed while it happens."""
    from ctrader.strategy.process import build_engine

    t0 = time.perf_counter()
    try:
        build_engine(cfg)
    except Exception as exc:          # noqa: BLE001  the strategy thread meets it again and fails the run
        log.warning("strategy warm-up failed: %s", exc)
        return
    log.info("strategy kernels ready in %.1f s", time.perf_counter() - t0)


def _run_threads(cfg: Config, names: list[str], run_id: str, info_path: pathlib.Path, duration_s, status_tick,
                 status_every_s) -> tuple[dict, list, dict]:
    """The components as threads of this process; stopped as the supervisor stops processes
    (in order, a second Ctrl-C stops fast), except that a thread that does not stop cannot be
    killed: it is reported and left to die with the process."""
    stale = cleanup_stale() + stopping.cleanup_orphan_semaphores()
    if stale:
        log.warning("removed what a dead run left in /dev/shm: %s", ", ".join(stale))
    stops = {n: stopping.ThreadStop() for n in names}
    errors: dict[str, BaseException] = {}
    threads: dict[str, threading.Thread] = {}
    request = stopping.StopRequest()
    if threading.current_thread() is threading.main_thread():
        request.install()
    stopped = {"reason": "", "requests": 0, "fast": False, "killed": [], "seconds": {}, "failed": []}
    with RunResources.create(cfg, run_id, names) as res:
        ring_names = {k: res.rings[k].name for k in RING_SPECS}

        def run(component: Component, ctx: ChildContext) -> None:
            ctx.health.started()
            try:
                _call(component.target)(ctx)
            except BaseException as exc:            # reported at the end, and the run stops
                errors[component.name] = exc
                log.exception("%s failed", component.name)
            finally:
                ctx.health.stopped(failed=component.name in errors)

        announced = []

        def announce() -> None:
            for r in request.new_since_last_call():
                what = request.describe(r)
                if announced:
                    log.warning("%s during the stop: stopping fast", what)
                else:
                    log.info("stopping on %s" if isinstance(r, int) else "stopping (%s)", what)
                announced.append(what)

        try:
            for name in names:
                if request.is_set():
                    break
                component = COMPONENTS[name]
                if name == "strategy":
                    warm_strategy(cfg)
                ctx = ChildContext(name, cfg, run_id, stops[name], res.health.slot(name), ring_names)
                threads[name] = threading.Thread(target=run, args=(component, ctx), name=f"ctrader-{name}",
                                                 daemon=True)
                threads[name].start()
                if component.ready:
                    _call(component.ready)(cfg, 30.0)
                    if name == "sim" and not cfg.market.exchange_info_file:
                        cfg = save_exchange_info(cfg, info_path)
            deadline = None if duration_s is None else time.monotonic() + duration_s
            next_status = time.monotonic() + status_every_s
            while not request.wait(0.1) and not errors:
                if deadline is not None and time.monotonic() >= deadline:
                    request.request(f"duration of {duration_s:g} s reached")
                    break
                if time.monotonic() >= next_status:
                    if status_tick():
                        request.request("its stop condition was met")
                        break
                    next_status += status_every_s
        finally:
            if not request.is_set():
                request.request("failure" if errors else "stop")
            announce()
            for name in reversed(names):
                thread = threads.get(name)
                if thread is None:
                    continue
                fast = request.count >= 2
                stops[name].set(stopping.FAST if fast else stopping.ORDERLY)
                if not fast:
                    log.info("stopping %s", name)
                t0 = time.monotonic()
                limit = (5.0 if fast else COMPONENTS[name].stop_timeout_s)
                while thread.is_alive() and time.monotonic() - t0 < limit:
                    thread.join(0.1)
                    announce()
                    if request.count >= 2 and not fast:
                        fast = True
                        for n in names:
                            stops[n].set(stopping.FAST)
                        t0, limit = time.monotonic(), 5.0
                stopped["seconds"][name] = round(time.monotonic() - t0, 3)
                if thread.is_alive():
                    log.error("%s did not stop within %.0f s (a thread cannot be killed: it ends with the "
                              "process)", name, limit)
                    stopped["killed"].append(name)
                else:
                    log.info("%s stopped in %.1f s", name, stopped["seconds"][name])
            request.close()
    stopped.update(reason=request.reason, requests=request.count, fast=request.count >= 2, failed=sorted(errors))
    codes = {n: (1 if n in errors else 0) for n in names}
    return codes, sorted(errors), stopped


__all__ = ["COMPONENTS", "new_run_id", "ordered", "run_session", "save_exchange_info"]
