"""Does a replay reproduce a recorded session? Decisions must match exactly; fills may not.

    c = compare_with_session(store, "r20260101-...", replay_result)
    c["decisions_identical"], c["fills_matched"], c["differences"]   # readable reasons

Candidates are matched on (event receive time, triangle, occurrence) and compared on decision
and edge.
Fills are matched per (group, leg) on filled quantity and average price. A fill that differs is
explained from what both sides know: the order's latency in the session (sent - cause event, from
the executions) against the replay's latency model, and whether the leg filled at all.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from ctrader.core.records import Decision, ExecKind, RefusalReason
from ctrader.execution.match_points import RecordedGate, RecordedMatch, read_gate_points, read_match_points

MAX_DIFFERENCES = 50


def _decision(d: int) -> str:
    try:
        return Decision(int(d)).name
    except ValueError:
        return str(d)


def _keyed(rows: np.ndarray) -> dict[tuple[int, int, int], np.void]:
    """Rows by (event receive time, triangle, occurrence). The occurrence tells apart the rows of
    different md records with one receive time: the frames of one socket read share their stamp,
    so one triangle can be a candidate of two events with the same time (both sides list them in
    the order of their events)."""
    out, seen = {}, defaultdict(int)
    for r in rows:
        k = (int(r["event_recv_ts_ns"]), int(r["triangle_id"]))
        out[(*k, seen[k])] = r
        seen[k] += 1
    return out


def compare_candidates(recorded: np.ndarray, replayed: np.ndarray) -> tuple[int, list[str]]:
    rec, rep = _keyed(recorded), _keyed(replayed)
    matched, diffs = 0, []
    for k in sorted(set(rec) | set(rep)):
        a, b = rec.get(k), rep.get(k)
        if a is None or b is None:
            diffs.append(f"candidate t={k[0]} triangle {k[1]}: only in the "
                         f"{'replay' if a is None else 'session'}")
        elif int(a["decision"]) != int(b["decision"]):
            why = ""
            if {int(a["decision"]), int(b["decision"])} == {int(Decision.TAKEN), int(Decision.SKIP_RISK)}:
                why = ("; groups in flight / rate window: the strategies learned of earlier executions at "
                       "different times (replay with session timing and the session's "
                       "strategy.exec_arrivals.csv to deliver them where the session did)")
            diffs.append(f"candidate t={k[0]} triangle {k[1]}: session {_decision(a['decision'])}, "
                         f"replay {_decision(b['decision'])} (edge {a['edge'] * 1e4:.3f} vs {b['edge'] * 1e4:.3f} bps)"
                         + why)
        elif not np.isclose(a["edge"], b["edge"], rtol=0, atol=1e-12):
            diffs.append(f"candidate t={k[0]} triangle {k[1]}: edge {a['edge']:.9g} vs {b['edge']:.9g}")
        else:
            matched += 1
    return matched, diffs


def _session_fills(execs: np.ndarray) -> dict[tuple[int, int], dict]:
    out: dict[tuple[int, int], dict] = defaultdict(lambda: {"qty": 0.0, "quote": 0.0, "latency_ns": None})
    for r in execs:
        k = (int(r["group_id"]), int(r["leg"]))
        e = out[k]
        if int(r["kind"]) in (ExecKind.FILL, ExecKind.PARTIAL_FILL):
            e["qty"] += float(r["last_qty"])
            e["quote"] += float(r["last_qty"]) * float(r["last_px"])
        if r["sent_mono_ns"] and r["cause_recv_mono_ns"] and e["latency_ns"] is None:
            e["latency_ns"] = int(r["sent_mono_ns"]) - int(r["cause_recv_mono_ns"])
    return out


def _refusals(execs: np.ndarray | None) -> dict[tuple[int, int], str]:
    """(group, leg) -> the risk gate's reason, for the orders it refused."""
    if execs is None:
        return {}
    out = {}
    for r in execs[execs["kind"] == ExecKind.REFUSED]:
        try:
            reason = RefusalReason(int(r["reject_code"])).name
        except ValueError:
            reason = str(int(r["reject_code"]))
        out[(int(r["group_id"]), int(r["leg"]))] = reason
    return out


