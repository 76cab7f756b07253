"""Triangle enumeration, the CSR index and the evaluation kernel against hand-computed numbers,
and against a plain-Python walk of random books.

The universe is three symbols (BTCUSDT, ETHUSDT, ETHBTC) with Binance-like filters; books are
written straight into a BookCache, so every number below can be checked with a pencil.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctrader.core.records import MdFlag, Side
from ctrader.market.books import BookCache
from ctrader.market.universe import Universe
from ctrader.sim.universe import ASSETS, _symbol_doc
from ctrader.strategy import kernels as K
from ctrader.strategy.triangles import SymbolTable, TriangleTable
from ctrader.strategy.triangular import book_views
from ctrader.venue.filters import OrderCheck

FEE = 0.001
KEEP = 1 - FEE
NOW = 10_000_000_000


def make_universe(**doc_overrides) -> Universe:
    prices = {a: p for a, (p, _) in ASSETS.items()}
    docs = [_symbol_doc("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", prices),
            _symbol_doc("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", prices),
            _symbol_doc("ETHBTC", "ETH", "BTC", "0.00001", "0.0001", prices)]
    return Universe.from_exchange_info({"symbols": docs}, start_assets=("USDT", "BTC"), taker_fee=FEE)


class Harness:
    """A universe, its tables, a book cache and the kernel argument tuples."""

    def __init__(self, max_start=None, min_marginal=0.0, max_age_ns=1e9) -> None:
        self.uni = make_universe()
        self.table = TriangleTable.from_universe(self.uni)
        self.symbols = SymbolTable.from_universe(self.uni)
        self.cache = BookCache(len(self.uni.symbols))
        caps = np.zeros(len(self.uni.assets))
        for asset, amount in (max_start or {"USDT": 100_000.0, "BTC": 2.0}).items():
            caps[self.uni.asset_id(asset)] = amount
        self.tri = K.tri_arrays(self.table)
        self.sym = K.sym_arrays(self.symbols, caps)
        self.book = book_views(self.cache)
        self.params = K.make_params(FEE, min_marginal, max_age_ns)
        self.outf = np.zeros((8, K.NF))
        self.outi = np.zeros((8, K.NI), dtype=np.int64)

    def set_book(self, name, bids, asks, flags=0, age_ns=1_000_000) -> None:
        b, s = self.cache.books, self.uni.symbol_id(name)
        for i, (p, q) in enumerate(bids):
            b["bid_px"][s, i], b["bid_qty"][s, i] = p, q
        for i, (p, q) in enumerate(asks):
            b["ask_px"][s, i], b["ask_qty"][s, i] = p, q
        b["n_bids"][s], b["n_asks"][s] = len(bids), len(asks)
        b["flags"][s] = flags
        b["last_recv_mono_ns"][s] = NOW - age_ns

    def triangle(self, path: str) -> int:
        for t in self.uni.triangles():
            if "->".join(self.uni.assets[a] for a in t.assets) == path:
                return t.id
        raise KeyError(path)

    def evaluate(self, t: int) -> tuple[int, np.ndarray, np.ndarray]:
        status = K.evaluate_triangle(t, NOW, self.tri, self.sym, self.book, self.params, self.outf, self.outi, 0)
        return int(status), self.outf[0].copy(), self.outi[0].copy()


def dislocated_books(h: Harness) -> None:
    """USDT -> BTC -> ETH -> USDT pays about 70 bp at the top, less deeper down."""
    h.set_book("BTCUSDT", [(59990.0, 1.0)], [(60000.0, 0.1), (60010.0, 1.0)])
    h.set_book("ETHBTC", [(0.0499, 10.0)], [(0.05, 1.0), (0.0501, 10.0)])
    h.set_book("ETHUSDT", [(3030.0, 1.0), (3000.0, 5.0)], [(3031.0, 1.0)])


# --- enumeration ------------------------------------------------------------------------------

def test_triangles_and_leg_sides_of_a_small_exchange_info():
    h = Harness()
    uni = h.uni
    names = {t.name(uni) for t in uni.triangles()}
    assert names == {
        "USDT->BTC->ETH->USDT (BTCUSDT:BUY, ETHBTC:BUY, ETHUSDT:SELL)",
        "USDT->ETH->BTC->USDT (ETHUSDT:BUY, ETHBTC:SELL, BTCUSDT:SELL)",
        "BTC->ETH->USDT->BTC (ETHBTC:BUY, ETHUSDT:SELL, BTCUSDT:BUY)",
        "BTC->USDT->ETH->BTC (BTCUSDT:SELL, ETHUSDT:BUY, ETHBTC:SELL)",
    }
    t = h.triangle("USDT->BTC->ETH")
    assert h.table.legs_symbol[t].tolist() == [uni.symbol_id(n) for n in ("BTCUSDT", "ETHBTC", "ETHUSDT")]
    assert h.table.legs_side[t].tolist() == [Side.BUY, Side.BUY, Side.SELL]
    assert h.table.start_asset[t] == uni.asset_id("USDT")
    # every symbol is in all four triangles: the CSR index lists each once per symbol
    for s in range(3):
        assert sorted(h.table.triangles_of(s).tolist()) == [0, 1, 2, 3]


def test_csr_index_only_lists_triangles_through_the_symbol():
    # two disjoint triangles sharing nothing but symbol 0
    table = TriangleTable.build(5, [(0, [(0, 1), (1, 1), (2, 2)]), (0, [(0, 2), (3, 1), (4, 2)])])
    assert table.triangles_of(0).tolist() == [0, 1]
    assert table.triangles_of(1).tolist() == [0]
    assert table.triangles_of(4).tolist() == [1]
    assert table.sym_ptr.tolist() == [0, 2, 3, 4, 5, 6]


# --- evaluation -------------------------------------------------------------------------------

def test_depth_walk_size_fees_and_rounding_match_hand_computation():
    h = Harness()
    dislocated_books(h)
    status, f, i = h.evaluate(h.triangle("USDT->BTC->ETH"))
    assert status == K.ST_OK
    # top of book: 1/60000 BTC per USDT, 20 ETH per BTC, 3030 USDT per ETH, a fee on each leg
    assert f[K.F_EDGE_TOP] == pytest.approx(3030 / (60000 * 0.05) * KEEP ** 3 - 1, rel=1e-12)
    # sizing: ETHBTC's first level (0.05 BTC) empties first ...
    x1 = 0.05 / (KEEP / 60000)
    # ... then 0.001 ETH of ETHUSDT's first level is left, bought at 0.0501 BTC/ETH ...
    eth_left = 1.0 - 0.05 / 0.05 * KEEP
    x2 = eth_left / (KEEP / 60000 / 0.0501 * KEEP)
    # ... and ETHUSDT's next bid (3000) would lose money: the walk stops there
    assert 3000 / (60000 * 0.0501) * KEEP ** 3 < 1
    assert f[K.F_SIZE_RAW] == pytest.approx(x1 + x2, rel=1e-9)
    # quantities on their steps (floored), limit prices = worst level walked, exact integers
    assert i[K.I_TICKS:K.I_TICKS + 3].tolist() == [6_000_000, 5010, 303_000]
    assert f[K.F_LIMIT:K.F_LIMIT + 3].tolist() == pytest.approx([60000.0, 0.0501, 3030.0])
    steps = i[K.I_STEPS:K.I_STEPS + 3]
    assert steps.tolist() == [5010, 10009, 9999]       # 0.05010 BTC, 1.0009 ETH, 0.9999 ETH
    q0, q1, q2 = f[K.F_QTY:K.F_QTY + 3]
    # the net edge of exactly those quantities, by hand
    cost0 = q0 * 60000.0
    cost1 = 1.0 * 0.05 + (q1 - 1.0) * 0.0501
    proceeds2 = q2 * 3030.0
    edge = (q0 * KEEP / cost0) * (q1 * KEEP / cost1) * (proceeds2 * KEEP / q2) - 1
    assert f[K.F_EDGE] == pytest.approx(edge, rel=1e-9)
    assert f[K.F_SIZE] == pytest.approx(cost0)
    assert f[K.F_PNL] == pytest.approx(edge * cost0)
    assert i[K.I_LEVELS:K.I_LEVELS + 3].tolist() == [1, 2, 1]


def test_fees_come_off_every_leg():
    h = Harness()
    dislocated_books(h)
    t = h.triangle("USDT->BTC->ETH")
    with_fee = h.evaluate(t)[1][K.F_EDGE_TOP]
    h.params[K.P_FEE] = 0.0
    without = h.evaluate(t)[1][K.F_EDGE_TOP]
    assert without == pytest.approx(3030 / 3000 - 1)
    assert with_fee == pytest.approx((1 + without) * KEEP ** 3 - 1)


def test_size_cap_binds_and_quantities_floor_to_step():
    h = Harness(max_start={"USDT": 1234.56, "BTC": 1.0})
    dislocated_books(h)
    status, f, i = h.evaluate(h.triangle("USDT->BTC->ETH"))
    assert status == K.ST_OK
    assert f[K.F_SIZE_RAW] == pytest.approx(1234.56)
    # 1234.56 / 60000 = 0.020576 BTC -> floored to 0.02057 on a 0.00001 step
    assert i[K.I_STEPS] == math.floor(1234.56 / 60000 / 0.00001)
    assert f[K.F_SIZE] <= 1234.56
    for k, name in enumerate(("BTCUSDT", "ETHBTC", "ETHUSDT")):
        info = h.uni.by_name[name]
        side = "BUY" if h.table.legs_side[h.triangle("USDT->BTC->ETH"), k] == Side.BUY else "SELL"
        info.rules.check(OrderCheck(side, "LIMIT", price=int(i[K.I_TICKS + k]) * info.tick_units,
                                    quantity=int(i[K.I_STEPS + k]) * info.step_units))


def test_below_min_notional_is_filtered():
    h = Harness(max_start={"USDT": 3.0, "BTC": 1.0})      # 3 USDT < the 5 USDT min notional
    dislocated_books(h)
    status, f, _ = h.evaluate(h.triangle("USDT->BTC->ETH"))
    assert status == K.ST_FILTER
    assert f[K.F_EDGE_TOP] > 0


def test_a_symbol_says_which_sizes_meet_its_minimums():
    """``SymbolInfo.meets_minimums``, what the strategies without a compiled sizer check their
    orders with: quantity > 0, >= minQty, notional >= the minimum, in exact integers."""
    uni = make_universe()
    info = uni.symbols[uni.symbol_id("BTCUSDT")]
    ticks = 6_000_000                                     # 60000.00 on the 0.01 tick
    at_min = -(-info.min_notional_units * 10**8 // (ticks * info.tick_units * info.step_units))  # fewest steps
    assert info.meets_minimums(at_min, ticks) and not info.meets_minimums(at_min - 1, ticks)
    assert not info.meets_minimums(0, ticks)


def test_no_cap_for_the_start_asset_is_a_risk_skip():
    h = Harness(max_start={"USDT": 0.0, "BTC": 1.0})
    dislocated_books(h)
    assert h.evaluate(h.triangle("USDT->BTC->ETH"))[0] == K.ST_RISK


def test_marginal_threshold_limits_the_walk():
    # at 60 bp the second ETHBTC level (about 50 bp) no longer qualifies: only the first level trades
    h = Harness(min_marginal=0.006)
    dislocated_books(h)
    status, f, _ = h.evaluate(h.triangle("USDT->BTC->ETH"))
    assert status == K.ST_OK
    assert f[K.F_SIZE_RAW] == pytest.approx(0.05 / (KEEP / 60000), rel=1e-9)
    h.params[K.P_MIN_MARGINAL] = 0.008                     # above the top edge: nothing at all
    assert h.evaluate(h.triangle("USDT->BTC->ETH"))[0] == K.ST_EDGE_LOW


def test_no_edge_is_not_a_candidate():
    h = Harness()
    h.set_book("BTCUSDT", [(59990.0, 1.0)], [(60000.0, 1.0)])
    h.set_book("ETHBTC", [(0.0499, 10.0)], [(0.05, 10.0)])
    h.set_book("ETHUSDT", [(2999.0, 1.0)], [(3001.0, 1.0)])
    for t in range(4):
        status, f, _ = h.evaluate(t)
        assert status == K.ST_NO_EDGE and f[K.F_EDGE_TOP] < 0
    since = np.zeros(4, dtype=np.int64)
    assert K.evaluate_symbol(0, NOW, h.tri, h.sym, h.book, h.params, since, h.outf, h.outi) == 0


@pytest.mark.parametrize("flag", [MdFlag.STALE, MdFlag.CROSSED])
def test_a_stale_leg_blocks_its_triangles(flag):
    h = Harness()
    dislocated_books(h)
    h.set_book("ETHBTC", [(0.0499, 10.0)], [(0.05, 1.0), (0.0501, 10.0)], flags=int(flag))
    since = np.zeros(4, dtype=np.int64)
    n = K.evaluate_symbol(h.uni.symbol_id("ETHUSDT"), NOW, h.tri, h.sym, h.book, h.params, since, h.outf, h.outi)
    # the dislocated triangle is still reported (positive edge) but blocked
    assert n >= 1
    assert set(h.outi[:n, K.I_STATUS].tolist()) == {K.ST_STALE}


def test_an_old_leg_blocks_its_triangles():
    h = Harness(max_age_ns=2e9)
    dislocated_books(h)
    t = h.triangle("USDT->BTC->ETH")
    assert h.evaluate(t)[0] == K.ST_OK
    h.set_book("ETHUSDT", [(3030.0, 1.0), (3000.0, 5.0)], [(3031.0, 1.0)], age_ns=3_000_000_000)
    assert h.evaluate(t)[0] == K.ST_STALE


def test_percent_price_band_is_checked_against_the_mid():
    h = Harness()
    # a thin first BTCUSDT level and a second one far away: walking to it breaks a 1% band
    h.set_book("BTCUSDT", [(59990.0, 1.0)], [(60000.0, 0.0001), (60100.0, 1.0)])
    h.set_book("ETHBTC", [(0.0499, 10.0)], [(0.05, 1.0)])
    h.set_book("ETHUSDT", [(3030.0, 1.0)], [(3031.0, 1.0)])
    t = h.triangle("USDT->BTC->ETH")
    assert h.evaluate(t)[0] == K.ST_OK
    s = h.uni.symbol_id("BTCUSDT")
    h.sym[4][s] = [1.001, 0.999, 1.001, 0.999]            # bid_up, bid_down, ask_up, ask_down
    assert h.evaluate(t)[0] == K.ST_FILTER


def test_edge_since_tracks_when_the_edge_appeared():
    h = Harness()
    dislocated_books(h)
    since = np.zeros(4, dtype=np.int64)
    sid = h.uni.symbol_id("BTCUSDT")
    t = h.triangle("USDT->BTC->ETH")
    K.evaluate_symbol(sid, NOW, h.tri, h.sym, h.book, h.params, since, h.outf, h.outi)
    assert since[t] == NOW
    K.evaluate_symbol(sid, NOW + 5, h.tri, h.sym, h.book, h.params, since, h.outf, h.outi)
    assert since[t] == NOW                                  # still the same opportunity
    h.set_book("ETHUSDT", [(2990.0, 1.0)], [(2991.0, 1.0)])
    K.evaluate_symbol(sid, NOW + 10, h.tri, h.sym, h.book, h.params, since, h.outf, h.outi)
    assert since[t] == 0


def test_slippage_pads_the_limit_in_the_safe_direction():
    h = Harness()
    dislocated_books(h)
    t = h.triangle("USDT->BTC->ETH")
    h.params[K.P_SLIPPAGE] = 2e-4                       # 2 bp
    status, f, i = h.evaluate(t)
    assert status == K.ST_OK
    # BUY legs up, SELL leg down, then onto the tick in the same direction
    assert i[K.I_TICKS:K.I_TICKS + 3].tolist() == [math.ceil(60000 * 1.0002 / 0.01),
                                                   math.ceil(0.0501 * 1.0002 / 0.00001),
                                                   math.floor(3030 * 0.9998 / 0.01)]
    # the sizing and the expected edge do not change: the book, not the limit, sets the price
    h.params[K.P_SLIPPAGE] = 0.0
    assert h.evaluate(t)[1][K.F_EDGE] == f[K.F_EDGE]


# --- the kernel against a plain-Python reference on random books ---------------------------------

FAIR = {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0, "ETHBTC": 0.05}
_level = st.tuples(st.integers(1, 40), st.floats(0.01, 3.0))          # (ticks from the one before, qty)
_side = st.lists(_level, min_size=1, max_size=3)
_book = st.tuples(st.floats(-0.008, 0.008), st.integers(1, 20), _side, _side)   # (move, spread ticks, bids, asks)


def _walk(levels: list[tuple[float, float]], qty: float) -> tuple[float, float, int]:
    """Taking ``qty`` base from ``levels`` (best first): (quote it costs or brings, the worst
    price reached, levels reached)."""
    quote, left = 0.0, qty
    for n, (px, q) in enumerate(levels, start=1):
        take = min(left, q)
        quote += take * px
        left -= take
        if left <= 1e-12:
            return quote, px, n
    return math.inf, levels[-1][0], len(levels)            # deeper than the book: never sized so


@settings(max_examples=200, deadline=None)
@given(books=st.tuples(_book, _book, _book))
def test_the_kernel_prices_and_sizes_what_a_plain_walk_of_the_books_says(books):
    h = Harness()
    levels = {}
    for name, (move, spread, bids, asks) in zip(FAIR, books, strict=True):
        info = h.uni.symbols[h.uni.symbol_id(name)]
        tick = info.tick_units / 1e8
        bid_t = round(FAIR[name] * math.exp(move) / tick)
        b, a, px_b, px_a = [], [], bid_t, bid_t + spread
        for k, (gap, q) in enumerate(bids):
            px_b -= gap if k else 0
            b.append((px_b * tick, q))
        for k, (gap, q) in enumerate(asks):
            px_a += gap if k else 0
            a.append((px_a * tick, q))
        h.set_book(name, b, a)
        levels[info.id] = (b, a)
    for t in range(h.table.n_triangles):
        status, f, i = h.evaluate(t)
        legs = [(int(s), int(d)) for s, d in zip(h.table.legs_symbol[t], h.table.legs_side[t], strict=True)]
        top = 1.0
        for s, d in legs:
            b, a = levels[s]
            top *= (1.0 / a[0][0] if d == Side.BUY else b[0][0]) * KEEP
        assert f[K.F_EDGE_TOP] == pytest.approx(top - 1, rel=1e-9, abs=1e-12)
        if top - 1 < -1e-12:
            assert status == K.ST_NO_EDGE
        if status != K.ST_OK:
            continue
        # the rounded legs, walked by hand: what each spends and receives, and the limits
        rate, spent, got, unit = 1.0, [], [], []
        for k, (s, d) in enumerate(legs):
            info = h.uni.symbols[s]
            qty = f[K.F_QTY + k]
            assert qty == pytest.approx(i[K.I_STEPS + k] * info.step_units / 1e8, rel=1e-12) and qty > 0
            b, a = levels[s]
            quote, worst, reached = _walk(a if d == Side.BUY else b, qty)
            assert quote < math.inf and i[K.I_LEVELS + k] == reached
            assert f[K.F_LIMIT + k] == pytest.approx(worst, rel=1e-12)
            assert i[K.I_TICKS + k] == round(worst / (info.tick_units / 1e8))
            spent.append(quote if d == Side.BUY else qty)
            got.append((qty if d == Side.BUY else quote) * KEEP)
            rate *= got[-1] / spent[-1]
            # one step of this leg, in the asset it spends and in the one it receives
            one = info.step_units / 1e8
            unit.append((one * worst, one) if d == Side.BUY else (one, one * worst))
        assert f[K.F_EDGE] == pytest.approx(rate - 1, rel=1e-9, abs=1e-12)
        assert f[K.F_SIZE] == pytest.approx(spent[0], rel=1e-9)
        # each leg spends what the one before brought in, give or take the steps both were
        # floored to (the dust the inventory in every asset absorbs); the first, within its cap
        for k in (1, 2):
            assert abs(spent[k] - got[k - 1]) <= 2 * (unit[k - 1][1] + unit[k][0]), (k, spent, got)
        start = h.uni.assets[h.uni.triangles()[t].assets[0]]
        assert spent[0] <= {"USDT": 100_000.0, "BTC": 2.0}[start] * (1 + 1e-9)
