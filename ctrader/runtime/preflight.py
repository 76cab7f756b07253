"""Pre-flight: everything a session can check before any component starts, checked first.

A component that meets a bad setting when it starts crash-loops under the supervisor (four
restarts in about five seconds) while the rest of the session runs on without it. So what can be
known before the first process starts is checked here, by ``ctrader start`` and ``ctrader
record`` (``run_session`` calls ``require``) and by ``ctrader config check``, and every problem is
reported at once, each naming the key or file and what to do::

    problems = check(cfg, ["sim", "feed", "strategy", "executor", "recorder"])
    for p in problems: print(p)              # "model.name: 'm2': ... ; promote a good one ..."
    require(cfg, names)                      # raises PreflightFailed listing them all

What is checked, for the components that will run:

- every session: ``run.data_dir`` writable (runs, locks, the embedded store live there);
- executor in live mode: credentials from the environment or owner-only, readable secret files,
  and a private key that loads (``venue.secret_file``, ``venue.private_key_file``);
- simulator: ``sim.exchange_info_file``, ``sim.symbols`` and ``sim.accounts`` build its universe;
- feed, strategy, executor, recorder: ``market.exchange_info_file`` (or the simulator's universe)
  holds ``market.symbols`` and triangles through ``market.start_assets``;
- feed, executor: the ``venue.*_url`` overrides are well formed;
- strategy: the model it will load (ONNX loads, features equal the strategy's, a test batch
  scores: ``ctrader.model.scoring.verify_model``);
- executor: a journal chunk can be reserved in ``execution.journal_dir`` (writable, room on the
  disk) and no other executor holds the journal;
- recorder: ``store.url`` well formed (an embedded store's directory writable),
  ``store.database`` a plain name, ``recorder.spill_dir`` writable, ``redis.url`` well formed.

Nothing behind the network is checked (the venue answering, a ClickHouse server, Redis): the
components retry those, and a pre-flight must not fail a session over a blip.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

from ctrader.config import Config, ConfigError, data_dir, expand_path

# components that build the run's universe from market.exchange_info_file (or the venue's)
UNIVERSE_USERS = frozenset({"feed", "strategy", "executor", "recorder"})
MODEL_HINT = ("train one (ctrader model train), promote a good one (ctrader model promote NAME), or set "
              "model.name = \"default\" (the packaged model) or \"none\" (trade every edge)")


@dataclass(frozen=True)
class Problem:
    """One thing that would stop a component: the key (or file) it is about, what is wrong and
    what to do about it."""
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class PreflightFailed(RuntimeError):
    """The session cannot start: ``problems`` says why, all of them."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(describe(self.problems))


def describe(problems: list[Problem]) -> str:
    """One message for all the problems, one line each."""
    head = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    return f"{head} found before starting anything:\n" + "\n".join(f"  - {p}" for p in problems)


def check(cfg: Config, components: Iterable[str]) -> list[Problem]:
    """Every problem that would stop one of ``components`` (names as in ``ctrader start``)."""
    names = set(components)
    if cfg.venue.kind != "sim":
        names.discard("sim")                  # run_session runs no simulator for another venue
    problems: list[Problem] = []
    for step in (_data_dir, _credentials, _universes, _venue_urls, _model, _journal, _recorder):
        step(cfg, names, problems)
    return problems


def require(cfg: Config, components: Iterable[str]) -> None:
    """``check``, raising ``PreflightFailed`` when it found anything."""
    problems = check(cfg, components)
    if problems:
        raise PreflightFailed(problems)


# --- the checks: each appends what it finds -------------------------------------------------------

def _data_dir(cfg: Config, names: set[str], problems: list[Problem]) -> None:
    directory = data_dir(cfg)
    why = _not_writable(directory)
    if why:
        problems.append(Problem("run.data_dir", f"{directory}: {why}; make it writable or choose another "
                                                f"(CTRADER_DATA_DIR)"))


def _credentials(cfg: Config, names: set[str], problems: list[Problem]) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm

    from ctrader.config.secrets import load_credentials, read_private_file
    from ctrader.venue.signing import Signer

    if cfg.run.mode != "live" or "executor" not in names:
        return
    venue = cfg.venue
    unreadable = []
    for key in ("secret_file", "private_key_file"):
        if getattr(venue, key):
            try:
                read_private_file(getattr(venue, key))
            except ConfigError as exc:
                unreadable.append(Problem(f"venue.{key}", str(exc)))
    if unreadable:                        # each file's own reason, not what follows from it
        problems.extend(unreadable)
        return
    try:
        creds = load_credentials(venue)
    except ConfigError as exc:
        problems.append(Problem("venue", str(exc)))
        return
    if creds is None:
        if venue.kind != "sim":           # the simulator's demo account signs otherwise
            problems.append(Problem("venue", f"live mode on {venue.kind} needs API credentials: set "
                                             f"{venue.api_key_env} and {venue.api_secret_env}, or "
                                             f"venue.secret_file / venue.private_key_file (owner-only files)"))
        return
    try:
        Signer.from_credentials(creds)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:     # a PEM that is no key, or another kind
        problems.append(Problem("venue.private_key_file", f"{venue.private_key_file}: not a usable Ed25519 "
                                                          f"private key ({exc})"))