def compare_fills(recorded_execs: np.ndarray, fills: np.ndarray,
                  replay_execs: np.ndarray | None = None) -> tuple[int, int, list[str]]:
    """``replay_execs``: the replay's exec records, to tell an order its gate refused from one
    that found no liquidity."""
    ses = _session_fills(recorded_execs)
    refused_session, refused_replay = _refusals(recorded_execs), _refusals(replay_execs)
    rep: dict[tuple[int, int], dict] = defaultdict(lambda: {"qty": 0.0, "quote": 0.0, "latency_ns": 0})
    for f in fills:
        e = rep[(int(f["group_id"]), int(f["leg"]))]
        e["qty"] += float(f["qty"])
        e["quote"] += float(f["qty"]) * float(f["px"])
        e["latency_ns"] = int(f["latency_ns"])
    ses = {k: v for k, v in ses.items() if v["qty"] > 0}
    matched, diffs = 0, []
    for k in sorted(set(ses) | set(rep)):
        a, b = ses.get(k), rep.get(k)
        where = f"group {k[0]} leg {k[1]}"
        if a is None:
            why = (f"the session's risk gate refused it ({refused_session[k]})" if k in refused_session else
                   "its book at match time had moved")
            diffs.append(f"fill {where}: only in the replay ({b['qty']:.8g}); the session's order did not fill ({why})")
            continue
        if b is None and k[1] >= 3:
            diffs.append(f"fill {where}: an unwind of a broken triangle in the session ({a['qty']:.8g}) that the "
                         f"replay's executor did not send (its legs filled differently)")
            continue
        if b is None and k in refused_replay:
            diffs.append(f"fill {where}: only in the session ({a['qty']:.8g}); the replay's risk gate refused it "
                         f"({refused_replay[k]})")
            continue
        if b is None:
            lat = "" if a["latency_ns"] is None else f" session order latency {a['latency_ns'] / 1e6:.3f} ms"
            diffs.append(f"fill {where}: only in the session ({a['qty']:.8g}); the replay matched a later book"
                         f" state that no longer had the liquidity{lat}")
            continue
        pa, pb = a["quote"] / a["qty"], b["quote"] / b["qty"]
        if abs(a["qty"] - b["qty"]) <= 1e-9 * max(1.0, a["qty"]) and abs(pa - pb) <= 1e-9 * pa:
            matched += 1
            continue
        lat = "" if a["latency_ns"] is None else (f"; latency session {a['latency_ns'] / 1e6:.3f} ms vs replay "
                                                  f"{b['latency_ns'] / 1e6:.3f} ms")
        diffs.append(f"fill {where}: qty {a['qty']:.8g} @ {pa:.8g} in the session, {b['qty']:.8g} @ {pb:.8g} in "
                     f"the replay: matched against different book states{lat}")
    return matched, len(ses), diffs


def compare_with_session(store, run_id: str, result) -> dict:
    recorded = store.read_candidates(run_id)
    matched, cdiffs = compare_candidates(recorded, result.candidates)
    execs = store.read_executions(run_id)
    fmatched, fn, fdiffs = compare_fills(execs, result.fills, result.execs)
    identical = not cdiffs and len(recorded) == len(result.candidates)
    return {"run_id": run_id, "recorded_candidates": len(recorded),
            "replayed_candidates": len(result.candidates), "candidates_matched": matched,
            "decisions_identical": identical, "recorded_fills": fn, "fills_matched": fmatched,
            "differences": (cdiffs + fdiffs)[:MAX_DIFFERENCES], "n_differences": len(cdiffs) + len(fdiffs)}


def session_alignment(cfg, store, run_id: str, symbols: list[str]) -> dict:
    """Where the session's strategy started and how it numbered its groups, so a replay of the
    session's market data decides from the same first event with the same group ids.

    The strategy attaches to the md ring after the feed started; it reports how many md records it
    processed (``strategy.stats.json``: ``first_md_seq`` when available, else ``events``), and the
    replay starts at that record. Its first group id is the smallest one it journaled.
    """
    import json as _json

    from ctrader.config.loader import expand_path
    from ctrader.store.store import to_ns

    info = store.run_info(run_id)
    if info is None:
        raise KeyError(f"no run {run_id} in the store")
    start_ns = to_ns(info["started"])
    end_ns = to_ns(info["ended"]) + 1 if info["ended"] else None
    note = "replay starts at the session's start (no strategy stats)"
    stats_path = expand_path(cfg, cfg.run.data_dir) / "runs" / run_id / "strategy.stats.json"
    names = ", ".join("'" + s.replace("'", "") + "'" for s in symbols)
    union = (f"SELECT recv_ts, run_id, seq FROM {store.db}.md_book WHERE symbol IN ({names}) AND run_id = '{run_id}' "
             f"UNION ALL SELECT recv_ts, run_id, seq FROM {store.db}.md_trade WHERE symbol IN ({names}) "
             f"AND run_id = '{run_id}'")
    if stats_path.is_file():
        stats = _json.loads(stats_path.read_text())
        row = None
        if stats.get("first_md_seq"):
            row = store.client.query(f"SELECT toUnixTimestamp64Nano(recv_ts) FROM ({union}) "
                                     f"WHERE seq >= {int(stats['first_md_seq'])} ORDER BY recv_ts, seq LIMIT 1").result_rows
            note = f"replay starts at the session strategy's first md record (seq {stats['first_md_seq']})"
        elif stats.get("events"):
            total = store.client.query(f"SELECT count() FROM ({union})").result_rows[0][0]
            skip = max(0, int(total) - int(stats["events"]))
            row = store.client.query(f"SELECT toUnixTimestamp64Nano(recv_ts) FROM ({union}) "
                                     f"ORDER BY recv_ts, run_id, seq LIMIT 1 OFFSET {skip}").result_rows
            note = (f"replay starts where the session's strategy started, inferred from its event count "
                    f"({stats['events']} of {total} recorded md records)")
        if row:
            start_ns = int(row[0][0])
        if end_ns is None and stats.get("written_at"):
            end_ns = int(stats["written_at"] * 1e9) + 1
    cands = store.read_candidates(run_id)
    taken = cands["group_id"][cands["group_id"] > 0]
    first_group = int(taken.min()) if len(taken) else 1
    return {"start_ns": start_ns, "end_ns": end_ns, "first_group": first_group, "note": note}


