"""The configuration schema: one frozen dataclass per TOML section.

Values live in ``config/default.toml`` (the single place defaults are written down); this module
only says what each key is and what it may hold. Field metadata carries the constraints the
loader checks: ``choices``, ``min``, ``max``, ``pow2``, ``amounts`` and a ``help`` line shown in
error messages; every number must be finite.

Secrets are deliberately absent: API keys never enter the config tree (see ``secrets.py``), so
``ctrader config show`` cannot print them and a logged config cannot leak them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctrader.core.records import STRATEGY_IDS


def opt(help: str, *, choices: tuple | None = None, min: float | None = None,
        max: float | None = None, pow2: bool = False, amounts: str | None = None, key: str = "ASSET",
        named: tuple | None = None) -> Any:
    """A required field with its validation rules (no default: defaults live in default.toml).
    ``amounts`` marks a list of ``KEY=AMOUNT`` strings (``key``: what the left side names, an
    asset unless told) whose amounts must be finite and "positive" or "non-negative".
    ``named`` marks a list of ``KEY=NAME`` strings whose KEY must be one of ``named``."""
    return field(metadata={"help": help, "choices": choices, "min": min, "max": max, "pow2": pow2,
                           "amounts": amounts, "key": key, "named": named})


# The registered strategies (``ctrader.strategy.registry``; a test checks the two agree).
STRATEGY_NAMES = tuple(STRATEGY_IDS)


@dataclass(frozen=True)
class RunConfig:
    mode: str = opt("paper trades against the book locally; live sends signed orders",
                    choices=("paper", "live"))
    data_dir: str = opt("directory for the embedded store, journals and models (CTRADER_DATA_DIR)")
    log_format: str = opt("log line format", choices=("text", "json"))
    log_level: str = opt("log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    cpu_layout: str = opt("auto: on 2-3 cores, --processes gives the strategy a core of its own (where it "
                          "spins) and the other components share the rest; none: the OS places them",
                          choices=("auto", "none"))
    gc: str = opt("idle: with --processes, the strategy and executor collect Python garbage only when "
                  "idle (start-up objects frozen); python: CPython's automatic collection",
                  choices=("idle", "python"))
    on_failure: str = opt("a component out of restarts: stop = engage the kill switch (open orders "
                          "cancelled) and stop the session in order; continue = go on without it",
                          choices=("stop", "continue"))


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
class SimMarketConfig:
    """The simulator's seeded market model (``ctrader.sim.market``)."""
    speed: float = opt("market seconds per wall-clock second; 0 = as fast as the clients read", min=0)
    step_ms: int = opt("market-clock step of the model, ms", min=1, max=1000)
    epoch_ms: int = opt("market clock at start, ms since 1970; 0 = the wall clock at start", min=0)
    volatility_bps: float = opt("stdev of each asset's fair value per sqrt(second), basis points",
                                min=0, max=1000)
    correlation: float = opt("weight of the common factor in the assets' random walks", min=0, max=1)
    book_levels: int = opt("price levels kept on each side of every book (at least 20)", min=20, max=1000)
    level_scale: float = opt("multiplies the size of every book level", min=0.001, max=1000)
    spread_scale: float = opt("multiplies every symbol's spread and level spacing", min=0.01, max=100)
    book_events_per_s: float = opt("liquidity changes per symbol per market second (top-tier symbol)",
                                   min=0, max=100000)
    trades_per_s: float = opt("market trades per symbol per market second (top-tier symbol)",
                              min=0, max=100000)
    dislocations_per_min: float = opt("cross-rate dislocations opening a triangle, per market minute",
                                      min=0, max=100000)
    dislocation_bps: float = opt("size of a dislocation, basis points", min=0, max=10000)
    dislocation_ms: int = opt("how long a dislocation stays open before arbitrageurs close it, ms",
                              min=1, max=86_400_000)
    asset_prices: list[str] = opt("starting fair values in USDT as ASSET=PRICE, over the built-in table",
                                  amounts="positive")
    residual_bps: float = opt("stdev of each symbol's cross-rate residual (its price against the rate its "
                              "assets' fair values imply), basis points; 0 = none", min=0, max=1000)
    residual_half_life_s: float = opt("how fast a cross-rate residual reverts: half-life, market seconds",
                                      min=0.01, max=86_400)


