"""The race's figures out of the simulator's reports (``ctrader.sim.race``): pure functions.

Per contender and round: dislocations seen (a frame of the dislocated leg reached its socket),
answered (an order of its account attributed to the dislocation), reaction times (first order's
arrival - the dislocation's first frame to that contender), orders, fills, PnL in USDT, and the
share of the available profit it captured. Over rounds: pooled percentiles and the spread of the
per-round p50s. Head to head: who arrived first on each dislocation, by how much, and the share
of each dislocation's available profit each captured.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class ContenderRound:
    name: str
    dislocations: int
    seen: int
    answered: int
    reactions_us: list[float]
    stamps: list[str]                 # kernel | user, per answer
    orders: int
    fills: int
    pnl_usdt: float
    captured_usdt: float
    available_usdt: float

    @property
    def p50(self) -> float | None:
        return percentile(self.reactions_us, 50)


def contender_round(report: dict, name: str) -> ContenderRound:
    """``name``'s figures in one round's report (``name``: its account and its listener tag)."""
    answers = [a for a in report["answers"] if a["account"] == name]
    acct = report["accounts"].get(name, {})
    captured = acct.get("captured_usdt", {})
    return ContenderRound(
        name=name, dislocations=len(report["dislocations"]),
        seen=sum(1 for d in report["dislocations"] if name in d["frames"]), answered=len(answers),
        reactions_us=[a["reaction_ns"] / 1e3 for a in answers], stamps=[a["stamps"] for a in answers],
        orders=acct.get("orders", 0), fills=acct.get("fills", 0), pnl_usdt=acct.get("pnl_usdt", 0.0),
        captured_usdt=sum(captured.values()),
        available_usdt=sum(d["available_profit_usdt"] or 0.0 for d in report["dislocations"]))


@dataclass
class ContenderSummary:
    name: str
    rounds: list[ContenderRound] = field(default_factory=list)

    @property
    def reactions_us(self) -> list[float]:
        return [r for rnd in self.rounds for r in rnd.reactions_us]

    def pct(self, q: float) -> float | None:
        return percentile(self.reactions_us, q)

    @property
    def minimum(self) -> float | None:
        return min(self.reactions_us, default=None)

    @property
    def round_p50s(self) -> list[float | None]:
        return [r.p50 for r in self.rounds]

    def as_dict(self) -> dict:
        return {"name": self.name, "p50_us": self.pct(50), "p90_us": self.pct(90), "min_us": self.minimum,
                "round_p50_us": self.round_p50s,
                "seen": sum(r.seen for r in self.rounds), "answered": sum(r.answered for r in self.rounds),
                "dislocations": sum(r.dislocations for r in self.rounds),
                "orders": [r.orders for r in self.rounds], "fills": [r.fills for r in self.rounds],
                "pnl_usdt": [r.pnl_usdt for r in self.rounds],
                "captured_usdt": [r.captured_usdt for r in self.rounds],
                "available_usdt": [r.available_usdt for r in self.rounds],
                "kernel_stamped": sum(s == "kernel" for r in self.rounds for s in r.stamps)}


def _by_id(values: dict, dislocation_id: int) -> float:
    """A per-dislocation value: JSON made the ids strings, an in-process report keeps ints."""
    return values.get(dislocation_id, values.get(str(dislocation_id), 0.0))


def head_to_head(report: dict, a: str, b: str) -> dict:
    """Both connected at once: per dislocation who arrived first, and each one's captured share."""
    first: dict[tuple[int, str], int] = {}
    orders = report["orders"]
    for ans in report["answers"]:
        first[(ans["dislocation"], ans["account"])] = orders[ans["order"]]["arrived_ns"]
    wins = {a: 0, b: 0}
    leads_us = []                         # b's arrival - a's arrival, when both answered
    rows = []
    captured_a = report["accounts"].get(a, {}).get("captured_usdt", {})
    captured_b = report["accounts"].get(b, {}).get("captured_usdt", {})
    total_available = total_a = total_b = 0.0
    for d in report["dislocations"]:
        ta, tb = first.get((d["id"], a)), first.get((d["id"], b))
        winner = None
        if ta is not None and (tb is None or ta < tb):
            winner = a
        elif tb is not None:
            winner = b
        if winner:
            wins[winner] += 1
        if ta is not None and tb is not None:
            leads_us.append((tb - ta) / 1e3)
        available = d["available_profit_usdt"] or 0.0
        ca, cb = _by_id(captured_a, d["id"]), _by_id(captured_b, d["id"])
        total_available += available
        total_a += ca
        total_b += cb
        rows.append({"dislocation": d["id"], "symbol": d["symbol"], "first": winner, "available_usdt": available,
                     f"{a}_usdt": ca, f"{b}_usdt": cb})
    share = (lambda x: x / total_available if total_available > 0 else None)
    return {"a": a, "b": b, "dislocations": len(report["dislocations"]), "first": wins,
            "lead_p50_us": percentile(leads_us, 50),        # > 0: a arrived first by this much
            "both_answered": len(leads_us), "available_usdt": total_available,
            "captured_usdt": {a: total_a, b: total_b}, "captured_share": {a: share(total_a), b: share(total_b)},
            "per_dislocation": rows}


# ctrader's path, stage by stage: the simulator's stamps at both ends and ctrader's own journal
# stamps in between, all CLOCK_MONOTONIC on one machine.
PATH_STAGES = (
    ("frame out -> feed read it", "frame_ns", "cause_recv_mono_ns"),
    ("feed read -> intent built (feed, md ring, strategy)", "cause_recv_mono_ns", "created_mono_ns"),
    ("intent -> executor read it (intents ring)", "created_mono_ns", "seen_mono_ns"),
    ("executor: gate, journal, sign, send", "seen_mono_ns", "sent_mono_ns"),
    ("sent -> order arrived at the venue", "sent_mono_ns", "arrived_ns"),
)


def path_stages(report: dict, name: str, journal: dict[str, dict]) -> dict[str, list[float]]:
    """Per stage, the durations (us) of ``name``'s answering orders, from its journal stamps
    (``harness.read_journal``) between the simulator's frame-out and order-in stamps. An answer
    whose triggering frame was read before the dislocation's first frame went out (it answered an
    earlier frame) or that the journal does not know is left out."""
    stages: dict[str, list[float]] = {label: [] for label, _, _ in PATH_STAGES}
    frames = {d["id"]: d["frames"].get(name) for d in report["dislocations"]}
    for ans in report["answers"]:
        if ans["account"] != name:
            continue
        j, frame = journal.get(ans["client_order_id"]), frames.get(ans["dislocation"])
        if not j or not frame:
            continue
        order = report["orders"][ans["order"]]
        kernel = ans["stamps"] == "kernel"
        stamps = dict(j, frame_ns=frame["kernel_ns"] if kernel else frame["user_ns"],
                      arrived_ns=order["arrived_kernel_ns"] if kernel else order["arrived_user_ns"])
        if not all(stamps.get(k) for _, a, b in PATH_STAGES for k in (a, b)):
            continue
        if stamps["cause_recv_mono_ns"] < stamps["frame_ns"]:
            continue
        for label, a, b in PATH_STAGES:
            stages[label].append((stamps[b] - stamps[a]) / 1e3)
    return stages
