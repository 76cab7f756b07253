"""The executor's share of tick-to-order: when each order of a batch leaves, and how the latency is
split into stages (strategy, intents ring hop, executor path) in the stats."""
from __future__ import annotations

import time

import numpy as np
import orjson

from ctrader.core.records import Side
from ctrader.execution.bookview import BookView
from ctrader.execution.engine import Executor
from ctrader.execution.journal import Journal
from ctrader.execution.paper import PaperFillModel, PaperVenue
from ctrader.execution.risk import RiskLimits
from ctrader.execution.testing import depth_record, intent_record
from ctrader.sim.testing import sim_universe
from ctrader.market.books import BookCache

UNI = sim_universe()
S = 1_000_000_000
LIMITS = RiskLimits(max_order_notional=1e6, max_group_notional=1e6, max_position=1e6, max_open_orders=50,
                    orders_per_10s=1000, daily_loss_limit=1e6)


class RecordingVenue(PaperVenue):
    """A paper venue that notes, for every order handed to it, what the journal held by then."""

    def __init__(self, model, journal: Journal) -> None:
        super().__init__(model)
        self.journal = journal
        self.placed: list[tuple[int, int, int]] = []     # (leg, journal records, journal syncs)

    def place(self, order, now_ns):
        self.placed.append((order.leg, self.journal.records, self.journal.syncs))
        return super().place(order, now_ns)


def executor(journal: Journal, clock, sync_before_send: bool = False) -> tuple[Executor, RecordingVenue]:
    cache = BookCache(len(UNI.symbols))
    venue = RecordingVenue(PaperFillModel(BookView(cache.books), UNI), journal)
    ex = Executor(UNI, venue, journal, lambda rec: None, LIMITS, clock=clock, books=cache,
                  sync_before_send=sync_before_send)
    for sym, (bid, ask) in {"BTCUSDT": (60000.0, 60001.0), "ETHUSDT": (3000.0, 3000.5),
                            "ETHBTC": (0.05, 0.05001)}.items():
        ex.on_md(depth_record(UNI.symbol_id(sym), [(bid, 10.0)], [(ask, 10.0)], clock()), 1)
    ex.accounting.daily_pnl(ex.valuer, int(time.time() // 86_400))   # the day's baseline (one journal line) set
    return ex, venue


def triangle_batch(group_id: int, cause_ns: int = 0, created_ns: int = 0) -> np.ndarray:
    """The three legs of one group in one batch, as the strategy writes them to the intents ring."""
    legs = [intent_record(UNI, "BTCUSDT", Side.BUY, 60001.0, 0.01, group_id=group_id, leg=0, n_legs=3,
                          cause_mono_ns=cause_ns),
            intent_record(UNI, "ETHBTC", Side.BUY, 0.05001, 0.1998, group_id=group_id, leg=1, n_legs=3,
                          cause_mono_ns=cause_ns),
            intent_record(UNI, "ETHUSDT", Side.SELL, 3000.0, 0.1998, group_id=group_id, leg=2, n_legs=3,
                          cause_mono_ns=cause_ns)]
    batch = np.concatenate(legs)
    batch["created_mono_ns"] = created_ns
    return batch


def _lines_in(path) -> int:
    """Bytes of journal lines the file holds (what a crash now would leave), less the zeros the
    journal's map runs ahead with."""
    with open(path, "rb") as fh:
        return len(fh.read().rstrip(b"\0"))


def test_without_sync_each_leg_leaves_as_soon_as_its_intent_is_written(tmp_path):
    journal = Journal(tmp_path / "j.jsonl", sync=False)
    ex, venue = executor(journal, clock=lambda: 100 * S)
    base = journal.records
    size = _lines_in(journal.path)
    written = []

    def place(order, now_ns, _place=venue.place):     # what the journal file holds as each leg leaves
        written.append(_lines_in(journal.path))
        return _place(order, now_ns)

    venue.place = place
    ex.on_intents(triangle_batch(1), 3)
    # leg 0 left before legs 1 and 2 were journaled: its intent line in the file (not only
    # staged), no sync
    assert venue.placed == [(0, base + 1, 0), (1, base + 2, 0), (2, base + 3, 0)]
    assert size < written[0] < written[1] < written[2]
    with open(journal.path, "rb") as fh:
        lines = fh.read()[size:written[2]].splitlines()
    assert [orjson.loads(line)["k"] for line in lines] == ["intent"] * 3
    journal.close()


def test_sync_before_send_makes_the_whole_batch_durable_with_one_sync_before_the_first_leg(tmp_path):
    journal = Journal(tmp_path / "j.jsonl", sync=True)
    ex, venue = executor(journal, clock=lambda: 100 * S, sync_before_send=True)
    base, syncs = journal.records, journal.syncs
    ex.on_intents(triangle_batch(1), 3)
    assert venue.placed == [(leg, base + 3, syncs + 1) for leg in range(3)]
    journal.close()


def test_a_syncing_journal_syncs_once_after_the_batch_left(tmp_path):
    """``journal_fsync = after_send`` (live's default): each leg leaves with its line in the page
    cache, no sync on the way; the syncs come once all three are out (here also for their
    fills, which a paper venue without latency answers at once)."""
    journal = Journal(tmp_path / "j.jsonl", sync=True)
    ex, venue = executor(journal, clock=lambda: 100 * S)
    base, syncs = journal.records, journal.syncs
    ex.on_intents(triangle_batch(1), 3)
    assert venue.placed == [(leg, base + leg + 1, syncs) for leg in range(3)]
    assert journal.syncs > syncs
    journal.close()


def test_tick_to_order_is_split_into_strategy_ring_hop_and_executor_path(tmp_path):
    now = [100 * S]

    def clock() -> int:             # each reading 10 us later than the one before
        now[0] += 10_000
        return now[0]

    journal = Journal(tmp_path / "j.jsonl", sync=False)
    ex, _ = executor(journal, clock)
    t = now[0]
    ex.on_intents(triangle_batch(1, cause_ns=t - 500_000, created_ns=t - 200_000), 3)
    stats = ex.stats()
    stages = stats["tick_to_order_stages"]
    assert stats["tick_to_order"]["n"] == 3 and all(s["n"] == 3 for s in stages.values())
    assert stages["tick_to_intent"]["p50_us"] == 300.0          # md received -> intent built
    assert stages["intent_hop"]["p50_us"] == 210.0              # built -> read (the first clock reading)
    # read -> handed to the venue grows leg by leg: each leg's checks come before it leaves
    seen = ex.orders.get("ct1-0").seen_mono_ns
    paths = sorted(ex.orders.get(f"ct1-{leg}").sent_mono_ns - seen for leg in range(3))
    assert paths[0] < paths[1] < paths[2] and stages["executor_path"]["p50_us"] == paths[1] / 1e3
    # the stages add up to tick-to-order, order by order
    assert stats["tick_to_order"]["p50_us"] == 300.0 + 210.0 + paths[1] / 1e3
    journal.close()
