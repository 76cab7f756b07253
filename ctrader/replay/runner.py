"""One replay from configuration to stored results: what ``ctrader replay`` and sweeps call.

    run = replay_store(cfg, store, start, end)                 # ReplayRun: run_id, result, meta
    run = replay_store(cfg, store, start, end, model="none", save=False)
    opts = options_from_config(cfg)                            # ReplayOptions from [replay]

The universe must number symbols as the strategy expects: it comes from ``exchange_info``
(a dict or a file), else ``market.exchange_info_file``, else the saved exchangeInfo of a recorded
run (``{data_dir}/runs/{run_id}/exchange_info.json``), else the built-in simulator's universe when
the venue is the simulator, else the venue's REST API.
"""
from __future__ import annotations

import json
import logging
import pathlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ctrader.execution.latency import SampledLatency as LatencyModel
from ctrader.execution.risk import RiskLimits
from ctrader.market.universe import Universe, load_universe
from ctrader.replay.driver import ReplayEngine, ReplayOptions, ReplayResult
from ctrader.replay.results import ReplayResults, RunMeta, code_version, config_dict, config_hash, new_run_id
from ctrader.store.store import to_ns
from ctrader.strategy.models import describe_models, load_models
from ctrader.strategy.registry import strategy_names

log = logging.getLogger(__name__)


@dataclass
class ReplayRun:
    run_id: str
    result: ReplayResult
    meta: RunMeta
    universe: Universe


def options_from_config(cfg) -> ReplayOptions:
    rc = cfg.replay
    order = rc.order_latency or str(cfg.execution.paper_latency_ms)
    acct = cfg.sim.accounts[0] if cfg.venue.kind == "sim" and cfg.sim.accounts else None
    return ReplayOptions(
        feed_latency=LatencyModel.parse(rc.feed_latency, seed=rc.seed),
        order_latency=LatencyModel.parse(order, seed=rc.seed + 1),
        exec_latency=LatencyModel.parse(rc.exec_latency, seed=rc.seed + 2),
        batch_events=rc.batch_events,
        taker_fee=float(acct.taker_commission) if acct else 0.001,
        maker_fee=float(acct.maker_commission) if acct else 0.001,
        valuation_asset=cfg.risk.valuation_asset,
        pnl_interval_ns=rc.pnl_interval_ms * 1_000_000,
        keep_records=rc.keep_records,
        # the session's own executor: its risk limits, unwind policy and paper account
        limits=RiskLimits.from_config(cfg.risk), unwind=cfg.execution.unwind,
        balances=replay_balances(cfg), paper_latency_ns=int(cfg.execution.paper_latency_ms * 1_000_000))


def replay_balances(cfg) -> list[str] | None:
    """The paper account a replay trades from: ``execution.paper_balances``, else the simulator's
    account; None (balances not modelled) when neither says (Binance history, no balances given)."""
    if cfg.execution.paper_balances:
        return list(cfg.execution.paper_balances)
    if cfg.venue.kind == "sim" and cfg.sim.accounts:
        return list(cfg.sim.accounts[0].balances)
    return None


def resolve_universe(cfg, exchange_info: dict | str | pathlib.Path | None = None,
                     source_run: str | None = None) -> Universe:
    doc = None
    if isinstance(exchange_info, dict):
        doc = exchange_info
    elif exchange_info:
        doc = json.loads(pathlib.Path(exchange_info).expanduser().read_text())
    elif not cfg.market.exchange_info_file:
        if source_run:
            from ctrader.config.loader import expand_path

            path = expand_path(cfg, cfg.run.data_dir) / "runs" / source_run / "exchange_info.json"
            if path.is_file():
                doc = json.loads(path.read_text())
        if doc is None and cfg.venue.kind == "sim":
            from ctrader.sim.universe import build_universe

            doc = build_universe(cfg.sim).exchange_info
    return load_universe(cfg, doc)


def load_strategy_model(cfg, name: str | None = None):
    """The ONNX model the strategy scores with (None for 'none'); with several strategies, the
    model of the one it was trained for (``strategy.several.load_model_for``)."""
    from ctrader.strategy.several import load_model_for

    return load_model_for(cfg, name)


def _models_label(model) -> str:
    """A run's model(s) for its metadata: "name:version", one per scored strategy, or "none"."""
    if model is None:
        return "none"
    if isinstance(model, Mapping):
        return describe_models(model)
    return f"{model.meta.name}:{model.meta.version}"


def make_strategy(cfg, universe, model=None, run_tag: str = "", first_group: int = 1):
    """The configured strategy (or set of them), warmed up."""
    from ctrader.strategy.several import decision_source

    engine = decision_source(cfg, universe, model, run_tag=run_tag, first_group=first_group)
    engine.warmup()
    return engine