class SessionTiming:
    """The live timing of a recorded session's orders, replayed per order instead of sampled:
    when each leg was sent after its cause event (strategy + executor time, from the executions'
    ``sent_mono_ns - cause_recv_mono_ns``) and when each execution reached the strategy (its
    ``recv_ts``). With it, replay matches each order when the session's paper model did and
    tells the strategy about it when the session's strategy learned it, so decisions that depend
    on in-flight groups (SKIP_RISK) come out the same; and when the session's risk gate looked at
    each order (``gated_at``) and its executor sent it (``sent_at``), so the replay's executor
    charges its rate budget at the same instants and sends unwinds when the session did.

        timing = SessionTiming.from_store(store, run_id, paper_latency_ns)
        ReplayOptions(session_timing=timing)
    """

    def __init__(self, send_ns: dict, report_ts: dict, paper_latency_ns: int, sent: dict | None = None,
                 gated: dict | None = None) -> None:
        self.send_ns = send_ns              # (group, leg) -> ns from cause event to send
        self.sent = sent or {}              # (group, leg) -> when the session's executor sent it (mono ns)
        self.gated = gated or {}            # (group, leg) -> when the session's risk gate looked at it
        self.report_ts = report_ts          # (group, leg, kind) -> wall ns the execution was received
        # (client order id, kind) -> the same per order: a re-priced leg is several orders
        self.report_ts_by_order: dict[tuple[str, int], int] = {}
        self.paper_latency_ns = paper_latency_ns

    @classmethod
    def from_store(cls, store, run_id: str, paper_latency_ns: int, run_dir=None) -> SessionTiming:
        """``run_dir``: the session's run directory; when it holds the strategy's exec arrival log
        (``ctrader.strategy.exec_arrivals``), each execution is delivered right after the md
        record the session's strategy had applied when it learned of it (exact), instead of at
        the execution's receive time (the executor's clock, not the strategy's)."""
        execs = store.read_executions(run_id)
        send, report, sent, gated, by_order = {}, {}, {}, {}, {}
        for r in execs:
            k = (int(r["group_id"]), int(r["leg"]))
            by_order.setdefault((r["client_order_id"].rstrip(b"\0").decode(), int(r["kind"])), int(r["recv_ts_ns"]))
            if r["sent_mono_ns"] and r["cause_recv_mono_ns"] and k not in send:
                send[k] = max(0, int(r["sent_mono_ns"]) - int(r["cause_recv_mono_ns"]))
            if r["sent_mono_ns"]:
                sent.setdefault(k, int(r["sent_mono_ns"]))
            if r["gated_mono_ns"]:
                gated.setdefault(k, int(r["gated_mono_ns"]))
            report.setdefault(k + (int(r["kind"]),), int(r["recv_ts_ns"]))
        timing = cls(send, report, paper_latency_ns, sent, gated)
        timing.report_ts_by_order = by_order
        if run_dir is not None:
            timing.exact_arrivals = timing.use_arrivals(store, run_id, run_dir)
            timing.match_points = read_match_points(run_dir)
            timing.gate_points = read_gate_points(run_dir)
        return timing

    exact_arrivals = 0
    match_points: dict[tuple[int, int], list[RecordedMatch]] = {}    # noqa: RUF012 - replaced, never mutated
    gate_points: dict[tuple[int, int], RecordedGate] = {}            # noqa: RUF012 - replaced, never mutated

    def gate_point(self, group: int, leg: int) -> tuple[int, int] | None:
        """The md record, (recv_mono_ns, seq), the session's executor had applied last when its
        gate judged this new intent (``execution.match_points``); None: not logged."""
        gate = self.gate_points.get((group, leg))
        return None if gate is None else gate.point

    def gate_schedule(self) -> GateSchedule | None:
        return GateSchedule(self.gate_points) if self.gate_points else None

    def match_point(self, group: int, leg: int, nth: int) -> RecordedMatch | None:
        """Where the ``nth`` order of this group and leg reached the session's paper venue (the
        md record its executor had applied last, and when: ``execution.match_points``); None:
        not logged (an older session, or the replay placed an order the session did not)."""
        points = self.match_points.get((group, leg))
        return points[nth] if points is not None and nth < len(points) else None

    def use_arrivals(self, store, run_id: str, run_dir) -> int:
        """Replace report times by the receive time of the md record after which the session's
        strategy saw each execution; returns how many were replaced."""
        from ctrader.strategy.exec_arrivals import read_exec_arrivals, read_exec_arrivals_by_order

        arrivals = read_exec_arrivals(run_dir)
        by_order = read_exec_arrivals_by_order(run_dir)
        seqs = sorted(set(arrivals.values()) | set(by_order.values()))
        if not seqs:
            return 0
        ts_of: dict[int, int] = {}
        for lo in range(0, len(seqs), 5000):
            part = ", ".join(str(q) for q in seqs[lo:lo + 5000])
            for table in ("md_book", "md_trade"):
                rows = store.client.query(f"SELECT seq, toUnixTimestamp64Nano(recv_ts) FROM {store.db}.{table} "
                                          f"WHERE run_id = '{run_id}' AND seq IN ({part})").result_rows
                ts_of.update({int(q): int(t) for q, t in rows})
        n = 0
        for key, seq in arrivals.items():
            if seq in ts_of:
                self.report_ts[key] = ts_of[seq]
                n += 1
        for order_key, seq in by_order.items():
            if seq in ts_of:
                self.report_ts_by_order[order_key] = ts_of[seq]
        return n

    def order_latency(self, group: int, leg: int) -> int | None:
        d = self.send_ns.get((group, leg))
        return None if d is None else d + self.paper_latency_ns

    def gated_at(self, group: int, leg: int) -> int | None:
        """When the session's risk gate looked at this order (and charged its rate budget);
        the send time for sessions recorded before the gate time was (it comes a few µs later)."""
        at = self.gated.get((group, leg))
        return at if at is not None else self.sent.get((group, leg))

    def sent_at(self, group: int, leg: int) -> int | None:
        """When the session's executor sent this order (its clock: the replay's market time);
        None for an order it never sent (refused)."""
        return self.sent.get((group, leg))

    def report_at(self, group: int, leg: int, kind: int, client_order_id: str = "") -> int | None:
        """When the session's strategy learned of this execution: by its order when known (each
        order of a re-priced leg has its own reports), else by its group and leg."""
        at = self.report_ts_by_order.get((client_order_id, kind)) if client_order_id else None
        return at if at is not None else self.report_ts.get((group, leg, kind))


