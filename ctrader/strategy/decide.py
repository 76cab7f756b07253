"""The engine's decision rules in numba: thresholds, in-flight and cooldown per key, the group
budget, group ids, and the journal/intent records of one market event.

They run inside the strategy's fused scan kernel (``TriangularArbitrage.scan_decide``), so a
market event is scanned, decided and written as records with no return to Python, and Python
is entered only when there is something to do there: intents to send, a model to call, a full
journal buffer. ``StrategyEngine`` owns a ``DecisionState`` (``ctrader.strategy.state``: the
parameters and state as structured records, declared there once) and hands its ``arrays`` to
the strategy's kernel, which names them and calls the two phases::

    d = DecisionArrays(*dec)                    # in the kernel: dec is the plain tuple
    n_open = pre_decide(m, verdict, key, edge, now, d, decision, journal)   # phase 1
    # ... optional: model scores for the rows still open (decision == 0) ...
    fired = finish_decide(m, key, pnl, score, has_score, now, d, decision, group_ids, journal)

Phase 1 keeps the model from scoring what could not be traded anyway: the strategy's own
verdict, ``edge >= min_edge`` (SKIP_EDGE), the key neither in flight nor in its cooldown
(SKIP_RISK), room in the group budget (in flight < ``max_groups_in_flight``, fires in the last
10 s of event time < ``max_groups_per_10s``). Phase 2: score >= ``min_score`` (SKIP_SCORE),
then the best expected PnL first (ties: row order), at most ``max_groups_per_event`` groups.

The SKIP_RISK flood: while a key's group is in flight, through its cooldown, or while the group
budget is used up, every re-evaluation would journal another SKIP_RISK row. Only the first
SKIP_RISK of a run of them is journaled (``journal[j] = 0`` for the rest, counted in
``state.unjournaled``); the run ends when the key gets any other decision (a fire included) or
its edge disappears (the strategy's fused scan clears ``keys[key].skip_noted``; strategies that
do not end runs on decisions only).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ctrader.core.atomics import monotonic_ns
from ctrader.core.records import Decision, ExecKind
from ctrader.strategy.state import DecisionArrays

TAKEN = int(Decision.TAKEN)
SKIP_EDGE = int(Decision.SKIP_EDGE)
SKIP_SCORE = int(Decision.SKIP_SCORE)
SKIP_RISK = int(Decision.SKIP_RISK)
FILL = int(ExecKind.FILL)
CANCELED = int(ExecKind.CANCELED)
REJECTED = int(ExecKind.REJECTED)
REFUSED = int(ExecKind.REFUSED)


@njit(cache=True)
def release_row(g, d):
    """Forget in-flight group row ``g`` (the last row moves into its place)."""
    st, keys, groups = d.state[0], d.keys, d.groups
    key = groups[g].key
    if keys[key].busy == groups[g].group_id:
        keys[key].busy = 0
    last = st.n_in_flight - 1
    groups[g] = groups[last]
    st.n_in_flight = last


@njit(cache=True)
def expire(now, d):
    """Release groups whose legs went unreported for longer than the in-flight timeout."""
    p, st, groups = d.params[0], d.state[0], d.groups
    g = 0
    while g < st.n_in_flight:
        if now - groups[g].started_ns > p.inflight_timeout_ns:
            release_row(g, d)
            st.timed_out += 1
        else:
            g += 1


@njit(cache=True)
def release_group(gid, dec):
    """Group ``gid`` will send no more legs (a resting lead that ended with nothing filled: its
    hedges never go out): no longer in flight, its key free. True when it was in flight. ``dec``:
    the plain tuple of ``DecisionArrays``."""
    d = DecisionArrays(*dec)
    st, groups = d.state[0], d.groups
    for g in range(st.n_in_flight):
        if groups[g].group_id == gid:
            release_row(g, d)
            st.groups_done += 1
            return True
    return False


@njit(cache=True)
def on_exec_leg(gid, leg, d):
    """A leg of group ``gid`` reported done; returns True when that completed the group."""
    st, groups = d.state[0], d.groups
    all_legs = (1 << d.params[0].n_legs) - 1
    for g in range(st.n_in_flight):
        if groups[g].group_id == gid:
            groups[g].legs_done |= 1 << leg
            if groups[g].legs_done == all_legs:
                release_row(g, d)
                st.groups_done += 1
                return True
            return False
    return False


@njit(cache=True)
def apply_execs(recs, n, dec):
    """Exec records ``recs[:n]``: terminal reports (filled, canceled/expired, rejected, refused)
    of our own legs mark them done; a group whose legs are all done frees its key. The
    executor's own orders of a group (unwinds) carry legs >= n_legs: not ours. ``dec``: the
    plain tuple of ``DecisionArrays``."""
    d = DecisionArrays(*dec)
    n_legs = d.params[0].n_legs
    for i in range(n):
        kind = recs[i].kind
        if kind != FILL and kind != CANCELED and kind != REJECTED and kind != REFUSED:
            continue
        leg = recs[i].leg
        if leg >= n_legs:
            continue
        on_exec_leg(np.int64(recs[i].group_id), leg, d)


@njit(cache=True)
def budget_allows(now, d):
    """Room for one more group: in flight, and started within the window (event time)."""
    p, st, fires = d.params[0], d.state[0], d.fires
    cap = fires.shape[0]
    while st.fire_n > 0 and now - fires[st.fire_head] >= p.window_ns:
        st.fire_head = (st.fire_head + 1) % cap
        st.fire_n -= 1
    return st.n_in_flight < p.max_groups_in_flight and st.fire_n < p.max_groups_per_window


@njit(cache=True)
def would_refuse(key, now, d):
    """Whether any candidate on ``key`` now would be SKIP_RISK whatever its edge: the key in
    flight or in its cooldown, or no room in the group budget. Strategies that are not fused
    call it in their scan kernels so as not to propose what the engine would refuse: while a
    signal lasts and its group is in flight, each update would otherwise enter Python for a
    row (about 30 us each, ``ctrader bench --suite strategy``) that the journal does not keep."""
    expire(now, d)
    k = d.keys[key]
    return k.busy != 0 or now - k.last_fired <= d.params[0].cooldown_ns or not budget_allows(now, d)


@njit(cache=True)
def fire(key, now, d):
    """Start a group on ``key`` now: its id, in flight, in the window, the key busy."""
    st, fires = d.state[0], d.fires
    gid = st.next_group
    st.next_group += d.params[0].group_step
    fires[(st.fire_head + st.fire_n) % fires.shape[0]] = now
    st.fire_n += 1
    g = d.groups[st.n_in_flight]
    g.group_id = gid
    g.key = key
    g.started_ns = now
    g.legs_done = 0
    st.n_in_flight += 1
    k = d.keys[key]
    k.busy = gid
    k.last_fired = now
    return gid


@njit(cache=True)
def pre_decide(m, verdict, key, edge, now, d, decision, journal):
    """Phase 1 (see the module doc); returns how many rows are still open (decision 0)."""
    expire(now, d)
    p, keys = d.params[0], d.keys
    n_open = 0
    for j in range(m):
        v = verdict[j]
        journal[j] = 1
        if v == 0:
            k = keys[key[j]]
            if edge[j] < p.min_edge:
                v = SKIP_EDGE
            elif k.busy != 0 or now - k.last_fired <= p.cooldown_ns:
                v = SKIP_RISK
            else:
                n_open += 1
        decision[j] = v
    if n_open > 0 and not budget_allows(now, d):
        for j in range(m):
            if decision[j] == 0:
                decision[j] = SKIP_RISK            # no room for a group: do not even score
        n_open = 0
    return n_open


@njit(cache=True)
def finish_decide(m, key, pnl, score, has_score, now, d, decision, group_ids, journal):
    """Phase 2 (see the module doc); returns the number of groups fired (decision TAKEN)."""
    p, st, keys = d.params[0], d.state[0], d.keys
    if has_score:
        for j in range(m):
            if decision[j] == 0 and not (score[j] >= p.min_score):
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
        if fired >= p.max_groups_per_event or not budget_allows(now, d):
            decision[best] = SKIP_RISK
            continue
        decision[best] = TAKEN
        group_ids[best] = fire(key[best], now, d)
        fired += 1
    for j in range(m):
        v = decision[j]
        st.decisions[v] += 1
        k = keys[key[j]]
        if v != SKIP_RISK:
            k.skip_noted = 0
        elif k.skip_noted:
            journal[j] = 0                     # the flood: counted, not journaled
            st.unjournaled += 1
        else:
            k.skip_noted = 1
    st.candidates += m
    st.taken += fired
    return fired


@njit(cache=True)
def note_decision_latency(st, value):
    """One sample of decision latency (``st``: the DECISION_STATE record)."""
    st.lat[st.lat_n % st.lat.shape[0]] = value
    st.lat_n += 1


@njit(cache=True)
def note_tick_to_intent(st, value):
    """One sample of md receive -> intents built."""
    st.t2i[st.t2i_n % st.t2i.shape[0]] = value
    st.t2i_n += 1


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