def replay_chunks(cfg, universe, chunks, *, model=None, options: ReplayOptions | None = None,
                  on_batch=None, progress=None, run_tag: str = "", first_group: int = 1) -> ReplayResult:
    """Replay MD_EVENT arrays already in memory (or any iterator of them) with the configured strategy."""
    strategy = make_strategy(cfg, universe, model, run_tag, first_group)
    engine = ReplayEngine(universe, strategy, options or options_from_config(cfg), on_batch=on_batch)
    return engine.run(chunks, progress)


def replay_store(cfg, store, start, end, *, symbols: list[str] | None = None, universe: Universe | None = None,
                 model: Any = "config", options: ReplayOptions | None = None, save: bool = True,
                 run_id: str | None = None, kind: str = "replay", label: str = "",
                 params: dict | None = None, source_run: str | None = None, first_group: int = 1,
                 session_timing: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> ReplayRun:
    """Replay ``[start, end)`` of the store's market data; results saved under a new run id.

    ``model``: "config" (``[model] name`` and ``[model] per_strategy``), a registry name (instead
    of ``[model] name``), "none" (unscored), an OnnxModel, or {strategy: OnnxModel or None}.
    """
    start_ns, end_ns = to_ns(start), to_ns(end)
    universe = universe or resolve_universe(cfg, source_run=source_run)
    if isinstance(model, str):          # each strategy's model ([model] name and per_strategy)
        model = load_models(cfg, None if model == "config" else model)
    names = [s.name for s in universe.symbols if not symbols or s.name in symbols]
    ids = {s.name: s.id for s in universe.symbols}
    run_id = run_id or new_run_id(kind)
    results = ReplayResults(store) if save else None
    sink = results.sink(run_id, universe) if results else None
    meta = RunMeta(kind=kind, label=label, strategy="+".join(strategy_names(cfg)), config_hash=config_hash(cfg),
                   code_version=code_version(),
                   model_version=_models_label(model),
                   data_start_ns=start_ns, data_end_ns=end_ns, symbols=names, params=dict(params or {}),
                   config=config_dict(cfg))
    if session_timing and source_run:
        from ctrader.replay.fidelity import SessionTiming

        options = options or options_from_config(cfg)
        from ctrader.config.loader import expand_path

        options.session_timing = SessionTiming.from_store(
            store, source_run, int(cfg.execution.paper_latency_ms * 1e6),
            run_dir=expand_path(cfg, cfg.run.data_dir) / "runs" / source_run)
    t0 = time.perf_counter()
    chunks = store.read_md(names, start_ns, end_ns, chunk_rows=cfg.replay.chunk_rows, symbol_ids=ids)
    result = replay_chunks(cfg, universe, chunks, model=model, options=options,
                           on_batch=sink.on_batch if sink else None, progress=progress,
                           run_tag=source_run or "", first_group=first_group)
    meta.wall_s = time.perf_counter() - t0
    result.summary["wall_s"] = meta.wall_s
    result.summary["events_per_s"] = result.summary["events"] / meta.wall_s if meta.wall_s > 0 else None
    result.summary["run_id"] = run_id
    result.summary["model_version"] = meta.model_version
    result.summary["config_hash"] = meta.config_hash
    if results is not None:
        sink.close()
        results.save_run(run_id, meta, result, universe)
    return ReplayRun(run_id, result, meta, universe)


def data_range(store, symbols: list[str] | None = None, start_ns: int | None = None,
               end_ns: int | None = None) -> tuple[int, int]:
    """[first, last + 1 ns) of the recorded market data (of ``symbols``, inside [start_ns,
    end_ns), when given); ValueError when there is none."""
    conditions = []
    if symbols:
        names = ", ".join("'" + s.replace("'", "") + "'" for s in symbols)
        conditions.append(f"symbol IN ({names})")
    if start_ns is not None:
        conditions.append(f"recv_ts >= fromUnixTimestamp64Nano(toInt64({int(start_ns)}), 'UTC')")
    if end_ns is not None:
        conditions.append(f"recv_ts < fromUnixTimestamp64Nano(toInt64({int(end_ns)}), 'UTC')")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    lo, hi, n = store.client.query(
        f"SELECT min(toUnixTimestamp64Nano(recv_ts)), max(toUnixTimestamp64Nano(recv_ts)), count() "
        f"FROM {store.db}.md_book {where}").result_rows[0][:3]
    if not n:
        raise ValueError(f"no market data in {store.db}.md_book" + (f" for {', '.join(symbols)}" if symbols else "")
                         + (" in that range" if start_ns is not None or end_ns is not None else ""))
    return int(lo), int(hi) + 1
