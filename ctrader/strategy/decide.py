"""The engine's decision rules in numba: thresholds, in-flight and cooldown per key, the group
budget, group ids, and the journal/intent records of one market event.

They run inside the strategy's fused scan kernel (``TriangularArbitrage.scan_decide``), so a
market event is scanned, decided and written as records with no return to Python, and Python
is entered only when there is something to do there: intents to send, a model to call, a full
journal buffer. ``StrategyEngine`` owns a ``DecisionState`` and passes ``state.arrays`` along::

    dec = DecisionState(cfg.strategy, n_keys=n_triangles, first_group=1, strategy_id=1, n_legs=3)
    n_open = pre_decide(m, verdict, key, edge, now, *dec.arrays, decision, journal)   # phase 1
    # ... optional: model scores for the rows still open (decision == 0) ...
    fired = finish_decide(m, key, pnl, score, has_score, now, *dec.arrays, decision, group_ids, journal)

Phase 1 keeps the model from scoring what could not be traded anyway: the strategy's own
verdict, ``edge >= min_edge`` (SKIP_EDGE), the key neither in flight nor in its cooldown
(SKIP_RISK), room in the group budget (in flight < ``max_groups_in_flight``, fires in the last
10 s of event time < ``max_groups_per_10s``). Phase 2: score >= ``min_score`` (SKIP_SCORE),
then the best expected PnL first (ties: row order), at most ``max_groups_per_event`` groups.

The SKIP_RISK flood: while a key's group is in flight, through its cooldown, or while the group
budget is used up, every re-evaluation would journal another SKIP_RISK row. Only the first
SKIP_RISK of a run of them is journaled (``journal[j] = 0`` for the rest, counted in
``S_UNJOURNALED``); the run ends when the key gets any other decision (a fire included) or its
edge disappears (the strategy's fused scan clears ``skip_noted[key]``; strategies without one
end runs on decisions only).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ctrader.core.atomics import monotonic_ns
from ctrader.core.records import Decision, ExecKind

TAKEN = int(Decision.TAKEN)
SKIP_EDGE = int(Decision.SKIP_EDGE)
SKIP_SCORE = int(Decision.SKIP_SCORE)
SKIP_RISK = int(Decision.SKIP_RISK)
FILL = int(ExecKind.FILL)
CANCELED = int(ExecKind.CANCELED)
REJECTED = int(ExecKind.REJECTED)
REFUSED = int(ExecKind.REFUSED)
NEVER = -(1 << 62)
WINDOW_NS = 10_000_000_000
LATENCY_WINDOW = 4096

# float params
FP_MIN_EDGE = 0
FP_MIN_SCORE = 1
FP_COUNT = 2
# int params
IP_COOLDOWN_NS = 0
IP_TIMEOUT_NS = 1
IP_MAX_PER_EVENT = 2
IP_MAX_IN_FLIGHT = 3
IP_MAX_PER_WINDOW = 4
IP_WINDOW_NS = 5
IP_STRATEGY_ID = 6
IP_N_LEGS = 7
IP_TIF = 8
IP_ORDER_TYPE = 9
IP_COUNT = 10
# state / counters
S_NEXT_GROUP = 0
S_N_IN_FLIGHT = 1
S_FIRE_HEAD = 2
S_FIRE_N = 3
S_TIMED_OUT = 4
S_TAKEN = 5
S_CANDIDATES = 6
S_UNJOURNALED = 7     # SKIP_RISK rows not journaled (the flood), still counted in decisions
S_LAT_N = 8           # decision latency samples written (ring of LATENCY_WINDOW)
S_T2I_N = 9           # tick-to-intent samples written
S_GROUPS_DONE = 10
S_T0 = 11             # clock when the current event's first candidate was evaluated
S_COUNT = 12
# columns of the in-flight group table
G_ID = 0
G_KEY = 1
G_STARTED = 2
G_LEGS_DONE = 3
G_COLS = 4


class DecisionState:
    """Every array the decision kernels read and write; ``arrays`` is their argument tuple."""

    def __init__(self, sc, n_keys: int, first_group: int, strategy_id: int, n_legs: int, tif: int,
                 order_type: int) -> None:
        self.fparams = np.array([sc.min_edge_bps * 1e-4, sc.min_score], dtype=np.float64)
        ip = np.zeros(IP_COUNT, dtype=np.int64)
        ip[IP_COOLDOWN_NS] = int(sc.cooldown_ms * 1e6)
        ip[IP_TIMEOUT_NS] = int(sc.inflight_timeout_ms * 1e6)
        ip[IP_MAX_PER_EVENT] = sc.max_groups_per_event
        ip[IP_MAX_IN_FLIGHT] = sc.max_groups_in_flight
        ip[IP_MAX_PER_WINDOW] = sc.max_groups_per_10s
        ip[IP_WINDOW_NS] = WINDOW_NS
        ip[IP_STRATEGY_ID] = strategy_id
        ip[IP_N_LEGS] = n_legs
        ip[IP_TIF] = tif
        ip[IP_ORDER_TYPE] = order_type
        self.iparams = ip
        self.state = np.zeros(S_COUNT, dtype=np.int64)
        self.state[S_NEXT_GROUP] = first_group
        self.busy = np.zeros(max(1, n_keys), dtype=np.int64)           # key -> group id in flight (0: free)
        self.last_fired = np.full(max(1, n_keys), NEVER, dtype=np.int64)
        self.skip_noted = np.zeros(max(1, n_keys), dtype=np.uint8)     # a SKIP_RISK journaled this period
        self.groups = np.zeros((max(1, sc.max_groups_in_flight), G_COLS), dtype=np.int64)
        self.fires = np.zeros(max(1, sc.max_groups_per_10s), dtype=np.int64)
        self.decisions = np.zeros(max(Decision) + 1, dtype=np.int64)
        self.lat = np.zeros(LATENCY_WINDOW, dtype=np.int64)
        self.t2i = np.zeros(LATENCY_WINDOW, dtype=np.int64)
        self._pack()

    def _pack(self) -> None:
        self.arrays = (self.fparams, self.iparams, self.state, self.busy, self.last_fired, self.skip_noted,
                       self.groups, self.fires, self.decisions, self.lat, self.t2i)

    def ensure_keys(self, n_keys: int) -> None:
        """Room for keys 0..n_keys-1 (strategies whose keys are not known up front)."""
        if n_keys <= len(self.busy):
            return
        extra = n_keys - len(self.busy)
        self.busy = np.concatenate([self.busy, np.zeros(extra, np.int64)])
        self.last_fired = np.concatenate([self.last_fired, np.full(extra, NEVER, np.int64)])
        self.skip_noted = np.concatenate([self.skip_noted, np.zeros(extra, np.uint8)])
        self._pack()

    def in_flight(self) -> dict[int, tuple[int, int, int]]:
        """group id -> (key, started_ns, legs done bits)."""
        n = int(self.state[S_N_IN_FLIGHT])
        return {int(g[G_ID]): (int(g[G_KEY]), int(g[G_STARTED]), int(g[G_LEGS_DONE])) for g in self.groups[:n]}


@njit(cache=True)
def release_row(g, st, busy, groups):
    """Forget in-flight group row ``g`` (the last row moves into its place)."""
    key = groups[g, G_KEY]
    if busy[key] == groups[g, G_ID]:
        busy[key] = 0
    last = st[S_N_IN_FLIGHT] - 1
    for c in range(G_COLS):
        groups[g, c] = groups[last, c]
    st[S_N_IN_FLIGHT] = last


@njit(cache=True)
def expire(now, ip, st, busy, groups):
    """Release groups whose legs went unreported for longer than the in-flight timeout."""
    g = 0
    while g < st[S_N_IN_FLIGHT]:
        if now - groups[g, G_STARTED] > ip[IP_TIMEOUT_NS]:
            release_row(g, st, busy, groups)
            st[S_TIMED_OUT] += 1
        else:
            g += 1


@njit(cache=True)
def on_exec_leg(gid, leg, n_legs, st, busy, groups):
    """A leg of group ``gid`` reported done; returns True when that completed the group."""
    for g in range(st[S_N_IN_FLIGHT]):
        if groups[g, G_ID] == gid:
            groups[g, G_LEGS_DONE] |= 1 << leg
            if groups[g, G_LEGS_DONE] == (1 << n_legs) - 1:
                release_row(g, st, busy, groups)
                st[S_GROUPS_DONE] += 1
                return True
            return False
    return False


@njit(cache=True)
def apply_execs(recs, n, n_legs, st, busy, groups):
    """Exec records ``recs[:n]``: terminal reports (filled, canceled/expired, rejected, refused)
    of our own legs mark them done; a group whose legs are all done frees its key. The
    executor's own orders of a group (unwinds) carry legs >= n_legs: not ours."""
    for i in range(n):
        kind = recs[i].kind
        if kind != FILL and kind != CANCELED and kind != REJECTED and kind != REFUSED:
            continue
        leg = recs[i].leg
        if leg >= n_legs:
            continue
        on_exec_leg(np.int64(recs[i].group_id), leg, n_legs, st, busy, groups)


