"""The store schema as numbered migrations, applied in order and recorded in ``schema_migrations``.

Every table is a MergeTree partitioned by day and sorted by (symbol or run, time), with codecs
chosen for time series: DoubleDelta for timestamps and monotonic clocks, Delta for ids and
sequence numbers, Gorilla for float series, LowCardinality for names. Times are
``DateTime64(9, 'UTC')`` (nanoseconds since the epoch, exactly the record fields).

The general-purpose codec after them is LZ4, not ZSTD: measured on this project's 2-core
machines with feed-like rows (``ctrader bench --suite store``), ZSTD(1) cut md_book from ~65 to
~50 bytes a row but made inserts 2-3x slower (~1M -> ~370k rows/s), below the recorder's
500k rows/s target. A store that favours disk over insert speed can add a migration that
``ALTER TABLE ... MODIFY COLUMN ... CODEC(..., ZSTD(3))`` (new parts only; merges recompress).

A schema change is a new ``Migration`` appended to ``MIGRATIONS`` — never an edit of an old one.

    applied = apply_migrations(client, "ctrader")    # versions newly applied; [] when up to date
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "schema_migrations"

TS = "DateTime64(9, 'UTC') CODEC(DoubleDelta, LZ4)"
MONO = "Int64 CODEC(DoubleDelta, LZ4)"
ID = "Int64 CODEC(Delta, LZ4)"
PX = "Float64 CODEC(Gorilla, LZ4)"
LEVELS = "Array(Float64) CODEC(LZ4)"
NAME = "LowCardinality(String)"

MD_KIND = "Enum8('book_ticker' = 1, 'depth' = 2, 'snapshot' = 3, 'trade' = 4, 'status' = 5)"
EXEC_KIND = ("Enum8('ack' = 1, 'partial_fill' = 2, 'fill' = 3, 'canceled' = 4, 'rejected' = 5, "
             "'refused' = 6)")
DECISION = ("Enum8('taken' = 1, 'skip_edge' = 2, 'skip_score' = 3, 'skip_stale' = 4, "
            "'skip_filter' = 5, 'skip_risk' = 6)")
SIDE = "Enum8('none' = 0, 'buy' = 1, 'sell' = 2)"


def _regranulate(tables: tuple[str, ...], rows: int) -> tuple[str, ...]:
    """Rebuild ``tables`` with ``rows``-row granules (a table setting ClickHouse cannot alter): a
    copy with the same columns, key and codecs, filled from the table, then swapped in atomically
    (``EXCHANGE TABLES``: an Atomic database, the default of chDB and of ClickHouse since 20.10).

    Why: replay reads every symbol over a window of time, while the tables are sorted by
    (symbol, time); a window reads at least one granule of each symbol, so with 8192-row
    granules a 200k-event window over 35 symbols read 2.2x its rows, with 1024 1.14x (600 s of
    the simulator's market; ``ctrader bench --suite replay``).

    Every statement is safe to run again after an interruption: the copy is dropped and remade
    until the swap, and after the swap the table holds every row. Rows inserted into a table
    while its copy is made are not in the copy: migrate a server's store with no session
    recording into it (``ctrader db migrate``); the embedded store admits one process anyway.
    """
    out: list[str] = []
    for table in tables:
        copy = f"{{db}}.{table}_regranulate"
        out += [f"DROP TABLE IF EXISTS {copy}",
                f"CREATE TABLE {copy} AS {{db}}.{table} ENGINE = MergeTree PARTITION BY toDate(recv_ts) "
                f"ORDER BY (symbol, recv_ts) SETTINGS index_granularity = {rows}",
                f"INSERT INTO {copy} SELECT * FROM {{db}}.{table}",
                f"EXCHANGE TABLES {{db}}.{table} AND {copy}",
                f"DROP TABLE {copy}"]
    return tuple(out)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]   # ``{db}`` is replaced by the database name


MIGRATIONS: list[Migration] = [
    Migration(1, "market data, journal, executions, runs", (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.md_book (
            symbol {NAME},
            recv_ts {TS},
            exch_ts {TS},
            recv_mono_ns {MONO},
            run_id {NAME},
            seq {ID},
            kind {MD_KIND},
            flags UInt8,
            first_update_id {ID},
            last_update_id {ID},
            bid_px {LEVELS}, bid_qty {LEVELS}, ask_px {LEVELS}, ask_qty {LEVELS}
        ) ENGINE = MergeTree PARTITION BY toDate(recv_ts) ORDER BY (symbol, recv_ts)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.md_trade (
            symbol {NAME},
            recv_ts {TS},
            exch_ts {TS},
            recv_mono_ns {MONO},
            run_id {NAME},
            seq {ID},
            flags UInt8,
            trade_id {ID},
            px {PX},
            qty {PX}
        ) ENGINE = MergeTree PARTITION BY toDate(recv_ts) ORDER BY (symbol, recv_ts)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.candidates (
            run_id {NAME},
            event_recv_ts {TS},
            event_recv_mono_ns {MONO},
            eval_mono_ns {MONO},
            group_id UInt64,
            triangle_id Int32,
            strategy_id UInt16,
            decision {DECISION},
            edge {PX}, size_start {PX}, expected_pnl {PX}, score {PX},
            leg_symbol Array({NAME}),
            leg_side Array(UInt8),
            leg_px {LEVELS}, leg_qty {LEVELS},
            features Array(Float32) CODEC(LZ4)
        ) ENGINE = MergeTree PARTITION BY toDate(event_recv_ts) ORDER BY (run_id, event_recv_ts)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.orders (
            symbol {NAME},
            created_ts {TS},
            run_id {NAME},
            group_id UInt64,
            client_order_id String,
            strategy_id UInt16,
            leg UInt8, n_legs UInt8,
            side {SIDE},
            order_type Enum8('limit' = 1, 'market' = 2, 'limit_maker' = 3),
            tif Enum8('none' = 0, 'gtc' = 1, 'ioc' = 2, 'fok' = 3),
            price_ticks Int64, qty_steps Int64,
            price Float64, qty Float64,
            cause_recv_mono_ns {MONO},
            created_mono_ns {MONO},
            score Float64, expected_edge Float64
        ) ENGINE = MergeTree PARTITION BY toDate(created_ts) ORDER BY (symbol, created_ts)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.executions (
            symbol {NAME},
            recv_ts {TS},
            exch_ts {TS},
            run_id {NAME},
            group_id UInt64,
            client_order_id String,
            kind {EXEC_KIND},
            side {SIDE},
            leg UInt8,
            is_maker UInt8,
            reject_code Int32,
            exchange_order_id Int64,
            trade_id Int64,
            last_px Float64, last_qty Float64, cum_qty Float64, cum_quote Float64,
            fee Float64, fee_asset {NAME},
            cause_recv_mono_ns {MONO},
            sent_mono_ns {MONO}
        ) ENGINE = MergeTree PARTITION BY toDate(recv_ts) ORDER BY (symbol, recv_ts)""",
        # One row per update of a run (start, periodic, end): the newest wins on read.
        f"""CREATE TABLE IF NOT EXISTS {{db}}.runs (
            run_id String,
            updated_ts DateTime64(3, 'UTC'),
            started_ts DateTime64(3, 'UTC'),
            ended_ts Nullable(DateTime64(3, 'UTC')),
            host String,
            pid UInt32,
            mode {NAME},
            venue {NAME},
            symbols Array(String),
            assets Array(String),
            counters String,
            config String
        ) ENGINE = ReplacingMergeTree(updated_ts) ORDER BY run_id""",
    )),
    # Replay results (ctrader.replay.results). Stores that had them created by ReplayResults
    # before this migration existed take it as a no-op (IF NOT EXISTS).
    Migration(2, "replay runs, fills, pnl", (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.replay_runs (
            run_id String,
            created_ts DateTime64(3, 'UTC'),
            kind {NAME},
            label String,
            strategy {NAME},
            config_hash String,
            code_version String,
            model_version String,
            data_start {TS},
            data_end {TS},
            symbols Array(String),
            events UInt64,
            candidates UInt64,
            intents UInt64,
            fills UInt64,
            pnl Float64,
            expected_pnl Float64,
            wall_s Float64,
            params String,
            config String,
            summary String
        ) ENGINE = ReplacingMergeTree(created_ts) ORDER BY run_id""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.replay_fills (
            run_id {NAME},
            ts {TS},
            cause_ts {TS},
            group_id UInt64,
            triangle_id Int32,
            leg UInt8,
            symbol {NAME},
            side {SIDE},
            is_maker UInt8,
            px {PX}, qty {PX}, quote {PX}, fee {PX},
            fee_asset {NAME},
            expected_px {PX},
            slippage_bps {PX},
            latency_ns {ID},
            feed_ns {ID},
            order_ns {ID}
        ) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (run_id, ts)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.replay_pnl (
            run_id {NAME},
            ts {TS},
            pnl {PX},
            assets Array({NAME}),
            values Array(Float64)
        ) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (run_id, ts)""",
    )),
    Migration(3, "market data in 1024-row granules", _regranulate(("md_book", "md_trade"), 1024)),
    # when the executor's risk gate looked at each order: a replay of the session charges its
    # rate budget at the same instants (rows recorded before have 0: replay then uses send times)
    Migration(4, "executions.gated_mono_ns", (
        f"ALTER TABLE {{db}}.executions ADD COLUMN IF NOT EXISTS gated_mono_ns {MONO} AFTER sent_mono_ns",)),
]


def _ensure_migrations_table(client, db: str) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(f"""CREATE TABLE IF NOT EXISTS {db}.{MIGRATIONS_TABLE} (
        version UInt32, name String, applied_ts DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = MergeTree ORDER BY version""")


def applied_versions(client, db: str) -> list[int]:
    _ensure_migrations_table(client, db)
    rows = client.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE} ORDER BY version").result_rows
    return [int(r[0]) for r in rows]


def apply_migrations(client, db: str, migrations: list[Migration] | None = None) -> list[int]:
    """Apply every migration newer than the store's latest; returns the versions applied.

    Statements are idempotent (``IF NOT EXISTS``), so a migration interrupted half-way is safely
    re-run; its row is written only after all its statements succeeded.
    """
    migrations = sorted(migrations or MIGRATIONS, key=lambda m: m.version)
    done = set(applied_versions(client, db))
    applied = []
    for m in migrations:
        if m.version in done:
            continue
        for stmt in m.statements:
            client.command(stmt.replace("{db}", db))
        client.insert(f"{db}.{MIGRATIONS_TABLE}", [[m.version, m.name]], column_names=["version", "name"])
        log.info("store %s: applied migration %d (%s)", db, m.version, m.name)
        applied.append(m.version)
    return applied


def latest_version() -> int:
    return max(m.version for m in MIGRATIONS)
