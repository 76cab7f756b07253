"""Batches the store could not take, kept on local disk until it can.

Each batch is one Arrow IPC file named ``{sequence}.{table}.arrow`` (written to a temporary name,
then renamed, so a crash never leaves half a file under a real name). Files are replayed in
sequence order and deleted only after the store accepted them, so no row is lost and none is
inserted twice by the spill itself. Files left by a recorder that crashed are picked up by the
next one on the same directory.

    spill = SpillDir("/data/spill")
    spill.put("md_book", table)                    # store down: keep it
    spill.drain(store.insert)                      # store back: insert oldest first, delete
"""
from __future__ import annotations

import logging
import os
import pathlib
import re
import threading
from collections.abc import Callable

import pyarrow as pa

log = logging.getLogger(__name__)

_FILE_RE = re.compile(r"^(\d{12})\.([a-z_]+)\.arrow$")


class SpillDir:
    def __init__(self, directory: str | os.PathLike, fsync: bool = False) -> None:
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._lock = threading.Lock()
        for tmp in self.dir.glob("*.tmp"):      # half-written by a crashed recorder: never renamed
            tmp.unlink(missing_ok=True)
        files = self.files()
        self._next = (int(_FILE_RE.match(files[-1].name).group(1)) + 1) if files else 0
        self.rows_spilled = 0       # rows written here by this process
        self.rows_replayed = 0      # rows inserted from here into the store by this process
        if files:
            log.warning("spill directory %s holds %d batches (%d rows) from earlier: they will be inserted "
                        "when the store is reachable", self.dir, len(files), self.pending_rows())

    def files(self) -> list[pathlib.Path]:
        return sorted(p for p in self.dir.iterdir() if _FILE_RE.match(p.name))

    def put(self, table: str, data: pa.Table) -> pathlib.Path:
        with self._lock:
            seq = self._next
            self._next += 1
        path = self.dir / f"{seq:012d}.{table}.arrow"
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
            writer.write_table(data)
        if self.fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
        self.rows_spilled += data.num_rows
        return path

    @staticmethod
    def load(path: pathlib.Path) -> tuple[str, pa.Table]:
        table = _FILE_RE.match(path.name).group(2)
        with pa.OSFile(str(path), "rb") as source:     # read into memory: the file is deleted next
            data = pa.ipc.open_file(source).read_all()
        return table, data

    def pending(self) -> int:
        return len(self.files())

    def pending_rows(self) -> int:
        rows = 0
        for path in self.files():
            try:
                with pa.memory_map(str(path)) as source:
                    reader = pa.ipc.open_file(source)
                    rows += sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            except (OSError, pa.ArrowInvalid):
                continue
        return rows

    def drain(self, insert: Callable[[str, pa.Table], object], max_files: int | None = None) -> int:
        """Insert spilled batches oldest first, deleting each once inserted; returns rows inserted.

        Stops at the first failure (the exception propagates; that file stays for the next try).
        """
        rows = 0
        for i, path in enumerate(self.files()):
            if max_files is not None and i >= max_files:
                break
            table, data = self.load(path)
            insert(table, data)
            path.unlink()
            rows += data.num_rows
            self.rows_replayed += data.num_rows
        return rows