@dataclass(frozen=True)
class SimLimitsConfig:
    """Binance's limits as the simulator enforces and advertises them in exchangeInfo."""
    request_weight_per_minute: int = opt("REQUEST_WEIGHT per IP per minute (REST and WS API)", min=1)
    raw_requests_per_5m: int = opt("RAW_REQUESTS per IP per 5 minutes", min=1)
    orders_per_10s: int = opt("ORDERS (unfilled order count) per account per 10 s", min=1)
    orders_per_day: int = opt("ORDERS (unfilled order count) per account per day", min=1)
    ws_messages_per_s: int = opt("incoming messages per second on a market-stream connection", min=1)
    max_streams_per_connection: int = opt("streams one market-stream connection may hold", min=1)
    ping_interval_s: float = opt("server ping period on every WebSocket, seconds", min=0.05)
    pong_timeout_s: float = opt("a WebSocket that does not answer a ping within this is dropped",
                                min=0.05)
    max_send_buffer_kb: int = opt("a market-stream client further behind than this is disconnected "
                                  "(real-time mode; at speed 0 the model waits instead)", min=16)


@dataclass(frozen=True)
class SimFaultsConfig:
    """Faults active from the start; tests script more at run time (``ctrader.sim.control``)."""
    clock_skew_ms: int = opt("added to the simulator's clock (server time, timestamp checks)")
    order_delay_ms: int = opt("delay before every order request is processed, ms", min=0)
    diff_drop_rate: float = opt("fraction of depth-diff messages dropped (sequence gaps)", min=0, max=1)
    error_rate: float = opt("fraction of REST and WS API requests answered with HTTP 503", min=0, max=1)


@dataclass(frozen=True)
class SimAccountConfig:
    """One simulated account. The API keys are loopback-only demo credentials, not secrets."""
    name: str = opt("account name (logs and control API)")
    api_key: str = opt("HMAC API key; empty = none")
    api_secret: str = opt("HMAC secret of api_key")
    ed25519_api_key: str = opt("Ed25519 API key; empty = none")
    ed25519_public_key: str = opt("public key of ed25519_api_key: PEM, or base64 of the raw 32 bytes")
    maker_commission: float = opt("maker commission rate (0.001 = 0.1%)", min=0, max=0.1)
    taker_commission: float = opt("taker commission rate (0.001 = 0.1%)", min=0, max=0.1)
    balances: list[str] = opt("starting balances as ASSET=AMOUNT", amounts="non-negative")


@dataclass(frozen=True)
class SimConfig:
    """The built-in Binance Spot simulator (``ctrader sim``; the default venue)."""
    host: str = opt("address the simulator listens on (loopback only)")
    port: int = opt("port for REST, market streams and the WebSocket API", min=0, max=65535)
    seed: int = opt("seed of the market model: the same seed gives the same stream", min=0)
    exchange_info_file: str = opt("a saved exchangeInfo JSON to serve; empty = the built-in universe")
    symbols: list[str] = opt("serve only these symbols; empty = all TRADING symbols")
    market: SimMarketConfig = opt("market model")
    limits: SimLimitsConfig = opt("rate and connection limits")
    faults: SimFaultsConfig = opt("faults active from the start")
    accounts: list[SimAccountConfig] = opt("simulated accounts ([[sim.accounts]] tables)")


@dataclass(frozen=True)
class StoreRetentionConfig:
    """Days each table keeps its rows, counted from each row's own time (a ClickHouse TTL, set when
    the store opens; ``ctrader db prune`` removes what is older at once). 0 keeps them for ever."""
    md_book: int = opt("days of recorded order books (md_book)", min=0)
    md_trade: int = opt("days of recorded trades (md_trade)", min=0)
    candidates: int = opt("days of the strategy's candidate journal (candidates)", min=0)
    orders: int = opt("days of order intents (orders); the record of what was traded", min=0)
    executions: int = opt("days of executions (fills, acks, rejects); the record of what was traded", min=0)


@dataclass(frozen=True)
class StoreConfig:
    url: str = opt("chdb://PATH for the embedded engine, http(s)://host:8123 for a server; "
                   "{data_dir} is replaced by run.data_dir")
    database: str = opt("database name")
    retention: StoreRetentionConfig = opt("how long each table keeps its rows")


