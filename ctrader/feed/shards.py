"""Which streams go on which WebSocket: symbols spread over as few connections as the limit allows.

All streams of one symbol stay on one connection, so that its bookTicker, diffs and trades
arrive in the order the venue sent them.

    plan = plan_shards(["BTCUSDT", "ETHBTC"], ["bookTicker", "depth@100ms"], max_streams=1024)
    plan[0].streams  -> ["btcusdt@bookTicker", "btcusdt@depth@100ms", "ethbtc@bookTicker", ...]
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ShardPlan:
    index: int
    symbols: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)


def stream_name(symbol: str, stream: str) -> str:
    return f"{symbol.lower()}@{stream}"


def plan_shards(symbols: list[str], streams: list[str], max_streams: int = 1024) -> list[ShardPlan]:
    if not streams:
        raise ValueError("no streams configured ([feed] streams)")
    per_symbol = len(streams)
    if per_symbol > max_streams:
        raise ValueError(f"{per_symbol} streams per symbol do not fit {max_streams} streams per connection")
    symbols_per_shard = max_streams // per_symbol
    plans: list[ShardPlan] = []
    for start in range(0, len(symbols), symbols_per_shard):
        plan = ShardPlan(len(plans))
        for symbol in symbols[start:start + symbols_per_shard]:
            plan.symbols.append(symbol)
            plan.streams.extend(stream_name(symbol, s) for s in streams)
        plans.append(plan)
    return plans