def _universes(cfg: Config, names: set[str], problems: list[Problem]) -> None:
    from ctrader.market.universe import UniverseError, load_universe

    sim_doc = _sim_universe(cfg, problems) if "sim" in names else None
    if not names & UNIVERSE_USERS:
        return
    if cfg.market.exchange_info_file:
        source = "market.exchange_info_file"
        doc = _read_exchange_info(source, cfg.market.exchange_info_file, problems,
                                  "save the venue's GET /api/v3/exchangeInfo answer there, or leave it empty to "
                                  "fetch it from the venue")
    else:
        source, doc = "the simulator's universe", sim_doc    # None: fetched from the venue at start
    if doc is None:
        return
    try:
        load_universe(cfg, doc)
    except UniverseError as exc:           # the selection: symbols missing, no triangle
        key = "market.symbols" if cfg.market.symbols else "market.start_assets"
        problems.append(Problem(key, f"{exc} ({source})"))
    except (ValueError, KeyError, TypeError) as exc:
        problems.append(Problem(source if source.startswith("market.") else "sim.exchange_info_file",
                                f"not a usable exchangeInfo document: {type(exc).__name__}: {exc}"))


def _sim_universe(cfg: Config, problems: list[Problem]) -> dict | None:
    """The simulator's exchangeInfo as it will serve it, or None (problems noted)."""
    from ctrader.sim.accounts import AccountRegistry
    from ctrader.sim.universe import build_universe
    from ctrader.venue.signing import load_ed25519_public_key

    keys_ok = True
    for i, account in enumerate(cfg.sim.accounts):
        if account.ed25519_api_key:
            try:
                load_ed25519_public_key(account.ed25519_public_key)
            except (ValueError, TypeError) as exc:
                keys_ok = False
                problems.append(Problem(f"sim.accounts[{i}].ed25519_public_key",
                                        f"account {account.name!r}: not an Ed25519 public key, as PEM or base64 "
                                        f"of the raw 32 bytes ({exc})"))
    if keys_ok:
        try:                               # balances, duplicate names
            AccountRegistry(cfg.sim.accounts)
        except (ValueError, TypeError, ArithmeticError) as exc:
            problems.append(Problem("sim.accounts", str(exc).removeprefix("sim.accounts: ")))
    if cfg.sim.exchange_info_file and _read_exchange_info(
            "sim.exchange_info_file", cfg.sim.exchange_info_file, problems,
            "save a GET /api/v3/exchangeInfo answer there, or leave it empty for the built-in universe") is None:
        return None
    try:
        return build_universe(cfg.sim).exchange_info
    except (ValueError, KeyError, TypeError, OSError) as exc:
        text = str(exc)
        key = next((k for k in ("sim.symbols", "sim.market.asset_prices") if text.startswith(k)),
                   "sim.exchange_info_file" if cfg.sim.exchange_info_file else "sim.symbols")
        problems.append(Problem(key, text.removeprefix(f"{key}: ")))
        return None


def _read_exchange_info(key: str, path: str, problems: list[Problem], hint: str) -> dict | None:
    p = pathlib.Path(path).expanduser()
    try:
        doc = json.loads(p.read_bytes())
    except FileNotFoundError:
        problems.append(Problem(key, f"{p} does not exist; {hint}"))
        return None
    except OSError as exc:
        problems.append(Problem(key, f"{p} cannot be read ({exc.strerror or exc}); {hint}"))
        return None
    except ValueError as exc:
        problems.append(Problem(key, f"{p} is not JSON ({exc}); {hint}"))
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("symbols"), list):
        problems.append(Problem(key, f"{p} is not an exchangeInfo document (it has no list of symbols); {hint}"))
        return None
    return doc


def _venue_urls(cfg: Config, names: set[str], problems: list[Problem]) -> None:
    if not names & {"feed", "executor"}:
        return
    for key, schemes in (("rest_url", ("http", "https")), ("ws_stream_url", ("ws", "wss")),
                         ("ws_api_url", ("ws", "wss"))):
        url = getattr(cfg.venue, key)
        if url and not _well_formed(url, schemes):
            problems.append(Problem(f"venue.{key}", f"{url!r}: expected {schemes[0]}(s)://HOST[:PORT][/PATH]; "
                                                    f"leave it empty for the venue's standard URL"))


