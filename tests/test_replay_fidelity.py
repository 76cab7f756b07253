"""compare_fills: each difference between a session's fills and its replay's says which and why."""
from __future__ import annotations

import numpy as np

from ctrader.core.records import CANDIDATE, EXEC_EVENT, Decision, ExecKind, RefusalReason
from ctrader.replay.fidelity import compare_candidates, compare_fills
from ctrader.replay.summary import FILL


def execs(rows):
    out = np.zeros(len(rows), EXEC_EVENT)
    for i, (group, leg, kind, qty, px, code) in enumerate(rows):
        out[i]["group_id"], out[i]["leg"], out[i]["kind"] = group, leg, int(kind)
        out[i]["last_qty"], out[i]["last_px"], out[i]["reject_code"] = qty, px, code
    return out


def fills(rows):
    out = np.zeros(len(rows), FILL)
    for i, (group, leg, qty, px) in enumerate(rows):
        out[i]["group_id"], out[i]["leg"], out[i]["qty"], out[i]["px"] = group, leg, qty, px
    return out


def test_a_fill_the_replay_gate_refused_and_one_the_session_gate_refused_are_told_apart():
    rate = int(RefusalReason.RATE_BUDGET)
    session = execs([(1, 0, ExecKind.FILL, 1.0, 10.0, 0), (1, 1, ExecKind.FILL, 2.0, 5.0, 0),
                     (2, 0, ExecKind.REFUSED, 0, 0, rate), (3, 0, ExecKind.FILL, 1.0, 10.0, 0)])
    replay_execs = execs([(1, 1, ExecKind.REFUSED, 0, 0, rate)])
    replay = fills([(1, 0, 1.0, 10.0), (2, 0, 1.0, 10.0), (3, 0, 1.0, 10.5)])
    matched, recorded, diffs = compare_fills(session, replay, replay_execs)
    assert (matched, recorded) == (1, 3)
    assert diffs == [
        "fill group 1 leg 1: only in the session (2); the replay's risk gate refused it (RATE_BUDGET)",
        "fill group 2 leg 0: only in the replay (1); the session's order did not fill "
        "(the session's risk gate refused it (RATE_BUDGET))",
        "fill group 3 leg 0: qty 1 @ 10 in the session, 1 @ 10.5 in the replay: matched against different book states",
    ]


def _candidates(rows: list[tuple[int, int, int, float]]) -> np.ndarray:
    out = np.zeros(len(rows), CANDIDATE)
    for r, (ts, triangle, decision, edge) in zip(out, rows):
        r["event_recv_ts_ns"], r["triangle_id"], r["decision"], r["edge"] = ts, triangle, decision, edge
    return out


def test_candidates_of_two_events_with_one_receive_time_are_each_matched():
    # two frames of one socket read share their receive stamp: triangle 7 is a candidate of both
    taken, skipped = int(Decision.TAKEN), int(Decision.SKIP_RISK)
    session = _candidates([(100, 7, taken, 0.003), (100, 7, skipped, 0.002), (100, 9, taken, 0.001)])
    assert compare_candidates(session, session.copy()) == (3, [])
    replay = _candidates([(100, 7, taken, 0.003), (100, 7, taken, 0.002), (100, 9, taken, 0.001)])
    matched, diffs = compare_candidates(session, replay)
    assert matched == 2 and len(diffs) == 1 and "session SKIP_RISK, replay TAKEN" in diffs[0]
    matched, diffs = compare_candidates(session, replay[:2])
    assert matched == 1 and len(diffs) == 2
    assert "triangle 7: session SKIP_RISK, replay TAKEN" in diffs[0]
    assert diffs[1] == "candidate t=100 triangle 9: only in the session"