@njit(cache=True)
def budget_allows(now, ip, st, fires):
    """Room for one more group: in flight, and started within the window (event time)."""
    cap = fires.shape[0]
    while st[S_FIRE_N] > 0 and now - fires[st[S_FIRE_HEAD]] >= ip[IP_WINDOW_NS]:
        st[S_FIRE_HEAD] = (st[S_FIRE_HEAD] + 1) % cap
        st[S_FIRE_N] -= 1
    return st[S_N_IN_FLIGHT] < ip[IP_MAX_IN_FLIGHT] and st[S_FIRE_N] < ip[IP_MAX_PER_WINDOW]


@njit(cache=True)
def fire(key, now, st, busy, last_fired, skip_noted, groups, fires):
    gid = st[S_NEXT_GROUP]
    st[S_NEXT_GROUP] += 1
    cap = fires.shape[0]
    fires[(st[S_FIRE_HEAD] + st[S_FIRE_N]) % cap] = now
    st[S_FIRE_N] += 1
    g = st[S_N_IN_FLIGHT]
    groups[g, G_ID] = gid
    groups[g, G_KEY] = key
    groups[g, G_STARTED] = now
    groups[g, G_LEGS_DONE] = 0
    st[S_N_IN_FLIGHT] = g + 1
    busy[key] = gid
    last_fired[key] = now
    return gid


