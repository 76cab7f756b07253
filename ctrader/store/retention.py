"""How long the store keeps its rows: a ClickHouse TTL per table, from ``[store.retention]``.

    days = retention_days(cfg.store.retention)      # {"md_book": 90, ..., "executions": 0}
    apply_ttls(store, days)                          # ALTER only the tables whose TTL changed
    removed = prune(store, days)                     # delete what is older now, not at the next merge

Days count from each row's own time (the receive time of market data, executions, candidates;
an order's creation): rows already older than their table's retention are dropped as soon as
they are written, so a store that old history is loaded into (or replayed from, since a replay
writes its candidates and executions with the history's times) keeps 0 days there.

A TTL removes rows when ClickHouse merges parts, in the background, some time after they
expire; ``prune`` removes them at once: whole days (tables are partitioned by day) with
``DROP PARTITION``, then the older rows of the day the cut falls in with a synchronous
``DELETE``. 0 days keeps a table for ever (no TTL). Setting a TTL never rewrites existing parts
(``materialize_ttl_after_modify = 0``): a store of years does not stall the session that opens
it; ``prune`` is the way to apply a shorter retention to old data now.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

# table ([store.retention] key) -> the time column its TTL counts from. Replay results are not
# here: their times are the market times of the history replayed (years old, possibly), not
# when the replay ran, so a TTL on them would drop a fresh replay of old data at once.
TIME_COLUMNS = {"md_book": "recv_ts", "md_trade": "recv_ts", "candidates": "event_recv_ts", "orders": "created_ts",
                "executions": "recv_ts"}
DAY_NS = 86_400 * 1_000_000_000

_TTL_RE = re.compile(r"\bTTL (.+?)(?: SETTINGS |$)")


def retention_days(retention) -> dict[str, int]:
    """Table -> days to keep (0 = for ever) from a ``StoreRetentionConfig`` (or a plain dict)."""
    keys = retention if isinstance(retention, dict) else asdict(retention)
    return {table: int(keys[table]) for table in TIME_COLUMNS}


def ttl_expression(table: str, days: int) -> str | None:
    if days <= 0:
        return None
    return f"toDateTime({TIME_COLUMNS[table]}) + toIntervalDay({int(days)})"


def current_ttl(store, table: str) -> str | None:
    """The table's TTL expression as ClickHouse reports it, or None."""
    rows = store.client.query(f"SELECT engine_full FROM system.tables WHERE database = '{store.db}' "
                              f"AND name = '{table}'").result_rows
    if not rows:
        raise KeyError(f"no table {store.db}.{table}")
    m = _TTL_RE.search(rows[0][0])
    return m.group(1).strip() if m else None


def apply_ttls(store, days: dict[str, int]) -> list[str]:
    """Make each table's TTL the configured one; returns the tables changed (usually none)."""
    changed = []
    for table, keep in days.items():
        want, have = ttl_expression(table, keep), current_ttl(store, table)
        if want == have:
            continue
        if want is None:
            store.client.command(f"ALTER TABLE {store.db}.{table} REMOVE TTL")
        else:
            store.client.command(f"ALTER TABLE {store.db}.{table} MODIFY TTL {want} "
                                 f"SETTINGS materialize_ttl_after_modify = 0")
        log.info("store %s: %s keeps %s", store.db, table, f"{keep} days" if keep else "its rows for ever")
        changed.append(table)
    return changed


@dataclass
class Pruned:
    table: str
    days: int
    cutoff: str                 # rows received before this (UTC) are removed
    rows: int
    bytes_on_disk: int          # what the dropped partitions took (rows deleted inside a day: not counted)
    partitions: int             # whole days dropped


def prune(store, days: dict[str, int], now_ns: int | None = None, dry_run: bool = False) -> list[Pruned]:
    """Remove every row older than its table's retention now; ``dry_run`` only counts them.
    Tables with 0 days are left alone."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    out = []
    for table, keep in days.items():
        if keep <= 0:
            continue
        col = TIME_COLUMNS[table]
        cutoff_ns = now_ns - keep * DAY_NS
        cutoff = f"fromUnixTimestamp64Nano(toInt64({cutoff_ns}), 'UTC')"
        old_days = store.client.query(
            f"SELECT partition_id, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = '{store.db}' "
            f"AND table = '{table}' AND active AND toDate(partition) < toDate({cutoff}) GROUP BY partition_id "
            f"ORDER BY partition_id").result_rows
        whole_rows = sum(int(r[1]) for r in old_days)
        partial = int(store.client.query(
            f"SELECT count() FROM {store.db}.{table} WHERE {col} < {cutoff}").result_rows[0][0]) - whole_rows
        if not dry_run:
            for partition_id, _, _ in old_days:
                store.client.command(f"ALTER TABLE {store.db}.{table} DROP PARTITION ID '{partition_id}'")
            if partial > 0:
                store.client.command(f"ALTER TABLE {store.db}.{table} DELETE WHERE {col} < {cutoff} "
                                     f"SETTINGS mutations_sync = 2")
        out.append(Pruned(table, keep, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(cutoff_ns / 1e9)),
                          whole_rows + max(partial, 0), sum(int(r[2]) for r in old_days), len(old_days)))
        if not dry_run and out[-1].rows:
            log.info("store %s: pruned %d rows of %s older than %s", store.db, out[-1].rows, table, out[-1].cutoff)
    return out
