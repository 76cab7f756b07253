"""The configuration schema: one frozen dataclass per TOML section.

Values live in ``config/default.toml`` (the single place defaults are written down); this module
only says what each key is and what it may hold. Field metadata carries the constraints the
loader checks: ``choices``, ``min``, ``max`` and a ``help`` line shown in error messages.

Secrets are deliberately absent: API keys never enter the config tree (see ``secrets.py``), so
``ctrader config show`` cannot print them and a logged config cannot leak them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def opt(help: str, *, choices: tuple | None = None, min: float | None = None,
        max: float | None = None, pow2: bool = False) -> Any:
    """A required field with its validation rules (no default: defaults live in default.toml)."""
    return field(metadata={"help": help, "choices": choices, "min": min, "max": max, "pow2": pow2})


@dataclass(frozen=True)
class RunConfig:
    mode: str = opt("paper trades against the book locally; live sends signed orders",
                    choices=("paper", "live"))
    data_dir: str = opt("directory for the embedded store, journals and models (CTRADER_DATA_DIR)")
    log_format: str = opt("log line format", choices=("text", "json"))
    log_level: str = opt("log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True)
class VenueConfig:
    kind: str = opt("which exchange to talk to", choices=("sim", "binance-testnet", "binance"))
    rest_url: str = opt("REST base URL; empty = the venue's standard URL")
    ws_stream_url: str = opt("market-stream WebSocket base URL; empty = the venue's standard URL")
    ws_api_url: str = opt("WebSocket API URL; empty = the venue's standard URL")
    api_key_env: str = opt("environment variable holding the API key")
    api_secret_env: str = opt("environment variable holding the HMAC secret")
    secret_file: str = opt("file (mode 0600) with api_key=/api_secret= lines; empty = none")
    private_key_file: str = opt("Ed25519 private key PEM (mode 0600); empty = HMAC signing")
    recv_window_ms: int = opt("recvWindow sent with signed requests", min=1, max=60000)


@dataclass(frozen=True)
class SimConfig:
    """The built-in Binance Spot simulator (``ctrader sim``; the default venue)."""
    host: str = opt("address the simulator listens on (loopback only)")
    port: int = opt("port for REST, market streams and the WebSocket API", min=0, max=65535)
    seed: int = opt("seed of the market model: the same seed gives the same stream", min=0)


@dataclass(frozen=True)
class StoreConfig:
    url: str = opt("chdb://PATH for the embedded engine, http(s)://host:8123 for a server; "
                   "{data_dir} is replaced by run.data_dir")
    database: str = opt("database name")


@dataclass(frozen=True)
class RedisConfig:
    url: str = opt("redis://host:port/db for live state; empty disables publishing")


@dataclass(frozen=True)
class RingsConfig:
    md_capacity: int = opt("slots in the market-data ring (power of two)", min=1024, max=1 << 24,
                          pow2=True)
    intents_capacity: int = opt("slots in the order-intent ring (power of two)", min=64, max=1 << 20,
                               pow2=True)
    exec_capacity: int = opt("slots in the execution ring (power of two)", min=64, max=1 << 20,
                            pow2=True)
    journal_capacity: int = opt("slots in the candidate-journal ring (power of two)",
                                min=1024, max=1 << 22, pow2=True)
    wait: str = opt("how consumers wait for data; auto picks from the core count",
                    choices=("auto", "spin", "spin-yield", "sleep"))
    lossless_timeout_s: float = opt("a lossless producer fails loudly after waiting this long",
                                    min=0.001, max=3600)


@dataclass(frozen=True)
class Config:
    run: RunConfig
    venue: VenueConfig
    sim: SimConfig
    store: StoreConfig
    redis: RedisConfig
    rings: RingsConfig
