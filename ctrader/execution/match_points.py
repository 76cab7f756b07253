"""Where each paper order met the market, and where the risk gate looked at it, relative to the
md records the executor had applied.

The paper venue matches an order on the executor's books as they are when the order reaches it.
Which md records those books hold depends on how far the executor had read its md ring, and a
record received before the order's due time can still be on its way there (``poll`` matches a
due order once ``paper_quiet_match_ms`` passed with no later record; a busy loop reads late).
A replay has every record and cannot know that, so the session logs, for every order that
reached its paper venue, the md record the executor had applied last and when it got there::

    points = MatchPoints(run_dir)               # {run_dir}/executor.match_points.csv
    points.note(group_id, leg, client_order_id, after_md_seq, after_md_recv_ns, arrived_mono_ns)
    points.flush()                              # every 0.5 s and at stop
    read_match_points(run_dir)                  # {(group_id, leg): [RecordedMatch, ...]}

The risk gate judges each new intent on the executor's books too (stale or empty books, the
price band, the notional it values), and an executor that lags its md ring, or has read past the
intent's cause by the time the intent arrives, judges on books the strategy never saw. So the
session also logs, for every NEW intent the gate judged (sent or refused), the md record the
executor had applied last::

    points.note_gate(group_id, leg, after_md_seq, after_md_recv_ns, gated_mono_ns)
    read_gate_points(run_dir)                   # {(group_id, leg): RecordedGate}

Replay (``ctrader.execution.paper.ReplayVenue`` with ``ctrader.replay.fidelity.SessionTiming``)
matches each such order at that time with the books as of that record: its executor applies no
later record until the order has reached the matching. Its gate judges each intent on the books
as of the intent's gate point: later records wait, and records up to a point past the intent's
cause are applied first (``ctrader.replay.driver``), so a STALE_BOOK refusal that only a lagging
executor made is made again. A point (receive time, then the feed's seq) orders records as
replay reads them, and stays unambiguous when a restarted feed process numbers its records from
the start again. All times are CLOCK_MONOTONIC, the clock of the md
records' ``recv_mono_ns`` and of the executor.
"""
from __future__ import annotations

import pathlib
from dataclasses import dataclass

from ctrader.core.csvlog import CsvLog, read_csv_log

FILE = "executor.match_points.csv"
HEADER = ("group_id", "leg", "client_order_id", "after_md_seq", "after_md_recv_ns", "arrived_mono_ns")
GATE_FILE = "executor.gate_points.csv"
GATE_HEADER = ("group_id", "leg", "after_md_seq", "after_md_recv_ns", "gated_mono_ns")


@dataclass(frozen=True, slots=True)
class RecordedMatch:
    """Where a recorded session's order reached its paper venue: after the md record ``point``
    (recv_mono_ns, seq) its executor had applied, at ``arrived_mono_ns``."""

    point: tuple[int, int]
    arrived_mono_ns: int


class MatchPoints:
    """The two logs of one paper executor: where its orders reached the matching (``note``) and
    where its gate judged its new intents (``note_gate``)."""

    def __init__(self, run_dir: str | pathlib.Path) -> None:
        self.arrivals = CsvLog(pathlib.Path(run_dir) / FILE, HEADER)
        self.gates = CsvLog(pathlib.Path(run_dir) / GATE_FILE, GATE_HEADER)

    def note(self, group_id: int, leg: int, client_order_id: str, after_md_seq: int, after_md_recv_ns: int,
             arrived_mono_ns: int) -> None:
        self.arrivals.write((group_id, leg, client_order_id, after_md_seq, after_md_recv_ns, arrived_mono_ns))

    def note_gate(self, group_id: int, leg: int, after_md_seq: int, after_md_recv_ns: int, gated_mono_ns: int) -> None:
        self.gates.write((group_id, leg, after_md_seq, after_md_recv_ns, gated_mono_ns))

    def flush(self) -> None:
        self.arrivals.flush()
        self.gates.flush()

    def close(self) -> None:
        self.arrivals.close()
        self.gates.close()


def _parse(row: dict[str, str]) -> tuple[tuple[int, int], RecordedMatch]:
    return ((int(row["group_id"]), int(row["leg"])),
            RecordedMatch((int(row["after_md_recv_ns"]), int(row["after_md_seq"])), int(row["arrived_mono_ns"])))


def read_match_points(run_dir: str | pathlib.Path) -> dict[tuple[int, int], list[RecordedMatch]]:
    """{(group_id, leg): [RecordedMatch, ...]}: where each order of that group and leg reached
    the paper venue, in arrival order (a cancel-replace keeps the group and leg of the order it
    replaces); {} without a log (a session recorded before it was kept, or not a paper session)."""
    out: dict[tuple[int, int], list[RecordedMatch]] = {}
    for key, match in read_csv_log(pathlib.Path(run_dir) / FILE, _parse):
        out.setdefault(key, []).append(match)
    return out


@dataclass(frozen=True, slots=True)
class RecordedGate:
    """Where a recorded session's gate judged a new intent: after the md record ``point``
    (recv_mono_ns, seq) its executor had applied, at ``gated_mono_ns``."""

    point: tuple[int, int]
    gated_mono_ns: int


def _parse_gate(row: dict[str, str]) -> tuple[tuple[int, int], RecordedGate]:
    return ((int(row["group_id"]), int(row["leg"])),
            RecordedGate((int(row["after_md_recv_ns"]), int(row["after_md_seq"])), int(row["gated_mono_ns"])))


def read_gate_points(run_dir: str | pathlib.Path) -> dict[tuple[int, int], RecordedGate]:
    """{(group_id, leg): RecordedGate}: where the session's gate judged that new intent (the
    first time: an intent seen again after a restart is a duplicate, not judged); {} without a
    log."""
    out: dict[tuple[int, int], RecordedGate] = {}
    for key, point in read_csv_log(pathlib.Path(run_dir) / GATE_FILE, _parse_gate):
        out.setdefault(key, point)
    return out
