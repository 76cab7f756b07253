"""API credentials: only from the environment or a 0600 file, never from the config tree.

``Credentials`` hides its values from ``repr``/``str`` so that a stray log line or traceback
cannot print them.
"""
from __future__ import annotations

import os
import pathlib
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field

from ctrader.config.loader import ConfigError
from ctrader.config.schema import VenueConfig


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    api_secret: str = field(default="", repr=False)        # HMAC-SHA256 secret
    private_key_pem: bytes = field(default=b"", repr=False)  # Ed25519 key

    def __repr__(self) -> str:
        kind = "ed25519" if self.private_key_pem else "hmac"
        return f"Credentials(api_key=***{self.api_key[-4:] if len(self.api_key) > 8 else ''}, kind={kind})"

    __str__ = __repr__


def read_private_file(path: str | os.PathLike) -> bytes:
    """Read a secret file, refusing one that group or others can read."""
    p = pathlib.Path(os.path.expanduser(path))
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"secret file not found: {p}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"secret file {p} has mode {stat.S_IMODE(mode):04o}; "
                          f"it must be readable by its owner only (chmod 600 {p})")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"secret file {p} cannot be read: {exc.strerror or exc}") from None


def load_credentials(venue: VenueConfig, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for ``venue``, or None when none are configured (paper mode needs none)."""
    env = os.environ if env is None else env
    key = env.get(venue.api_key_env, "")
    secret = env.get(venue.api_secret_env, "")
    if venue.secret_file:
        for line in read_private_file(venue.secret_file).decode().splitlines():
            name, _, value = line.partition("=")
            name, value = name.strip(), value.strip()
            if name == "api_key" and not key:
                key = value
            elif name == "api_secret" and not secret:
                secret = value
    pem = read_private_file(venue.private_key_file) if venue.private_key_file else b""
    if not key:
        if secret or pem:
            raise ConfigError(f"a secret is configured but no API key: set {venue.api_key_env} "
                              f"or api_key= in venue.secret_file")
        return None
    if not secret and not pem:
        raise ConfigError(f"API key found but neither {venue.api_secret_env} nor "
                          f"venue.private_key_file is set")
    return Credentials(api_key=key, api_secret=secret, private_key_pem=pem)
