"""The report of a recorded live or paper session: what it really did, read from the store.

Not a re-simulation: the session's own executions (every fill with its price, quantity and fee),
its orders, its candidate journal and the market data it recorded, as the recorder stored them.

    report = load_session(store, "20260101-120000-4242", valuation_asset="USDT")
    print(format_summary(report.summary))
    write_html(report, "report.html")          # self-contained: plotly.js inlined once, no CDN

Money is exact: every fill's price, quantity and fee become integer units of 1e-8 (the store
keeps the venue's 8-decimal values as floats, which round-trip), the quote amount is
``quote_amount(price, qty)`` as the executor computes it, and the net position change of each
asset is a sum of integers. PnL values those positions at the session's recorded mids (at its
end for the headline figure, along the way for the curve); where the session recorded no market
data for a route, at the last fill price of its symbols.
"""
from __future__ import annotations

import html
import json
import math
import pathlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from ctrader.core.extras import require
from ctrader.core.records import STRATEGY_IDS, RefusalReason
from ctrader.replay.report import CSS, plotly_sections, triangle_contribution_figure
from ctrader.replay.summary import EDGE_BINS_BPS
from ctrader.venue.decimals import ONE, format_units, quote_amount, to_step

FILL_KINDS = ("fill", "partial_fill")
_RUN_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")
CURVE_POINTS = 1500          # PnL curve resolution: mids sampled at duration / this (>= 1 s)
TABLE_ROWS = 1000            # fills / groups shown in the HTML tables (all are in the JSON)


class SessionNotFound(KeyError):
    """No recorded session with that run id."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Fill:
    ts_ns: int
    symbol: str
    side: str                  # buy | sell
    qty: int                   # units of 1e-8
    px: int
    quote: int
    fee: int
    fee_asset: str
    group_id: int
    leg: int
    is_maker: bool
    client_order_id: str
    latency_ns: int | None     # the order's tick-to-order (cause event -> order sent)


@dataclass
class SessionReport:
    summary: dict
    fills: list[Fill]
    groups: list[dict]
    curve_ts_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    curve_pnl: np.ndarray = field(default_factory=lambda: np.zeros(0))
    curve_values: dict[str, np.ndarray] = field(default_factory=dict)   # asset -> value in valuation asset
    latencies_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    edge_hist: dict[str, list[int]] = field(default_factory=dict)       # taken / skipped, EDGE_BINS_BPS


# --- symbols, assets and valuation ---------------------------------------------------------------

def split_symbol(symbol: str, assets: list[str]) -> tuple[str, str] | None:
    """(base, quote) of ``symbol`` from the run's asset list; the longest quote wins a tie
    (``BTCFDUSD`` is BTC/FDUSD, not BTCF/DUSD)."""
    splits = [(symbol[:-len(q)], q) for q in assets if symbol.endswith(q) and symbol[:-len(q)] in assets]
    return max(splits, key=lambda s: len(s[1])) if splits else None


def valuation_routes(pairs: dict[tuple[str, str], str], assets, valuation: str) -> dict[str, list[tuple[str, bool]]]:
    """asset -> [(symbol, inverted), ...] whose mids multiply to its price in ``valuation``:
    directly (ETHUSDT), inverted (USDTTRY) or through one bridge asset (SOL -> BTC -> USDT), as the
    executor's ``Valuer`` does. Assets with no route are left out (not valued)."""
    def leg(a: str, b: str) -> tuple[str, bool] | None:
        if (a, b) in pairs:
            return pairs[(a, b)], False
        if (b, a) in pairs:
            return pairs[(b, a)], True
        return None

    routes: dict[str, list[tuple[str, bool]]] = {}
    for a in assets:
        if a == valuation:
            routes[a] = []
            continue
        direct = leg(a, valuation)
        if direct:
            routes[a] = [direct]
            continue
        for bridge in sorted(assets):
            first, second = leg(a, bridge), leg(bridge, valuation)
            if first and second and bridge != a:
                routes[a] = [first, second]
                break
    return routes


def _price(route: list[tuple[str, bool]], mids: dict[str, float]) -> float:
    value = 1.0
    for symbol, inverted in route:
        m = mids.get(symbol, math.nan)
        value *= (1.0 / m) if inverted else m
    return value


# --- reading ---------------------------------------------------------------------------------------