@dataclass(frozen=True)
class RedisConfig:
    url: str = opt("redis://host:port/db for live state; empty disables publishing")
    key_prefix: str = opt("prefix of the live-state keys: {prefix}:tob, {prefix}:status")


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
    wait: str = opt("how consumers wait for data; auto picks from the core count (block on <= 3 cores)",
                    choices=("auto", "spin", "spin-yield", "sleep", "block"))
    keep_warm_us: int = opt("strategy and executor rehearse their order path (dry run) when it sat idle this "
                            "long, so caches stay warm for the next real order; 0 = off", min=0, max=10_000_000)
    lossless_timeout_s: float = opt("a lossless producer fails loudly after waiting this long",
                                    min=0.001, max=3600)


@dataclass(frozen=True)
class MarketConfig:
    exchange_info_file: str = opt("a saved exchangeInfo JSON; empty = fetch from the venue's REST API "
                                  "(the supervisor saves one per run so every process sees the same ids)")
    symbols: list[str] = opt("trade/stream exactly these symbols; empty = every symbol in a triangle "
                             "through start_assets")
    start_assets: list[str] = opt("assets a triangle starts and ends in (what PnL is counted in)")


@dataclass(frozen=True)
class FeedConfig:
    streams: list[str] = opt("streams per symbol, e.g. bookTicker, depth@100ms, depth, trade")
    snapshot_limit: int = opt("levels asked of GET /api/v3/depth when a book is (re)built",
                              choices=(5, 10, 20, 50, 100, 500, 1000, 5000))
    weight_budget: float = opt("fraction of the venue's REQUEST_WEIGHT/min the feed may use", min=0.01, max=1)
    max_streams_per_connection: int = opt("streams per WebSocket (Binance allows 1024)", min=1, max=1024)
    messages_per_s: float = opt("outgoing SUBSCRIBE messages per second per connection (Binance: < 5)",
                                min=0.1, max=5)
    reconnect_min_s: float = opt("first reconnect delay; doubles up to reconnect_max_s, with jitter", min=0)
    reconnect_max_s: float = opt("longest reconnect delay", min=0)
    planned_reconnect_h: float = opt("reconnect a connection this long after it opened (Binance cuts at 24 h)",
                                     min=0.001, max=24)
    weight_limit_per_min: int = opt("the venue's REQUEST_WEIGHT per minute (exchangeInfo rateLimits)", min=1)
    snapshot_workers: int = opt("depth snapshots in flight at once", min=1, max=64)
    url_streams: int = opt("streams named in the connection URL; the rest are SUBSCRIBEd (paced)",
                           min=1, max=1024)
    idle_timeout_s: float = opt("reconnect a connection that received nothing for this long", min=0.1)
    handover_timeout_s: float = opt("longest wait for a fresh socket to deliver before switching to it",
                                    min=0.1)
    quiet_book_snapshot_s: float = opt("rebuild a book from a snapshot alone when no diff came this long "
                                       "after its socket went live (a quiet symbol)", min=0.1)


@dataclass(frozen=True)
class CrossRateReversionConfig:
    """``[strategy.cross_rate_reversion]``: the cross-rate statistical arbitrage
    (``ctrader.strategy.cross_rate``)."""
    half_life_s: float = opt("half-life of the residual's running mean and variance, market seconds", min=0.001)
    min_observations: int = opt("residual observations a relation needs before it trades", min=2)
    entry_z: float = opt("enter when the residual is this many standard deviations off its mean", min=0)
    exit_z: float = opt("exit when it is back within this many (toward the mean; may be negative)",
                        min=-100, max=100)
    max_hold_s: float = opt("exit a position held this long, whatever the residual", min=0.001)
    stop_bps: float = opt("exit when the residual moved this far against the position since entry, bp",
                          min=0)
    limit_slippage_bps: float = opt("IOC limit beyond the touch, bp (0: the touch)", min=0, max=1000)
    maker_rest_ms: float = opt("an entry whose edge pays a maker and a taker fee but not the spread and two "
                               "taker fees rests at its side's touch as a LIMIT_MAKER order this long "
                               "(0: taker entries only)", min=0)


