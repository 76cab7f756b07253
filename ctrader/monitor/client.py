"""Finding a running session from another terminal, and reading its status (``ctrader status``).

The session holds a lock file in its data directory that names its process; its run directory
ends with that pid. When its monitor runs, the run directory says where (``monitor.json``) and
the status comes from ``GET /api/status``; otherwise it is built from the run's files.

    session = find_session(cfg)             # None: no session runs in this data directory
    doc = read_status(cfg, session)         # the status document (its "source" says from where)
"""
from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from dataclasses import dataclass

from ctrader.config import Config, data_dir
from ctrader.core import proclock
from ctrader.core.shm import pid_alive


@dataclass(frozen=True)
class RunningSession:
    pid: int
    command: str
    run_dir: pathlib.Path | None          # None: the session has not made its run directory yet
    monitor_url: str | None


def _lock_holder(path: pathlib.Path) -> tuple[int, str] | None:
    """(pid, command line) of the live process holding the lock file ``path``, or None. The
    holder writes itself into the file and empties it when it lets go (``proclock``); a holder
    killed outright leaves its pid behind, dead. Reading never takes the lock: a session starting
    at that moment is not refused because of us."""
    pid, command = proclock.read_holder(str(path))
    if not pid or not pid_alive(pid):
        return None
    return pid, command


def find_session(cfg: Config) -> RunningSession | None:
    from ctrader.runtime.session import SESSION_LOCK

    directory = data_dir(cfg)
    holder = _lock_holder(directory / SESSION_LOCK)
    if holder is None:
        return None
    pid, command = holder
    runs = sorted((directory / "runs").glob(f"*-{pid}"), key=lambda p: p.name)
    run_dir = runs[-1] if runs else _freshest_run(directory / "runs")
    url = None
    if run_dir is not None:
        try:
            url = json.loads((run_dir / "monitor.json").read_text())["url"]
        except (OSError, ValueError, KeyError):
            url = None
    return RunningSession(pid, command, run_dir, url)


def _freshest_run(runs: pathlib.Path, within_s: float = 30.0) -> pathlib.Path | None:
    """The run directory whose files changed last, if within ``within_s`` (a run named otherwise
    than by its process id)."""
    import time

    best, best_t = None, time.time() - within_s
    for path in runs.glob("*/*.stats.json"):
        try:
            t = path.stat().st_mtime
        except OSError:
            continue
        if t > best_t:
            best, best_t = path.parent, t
    return best


def fetch_status(url: str, token: str | None = None, timeout_s: float = 3.0) -> dict:
    req = urllib.request.Request(f"{url.rstrip('/')}/api/status",
                                 headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return json.loads(resp.read())


def read_status(cfg: Config, session: RunningSession, url: str | None = None) -> dict:
    """From the monitor when it answers, else from the run directory."""
    from ctrader.monitor.auth import load_token
    from ctrader.monitor.status import build_status, snapshot_from_run_dir

    url = url or session.monitor_url
    if url:
        try:
            doc = fetch_status(url, load_token(cfg, create=False))
            doc["source"] = url
            return doc
        except (urllib.error.URLError, OSError, ValueError):
            pass
    if session.run_dir is None:
        return {"run_id": None, "source": "starting", "components": {}}
    doc = build_status(snapshot_from_run_dir(cfg, session.run_dir))
    doc["source"] = str(session.run_dir)
    return doc