def _units(x: float) -> int:
    return to_step(x, 1, "nearest")


def _checked(run_id: str) -> str:
    if not _RUN_ID_RE.match(run_id):
        raise SessionNotFound(f"not a run id: {run_id!r}")
    return run_id


def _q(name: str) -> str:
    """A run id or symbol as a SQL literal (checked: never quotes or spaces)."""
    return f"'{_checked(name)}'"


def _rows(store, sql: str) -> list[tuple]:
    return store.client.query(sql).result_rows


def _executions(store, run_id: str) -> list[dict]:
    cols = ("symbol", "ts_ns", "group_id", "client_order_id", "kind", "side", "leg", "is_maker", "reject_code",
            "last_px", "last_qty", "fee", "fee_asset", "cause_recv_mono_ns", "sent_mono_ns")
    rows = _rows(store, f"SELECT symbol, toUnixTimestamp64Nano(recv_ts), group_id, client_order_id, toString(kind), "
                        f"toString(side), leg, is_maker, reject_code, last_px, last_qty, fee, fee_asset, "
                        f"cause_recv_mono_ns, sent_mono_ns FROM {store.db}.executions WHERE run_id = {_q(run_id)} "
                        f"ORDER BY recv_ts, exchange_order_id, trade_id")
    return [dict(zip(cols, r)) for r in rows]


