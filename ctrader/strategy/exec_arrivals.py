"""When each execution reached the strategy, relative to the market data it had seen.

A replay of a paper session decides exactly as the session did only if it tells the strategy
about each execution between the same two md records as the session's strategy learned of it
(a group in flight makes later candidates of its triangle SKIP_RISK). The strategy process
logs, for every exec record it consumes, the seq of the last md record it had applied::

    log = ExecArrivals(run_dir)                     # {run_dir}/strategy.exec_arrivals.csv
    log.note(exec_records, after_md_seq=engine.last_md_seq, mono_ns=time.monotonic_ns())
    log.flush()                                     # ~1/s and at stop
    read_exec_arrivals(run_dir)   # {(group_id, leg, kind): after_md_seq}, first arrival of each

Replay (``ctrader.replay.fidelity.SessionTiming``) turns ``after_md_seq`` into the receive time
of that md record and delivers the execution right after it.
"""
from __future__ import annotations

import csv
import pathlib

import numpy as np

FILE = "strategy.exec_arrivals.csv"
HEADER = ("group_id", "leg", "kind", "after_md_seq", "recv_mono_ns")


class ExecArrivals:
    def __init__(self, run_dir: str | pathlib.Path) -> None:
        self.path = pathlib.Path(run_dir) / FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._fh = open(self.path, "a", newline="")  # noqa: SIM115 - open for the process lifetime
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(HEADER)
        self.rows = 0

    def note(self, records: np.ndarray, after_md_seq: int, mono_ns: int) -> None:
        for g, leg, kind in zip(records["group_id"].tolist(), records["leg"].tolist(), records["kind"].tolist()):
            self._csv.writerow((g, leg, kind, after_md_seq, mono_ns))
        self.rows += len(records)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_exec_arrivals(run_dir: str | pathlib.Path) -> dict[tuple[int, int, int], int]:
    """{(group_id, leg, kind): after_md_seq} of the first arrival of each; {} without a log."""
    path = pathlib.Path(run_dir) / FILE
    out: dict[tuple[int, int, int], int] = {}
    if not path.is_file():
        return out
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                key = (int(row["group_id"]), int(row["leg"]), int(row["kind"]))
                out.setdefault(key, int(row["after_md_seq"]))
            except (KeyError, TypeError, ValueError):
                continue                   # a line cut short by a crash
    return out