def _model(cfg: Config, names: set[str], problems: list[Problem]) -> None:
    from ctrader.model.registry import ModelError, read_metadata, resolve_model_dir
    from ctrader.model.scoring import verify_model
    from ctrader.strategy.several import model_features

    if "strategy" not in names:
        return
    try:
        path = resolve_model_dir(cfg)
        if path is not None:
            verify_model(path, model_features(cfg, read_metadata(path).features), threads=cfg.model.threads)
    except ModelError as exc:
        problems.append(Problem("model.name", f"{cfg.model.name!r}: {exc}; {MODEL_HINT}"))


def _journal(cfg: Config, names: set[str], problems: list[Problem]) -> None:
    from ctrader.execution.journal import CHUNK_BYTES, check_room
    from ctrader.execution.process import journal_path

    if "executor" not in names:
        return
    directory = expand_path(cfg, cfg.execution.journal_dir)
    why = _not_writable(directory)
    if why:
        problems.append(Problem("execution.journal_dir", f"{directory}: {why}; make it writable or point "
                                                         f"execution.journal_dir elsewhere"))
        return
    try:
        check_room(_existing(directory))      # the same disk, if not yet the same directory
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            problems.append(Problem("execution.journal_dir", f"{directory}: no room to reserve a journal chunk "
                                    f"({CHUNK_BYTES >> 20} MiB): {why}; free some space or point "
                                    f"execution.journal_dir at a disk with room"))
        else:
            problems.append(Problem("execution.journal_dir", f"{directory}: the journal cannot be written there "
                                    f"({why}); make it writable or point execution.journal_dir elsewhere"))
        return
    path = journal_path(cfg)
    if _locked_by_another(path):
        problems.append(Problem("execution.journal_dir", f"the journal {path} is open in another executor (another "
                                f"session with the same journal_dir?); stop it, or give this session its own "
                                f"execution.journal_dir"))


def _recorder(cfg: Config, names: set[str], problems: list[Problem]) -> None:
    from ctrader.store.client import describe as describe_url
    from ctrader.store.client import embedded_path, resolve_url

    if "recorder" not in names:
        return
    url = cfg.store.url
    if url.startswith("chdb://"):
        if not url[len("chdb://"):].strip():
            problems.append(Problem("store.url", f"{url!r} names no directory: expected chdb://PATH"))
        else:
            path = embedded_path(resolve_url(url, str(data_dir(cfg))))
            why = _not_writable(pathlib.Path(path))
            if why:
                problems.append(Problem("store.url", f"the embedded store's directory {path}: {why}; make it "
                                                     f"writable or point store.url elsewhere"))
    elif not _well_formed(url, ("http", "https")):
        problems.append(Problem("store.url", f"{describe_url(url)!r}: expected chdb://PATH (the embedded engine) "
                                             f"or http(s)://HOST[:PORT] (a ClickHouse server)"))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cfg.store.database):
        problems.append(Problem("store.database", f"{cfg.store.database!r}: expected a plain name (letters, "
                                                  f"digits, _; not starting with a digit)"))
    spill = expand_path(cfg, cfg.recorder.spill_dir)
    why = _not_writable(spill)
    if why:
        problems.append(Problem("recorder.spill_dir", f"{spill}: {why}; the recorder keeps batches there while "
                                                      f"the store is down: make it writable or choose another"))
    if cfg.redis.url:
        import redis

        try:
            redis.Redis.from_url(cfg.redis.url).close()     # parses only: connecting is the recorder's job
        except ValueError as exc:
            problems.append(Problem("redis.url", f"{cfg.redis.url!r}: {exc}"))


# --- helpers ------------------------------------------------------------------------------------

def _existing(directory: pathlib.Path) -> pathlib.Path:
    """``directory`` or, when it does not exist yet, the nearest ancestor that does (where the
    component will create it): probing there leaves nothing behind."""
    path = directory
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _not_writable(directory: pathlib.Path) -> str | None:
    """Why ``directory`` cannot be created or files created in it, or None."""
    base = _existing(directory)
    if not base.is_dir():
        return f"{base} is not a directory"
    try:
        fd, scratch = tempfile.mkstemp(prefix=".ctrader-write-check-", dir=base)
        os.close(fd)
        os.unlink(scratch)
    except OSError as exc:
        return f"cannot create files in {base} ({exc.strerror or exc})"
    return None


def _well_formed(url: str, schemes: tuple[str, ...]) -> bool:
    parsed = urlparse(url)
    try:
        _ = parsed.port                    # raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return parsed.scheme in schemes and bool(parsed.hostname)


def _locked_by_another(path: pathlib.Path) -> bool:
    """True when an executor holds ``path`` (``Journal`` takes an exclusive flock on it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)                       # closing gives the probe's lock back
    return False


__all__ = ["PreflightFailed", "Problem", "check", "describe", "require"]