def _mids(store, run_id: str, symbols: list[str], step_ns: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """symbol -> (slot start times, last mid in each slot) from the session's recorded books."""
    if not symbols:
        return {}
    names = ", ".join(_q(s) for s in symbols)
    rows = _rows(store, f"SELECT symbol, intDiv(toUnixTimestamp64Nano(recv_ts), {int(step_ns)}) AS slot, "
                        f"argMax((bid_px[1] + ask_px[1]) / 2, recv_ts) FROM {store.db}.md_book "
                        f"WHERE run_id = {_q(run_id)} AND symbol IN ({names}) AND notEmpty(bid_px) "
                        f"AND notEmpty(ask_px) GROUP BY symbol, slot ORDER BY symbol, slot")
    out: dict[str, list] = defaultdict(lambda: ([], []))
    for symbol, slot, mid in rows:
        out[symbol][0].append(int(slot) * step_ns)
        out[symbol][1].append(float(mid))
    return {s: (np.array(t, np.int64), np.array(m, np.float64)) for s, (t, m) in out.items()}


def _candidates(store, run_id: str) -> tuple[dict[str, int], dict[int, dict], dict[str, list[int]]]:
    """(count per decision, taken group -> triangle and expectation, edge histograms)."""
    q = _q(run_id)
    decisions = {d: int(n) for d, n in _rows(
        store, f"SELECT toString(decision), count() FROM {store.db}.candidates WHERE run_id = {q} GROUP BY decision "
               f"ORDER BY decision")}
    taken = {}
    for gid, tri, syms, sides, exp_pnl, edge in _rows(
            store, f"SELECT group_id, triangle_id, leg_symbol, leg_side, expected_pnl, edge FROM {store.db}.candidates "
                   f"WHERE run_id = {q} AND decision = 'taken' AND group_id > 0"):
        taken[int(gid)] = {"triangle_id": int(tri), "legs": list(zip(syms, sides)), "expected_pnl": float(exp_pnl),
                           "edge_bps": float(edge) * 1e4}
    n_bins = len(EDGE_BINS_BPS) - 1
    lo, width = float(EDGE_BINS_BPS[0]), float(EDGE_BINS_BPS[1] - EDGE_BINS_BPS[0])
    hist = {"taken": [0] * n_bins, "skipped": [0] * n_bins}
    for is_taken, b, n in _rows(
            store, f"SELECT decision = 'taken', greatest(0, least({n_bins - 1}, toInt32(floor((edge * 10000 - ({lo})) "
                   f"/ {width})))) AS bin, count() FROM {store.db}.candidates WHERE run_id = {q} GROUP BY 1, bin"):
        hist["taken" if is_taken else "skipped"][int(b)] += int(n)
    return decisions, taken, hist


def _strategy_of_groups(store, run_id: str) -> dict[int, str]:
    """group id -> the name of the strategy whose intents made it (the orders table)."""
    names = {sid: name for name, sid in STRATEGY_IDS.items()}
    return {int(g): names.get(int(sid), str(int(sid))) for g, sid in _rows(
        store, f"SELECT group_id, any(strategy_id) FROM {store.db}.orders WHERE run_id = {_q(run_id)} "
               f"GROUP BY group_id")}


def _by_strategy(strategy_of: dict[int, str], fills: list[Fill], group_flows, prices: dict[str, float],
                 execs: list[dict]) -> dict[str, dict]:
    """Each strategy's fills, fees, orders, refusals and PnL (its groups' flows at the end prices),
    with an unwind counted for the strategy whose group it closed."""
    out: dict[str, dict] = {}

    def entry(gid: int) -> dict:
        name = strategy_of.get(gid, "none")
        return out.setdefault(name, {"orders_sent": 0, "fills": 0, "refusals": 0, "fees": defaultdict(int),
                                     "flows": defaultdict(int)})
    seen_sent = set()
    for e in execs:
        gid = int(e["group_id"])
        if e["sent_mono_ns"] and e["client_order_id"] not in seen_sent:
            seen_sent.add(e["client_order_id"])
            entry(gid)["orders_sent"] += 1
        elif e["kind"] == "refused":
            entry(gid)["refusals"] += 1
    for f in fills:
        row = entry(f.group_id)
        row["fills"] += 1
        row["fees"][f.fee_asset] += f.fee
    for gid, flows in group_flows.items():
        row = entry(gid)
        for asset, units in flows.items():
            row["flows"][asset] += units
    for row in out.values():
        flows = row.pop("flows")
        row["pnl"] = float(sum(u / ONE * prices[a] for a, u in flows.items()
                               if u and a in prices and not math.isnan(prices[a])))
        row["fees"] = {a: format_units(u) for a, u in sorted(row["fees"].items()) if u}
    return dict(sorted(out.items()))


def _md_counts(store, run_id: str) -> dict[str, int]:
    q = _q(run_id)
    return {t: int(_rows(store, f"SELECT count() FROM {store.db}.{t} WHERE run_id = {q}")[0][0])
            for t in ("md_book", "md_trade")}


def _triangle_name(legs: list[tuple[str, int]], pairs_of: dict[str, tuple[str, str]]) -> str:
    """``USDT->BTC->ETH->USDT (BTCUSDT:BUY, ETHBTC:BUY, ETHUSDT:SELL)`` from the legs, as replay names it."""
    sides = {1: "BUY", 2: "SELL"}
    path = []
    for symbol, side in legs:
        base, quote = pairs_of.get(symbol, ("?", "?"))
        paid, got = (quote, base) if side == 1 else (base, quote)
        if not path:
            path.append(paid)
        path.append(got)
    return f"{'->'.join(path)} ({', '.join(f'{s}:{sides.get(int(d), d)}' for s, d in legs)})"


# --- sessions in the store -------------------------------------------------------------------------

def list_sessions(store, limit: int = 50) -> list[dict]:
    """Recorded sessions (``start`` / ``record``; not replays), newest first: when, mode, venue,
    market data recorded, orders sent and fills. A session without an end time is still running
    or ended without its recorder's last row (a crash)."""
    rows = _rows(store, f"""
        SELECT r.run_id, r.started_ts, r.ended_ts, r.mode, r.venue, length(r.symbols), r.counters,
               ifNull(e.orders, 0), ifNull(e.fills, 0)
        FROM (SELECT * FROM {store.db}.runs FINAL WHERE venue != 'replay') AS r
        LEFT JOIN (SELECT toString(run_id) AS run_id, uniqExactIf(client_order_id, sent_mono_ns > 0) AS orders,
                          countIf(kind IN ('fill', 'partial_fill') AND last_qty > 0) AS fills
                   FROM {store.db}.executions
                   WHERE run_id IN (SELECT run_id FROM {store.db}.runs FINAL WHERE venue != 'replay')
                   GROUP BY run_id) AS e ON e.run_id = r.run_id
        ORDER BY r.started_ts DESC, r.run_id DESC LIMIT {int(limit)}""")
    out = []
    for run_id, started, ended, mode, venue, n_symbols, counters, orders, fills in rows:
        c = json.loads(counters or "{}")
        out.append({"run_id": run_id, "kind": "session", "mode": mode, "venue": venue, "started": started,
                     "ended": ended, "duration_s": (ended - started).total_seconds() if ended else None,
                     "symbols": int(n_symbols), "md_rows": int(c.get("rows_md_book", 0)) + int(c.get("rows_md_trade", 0)),
                     "orders": int(orders), "fills": int(fills)})
    return out


# --- the report ------------------------------------------------------------------------------------

def load_session(store, run_id: str, valuation_asset: str = "USDT", executor_stats: dict | None = None) -> SessionReport:
    """Everything the report shows, from the store. ``executor_stats``: the executor's own final
    figures (``{run_dir}/executor.stats.json``) when the run directory is at hand; the report
    sets them beside its own as a cross-check."""
    info = store.run_info(_checked(run_id))
    if info is None:
        raise SessionNotFound(f"no session {run_id} in the store {store.db} (ctrader runs list shows them)")
    if info["venue"] == "replay":
        raise SessionNotFound(f"{run_id} is a replay run, not a session: ctrader replay --report makes its report")
    assets = list(info["assets"])
    symbols = list(info["symbols"])
    execs = _executions(store, run_id)
    for e in execs:                                   # symbols and assets the run row did not list
        if e["symbol"] not in symbols:
            symbols.append(e["symbol"])
    pairs_of = {s: p for s in symbols if (p := split_symbol(s, assets)) is not None}
    pairs = {p: s for s, p in pairs_of.items()}

    # orders: each order's first report carries its send time and the market event that caused it
    latency: dict[str, int] = {}          # orders with a cause (unwinds have none)
    sent, acked, canceled = set(), set(), 0
    rejects: dict[str, int] = defaultdict(int)
    refusals: dict[str, int] = defaultdict(int)
    for e in execs:
        coid = e["client_order_id"]
        if e["sent_mono_ns"]:
            sent.add(coid)
            if coid not in latency and e["cause_recv_mono_ns"]:
                latency[coid] = int(e["sent_mono_ns"]) - int(e["cause_recv_mono_ns"])
        if e["kind"] == "ack":
            acked.add(coid)
        elif e["kind"] == "canceled":
            canceled += 1
        elif e["kind"] == "rejected":
            rejects[str(e["reject_code"])] += 1
        elif e["kind"] == "refused":
            refusals[_refusal(e["reject_code"])] += 1

    fills: list[Fill] = []
    for e in execs:
        if e["kind"] not in FILL_KINDS or not e["last_qty"]:
            continue
        qty, px = _units(e["last_qty"]), _units(e["last_px"])
        fills.append(Fill(int(e["ts_ns"]), e["symbol"], e["side"], qty, px, quote_amount(px, qty), _units(e["fee"]),
                          e["fee_asset"], int(e["group_id"]), int(e["leg"]), bool(e["is_maker"]),
                          e["client_order_id"], latency.get(e["client_order_id"])))

    # exact position changes, per asset and per group
    flows: dict[str, int] = defaultdict(int)
    fees: dict[str, int] = defaultdict(int)
    group_flows: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    unknown_symbols = set()
    for f in fills:
        pair = pairs_of.get(f.symbol)
        if pair is None:
            unknown_symbols.add(f.symbol)
            continue
        for asset, units in _deltas(f, pair).items():
            flows[asset] += units
            group_flows[f.group_id][asset] += units
        fees[f.fee_asset] += f.fee

    # prices: the recorded mids on each needed route, sampled along the session
    started_ns = _ns(info["started"])
    ended_ns = _ns(info["ended"]) if info["ended"] else (fills[-1].ts_ns if fills else started_ns)
    ended_ns = max(ended_ns, fills[-1].ts_ns if fills else ended_ns)
    routes = valuation_routes(pairs, set(assets) | set(flows), valuation_asset)
    needed = sorted({s for a in flows for s, _ in routes.get(a, [])})
    step_ns = max(1_000_000_000, (ended_ns - started_ns) // CURVE_POINTS)
    mids = _mids(store, run_id, needed, step_ns)
    last_fill_px = {f.symbol: f.px / ONE for f in fills}
    end_mids = {s: float(mids[s][1][-1]) if s in mids else last_fill_px.get(s, math.nan) for s in needed}
    prices = {a: _price(routes[a], end_mids) for a in flows if a in routes}
    by_asset = {a: units / ONE * prices[a] for a, units in flows.items() if a in prices and not math.isnan(prices[a])}
    not_valued = sorted(a for a, units in flows.items() if units and a not in by_asset)
    pnl = float(sum(by_asset.values()))
    fallback = sorted(s for s in needed if s not in mids)

    decisions, taken, edge_hist = _candidates(store, run_id)
    groups = _groups(group_flows, fills, taken, prices, pairs_of)
    lat = np.array(sorted(latency.values()), np.int64)
    complete = sum(1 for g in groups if g["complete"])
    triangles = _triangles(groups)
    summary = {
        "run_id": run_id, "mode": info["mode"], "venue": info["venue"],
        "started": _iso(started_ns), "ended": _iso(ended_ns) if info["ended"] else None,
        "duration_s": round((ended_ns - started_ns) / 1e9, 3),
        "symbols": len(info["symbols"]), "md_rows": _md_counts(store, run_id),
        "candidates": sum(decisions.values()), "decisions": decisions,
        "groups": len(groups), "groups_complete": complete, "groups_broken": len(groups) - complete,
        "orders_sent": len(sent), "orders_acked": len(acked), "cancels": canceled,
        "rejects": dict(rejects), "refusals": dict(refusals),
        "fills": len(fills), "fills_maker": sum(f.is_maker for f in fills),
        "positions": {a: format_units(u) if u >= 0 else "-" + format_units(-u) for a, u in sorted(flows.items()) if u},
        "fees": {a: format_units(u) for a, u in sorted(fees.items()) if u},
        "valuation_asset": valuation_asset, "pnl": pnl, "pnl_by_asset": dict(sorted(by_asset.items())),
        "not_valued": not_valued, "valued_at_fill_prices": fallback, "unknown_symbols": sorted(unknown_symbols),
        "expected_pnl_taken": float(sum(t["expected_pnl"] for t in taken.values())),
        "tick_to_order_us": _percentiles(lat / 1e3),
        "triangles": triangles,
        "by_strategy": _by_strategy(_strategy_of_groups(store, run_id), fills, group_flows, prices, execs),
    }
    if executor_stats:
        summary["executor"] = _cross_check(executor_stats, flows)
    report = SessionReport(summary, fills, groups, latencies_ns=lat, edge_hist=edge_hist)
    _curve(report, flows_over_time(fills, pairs_of), routes, mids, last_fill_px, started_ns, ended_ns, step_ns)
    return report


def _ns(t) -> int:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return int(t.timestamp() * 1e6) * 1000
    return int(t)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _refusal(code: int) -> str:
    try:
        return RefusalReason(int(code)).name
    except ValueError:
        return str(code)


def _deltas(f: Fill, pair: tuple[str, str]) -> dict[str, int]:
    """What one fill changed, in units: the base and quote legs, the commission taken from the
    asset it was charged in (as ``execution.accounting.Accounting.on_fill`` counts it)."""
    base, quote = pair
    sign = 1 if f.side == "buy" else -1
    out = defaultdict(int)
    out[base] += sign * f.qty
    out[quote] -= sign * f.quote
    if f.fee:
        out[f.fee_asset] -= f.fee
    return out


def flows_over_time(fills: list[Fill], pairs_of: dict[str, tuple[str, str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """asset -> (fill times, position after each of its fills), in units."""
    times: dict[str, list[int]] = defaultdict(list)
    steps: dict[str, list[int]] = defaultdict(list)
    for f in fills:
        pair = pairs_of.get(f.symbol)
        if pair is None:
            continue
        for asset, units in _deltas(f, pair).items():
            times[asset].append(f.ts_ns)
            steps[asset].append(units)
    return {a: (np.array(times[a], np.int64), np.cumsum(np.array(steps[a], dtype=object)).astype(np.int64))
            for a in times}


def _curve(report: SessionReport, flows_t, routes, mids, last_fill_px, start_ns: int, end_ns: int,
           step_ns: int) -> None:
    """PnL along the session: positions at each sample time valued at the mids of that time."""
    grid = np.arange(start_ns - start_ns % step_ns, end_ns + step_ns, step_ns, dtype=np.int64)
    if not flows_t or len(grid) == 0:
        return

    def series(symbol: str) -> np.ndarray:
        if symbol not in mids:
            return np.full(len(grid), last_fill_px.get(symbol, math.nan))
        t, m = mids[symbol]
        idx = np.searchsorted(t, grid, side="right") - 1
        return m[np.maximum(idx, 0)]                 # before the first sample: the first mid

    total = np.zeros(len(grid))
    for asset, (t, pos) in flows_t.items():
        if asset not in routes:
            continue
        price = np.ones(len(grid))
        for symbol, inverted in routes[asset]:
            s = series(symbol)
            price *= (1.0 / s) if inverted else s
        idx = np.searchsorted(t, grid, side="right") - 1
        held = np.where(idx >= 0, pos[np.maximum(idx, 0)], 0) / ONE
        value = np.nan_to_num(held * price)
        report.curve_values[asset] = value
        total += value
    report.curve_ts_ns, report.curve_pnl = grid, total


def _groups(group_flows, fills: list[Fill], taken: dict[int, dict], prices: dict[str, float],
            pairs_of) -> list[dict]:
    legs: dict[int, set[int]] = defaultdict(set)
    first_ts: dict[int, int] = {}
    lat: dict[int, int] = {}
    for f in fills:
        legs[f.group_id].add(f.leg)
        first_ts.setdefault(f.group_id, f.ts_ns)
        if f.leg == 0 and f.latency_ns is not None:
            lat.setdefault(f.group_id, f.latency_ns)
    out = []
    for gid in sorted(set(group_flows) | set(taken), key=lambda g: first_ts.get(g, 0)):
        t = taken.get(gid, {})
        n_legs = len(t.get("legs", ())) or 3
        value = sum(u / ONE * prices[a] for a, u in group_flows.get(gid, {}).items()
                    if u and a in prices and not math.isnan(prices[a]))
        out.append({"group_id": gid, "time": _iso(first_ts[gid]) if gid in first_ts else "-",
                    "triangle": _triangle_name(t["legs"], pairs_of) if t else "-",
                    "legs_filled": len({leg for leg in legs.get(gid, ()) if leg < n_legs}), "n_legs": n_legs,
                    "complete": legs.get(gid, set()) >= set(range(n_legs)),
                    "unwound": any(leg >= n_legs for leg in legs.get(gid, ())),
                    "pnl": value, "expected_pnl": t.get("expected_pnl"), "edge_bps": t.get("edge_bps"),
                    "tick_to_order_us": lat[gid] / 1e3 if gid in lat else None})
    return out


def _triangles(groups: list[dict]) -> list[dict]:
    by: dict[str, dict] = {}
    for g in groups:
        e = by.setdefault(g["triangle"], {"name": g["triangle"], "groups": 0, "pnl": 0.0, "expected_pnl": 0.0})
        e["groups"] += 1
        e["pnl"] += g["pnl"]
        e["expected_pnl"] += g["expected_pnl"] or 0.0
    return sorted(by.values(), key=lambda e: -abs(e["pnl"]))


def _percentiles(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"n": len(values), "p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(values.max())}


def _cross_check(stats: dict, flows: dict[str, int]) -> dict:
    """The executor's own figures beside the store's: equal positions mean every fill reached
    the store (the recorder lost nothing) and both counted it the same way."""
    theirs = {a: _units(v) if v >= 0 else -_units(-v) for a, v in (stats.get("positions") or {}).items()}
    ours = {a: u for a, u in flows.items() if u}
    differ = sorted(a for a in set(theirs) | set(ours) if theirs.get(a, 0) != ours.get(a, 0))
    return {"pnl": stats.get("pnl"), "fills": stats.get("fills"), "orders_sent": stats.get("orders_sent"),
            "positions_match": not differ, "positions_differ": differ}


# --- output ----------------------------------------------------------------------------------------

def _f(v, fmt: str = ".4f") -> str:
    return "-" if v is None else format(v, fmt)


def summary_rows(s: dict) -> list[tuple[str, str]]:
    lat = s["tick_to_order_us"]
    va = s["valuation_asset"]
    rows = [
        ("session", f"{s['run_id']}  ({s['mode']} on {s['venue']})"),
        ("time", f"{s['started']} .. {s['ended'] or 'did not record its end (still running, or it crashed)'}"
                 f"  ({s['duration_s']:,.0f} s)"),
        ("market data", f"{s['symbols']} symbols, {s['md_rows']['md_book']:,} book and {s['md_rows']['md_trade']:,} "
                        f"trade rows recorded"),
        ("candidates", f"{s['candidates']:,}  " + ", ".join(f"{k} {v:,}" for k, v in s["decisions"].items())),
        ("groups", f"{s['groups']:,} traded: {s['groups_complete']:,} complete, {s['groups_broken']:,} broken"),
        ("orders", f"{s['orders_sent']:,} sent, {s['orders_acked']:,} acknowledged, {s['cancels']:,} canceled/expired"
                   + (f"; rejected by the venue: {_counts(s['rejects'])}" if s["rejects"] else "")
                   + (f"; refused by the risk gate: {_counts(s['refusals'])}" if s["refusals"] else "")),
        ("fills", f"{s['fills']:,} ({s['fills_maker']:,} as maker)"),
        ("fees", ", ".join(f"{v} {a}" for a, v in s["fees"].items()) or "-"),
        ("positions", ", ".join(f"{v} {a}" for a, v in s["positions"].items()) or "flat"),
        ("PnL", f"{s['pnl']:,.4f} {va} at the session's last mids (expected when taken: "
                f"{s['expected_pnl_taken']:,.4f})"
                + (f"; not valued (no route to {va}): {', '.join(s['not_valued'])}" if s["not_valued"] else "")
                + (f"; at last fill prices (no md recorded): {', '.join(s['valued_at_fill_prices'])}"
                   if s["valued_at_fill_prices"] else "")),
        ("tick->order", f"p50 {_f(lat['p50'], '.0f')} us, p90 {_f(lat['p90'], '.0f')}, p99 {_f(lat['p99'], '.0f')}, "
                        f"max {_f(lat['max'], '.0f')} ({lat['n']} orders)"),
    ]
    if len(s.get("by_strategy") or {}) > 1:
        rows.append(("by strategy", "; ".join(
            f"{name}: {r['orders_sent']:,} orders, {r['fills']:,} fills, {r['refusals']:,} refused, "
            f"PnL {r['pnl']:,.4f} {va}" for name, r in s["by_strategy"].items())))
    ex = s.get("executor")
    if ex:
        rows.append(("executor said", f"PnL {_f(ex['pnl'])} {va}, {ex['fills']} fills, {ex['orders_sent']} orders; "
                                      + ("positions match the store" if ex["positions_match"]
                                         else f"positions DIFFER from the store in {', '.join(ex['positions_differ'])}")))
    return rows


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))


def format_summary(s: dict) -> str:
    rows = summary_rows(s)
    w = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(w)}  {v}" for k, v in rows]
    if s["triangles"]:
        lines.append("triangles (PnL):")
        for t in s["triangles"][:5]:
            lines.append(f"  {t['pnl']:+12.4f}  {t['groups']:4d} groups  {t['name']}")
    return "\n".join(lines)


def _figures(report: SessionReport) -> list[tuple[str, object]]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = report.summary
    va = s["valuation_asset"]
    figs = []
    x = [datetime.fromtimestamp(int(t) / 1e9, tz=UTC).isoformat() for t in report.curve_ts_ns]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=(f"PnL ({va}), positions valued at the recorded mids",
                                        f"position by asset (value in {va})"))
    fig.add_trace(go.Scatter(x=x, y=report.curve_pnl.tolist(), name="PnL", mode="lines"), 1, 1)
    fill_x = [datetime.fromtimestamp(f.ts_ns / 1e9, tz=UTC).isoformat() for f in report.fills]
    if len(report.curve_ts_ns) and report.fills:
        at = np.searchsorted(report.curve_ts_ns, [f.ts_ns for f in report.fills], side="right") - 1
        fig.add_trace(go.Scatter(x=fill_x, y=report.curve_pnl[np.maximum(at, 0)].tolist(), name="fills",
                                 mode="markers", marker={"size": 5},
                                 text=[f"{f.symbol} {f.side} {format_units(f.qty)} @ {format_units(f.px)}"
                                       for f in report.fills]), 1, 1)
    for asset, values in sorted(report.curve_values.items()):
        fig.add_trace(go.Scatter(x=x, y=values.tolist(), name=asset, mode="lines"), 2, 1)
    fig.update_layout(height=600)
    figs.append(("PnL and positions", fig))

    fig = go.Figure()
    lat = report.latencies_ns / 1e3
    if len(lat):
        fig.add_trace(go.Histogram(x=lat.tolist(), nbinsx=80, name="orders"))
    fig.update_layout(xaxis_title="tick -> order sent (us)", yaxis_title="orders", height=360)
    figs.append(("Tick-to-order latency", fig))

    centers = ((EDGE_BINS_BPS[:-1] + EDGE_BINS_BPS[1:]) / 2).tolist()
    taken, skipped = report.edge_hist.get("taken", []), report.edge_hist.get("skipped", [])
    fig = go.Figure()
    if taken:
        nz = np.flatnonzero(np.asarray(taken) + np.asarray(skipped))
        lo, hi = (nz[0], nz[-1] + 1) if len(nz) else (0, len(centers))
        fig.add_trace(go.Bar(x=centers[lo:hi], y=skipped[lo:hi], name="skipped", opacity=0.6))
        fig.add_trace(go.Bar(x=centers[lo:hi], y=taken[lo:hi], name="taken", opacity=0.8))
    fig.update_layout(barmode="overlay", xaxis_title="net edge after fees (bps)", yaxis_title="candidates",
                      height=360)
    figs.append(("Edge distribution of candidates", fig))

    figs.append(("Per-triangle contribution", triangle_contribution_figure(s["triangles"], va)))
    return figs


def _table(headers: list[str], rows: list[list[str]], total: int) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    more = f"<p>first {len(rows):,} of {total:,} (all of them: --json)</p>" if total > len(rows) else ""
    return f"<table class='rows'><tr>{head}</tr>{body}</table>{more}"


def _fills_table(report: SessionReport) -> str:
    rows = [[_iso(f.ts_ns), f"{f.group_id:x}", str(f.leg), f.symbol, f.side, format_units(f.qty), format_units(f.px),
             format_units(f.quote), f"{format_units(f.fee)} {f.fee_asset}", "maker" if f.is_maker else "taker",
             _f(f.latency_ns / 1e3 if f.latency_ns is not None else None, ".0f")]
            for f in report.fills[:TABLE_ROWS]]
    return _table(["time (UTC)", "group", "leg", "symbol", "side", "qty", "price", "quote", "fee", "", "tick->order us"],
                  rows, len(report.fills))


def _groups_table(report: SessionReport) -> str:
    rows = [[g["time"], f"{g['group_id']:x}", g["triangle"], f"{g['legs_filled']}/{g['n_legs']}"
             + (" + unwind" if g["unwound"] else ""), _f(g["pnl"]), _f(g["expected_pnl"]), _f(g["edge_bps"], ".2f"),
             _f(g["tick_to_order_us"], ".0f")] for g in report.groups[:TABLE_ROWS]]
    return _table(["first fill (UTC)", "group", "triangle", "legs filled", "PnL", "expected", "edge bps",
                   "tick->order us"], rows, len(report.groups))


def to_json(report: SessionReport) -> dict:
    """The summary with every fill and group (``ctrader report --json``)."""
    return {**report.summary,
            "fill_rows": [{"ts": _iso(f.ts_ns), "symbol": f.symbol, "side": f.side, "qty": format_units(f.qty),
                           "price": format_units(f.px), "quote": format_units(f.quote), "fee": format_units(f.fee),
                           "fee_asset": f.fee_asset, "group_id": f.group_id, "leg": f.leg, "maker": f.is_maker,
                           "client_order_id": f.client_order_id,
                           "tick_to_order_us": None if f.latency_ns is None else f.latency_ns / 1e3}
                          for f in report.fills],
            "group_rows": report.groups}


def write_html(report: SessionReport, path: str | pathlib.Path, title: str | None = None) -> pathlib.Path:
    """Write the report; plotly.js is inlined once, so the page opens with no network."""
    require("report", "plotly")
    s = report.summary
    title = title or f"ctrader session {s['run_id']}"
    path = pathlib.Path(path)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><table>"]
    for k, v in summary_rows(s):
        parts.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>")
    parts.append("</table>")
    parts += plotly_sections(_figures(report))
    parts.append(f"<h2>Groups</h2>{_groups_table(report)}")
    parts.append(f"<h2>Fills</h2>{_fills_table(report)}")
    parts.append("<h2>Summary (JSON)</h2><pre>")
    parts.append(html.escape(json.dumps(s, indent=1, default=str)))
    parts.append("</pre></body></html>")
    path.write_text("".join(parts))
    return path
