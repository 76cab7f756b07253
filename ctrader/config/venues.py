"""Endpoints of each venue. The same client code talks to all of them; only URLs differ."""
from __future__ import annotations

from dataclasses import dataclass

from ctrader.config.schema import Config


@dataclass(frozen=True)
class Endpoints:
    rest: str        # base URL; paths such as /api/v3/depth are appended
    ws_stream: str   # base URL; /ws/<stream> or /stream?streams=... are appended
    ws_api: str      # full URL of the WebSocket API


PRESETS = {
    "binance": Endpoints("https://api.binance.com", "wss://stream.binance.com:9443",
                         "wss://ws-api.binance.com:443/ws-api/v3"),
    "binance-testnet": Endpoints("https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
                                 "wss://ws-api.testnet.binance.vision/ws-api/v3"),
}


def endpoints(cfg: Config) -> Endpoints:
    """The venue's URLs, with any of ``venue.*_url`` overriding the standard one."""
    if cfg.venue.kind == "sim":
        base = f"{cfg.sim.host}:{cfg.sim.port}"
        preset = Endpoints(f"http://{base}", f"ws://{base}", f"ws://{base}/ws-api/v3")
    else:
        preset = PRESETS[cfg.venue.kind]
    v = cfg.venue
    return Endpoints(v.rest_url or preset.rest, v.ws_stream_url or preset.ws_stream,
                     v.ws_api_url or preset.ws_api)