@dataclass(frozen=True)
class MakerTriangularConfig:
    """``[strategy.maker_triangular]``: triangular arbitrage with one leg resting as a maker
    (``ctrader.strategy.maker_triangular``)."""
    margin_bps: float = opt("what a cycle must earn after one maker and two taker fees at the resting "
                            "price, bp", min=0, max=1000)
    cancel_edge_bps: float = opt("a resting order whose cycle earns less than this now is re-priced or "
                                 "canceled at once, bp (0: when a fill would lose)", min=-1000, max=1000)
    max_distance_bps: float = opt("rest at most this far behind the touch, bp (farther: no order, or "
                                  "cancel)", min=0, max=10000)
    reprice_ticks: int = opt("re-price when the profitable price moved this many ticks", min=1)
    min_rest_ms: float = opt("rest at least this long before a re-price that is not needed to stay "
                             "profitable", min=0)
    max_rest_s: float = opt("the executor cancels a resting order this long after it was placed", min=0.01)
    max_reprices_per_10s: int = opt("re-prices (cancel-replace) per 10 s of market time, all triangles; "
                                    "cancels are never held back", min=0)
    max_resting: int = opt("resting orders at once", min=0)
    resting_notional: list[str] = opt("largest amount resting at once in each asset an order spends, "
                                      "ASSET=AMOUNT (assets not listed: [strategy] max_start x max_resting)",
                                      amounts="non-negative")
    hedge_slippage_bps: float = opt("IOC limit of the hedge legs beyond the touch, bp", min=0, max=1000)


@dataclass(frozen=True)
class StrategyConfig:
    name: str = opt("strategy module to run", choices=STRATEGY_NAMES)
    names: list[str] = opt("strategies to run side by side on the same market data (empty: name alone); "
                           "each has its own keys, groups and budget (risk.per_strategy)", choices=STRATEGY_NAMES)
    schedule: str = opt("several strategies in the strategy process: lead_first = the first of names decides on "
                        "each md batch at once and the others on the same records when no md waits; in_step = "
                        "every strategy on each record in turn (replay always runs them in step: the same "
                        "decisions)", choices=("lead_first", "in_step"))
    min_edge_bps: float = opt("net edge after taker fees a triangle needs to become a candidate, bp",
                              min=-10000, max=10000)
    min_score: float = opt("model score an edge needs to be traded (0 = trade every edge)", min=0, max=1)
    max_start: list[str] = opt("largest amount per trade in each start asset, ASSET=AMOUNT",
                               amounts="non-negative")
    max_book_age_ms: float = opt("a leg whose book is older than this blocks its triangles", min=1)
    cooldown_ms: float = opt("wait after trading a triangle before trading it again", min=0)
    tif: str = opt("time in force of the leg orders", choices=("IOC", "FOK", "GTC"))
    min_marginal_edge_bps: float = opt("sizing walks the books while the next unit still earns this, bp",
                                       min=-10000, max=10000)
    inflight_timeout_ms: float = opt("a group with legs still unreported after this is no longer in flight",
                                     min=1)
    max_groups_per_event: int = opt("groups traded per market event at most (the best expected PnL first)",
                                    min=1)
    max_groups_per_10s: int = opt("groups started per 10 s of market time at most (keep 3 x this within "
                                  "risk.orders_per_10s, or the risk gate breaks groups)", min=1)
    max_groups_in_flight: int = opt("groups with legs still open at once (3 x this within risk.max_open_orders)",
                                    min=1)
    limit_slippage_bps: float = opt("IOC limit price beyond the worst level walked, bp (0: exactly that level)",
                                    min=0, max=1000)
    cross_rate_reversion: CrossRateReversionConfig = opt("cross-rate statistical arbitrage")
    maker_triangular: MakerTriangularConfig = opt("triangular arbitrage with one resting maker leg")


@dataclass(frozen=True)
class ModelConfig:
    dir: str = opt("model registry directory; {data_dir} is replaced by run.data_dir")
    name: str = opt("model to score with: a name in the registry, 'default' (packaged) or 'none'")
    threads: int = opt("onnxruntime intra-op threads (1: scoring stays on the strategy's core)", min=1, max=64)
    per_strategy: list[str] = opt("a model of a strategy's own, STRATEGY=NAME (NAME 'none': unscored); a "
                                  "strategy not named scores with [model] name if it was trained for it",
                                  key="STRATEGY", named=STRATEGY_NAMES)


