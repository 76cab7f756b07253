"""The monitor's bearer token and where it may listen.

The token comes from ``CTRADER_MONITOR_TOKEN``, or from ``monitor.token_file`` (generated at the
first start, mode 0600, refused if group or others can read it). Control endpoints always need
it; read-only endpoints need it too unless the monitor listens on loopback only. A monitor that
would listen beyond loopback with no token refuses to start.

    token = load_token(cfg)                # None: no token configured (file disabled, no env)
    check_bind(cfg.monitor.host, token)    # raises MonitorSetupError
    TokenCheck(token).matches(presented)   # constant-time comparison
"""
from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Mapping

from ctrader.config import Config, expand_path
from ctrader.config.loader import ConfigError
from ctrader.config.secrets import read_private_file
from ctrader.core.net import is_loopback

TOKEN_ENV = "CTRADER_MONITOR_TOKEN"


class MonitorSetupError(RuntimeError):
    """The monitor cannot start as configured (the message says what to change)."""


def token_path(cfg: Config):
    return expand_path(cfg, cfg.monitor.token_file) if cfg.monitor.token_file else None


def load_token(cfg: Config, env: Mapping[str, str] | None = None, create: bool = True) -> str | None:
    """The token: the environment's, else the token file's (made now with a new random token
    when ``create`` and it does not exist yet), else None."""
    env = os.environ if env is None else env
    if env.get(TOKEN_ENV, "").strip():
        return env[TOKEN_ENV].strip()
    path = token_path(cfg)
    if path is None:
        return None
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:          # another process made it just now: use theirs
            return load_token(cfg, env, create=False)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token
    try:
        token = read_private_file(path).decode().strip()
    except ConfigError as exc:
        raise MonitorSetupError(f"monitor token: {exc}") from None
    if not token:
        raise MonitorSetupError(f"monitor token file {path} is empty: delete it (a new token is made at the "
                                f"next start) or write one in it")
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (everything would be open to the network)."""
    if not is_loopback(host) and not token:
        raise MonitorSetupError(
            f"monitor.host = {host!r} is not a loopback address and no token is configured: set "
            f"{TOKEN_ENV} or monitor.token_file, or bind 127.0.0.1 (and reach it through an SSH tunnel)")


class TokenCheck:
    """Compares presented tokens with the configured one in constant time; never logs either."""

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def configured(self) -> bool:
        return self._token is not None

    def matches(self, presented: str | None) -> bool:
        if self._token is None or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token)

    def __repr__(self) -> str:
        return f"TokenCheck(configured={self.configured})"


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None
