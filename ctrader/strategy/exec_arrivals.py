"""When each execution reached the strategy, relative to the market data it had seen.

A replay of a paper session decides exactly as the session did only if it tells the strategy
about each execution between the same two md records as the session's strategy learned of it
(a group in flight makes later candidates of its triangle SKIP_RISK). The strategy process
logs, for every exec record it consumes, the seq of the last md record it had applied::

    log = ExecArrivals(run_dir)                     # {run_dir}/strategy.exec_arrivals.csv
    log.note(exec_records, after_md_seq=engine.last_md_seq, mono_ns=time.monotonic_ns())
    log.flush()                                     # ~1/s and at stop
    read_exec_arrivals(run_dir)   # {(group_id, leg, kind): after_md_seq}, first arrival of each
    read_exec_arrivals_by_order(run_dir)   # {(client_order_id, kind): after_md_seq}

A leg re-priced by cancel-replace is several orders, each with its own reports: the second map
tells them apart (a log written before it was kept has no ``client_order_id`` column: {}).

Replay (``ctrader.replay.fidelity.SessionTiming``) turns ``after_md_seq`` into the receive time
of that md record and delivers the execution right after it.
"""
from __future__ import annotations

import pathlib

import numpy as np

from ctrader.core.csvlog import CsvLog, read_csv_log

FILE = "strategy.exec_arrivals.csv"
HEADER = ("group_id", "leg", "kind", "after_md_seq", "recv_mono_ns", "client_order_id")


class ExecArrivals(CsvLog):
    def __init__(self, run_dir: str | pathlib.Path) -> None:
        super().__init__(pathlib.Path(run_dir) / FILE, HEADER)

    def note(self, records: np.ndarray, after_md_seq: int, mono_ns: int) -> None:
        for g, leg, kind, coid in zip(records["group_id"].tolist(), records["leg"].tolist(),
                                      records["kind"].tolist(), records["client_order_id"].tolist()):
            self.write((g, leg, kind, after_md_seq, mono_ns, coid.rstrip(b"\0").decode()))


def _parse(row: dict[str, str]) -> tuple[tuple[int, int, int], int]:
    return (int(row["group_id"]), int(row["leg"]), int(row["kind"])), int(row["after_md_seq"])


def read_exec_arrivals(run_dir: str | pathlib.Path) -> dict[tuple[int, int, int], int]:
    """{(group_id, leg, kind): after_md_seq} of the first arrival of each; {} without a log."""
    out: dict[tuple[int, int, int], int] = {}
    for key, after_md_seq in read_csv_log(pathlib.Path(run_dir) / FILE, _parse):
        out.setdefault(key, after_md_seq)
    return out


def _parse_by_order(row: dict[str, str]) -> tuple[tuple[str, int], int]:
    coid = row["client_order_id"]
    if not coid:
        raise ValueError("no client order id")
    return (coid, int(row["kind"])), int(row["after_md_seq"])


def read_exec_arrivals_by_order(run_dir: str | pathlib.Path) -> dict[tuple[str, int], int]:
    """{(client_order_id, kind): after_md_seq} of the first arrival of each; {} without a log or
    without that column."""
    out: dict[tuple[str, int], int] = {}
    for key, after_md_seq in read_csv_log(pathlib.Path(run_dir) / FILE, _parse_by_order):
        out.setdefault(key, after_md_seq)
    return out
