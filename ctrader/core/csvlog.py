"""An append-only CSV log a process keeps open for its lifetime, and its reader.

A session's processes log small facts a replay needs and a store row would not hold (where an
order met the market, when an execution reached the strategy) as one CSV per process in the
run directory; a restarted process appends to its predecessor's file::

    log = CsvLog(run_dir / "executor.match_points.csv", ("group_id", "leg", ...))
    log.write((7, 0, ...))
    log.flush()                  # the owner's heartbeat, and at stop (close)
    for key, value in read_csv_log(path, parse):   # parse(row dict) -> item; a cut line is skipped
        ...
"""
from __future__ import annotations

import csv
import pathlib
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class CsvLog:
    def __init__(self, path: str | pathlib.Path, header: tuple[str, ...]) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._fh = open(self.path, "a", newline="")  # noqa: SIM115 - open for the process lifetime
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(header)
        self.rows = 0

    def write(self, row: Iterable) -> None:
        self._csv.writerow(row)
        self.rows += 1

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_csv_log(path: str | pathlib.Path, parse: Callable[[dict[str, str]], T]) -> Iterator[T]:
    """``parse`` of each row in file order; a row it cannot parse (a line cut short by a crash:
    KeyError, TypeError, ValueError) is skipped; nothing when there is no file."""
    path = pathlib.Path(path)
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                item = parse(row)
            except (KeyError, TypeError, ValueError):
                continue
            yield item
