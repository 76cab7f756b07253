"""Strategy benchmarks: triangle evaluation (incremental vs full rescan) and ONNX scoring.

* A synthetic universe of about 2,000 triangles (alts quoted in USDT, BTC, ETH and BNB, with
  10-level books around consistent fair prices) is built in memory.
* Incremental evaluation: one symbol's top of book moves, then every triangle through that
  symbol is re-evaluated (depth walk, sizing, rounding, filters). Each update is timed inside
  numba with the CPU's time-stamp counter (``llvm.readcyclecounter``, calibrated against
  ``perf_counter_ns``), so the p50/p99 carry no Python dispatch cost. Baseline: a full rescan
  of every triangle, timed the same way.
* Scoring: ``OnnxModel.score`` on a batch of candidates, beside a bare onnxruntime ``run`` and
  scikit-learn ``predict_proba`` of the same model (fitted here on synthetic rows).
* End to end: ``StrategyEngine.on_md`` on offline simulator md (records/s), beside applying the
  same records to a book cache alone.
* Per strategy: each registered strategy's time per md update through the engine (p50/p99),
  beside the triangular strategy's on the same md in the same run.
"""
from __future__ import annotations

import time

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ctrader.core.arrays import concat
from ctrader.core.records import EXEC_EVENT, ExecKind, IntentAction, OrderType
from ctrader.execution.testing import exec_record
from ctrader.strategy import kernels as K

QUOTES = ("USDT", "BTC", "ETH", "BNB")
QUOTE_USDT = {"USDT": 1.0, "BTC": 60000.0, "ETH": 3000.0, "BNB": 600.0}
TICKS = {"USDT": "0.0001", "BTC": "0.00000001", "ETH": "0.0000001", "BNB": "0.000001"}


@intrinsic
def _cycles(typingctx):
    """The CPU time-stamp counter (llvm.readcyclecounter): a clock numba can read in nopython."""
    sig = types.uint64()

    def codegen(context, builder, signature, args):
        from llvmlite import ir

        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=fnty)
        return builder.call(fn, [])

    return sig, codegen


@njit(cache=True)
def read_cycles():
    return _cycles()


def cycles_per_ns() -> float:
    read_cycles()
    c0, t0 = read_cycles(), time.perf_counter_ns()
    time.sleep(0.05)
    c1, t1 = read_cycles(), time.perf_counter_ns()
    return (c1 - c0) / (t1 - t0)


# --- a synthetic universe -------------------------------------------------------------------------

def synthetic_universe(n_alts: int, seed: int = 1):
    """A Universe with ``n_alts`` alts quoted in every quote asset: about 12 triangles per alt."""
    from ctrader.market.universe import Universe
    from ctrader.sim.universe import _symbol_doc

    rng = np.random.default_rng(seed)
    prices = dict(QUOTE_USDT)
    docs = [_symbol_doc("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", prices),
            _symbol_doc("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", prices),
            _symbol_doc("BNBUSDT", "BNB", "USDT", "0.01", "0.001", prices),
            _symbol_doc("ETHBTC", "ETH", "BTC", "0.00001", "0.0001", prices),
            _symbol_doc("BNBBTC", "BNB", "BTC", "0.000001", "0.001", prices),
            _symbol_doc("BNBETH", "BNB", "ETH", "0.00001", "0.001", prices)]
    for i in range(n_alts):
        alt = f"A{i:04d}X"
        prices[alt] = float(np.exp(rng.uniform(np.log(0.5), np.log(500.0))))
        for q in QUOTES:
            docs.append(_symbol_doc(alt + q, alt, q, TICKS[q], "0.01", prices))
    return Universe.from_exchange_info({"symbols": docs}, start_assets=("USDT", "BTC")), prices


def fill_books(uni, prices: dict, cache, now_ns: int, seed: int = 2) -> None:
    """10 levels a side around each symbol's fair cross rate, 2-6 bp spreads."""
    rng = np.random.default_rng(seed)
    b = cache.books
    for s in uni.symbols:
        fair = prices[s.base] / prices[s.quote]
        half = fair * rng.uniform(1e-4, 3e-4)
        gap = fair * 1e-4
        lv = np.arange(10)
        b["bid_px"][s.id] = fair - half - lv * gap
        b["ask_px"][s.id] = fair + half + lv * gap
        qty = 2000.0 / prices[s.base] * rng.uniform(0.5, 2.0, size=(2, 10))
        b["bid_qty"][s.id], b["ask_qty"][s.id] = qty[0], qty[1]
    b["n_bids"] = b["n_asks"] = 10
    b["flags"] = 0
    b["last_recv_mono_ns"] = now_ns