@njit(cache=True)
def pre_decide(m, verdict, key, edge, now, fp, ip, st, busy, last_fired, skip_noted, groups, fires,
               decisions, lat, t2i, decision, journal):
    """Phase 1 (see the module doc); returns how many rows are still open (decision 0)."""
    expire(now, ip, st, busy, groups)
    n_open = 0
    for j in range(m):
        d = verdict[j]
        journal[j] = 1
        if d == 0:
            k = key[j]
            if edge[j] < fp[FP_MIN_EDGE]:
                d = SKIP_EDGE
            elif busy[k] != 0 or now - last_fired[k] <= ip[IP_COOLDOWN_NS]:
                d = SKIP_RISK
            else:
                n_open += 1
        decision[j] = d
    if n_open > 0 and not budget_allows(now, ip, st, fires):
        for j in range(m):
            if decision[j] == 0:
                decision[j] = SKIP_RISK            # no room for a group: do not even score
        n_open = 0
    return n_open


@njit(cache=True)
def finish_decide(m, key, pnl, score, has_score, now, fp, ip, st, busy, last_fired, skip_noted, groups, fires,
                  decisions, lat, t2i, decision, group_ids, journal):
    """Phase 2 (see the module doc); returns the number of groups fired (decision TAKEN)."""
    if has_score:
        for j in range(m):
            if decision[j] == 0 and not (score[j] >= fp[FP_MIN_SCORE]):
                decision[j] = SKIP_SCORE
    fired = 0
    for j in range(m):
        group_ids[j] = 0
    while True:
        best = -1
        for j in range(m):                     # the best expected PnL first, row order on ties
            if decision[j] == 0 and (best < 0 or pnl[j] > pnl[best]):
                best = j
        if best < 0:
            break
        if fired >= ip[IP_MAX_PER_EVENT] or not budget_allows(now, ip, st, fires):
            decision[best] = SKIP_RISK
            continue
        decision[best] = TAKEN
        group_ids[best] = fire(key[best], now, st, busy, last_fired, skip_noted, groups, fires)
        fired += 1
    for j in range(m):
        d = decision[j]
        decisions[d] += 1
        k = key[j]
        if d != SKIP_RISK:
            skip_noted[k] = 0
        elif skip_noted[k]:
            journal[j] = 0                     # the flood: counted, not journaled
            st[S_UNJOURNALED] += 1
        else:
            skip_noted[k] = 1
    st[S_CANDIDATES] += m
    st[S_TAKEN] += fired
    return fired