@dataclass(frozen=True)
class ExecutionConfig:
    paper_latency_ms: float = opt("paper mode: order-to-match latency", min=0)
    paper_quiet_match_ms: float = opt("paper mode: an order due with no later market data yet is matched on the "
                                      "books as they are this long after its due time (a record received "
                                      "before it may still be in the feed)", min=0)
    unwind: str = opt("what to do with inventory a broken triangle leaves", choices=("market", "hold"))
    journal_dir: str = opt("write-ahead order journal, one per venue and mode (a new session sets it "
                           "aside, renamed with its date, once all its orders ended); {data_dir} is "
                           "replaced by run.data_dir")
    use_ws_api: bool = opt("live mode: send orders over the WebSocket API (REST is the fallback)")
    paper_balances: list[str] = opt("paper mode: the account's starting balances as ASSET=AMOUNT; empty = the "
                                    "simulator's account (venue sim) or the real account's (Binance, read with "
                                    "the API keys)")
    journal_fsync: str = opt("when the order journal is synced to disk (its lines reach the page cache before "
                             "every order in any case, which a crash of the process cannot lose): after_send = "
                             "once the batch's orders left (a machine crash in between is recovered from the "
                             "venue); always = before they leave (a sync costs ~0.1-3 ms here, on the order "
                             "path); never; auto = after_send in live mode, never in paper mode",
                             choices=("auto", "after_send", "always", "never"))


@dataclass(frozen=True)
class PerStrategyRiskConfig:
    """``[risk.per_strategy]``: each strategy's budget inside the global limits, STRATEGY=AMOUNT
    (a strategy not named has the global limits alone)."""
    max_open_notional: list[str] = opt("notional of a strategy's open orders (its new one included), in "
                                       "valuation_asset", amounts="non-negative", key="STRATEGY")
    max_open_orders: list[str] = opt("open orders of a strategy at once", amounts="non-negative", key="STRATEGY")
    order_share_pct: list[str] = opt("a strategy's share of risk.orders_per_10s, percent", amounts="non-negative",
                                     key="STRATEGY")
    daily_loss_limit: list[str] = opt("a strategy stops trading after its fills lost this much today, in "
                                      "valuation_asset", amounts="non-negative", key="STRATEGY")


@dataclass(frozen=True)
class RiskConfig:
    valuation_asset: str = opt("asset that notional, position and loss limits are expressed in")
    max_order_notional: float = opt("largest single order, in valuation_asset", min=0)
    max_group_notional: float = opt("largest multi-leg group, in valuation_asset", min=0)
    max_position: float = opt("largest net position change per asset, in valuation_asset", min=0)
    max_open_orders: int = opt("open orders at once", min=1)
    orders_per_10s: int = opt("order budget per 10 s (Binance ORDERS limit is 50 / 10 s)", min=1)
    orders_per_day: int = opt("order budget per day (Binance ORDERS limit is 160000 / day)", min=1)
    weight_per_minute: int = opt("request-weight budget per minute for orders and cancels "
                                 "(Binance REQUEST_WEIGHT is 6000 / min per IP, shared with the feed)", min=1)
    max_book_age_ms: float = opt("refuse an order whose symbol's book is older than this (stale book)", min=1)
    daily_loss_limit: float = opt("stop trading after losing this much today, in valuation_asset", min=0)
    price_band_pct: float = opt("refuse a limit price further than this from the book's mid, percent", min=0)
    kill_file: str = opt("trading stops while this file exists; {data_dir} is replaced by run.data_dir")
    per_strategy: PerStrategyRiskConfig = opt("budgets of each strategy within these limits")


@dataclass(frozen=True)
class RecorderConfig:
    batch_rows: int = opt("insert when this many rows are buffered", min=1)
    batch_ms: int = opt("insert at least this often, ms", min=1)
    max_buffer_rows: int = opt("rows held in memory before spilling to disk", min=1)
    spill_dir: str = opt("spill files while the store is down; {data_dir} is replaced by run.data_dir")
    redis_publish_ms: int = opt("live state to Redis at most this often, ms", min=10)


@dataclass(frozen=True)
class ReplayConfig:
    feed_latency: str = opt("extra delay before the strategy sees a recorded event: MS, const:MS, "
                            "uniform:LO:HI, normal:MEAN:SD, lognormal:MEDIAN:SIGMA, empirical:FILE")
    order_latency: str = opt("order sent -> matched, same grammar; empty = execution.paper_latency_ms")
    exec_latency: str = opt("match -> the strategy learns of the execution (user data / exec ring), same grammar")
    seed: int = opt("seed of the sampled latencies (the same seed gives the same replay)", min=0)
    batch_events: int = opt("md events per strategy batch; executions reach the strategy at batch ends",
                            min=1, max=1 << 20)
    chunk_rows: int = opt("md rows read from the store per query (bounds memory)", min=1000)
    pnl_interval_ms: int = opt("PnL and inventory sampled this often, market time", min=1)
    keep_records: int = opt("candidate records kept in memory for the report", min=0)
    workers: int = opt("parallel processes of a sweep; 0 = one per core", min=0, max=256)