@njit(cache=True)
def _incremental(sym_ids, shifts, now_ns, tri, sym, book, params, edge_since, outf, outi, cycles, found):
    """Per update: move one symbol's top of book, re-evaluate its triangles; cycles per update."""
    bid_px, ask_px = book[0], book[2]
    for j in range(sym_ids.shape[0]):
        s = sym_ids[j]
        c0 = _cycles()
        bid_px[s, 0] *= shifts[j]
        ask_px[s, 0] *= shifts[j]
        n = K.evaluate_symbol(s, now_ns, tri, sym, book, params, edge_since, outf, outi)
        cycles[j] = _cycles() - c0
        found[j] = n
        bid_px[s, 0] /= shifts[j]
        ask_px[s, 0] /= shifts[j]


@njit(cache=True)
def _rescans(rounds, now_ns, tri, sym, book, params, edge_since, outf, outi, cycles):
    for j in range(rounds):
        c0 = _cycles()
        K.evaluate_all(now_ns, tri, sym, book, params, edge_since, outf, outi)
        cycles[j] = _cycles() - c0


def bench_evaluation(n_alts: int = 166, updates: int = 50_000, rescans: int = 200) -> dict:
    from types import SimpleNamespace

    from ctrader.market.books import BookCache
    from ctrader.strategy.triangular import TriangularArbitrage

    uni, prices = synthetic_universe(n_alts)
    cfg = SimpleNamespace(strategy=SimpleNamespace(max_start=("USDT=1000", "BTC=0.02"), min_marginal_edge_bps=0.5,
                                                   max_book_age_ms=1e12, limit_slippage_bps=0.0))
    now = 10**12
    strat = TriangularArbitrage(cfg, uni, BookCache(len(uni.symbols)))
    fill_books(uni, prices, strat.books, now)
    rng = np.random.default_rng(3)
    sym_ids = rng.integers(0, len(uni.symbols), size=updates).astype(np.int64)
    # about one update in ten moves a price far enough (+-40 bp) to open an edge somewhere
    shifts = np.where(rng.random(updates) < 0.1, 1 + rng.choice([-40e-4, 40e-4], updates),
                      1 + rng.normal(0, 1e-5, updates))
    cycles = np.zeros(updates, dtype=np.uint64)
    found = np.zeros(updates, dtype=np.int64)
    args = (now, strat.tri, strat.sym, strat.book, strat.params, strat.edge_since, strat.outf, strat.outi)
    _incremental(sym_ids[:100], shifts[:100], *args, cycles[:100], found[:100])      # compile
    _incremental(sym_ids, shifts, *args, cycles, found)
    rescan_cycles = np.zeros(rescans, dtype=np.uint64)
    _rescans(2, *args, rescan_cycles)
    _rescans(rescans, *args, rescan_cycles)
    per_ns = cycles_per_ns()
    counts = np.diff(strat.table.sym_ptr)[sym_ids]
    inc = cycles[updates // 10:] / per_ns
    full = rescan_cycles[rescans // 10:] / per_ns
    return {"triangles": strat.n_triangles, "symbols": len(uni.symbols),
            "incremental_p50_ns": float(np.percentile(inc, 50)), "incremental_p99_ns": float(np.percentile(inc, 99)),
            "triangles_per_update_mean": float(counts.mean()), "triangles_per_update_p50": float(np.median(counts)),
            "updates_with_candidates": float((found > 0).mean()),
            "rescan_p50_ns": float(np.percentile(full, 50)),
            "ns_per_triangle": float(np.percentile(full, 50)) / strat.n_triangles}


# --- scoring ------------------------------------------------------------------------------------

def bench_scoring(batch: int = 8, rounds: int = 3000) -> dict:
    import onnxruntime as ort

    from ctrader.model.registry import ModelMeta
    from ctrader.model.scoring import OnnxModel
    from ctrader.replay.training import Dataset, TrainOptions, export_onnx, fit
    from ctrader.strategy.features import FEATURES

    rng = np.random.default_rng(4)
    X = rng.normal(size=(4000, len(FEATURES))).astype(np.float32)
    y = (X[:, 0] - 0.5 * X[:, 18] + rng.normal(size=4000) > 0).astype(np.int8)
    pipe, _ = fit(Dataset(X, y, np.arange(4000), FEATURES, {}), TrainOptions())
    blob = export_onnx(pipe, len(FEATURES))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    model = OnnxModel(ModelMeta("bench", "0", "triangular", FEATURES), sess)
    rows = X[:batch].copy()

    def timed(fn, n):
        for _ in range(min(100, n)):
            fn()
        out = np.empty(n)
        for i in range(n):
            t0 = time.perf_counter_ns()
            fn()
            out[i] = time.perf_counter_ns() - t0
        return float(np.percentile(out, 50))

    return {"batch": batch,
            "model_score_p50_ns": timed(lambda: model.score(rows), rounds),
            "onnxruntime_run_p50_ns": timed(lambda: sess.run(["probabilities"], {"features": rows}), rounds),
            "sklearn_predict_proba_p50_ns": timed(lambda: pipe.predict_proba(rows), max(100, rounds // 10))}


# --- end to end ---------------------------------------------------------------------------------

def bench_engine(seconds: float = 20.0) -> dict:
    from ctrader.config import load_config
    from ctrader.market.books import BookCache, apply_all
    from ctrader.market.universe import Universe
    from ctrader.model.registry import PACKAGED_DIR
    from ctrader.model.scoring import OnnxModel
    from ctrader.sim.offline import OfflineMarket, offline_sim_config
    from ctrader.strategy.engine import StrategyEngine
    from ctrader.strategy.features import FEATURES

    cfg = load_config()
    market = OfflineMarket(offline_sim_config(cfg.sim, dislocations_per_min=30.0), seed=5)
    uni = Universe.from_exchange_info(market.exchange_info, start_assets=cfg.market.start_assets)
    market.map_symbols(uni.by_name)
    batches = [market.snapshots()] + list(market.run(seconds))
    n = sum(len(b) for b in batches)
    engine = StrategyEngine(cfg, uni, OnnxModel.load(PACKAGED_DIR / "default", FEATURES))
    engine.warmup()
    t0 = time.perf_counter()
    for b in batches:
        engine.on_md(b)
    engine_s = time.perf_counter() - t0
    cache = BookCache(len(uni.symbols))
    apply_all(cache.books, batches[0], len(batches[0]))
    t0 = time.perf_counter()
    for b in batches:
        apply_all(cache.books, b, len(b))
    apply_s = time.perf_counter() - t0
    stats = engine.stats()
    return {"records": n, "engine_records_per_s": n / engine_s, "apply_records_per_s": n / apply_s,
            "candidate_events": stats["candidates"], "taken": stats["taken"],
            "decision_p50_us": stats["eval_p50_us"], "decision_p99_us": stats["eval_p99_us"]}


def bench_strategies(seconds: float = 20.0) -> dict[str, dict[str, float]]:
    """Every registered strategy through ``StrategyEngine`` on the same offline simulator md
    (dislocations and cross-rate residuals, so that each finds something), unscored, one md
    record per call: each update's time from the engine's entry to its return (ns), and how
    many it took. Then all of them side by side in one ``StrategySet`` (key ``SIDE_BY_SIDE``),
    as ``[strategy] names`` runs them."""
    from ctrader.config import load_config
    from ctrader.market.universe import Universe
    from ctrader.sim.offline import OfflineMarket, offline_sim_config
    from ctrader.strategy.engine import StrategyEngine
    from ctrader.strategy.registry import STRATEGIES
    from ctrader.strategy.several import StrategySet

    out = {}
    for name in sorted(STRATEGIES) + [SIDE_BY_SIDE]:
        sets = {"strategy.names": ",".join(sorted(STRATEGIES))} if name == SIDE_BY_SIDE else {"strategy.name": name}
        cfg = load_config(overrides={**sets, "model.name": "none"})
        market = OfflineMarket(offline_sim_config(cfg.sim, dislocations_per_min=30.0, residual_bps=25.0), seed=5)
        uni = Universe.from_exchange_info(market.exchange_info, start_assets=cfg.market.start_assets)
        market.map_symbols(uni.by_name)
        batches = [market.snapshots()] + list(market.run(seconds))
        engine = StrategySet(cfg, uni, None) if name == SIDE_BY_SIDE else StrategyEngine(cfg, uni, None)
        engine.warmup()
        venue = InstantVenue(seed=5)
        venue.answer(engine, engine.on_md(batches[0])[1])
        times = []
        clock = time.perf_counter_ns
        for b in batches[1:]:
            for i in range(len(b)):
                t0 = clock()
                _, _, intents = engine.on_md_until(b, i, i + 1)
                times.append(clock() - t0)
                venue.answer(engine, intents)          # untimed: the executor's side
        arr = np.asarray(times, np.float64)
        out[name] = {"p50_ns": float(np.percentile(arr, 50)), "p99_ns": float(np.percentile(arr, 99)),
                     "updates": len(arr), "taken": engine.taken, "execs": venue.execs}
    return out


class InstantVenue:
    """Answers a strategy's intents at once, so that its orders end and its keys free as in a
    session (a strategy never answered soon has nothing left to evaluate): taker orders fill,
    cancels and re-prices cancel their target, and each resting order fills with probability
    ``fill_p`` per later answer. No prices or balances: this times the strategy, not a fill
    model."""

    def __init__(self, seed: int, fill_p: float = 0.02) -> None:
        self.rng = np.random.default_rng(seed)
        self.fill_p = fill_p
        self.resting: dict[bytes, np.void] = {}
        self.execs = 0

    def answer(self, engine, intents: np.ndarray) -> None:
        """Answer ``intents`` and hand the executions to ``engine``, round after round, until
        nothing more comes back (a fill's hedges go out at once)."""
        while True:
            records = self.answers(intents)
            if not len(records):
                return
            self.execs += len(records)
            intents = engine.on_exec(records)

    def answers(self, intents: np.ndarray) -> np.ndarray:
        """One round: the EXEC_EVENT records answering ``intents``, and the resting orders that
        filled meanwhile."""
        out = []
        for it in intents:
            action = int(it["action"])
            if action != IntentAction.NEW:
                target = self.resting.pop(bytes(it["target_client_order_id"]), None)
                if target is not None:
                    out.append(exec_record(target, ExecKind.CANCELED, 0.0))
                if action == IntentAction.CANCEL:
                    continue
            if int(it["order_type"]) == OrderType.LIMIT_MAKER:
                self.resting[bytes(it["client_order_id"])] = it
            else:
                out.append(exec_record(it, ExecKind.FILL, float(it["qty"])))
        for coid in [c for c in self.resting if self.rng.random() < self.fill_p]:
            it = self.resting.pop(coid)
            out.append(exec_record(it, ExecKind.FILL, float(it["qty"])))
        return concat(out, EXEC_EVENT)          # the record layout kept (np.concatenate drops its padding)


SIDE_BY_SIDE = "all side by side"


def run(quick: bool = False) -> list[dict]:
    ev = bench_evaluation(updates=20_000 if quick else 200_000, rescans=50 if quick else 500)
    sc = bench_scoring(rounds=500 if quick else 5000)
    en = bench_engine(seconds=8.0 if quick else 30.0)
    per = bench_strategies(seconds=8.0 if quick else 30.0)
    tri = f"{ev['triangles']} triangles, {ev['symbols']} symbols"
    base = per["triangular"]
    per_strategy = [
        {"name": f"strategy {name} per update {q}", "value": fig[f"{q}_ns"] / 1e3, "unit": "us",
         "baseline_name": f"strategy triangular per update {q}, same run", "baseline_value": base[f"{q}_ns"] / 1e3,
         "ratio": fig[f"{q}_ns"] / base[f"{q}_ns"],
         "note": f"StrategyEngine.on_md_until one md record at a time, unscored; {fig['updates']:,} updates "
                 f"of the offline simulator (dislocations 30/min, residual 25 bp), {fig['taken']} groups taken, "
                 f"{fig['execs']} executions answered at once (InstantVenue)"}
        for name, fig in per.items() if name not in ("triangular", SIDE_BY_SIDE) for q in ("p50", "p99")]
    both = per[SIDE_BY_SIDE]
    alone = {q: sum(fig[f"{q}_ns"] for name, fig in per.items() if name != SIDE_BY_SIDE) / 1e3 for q in ("p50", "p99")}
    per_strategy += [
        {"name": f"strategies {SIDE_BY_SIDE} per update {q}", "value": both[f"{q}_ns"] / 1e3, "unit": "us",
         "baseline_name": f"strategy triangular per update {q}, same run", "baseline_value": base[f"{q}_ns"] / 1e3,
         "ratio": both[f"{q}_ns"] / base[f"{q}_ns"],
         "note": f"StrategySet ([strategy] names) of every registered strategy, same md; the sum of each "
                 f"alone: {alone[q]:.1f} us; {both['taken']} groups taken"}
        for q in ("p50", "p99")]
    return per_strategy + [
        {"name": "triangle eval incremental p50", "value": ev["incremental_p50_ns"], "unit": "ns",
         "baseline_name": "full rescan p50", "baseline_value": ev["rescan_p50_ns"],
         "ratio": ev["incremental_p50_ns"] / ev["rescan_p50_ns"],
         "note": f"{tri}; {ev['triangles_per_update_p50']:.0f} triangles/update p50 "
                 f"(mean {ev['triangles_per_update_mean']:.0f}); target p50 < 2 us"},
        {"name": "triangle eval incremental p99", "value": ev["incremental_p99_ns"], "unit": "ns",
         "baseline_name": "full rescan p50", "baseline_value": ev["rescan_p50_ns"],
         "ratio": ev["incremental_p99_ns"] / ev["rescan_p50_ns"],
         "note": f"p99: the {100 * ev['updates_with_candidates']:.0f}% of updates that open an edge take the "
                 "full depth walk, sizing and rounding path"},
        {"name": "triangle eval per triangle", "value": ev["ns_per_triangle"], "unit": "ns",
         "baseline_name": None, "baseline_value": None, "ratio": None, "note": "full rescan / triangles"},
        {"name": f"onnx score batch of {sc['batch']} p50", "value": sc["model_score_p50_ns"] / 1e3, "unit": "us",
         "baseline_name": "bare onnxruntime run", "baseline_value": sc["onnxruntime_run_p50_ns"] / 1e3,
         "ratio": sc["model_score_p50_ns"] / sc["onnxruntime_run_p50_ns"], "note": "OnnxModel.score wrapper"},
        {"name": f"sklearn predict_proba batch of {sc['batch']} p50", "value": sc["sklearn_predict_proba_p50_ns"] / 1e3,
         "unit": "us", "baseline_name": "bare onnxruntime run", "baseline_value": sc["onnxruntime_run_p50_ns"] / 1e3,
         "ratio": sc["sklearn_predict_proba_p50_ns"] / sc["onnxruntime_run_p50_ns"],
         "note": "same model (scaler + logistic regression)"},
        {"name": "strategy engine on_md", "value": en["engine_records_per_s"], "unit": "records/s",
         "baseline_name": "book apply only", "baseline_value": en["apply_records_per_s"],
         "ratio": en["engine_records_per_s"] / en["apply_records_per_s"],
         "note": f"offline sim md; decision per candidate event p50 {en['decision_p50_us']:.0f} us "
                 f"p99 {en['decision_p99_us']:.0f} us (scoring included)"},
    ]


def check_regressions(results: list[dict]) -> list[str]:
    """Gross regressions of same-run ratios only."""
    problems = []
    for r in results:
        if r["name"] == "triangle eval incremental p50" and r["ratio"] > 0.25:
            problems.append(f"incremental evaluation p50 is {r['ratio']:.2f}x a full rescan (limit 0.25x): "
                            "the symbol -> triangle index is not being used")
        if r["name"].startswith("onnx score") and r["ratio"] > 3:
            problems.append(f"OnnxModel.score costs {r['ratio']:.1f}x a bare onnxruntime run (limit 3x)")
        if r["name"].startswith("strategy ") and r["name"].endswith("per update p50") and r["ratio"] > 20:
            problems.append(f"{r['name']}: {r['ratio']:.1f}x the triangular strategy's (limit 20x)")
        if r["name"] == "strategy engine on_md" and r["ratio"] < 0.001:
            problems.append(f"engine on_md runs at {r['ratio']:.4f}x the book apply rate (limit 0.001x)")
    return problems