@njit(cache=True)
def note_latency(ring, st, slot, value):
    ring[st[slot] % ring.shape[0]] = value
    st[slot] += 1


@njit(cache=True)
def clock_ns():
    return monotonic_ns()


# --- the model call's input and output, without numpy temporaries ------------------------------
# ``decision == 0`` rows (still open after the rules) are the ones the model scores. Gathering
# them with numpy (flatnonzero, fancy indexing, a float32 copy) cost 7-13 µs in live sessions,
# more than onnxruntime's own run (~8 µs); these two kernels do it in well under a microsecond.

@njit(cache=True, nogil=True)
def gather_open(decision, features, n_features, x, rows):
    """Copy the first ``n_features`` features of every open row into ``x`` (float32, C order) and
    their row numbers into ``rows``; returns how many."""
    k = 0
    for j in range(decision.shape[0]):
        if decision[j] == 0:
            for f in range(n_features):
                x[k, f] = features[j, f]
            rows[k] = j
            k += 1
    return k


@njit(cache=True, nogil=True)
def scatter_scores(score, rows, probs, k):
    """``score[rows[i]] = P(class 1)`` for the ``k`` scored rows (``probs``: (k, 2))."""
    for i in range(k):
        score[rows[i]] = probs[i, 1]


@njit(cache=True, nogil=True)
def format_client_ids(intents, raw, n, itemsize, offset, width, prefix):
    """Write ``{prefix}{group_id:x}L{leg}`` (ASCII, zero-padded to ``width``) into the
    ``client_order_id`` bytes of ``intents[:n]``; ``raw`` is ``intents.view(np.uint8)``, the
    field at byte ``offset`` of each ``itemsize``-byte record. The same text as
    ``StrategyEngine.client_order_id`` (three f-strings cost ~11 µs in live sessions)."""
    digits = np.empty(20, np.uint8)
    for i in range(n):
        at = i * itemsize + offset
        p = 0
        for c in range(prefix.shape[0]):
            raw[at + p] = prefix[c]
            p += 1
        g = np.uint64(intents[i].group_id)
        k = 0
        while True:
            d = g & np.uint64(15)
            digits[k] = (48 + d) if d < 10 else (87 + d)      # 0-9, a-f
            k += 1
            g = g >> np.uint64(4)
            if g == 0:
                break
        for j in range(k - 1, -1, -1):
            raw[at + p] = digits[j]
            p += 1
        raw[at + p] = 76                                       # "L"
        p += 1
        leg = np.int64(intents[i].leg)
        k = 0
        while True:
            digits[k] = 48 + leg % 10
            k += 1
            leg //= 10
            if leg == 0:
                break
        for j in range(k - 1, -1, -1):
            raw[at + p] = digits[j]
            p += 1
        while p < width:
            raw[at + p] = 0
            p += 1
