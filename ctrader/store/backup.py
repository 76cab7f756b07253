"""Backups of the store as files: one Parquet file per table and day, and a manifest.

    manifest = backup(store, "/backups/ctrader-2026-01-01")      # a new directory
    done = restore(store, "/backups/ctrader-2026-01-01")         # into an empty (or --replace) store

A logical backup, read through the same client as everything else: it works for the embedded
engine and for a ClickHouse server alike, and restores into either (a way to move history from
the embedded store to a server). Each file is streamed (bounded memory for any size of day) and
its SHA-256 recorded in ``manifest.json``, written last: a directory without one is an
interrupted backup, and a restore checks every file before it inserts anything.

Restoring applies the target's migrations first, so a backup made with an older schema restores
into the current one (columns added since take their defaults); a backup from a newer schema is
refused. A day that already holds rows in the target is a conflict: the restore stops before
changing anything, unless ``replace`` (that day's rows are dropped and the backup's inserted).
The ``runs`` and ``replay_runs`` tables keep one row per run (ReplacingMergeTree): restoring
them again changes nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import shutil
import time

import pyarrow as pa
import pyarrow.parquet as pq

import ctrader
from ctrader.store.client import describe
from ctrader.store.migrations import MIGRATIONS_TABLE, latest_version

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
BATCH_ROWS = 100_000
UNPARTITIONED = "all"           # ClickHouse's partition id of a table without PARTITION BY


class BackupError(RuntimeError):
    """A backup that cannot be made or restored as asked (the message says why)."""


def _tables(store) -> list[str]:
    rows = store.client.query(f"SELECT name FROM system.tables WHERE database = '{store.db}' "
                              f"AND engine LIKE '%MergeTree' ORDER BY name").result_rows
    return [r[0] for r in rows if r[0] != MIGRATIONS_TABLE]


def _partitions(store, table: str) -> dict[str, int]:
    rows = store.client.query(f"SELECT partition_id, sum(rows) FROM system.parts WHERE database = '{store.db}' "
                              f"AND table = '{table}' AND active GROUP BY partition_id "
                              f"ORDER BY partition_id").result_rows
    return {str(p): int(n) for p, n in rows if int(n)}


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def backup(store, dest: str | os.PathLike, tables: list[str] | None = None, progress=None) -> dict:
    """Write every table (or ``tables``) of the store into the new directory ``dest``; returns
    the manifest. ``progress(table, files_done, files_total)`` is told as files complete."""
    dest = pathlib.Path(dest)
    if dest.exists():
        raise BackupError(f"{dest} exists: a backup goes into a new directory (never over another)")
    known = _tables(store)
    unknown = sorted(set(tables or ()) - set(known))
    if unknown:
        raise BackupError(f"no table {unknown[0]} in {store.db}; tables: {', '.join(known)}")
    work = dest.with_name(dest.name + ".partial")
    if work.exists():
        shutil.rmtree(work)                 # left by an interrupted backup: never a complete one
    work.mkdir(parents=True)
    plan = {t: _partitions(store, t) for t in (tables or known)}
    total = sum(len(p) for p in plan.values())
    manifest = {"format": FORMAT, "ctrader": ctrader.__version__, "database": store.db,
                "source": describe(store.url), "schema_version": store.schema_version(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "tables": {}}
    done = 0
    for table, partitions in plan.items():
        (work / table).mkdir()
        files = []
        for partition_id, expected in partitions.items():
            path = work / table / f"{partition_id}.parquet"
            rows = _export(store, table, partition_id, path)
            if rows != expected:
                raise BackupError(f"{table} partition {partition_id}: read {rows} rows, the store said {expected}"
                                  f" (is something writing to it? back up a stopped store)")
            files.append({"partition": partition_id, "file": f"{table}/{path.name}", "rows": rows,
                          "bytes": path.stat().st_size, "sha256": _sha256(path)})
            done += 1
            if progress:
                progress(table, done, total)
        manifest["tables"][table] = {"rows": sum(f["rows"] for f in files), "files": files}
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    os.replace(work, dest)
    log.info("backup of %s (%s) -> %s: %d tables, %d rows", store.db, describe(store.url), dest,
             len(manifest["tables"]), sum(t["rows"] for t in manifest["tables"].values()))
    return manifest


def _export(store, table: str, partition_id: str, path: pathlib.Path) -> int:
    rows = 0
    writer = None
    stream = store.client.query_arrow_stream(f"SELECT * FROM {store.db}.{table} WHERE _partition_id = "
                                             f"'{partition_id}'", use_strings=True)
    try:
        with stream:
            for batch in stream:
                if writer is None:
                    writer = pq.ParquetWriter(path, batch.schema, compression="zstd")
                writer.write_batch(batch)
                rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows


def read_manifest(src: str | os.PathLike) -> dict:
    path = pathlib.Path(src) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{src} is not a complete ctrader backup (no {MANIFEST})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src}: backup format {manifest.get('format')}, this ctrader reads format {FORMAT}")
    return manifest


def verify(src: str | os.PathLike, manifest: dict | None = None) -> None:
    """Every file of the backup is there with the bytes it had (SHA-256)."""
    src = pathlib.Path(src)
    manifest = manifest or read_manifest(src)
    for table in manifest["tables"].values():
        for f in table["files"]:
            path = src / f["file"]
            if not path.is_file():
                raise BackupError(f"{path} is missing")
            if _sha256(path) != f["sha256"]:
                raise BackupError(f"{path} is damaged (its SHA-256 differs from the manifest's)")


def restore(store, src: str | os.PathLike, replace: bool = False, progress=None) -> dict[str, int]:
    """Insert a backup into ``store`` (migrated to the current schema); returns rows per table."""
    src = pathlib.Path(src)
    manifest = read_manifest(src)
    if manifest["schema_version"] > latest_version():
        raise BackupError(f"{src} was made with store schema {manifest['schema_version']}, newer than this "
                          f"ctrader's {latest_version()}: upgrade ctrader first")
    verify(src, manifest)
    store.migrate()
    known = set(_tables(store))
    missing = sorted(set(manifest["tables"]) - known)
    if missing:
        raise BackupError(f"the store has no table {missing[0]} to restore into")
    conflicts = []
    for table, entry in manifest["tables"].items():
        present = _partitions(store, table)
        conflicts += [f"{table}/{f['partition']}" for f in entry["files"]
                      if f["partition"] in present and f["partition"] != UNPARTITIONED]
    if conflicts and not replace:
        raise BackupError(f"the store already holds {len(conflicts)} of the backup's days ({', '.join(conflicts[:5])}"
                          f"{', ...' if len(conflicts) > 5 else ''}): restore into an empty store, or replace "
                          f"those days with the backup's (--replace)")
    total = sum(len(e["files"]) for e in manifest["tables"].values())
    done, out = 0, {}
    for table, entry in manifest["tables"].items():
        out[table] = 0
        for f in entry["files"]:
            if f"{table}/{f['partition']}" in conflicts:
                store.client.command(f"ALTER TABLE {store.db}.{table} DROP PARTITION ID '{f['partition']}'")
            for batch in pq.ParquetFile(src / f["file"]).iter_batches(batch_size=BATCH_ROWS):
                out[table] += store.insert(table, pa.Table.from_batches([batch]))
            done += 1
            if progress:
                progress(table, done, total)
    log.info("restored %s into %s (%s): %d rows", src, store.db, describe(store.url), sum(out.values()))
    return out