class GateSchedule:
    """A recorded session's gate points in group order, as a bound on its executor's reading.

    The session's executor read its md ring in order, so until its gate judged group ``g`` it
    had applied no md record after ``g``'s gate point. The replay's executor applies none either
    (``cap``) until the replay has sent ``g``'s intents (``passed``): a group the session judged
    on books a lagging executor had not brought up to date, even the session's first, is judged
    on the same books. Once the strategy has read past the instant the session judged ``g``
    without asking for it, the replay decided otherwise and the bound goes with it.

        gates = timing.gate_schedule()
        gates.cap(strategy_mono_ns)      # (recv_mono_ns, seq) or None
        gates.passed(group_id)
    """

    def __init__(self, gate_points: dict[tuple[int, int], RecordedGate]) -> None:
        by_group: dict[int, tuple[tuple[int, int], int]] = {}
        for (group, _leg), gate in gate_points.items():
            point, at = by_group.get(group, (gate.point, gate.gated_mono_ns))
            by_group[group] = (min(point, gate.point), min(at, gate.gated_mono_ns))
        self._groups = sorted(by_group.items())       # [(group, (first point, first gate time))]
        self._next = 0
        self._passed = 0

    def passed(self, group: int) -> None:
        """The replay has sent the intents of every group up to ``group``."""
        self._passed = max(self._passed, group)

    def cap(self, strategy_mono_ns: int) -> tuple[int, int] | None:
        """The last md record the executor may apply before the next group's gate (None: no
        group left to wait for)."""
        groups = self._groups
        while self._next < len(groups) and (groups[self._next][0] <= self._passed
                                            or groups[self._next][1][1] < strategy_mono_ns):
            self._next += 1
        return groups[self._next][1][0] if self._next < len(groups) else None
