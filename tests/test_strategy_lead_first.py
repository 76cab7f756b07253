"""Several strategies, the first one never waiting for the others (``ctrader.strategy.lead_first``):
the followers decide later on the same records, and each strategy decides exactly as it does with
every strategy in step (what a replay runs), executions included, whenever they arrive."""
import numpy as np
import pytest

from ctrader.benchmarks.strategy import InstantVenue
from ctrader.config import load_config
from ctrader.core.records import ORDER_INTENT, ExecKind
from ctrader.replay.history import simulated_md
from ctrader.replay.runner import make_strategy, resolve_universe
from ctrader.strategy.lead_first import LeadFirst

ALL = "triangular,cross_rate_reversion,maker_triangular"
OVERRIDES = {"model.name": "none", "strategy.min_edge_bps": "0", "sim.market.residual_bps": "25",
             "strategy.names": ALL, "strategy.cross_rate_reversion.min_observations": "50",
             "strategy.cross_rate_reversion.entry_z": "2.5"}


class Venue:
    """The strategy bench's ``InstantVenue`` answering in rounds, between the engines' calls: a
    taker order fills, a resting one fills with probability 0.3 each round, a cancel or re-price
    cancels its target if it still rests."""

    def __init__(self, seed: int) -> None:
        self.venue = InstantVenue(seed, fill_p=0.3)
        self.sent: list[np.ndarray] = []

    def send(self, intents: np.ndarray) -> None:
        if len(intents):
            self.sent.append(intents.copy())          # the engine's buffer is reused: as a ring write copies

    def answers(self) -> np.ndarray:
        intents = np.concatenate(self.sent) if self.sent else np.zeros(0, ORDER_INTENT)
        self.sent.clear()
        return self.venue.answers(intents)


@pytest.fixture(scope="module")
def market():
    cfg = load_config(None, overrides=OVERRIDES)
    uni = resolve_universe(cfg)
    md = simulated_md(cfg, uni, seconds=30, seed=3)
    assert (np.diff(md["seq"].astype(np.int64)) > 0).all()
    return cfg, uni, md


def _lead_first_session(cfg, uni, md, seed: int):
    """As the live loop runs it: the lead on batches of random size, the followers caught up in
    random steps (or left behind for a while), the venue answering between calls. Returns the
    candidates, the intents sent, and each round of executions with the lead's md seq when it
    arrived (what the exec arrival log notes)."""
    rng = np.random.default_rng(seed)
    engines = LeadFirst(make_strategy(cfg, uni, None, run_tag="t"))
    venue = Venue(seed)
    cands, sent, arrivals = [], [], []

    def emit(intents):
        venue.send(intents)
        sent.append(intents.copy())

    def answer():
        execs = venue.answers()
        if len(execs):
            arrivals.append((engines.last_md_seq, execs))
            emit(engines.on_exec(execs))

    i, n = 0, len(md)
    while i < n:
        end = min(n, i + int(rng.integers(1, 400)))
        while i < end:
            i, c, _ = engines.on_md_until(md, i, end, emit=emit)
            cands.append(c)
            answer()
        while engines.behind and rng.random() < 0.6:
            c, _ = engines.catch_up(int(rng.integers(1, 40)), emit=emit)
            cands.append(c)
            answer()
    while engines.behind:
        c, _ = engines.catch_up(64, emit=emit)
        cands.append(c)
        answer()
    assert engines.max_behind > 0 and engines.execs_waited > 0     # it was behind, executions waited
    return np.concatenate(cands), np.concatenate(sent), arrivals


def _in_step_replay(cfg, uni, md, arrivals):
    """Every strategy in step (``StrategySet``, as a replay runs it), each round of executions
    delivered after the record the lead had reached when it arrived."""
    engines = make_strategy(cfg, uni, None, run_tag="t")
    seqs = md["seq"].astype(np.int64)
    cands, sent = [], []
    i, k, n = 0, 0, len(md)
    while i < n or k < len(arrivals):
        while k < len(arrivals) and (i > 0 and arrivals[k][0] <= seqs[i - 1]):
            follow = engines.on_exec(arrivals[k][1])
            if len(follow):
                sent.append(follow.copy())
            k += 1
        if i >= n:
            break
        end = int(np.searchsorted(seqs, arrivals[k][0], "right")) if k < len(arrivals) else n
        i, c, o = engines.on_md_until(md, i, max(end, i + 1))
        cands.append(c)
        if len(o):
            sent.append(o.copy())
    return np.concatenate(cands), np.concatenate(sent)


def _by_strategy(cands, sent):
    out = {}
    for sid in np.unique(cands["strategy_id"]):
        c = cands[cands["strategy_id"] == sid]
        o = sent[sent["strategy_id"] == sid]
        out[int(sid)] = (
            sorted(zip(c["event_recv_mono_ns"].tolist(), c["triangle_id"].tolist(), c["decision"].tolist(),
                       c["group_id"].tolist())),
            sorted(zip(o["group_id"].tolist(), o["leg"].tolist(), o["action"].tolist(), o["side"].tolist(),
                       o["price_ticks"].tolist(), o["qty_steps"].tolist())))
    return out


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_each_strategy_decides_as_it_does_in_step_whenever_it_catches_up(market, seed):
    cfg, uni, md = market
    cands, sent, arrivals = _lead_first_session(cfg, uni, md, seed)
    want_cands, want_sent = _in_step_replay(cfg, uni, md, arrivals)
    got, want = _by_strategy(cands, sent), _by_strategy(want_cands, want_sent)
    assert set(got) == set(want) and len(got) == 3
    for sid in want:
        assert got[sid][0] == want[sid][0], f"strategy {sid}: candidates differ"
        assert got[sid][1] == want[sid][1], f"strategy {sid}: intents differ"
    fills = np.concatenate([e for _, e in arrivals])
    assert (fills["kind"] == ExecKind.FILL).sum() > 10