@dataclass(frozen=True)
class ComputeConfig:
    backend: str = opt("where sweeps, rankings and model retrain run: local processes, or Ray "
                       "(pip install 'ctrader[compute]')", choices=("local", "ray"))
    address: str = opt("ray: address of an existing cluster (e.g. ray://head:10001 or auto); empty = start "
                       "a local Ray for the command and stop it after")
    num_cpus: int = opt("ray, started locally: CPUs it may use; 0 = every core", min=0, max=4096)
    object_store_mb: int = opt("ray, started locally: object store size (market data shipped to the tasks), "
                               "MB; 0 = Ray's default (30% of memory)", min=0)


@dataclass(frozen=True)
class MonitorConfig:
    """The monitor process of ``ctrader start``: HTTP API, dashboard, Prometheus metrics, alerts."""
    enabled: bool = opt("ctrader start runs the monitor (also: --without monitor)")
    host: str = opt("address the monitor binds; anything but loopback needs a token for every endpoint")
    port: int = opt("TCP port of the monitor's HTTP API, dashboard and /metrics", min=1, max=65535)
    token_file: str = opt("bearer token for the control endpoints, generated (mode 0600) at first start; "
                          "CTRADER_MONITOR_TOKEN overrides it; empty = no file (control endpoints then need "
                          "the environment variable); {data_dir} is replaced by run.data_dir")
    cors_origins: list[str] = opt("origins allowed to call the API from a browser page they serve; "
                                  "empty = no CORS headers (the dashboard is same-origin)")
    poll_ms: int = opt("how often the monitor reads stats, health and rings, ms", min=50, max=10_000)
    history_s: int = opt("PnL history kept for the dashboard, seconds", min=60, max=7 * 86_400)
    fills_kept: int = opt("recent fills kept for /api/fills and the dashboard", min=10, max=1_000_000)
    venue_check_s: float = opt("every this many seconds, the venue's clock (and in live mode the account's "
                               "balances: weight 20) is read over REST; 0 = never", min=0)


@dataclass(frozen=True)
class AlertsConfig:
    """Alerts sent by the monitor (apprise URLs); each deduplicated per incident and rate-limited."""
    urls: list[str] = opt("apprise URLs (tgram://, discord://, slack://, ntfy://, mailto://, json://host/path, ...); "
                          "they hold tokens: prefer urls_file or CTRADER_ALERTS_URLS")
    urls_file: str = opt("a file (mode 0600) with one apprise URL per line, added to urls; empty = none")
    max_per_minute: int = opt("alerts sent per minute at most; the rest are summed up in one message later",
                              min=1, max=10_000)
    queue_size: int = opt("alerts waiting for a slow endpoint at most; beyond, new ones are dropped and counted",
                          min=1, max=100_000)
    flush_s: float = opt("at stop, wait this long for queued alerts (the session summary) to go out", min=0)
    stale_s: float = opt("alert when a book is marked stale, or silent, for longer than this", min=0.1)
    storm_window_s: float = opt("window over which disconnects and rejects are counted as a storm", min=1)
    disconnect_storm: int = opt("feed disconnects within storm_window_s that make a storm", min=1)
    reject_storm: int = opt("venue rejects within storm_window_s that make a storm", min=1)
    spill_batches: int = opt("alert when this many recorder batches wait in spill files", min=1)
    min_free_disk_mb: float = opt("alert when the data directory's file system has less free space, MB", min=0)
    max_clock_offset_ms: float = opt("alert when the venue's clock is further than this from ours, ms", min=1)
    component_grace_s: float = opt("a component dead and not restarted for this long has failed for good",
                                   min=0.1)


@dataclass(frozen=True)
class Config:
    run: RunConfig
    venue: VenueConfig
    sim: SimConfig
    store: StoreConfig
    redis: RedisConfig
    rings: RingsConfig
    market: MarketConfig
    feed: FeedConfig
    strategy: StrategyConfig
    model: ModelConfig
    execution: ExecutionConfig
    risk: RiskConfig
    recorder: RecorderConfig
    replay: ReplayConfig
    compute: ComputeConfig
    monitor: MonitorConfig
    alerts: AlertsConfig
