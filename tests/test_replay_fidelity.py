"""compare_fills: each difference between a session's fills and its replay's says which and why."""
from __future__ import annotations

import numpy as np

from ctrader.core.records import EXEC_EVENT, ExecKind, RefusalReason
from ctrader.replay.fidelity import compare_fills
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
