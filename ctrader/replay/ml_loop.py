"""The ML loop on recorded history: train, evaluate in replay, promote, retrain.

    res = train_from_store(cfg, store, start, end, TrainSpec(name="m1", kind="gbt"))   # ONNX + metadata
    ev = evaluate_model(cfg, store, "m1", start2, end2)    # AUC, precision@threshold, replay PnL
    promote(cfg, "m1")                                     # {registry}/current -> m1 (atomic)
    out = retrain(cfg, store, train_s=3 * 86400, eval_s=86400)   # train, judge, promote if better

Training data: the strategy's own kernels scan the recorded market; every tradeable candidate
(sampled at most every ``sample_every_ms`` per triangle) is labelled with what would really have
happened after the replay's latency: its three IOC leg orders (quantity, limit price) matched
against the books as they are then, as the paper fill model matches them, and 1 when what they
would have filled is worth more than it cost at the current mids (``fill_label``): the same
yardstick as replay PnL, so a broken triangle counts for what its filled legs are worth. Splits are in time, never shuffled: the last
``test_fraction`` validates. Models: standardised logistic regression or gradient-boosted trees
(scikit-learn), exported with skl2onnx; onnxruntime must reproduce scikit-learn within 1e-5
(``ctrader.replay.training``).

Promotion: the registry keeps a ``current`` link to the promoted model directory, swapped
atomically (rename over the old link), and ``promotions.jsonl`` records each promotion. A
strategy configured with ``[model] name = "current"`` scores with the promoted model; a running
one picks a new promotion up when it re-resolves that link (``current_target``).
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import logging
import os
import pathlib
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ctrader.core.extras import require
from ctrader.core.progress import Progress, no_progress
from ctrader.model.registry import CURRENT, PromotionWatcher, current_target  # noqa: F401
from ctrader.replay.compute import MdSlice

log = logging.getLogger(__name__)

PROMOTIONS_LOG = "promotions.jsonl"
KINDS = ("logreg", "gbt")


@dataclass(frozen=True)
class TrainSpec:
    name: str = "candidate"
    kind: str = "logreg"                 # logreg | gbt
    latency_ms: float | None = None      # label horizon; None = replay feed + order latency medians
    sample_every_ms: float = 50.0
    test_fraction: float = 0.25
    C: float = 1.0
    n_estimators: int = 150
    max_depth: int = 3
    seed: int = 7
    version: str = ""


# --- labelled candidates from recorded md ----------------------------------------------------------

def label_horizon_ms(cfg) -> float:
    from ctrader.replay.runner import options_from_config

    o = options_from_config(cfg)
    return o.feed_latency.median_ms() + o.order_latency.median_ms()


BUY = 1


def fill_label(books, legs: np.ndarray, fee: float, universe, valuer) -> int:
    """1 when the candidate's three IOC leg orders (quantity, limit price), arriving now, would
    leave the account richer: each leg filled as far as the book allows within its limit (as the
    paper fill model fills it), fees taken from what it receives, and every asset change valued
    at the current mids in the valuation asset, as replay PnL values it. A triangle whose last
    leg misses still counts what its filled legs are worth. ``legs``: rows (symbol, side, qty, limit).
    """
    value = 0.0
    for sid, side, qty, limit in legs:
        info = universe.symbols[int(sid)]
        b = books[int(sid)]
        buy = int(side) == BUY
        px, avail, n = (b["ask_px"], b["ask_qty"], int(b["n_asks"])) if buy else \
            (b["bid_px"], b["bid_qty"], int(b["n_bids"]))
        rem, quote = qty, 0.0
        for lvl in range(n):
            p = px[lvl]
            if rem <= qty * 1e-12 or (p > limit * (1 + 1e-12) if buy else p < limit * (1 - 1e-12)):
                break
            take = min(rem, avail[lvl])
            quote += take * p
            rem -= take
        filled = qty - rem
        if filled <= 0.0:
            continue
        pb, pq = valuer.price(info.base_id), valuer.price(info.quote_id)
        if np.isnan(pb) or np.isnan(pq):
            return 0
        if buy:
            value += filled * (1 - fee) * pb - quote * pq
        else:
            value += quote * (1 - fee) * pq - filled * pb
    return int(value > 0.0)


def collect_from_md(cfg, universe, chunks, latency_ms: float, sample_every_ms: float = 50.0,
                    progress: Progress = no_progress, window: tuple[int, int] | None = None):
    """``ctrader.replay.training.Dataset`` of tradeable candidates and their labels, from md arrays.
    ``window``: the (start, end) ns the chunks cover, for ``progress``."""
    from ctrader.replay.training import CandidateSampler, Dataset
    from ctrader.strategy.triangular import TriangularArbitrage

    strategy = TriangularArbitrage(cfg, universe)
    strategy.warmup()
    latency_ns = int(latency_ms * 1e6)
    sampler = CandidateSampler(sample_every_ms)
    pending: collections.deque = collections.deque()         # (due mono ns, row)
    rows_x: list[np.ndarray] = []
    rows_t: list[int] = []
    rows_legs: list[np.ndarray] = []
    labels: dict[int, int] = {}
    from ctrader.execution.accounting import Valuer
    from ctrader.execution.bookview import BookView

    books = strategy.books.books
    fee = universe.taker_fee
    val = cfg.risk.valuation_asset if cfg.risk.valuation_asset in universe.assets else universe.assets[0]
    valuer = Valuer(universe, BookView(books), val)
    first_ts = last_ts = None
    for recs in chunks:
        n = len(recs)
        if n == 0:
            continue
        mono = recs["recv_mono_ns"]
        first_ts = int(recs[0]["recv_ts_ns"]) if first_ts is None else first_ts
        last_ts = int(recs[-1]["recv_ts_ns"])
        if window is not None:
            progress("labelling history", (last_ts - window[0]) / 1e9, (window[1] - window[0]) / 1e9,
                     f"{len(rows_x):,} candidates")
        i = 0
        while i < n:
            limit = n
            if pending:
                limit = max(i, min(n, int(np.searchsorted(mono[i:], pending[0][0], "left")) + i))
            if limit == i:                                   # a label is due: the books as they are now
                now = int(mono[i])
                while pending and pending[0][0] <= now:
                    _, r = pending.popleft()
                    labels[r] = fill_label(books, rows_legs[r], fee, universe, valuer)
                continue
            i, m = strategy.scan(recs, i, limit)
            if m == 0:
                continue
            t = int(recs[i - 1]["recv_mono_ns"])
            ev = strategy.evaluation(m)
            for j in sampler.pick(ev, t):
                r = len(rows_x)
                rows_x.append(ev.features[j].copy())
                rows_t.append(int(recs[i - 1]["recv_ts_ns"]))
                rows_legs.append(np.column_stack([ev.leg_symbol[j], ev.leg_side[j], ev.leg_qty[j],
                                                  ev.leg_limit[j]]).astype(np.float64))
                pending.append((t + latency_ns, r))
    keep = [r for r in range(len(rows_x)) if r in labels]
    k = len(strategy.features)
    X = np.stack([rows_x[r] for r in keep]).astype(np.float32) if keep else np.zeros((0, k), np.float32)
    y = np.array([labels[r] for r in keep], dtype=np.int8)
    t = np.array([rows_t[r] for r in keep], dtype=np.int64)
    window = {"start_ns": first_ts, "end_ns": last_ts, "latency_ms": latency_ms}
    return Dataset(X, y, t, tuple(strategy.features), window)


def _replay_unscored(cfg, universe, chunks, progress: Progress, window: tuple[int, int] | None):
    """The configured strategy, unscored, over the chunks (the replay's fill model, latencies
    and queue): what a labeller reads its samples and outcomes from."""
    from ctrader.replay.runner import options_from_config, replay_chunks

    def seen(events: int, ts: int) -> None:
        if window is not None:
            progress("replaying history", (ts - window[0]) / 1e9, (window[1] - window[0]) / 1e9, f"{events:,} events")

    return replay_chunks(cfg, universe, chunks, model=None, options=options_from_config(cfg), progress=seen)


def collect_rest_fills(cfg, universe, chunks, progress: Progress = no_progress,
                       window: tuple[int, int] | None = None):
    """``maker_triangular``'s dataset: each resting order the strategy places in a replay of the
    chunks (unscored; the replay's fill model, latencies and queue), with its features when it
    was placed, labelled 1 when it filled as a maker before it expired or was canceled: will
    this rest fill before its edge goes."""
    from ctrader.core.records import STRATEGY_IDS, Decision
    from ctrader.replay.training import Dataset
    from ctrader.strategy.maker_triangular import FEATURES

    res = _replay_unscored(cfg, universe, chunks, progress, window)
    c = res.candidates
    placed = c[(c["decision"] == Decision.TAKEN) & (c["strategy_id"] == STRATEGY_IDS["maker_triangular"])]
    made = res.fills["group_id"][res.fills["is_maker"] != 0] if len(res.fills) else np.zeros(0, np.uint64)
    span = {"start_ns": res.summary.get("first_ts_ns"), "end_ns": res.summary.get("last_ts_ns"),
            "label": "resting order filled as a maker"}
    return Dataset(placed["features"][:, :len(FEATURES)].astype(np.float32),
                   np.isin(placed["group_id"], made).astype(np.int8),
                   placed["event_recv_ts_ns"].astype(np.int64), FEATURES, span)


def round_trip_value(fills: np.ndarray, base_id: int, quote_id: int) -> float:
    """What one pair's fills (an entry's and its close's) left, in the pair's quote asset: the
    quote and base they moved, fees out of what each received, the base left over (steps round
    the close) valued at the last fill's price."""
    base = quote = 0.0
    for f in fills:
        buy = int(f["side"]) == BUY
        base += f["qty"] if buy else -f["qty"]
        quote += -f["quote"] if buy else f["quote"]
        if int(f["fee_asset_id"]) == base_id:
            base -= f["fee"]
        elif int(f["fee_asset_id"]) == quote_id:
            quote -= f["fee"]
    return quote + base * float(fills["px"][-1]) if len(fills) else 0.0


def collect_round_trips(cfg, universe, chunks, progress: Progress = no_progress,
                        window: tuple[int, int] | None = None):
    """``cross_rate_reversion``'s dataset: each entry the strategy takes in a replay of the
    chunks (unscored; the replay's fill model, latencies and queue), with its features when it
    was decided, labelled 1 when its round trip earned after fees: what the entry filled and
    what the relation's next close filled, valued in the pair's quote asset
    (``round_trip_value``). An entry that filled nothing is 0 (it earned nothing); one still
    open when the history ends has no outcome and is left out. Closes are not samples: they are
    held to no score (``Evaluation.closing``)."""
    from ctrader.core.records import STRATEGY_IDS, Decision
    from ctrader.replay.training import Dataset
    from ctrader.strategy.cross_rate import FEATURES

    res = _replay_unscored(cfg, universe, chunks, progress, window)
    c = res.candidates
    taken = c[(c["decision"] == Decision.TAKEN) & (c["strategy_id"] == STRATEGY_IDS["cross_rate_reversion"])]
    taken = taken[np.argsort(taken["group_id"], kind="stable")]          # in the order decided
    closing = taken["features"][:, FEATURES.index("closing")] > 0
    fills_of = {int(g): res.fills[res.fills["group_id"] == g] for g in np.unique(res.fills["group_id"])} \
        if len(res.fills) else {}
    rows, labels = [], []
    for j in np.flatnonzero(~closing):
        entry = fills_of.get(int(taken["group_id"][j]))
        if entry is None or not len(entry):
            rows.append(j)
            labels.append(0)
            continue
        later = np.flatnonzero(closing & (taken["triangle_id"] == taken["triangle_id"][j])
                               & (taken["group_id"] > taken["group_id"][j]))
        if not len(later):
            continue                              # still open at the end: no outcome
        close = fills_of.get(int(taken["group_id"][later[0]]), entry[:0])
        info = universe.symbols[int(entry["symbol_id"][0])]
        value = round_trip_value(np.concatenate([entry, close]), info.base_id, info.quote_id)
        rows.append(j)
        labels.append(int(value > 0.0))
    picked = taken[np.array(rows, dtype=np.int64)]
    span = {"start_ns": res.summary.get("first_ts_ns"), "end_ns": res.summary.get("last_ts_ns"),
            "label": "entry's round trip earned after fees"}
    return Dataset(picked["features"][:, :len(FEATURES)].astype(np.float32), np.array(labels, dtype=np.int8),
                   picked["event_recv_ts_ns"].astype(np.int64), FEATURES, span)


def collect_labelled(cfg, universe, chunks, latency_ms: float, sample_every_ms: float = 50.0,
                     progress: Progress = no_progress, window: tuple[int, int] | None = None):
    """The labelled dataset of the configured strategy (``[strategy] name``): triangular
    candidates labelled by what their IOC legs would have done (``collect_from_md``), the
    resting orders of ``maker_triangular`` labelled by whether they filled
    (``collect_rest_fills``), or the entries of ``cross_rate_reversion`` labelled by whether
    their round trip earned (``collect_round_trips``). A strategy without a labeller: ValueError,
    rather than a model of another strategy's features."""
    from ctrader.strategy.registry import strategy_names

    names = strategy_names(cfg)
    if len(names) != 1:
        raise ValueError(f"a model is trained for one strategy: [strategy] names lists {', '.join(names)}")
    if names[0] == "triangular":
        return collect_from_md(cfg, universe, chunks, latency_ms, sample_every_ms, progress, window)
    if names[0] == "maker_triangular":
        return collect_rest_fills(cfg, universe, chunks, progress, window)
    if names[0] == "cross_rate_reversion":
        return collect_round_trips(cfg, universe, chunks, progress, window)
    raise ValueError(f"no training labels for strategy {names[0]} yet: it runs unscored (model.name = \"none\")")


def collect_from_store(cfg, store, universe, start_ns: int, end_ns: int, latency_ms: float,
                       sample_every_ms: float = 50.0, progress: Progress = no_progress):
    names = [s.name for s in universe.symbols]
    ids = {s.name: s.id for s in universe.symbols}
    chunks = store.read_md(names, start_ns, end_ns, chunk_rows=cfg.replay.chunk_rows, symbol_ids=ids)
    return collect_labelled(cfg, universe, chunks, latency_ms, sample_every_ms, progress, (start_ns, end_ns))


# --- fitting ------------------------------------------------------------------------------------------

def fit(ds, spec: TrainSpec):
    """(pipeline, metrics), split in time: the last ``test_fraction`` validates."""
    require("train", "sklearn")
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if spec.kind not in KINDS:
        raise ValueError(f"model kind {spec.kind!r}: choose from {', '.join(KINDS)}")
    n = len(ds.y)
    split = int(n * (1.0 - spec.test_fraction))
    if split == 0 or len(np.unique(ds.y[:split])) < 2:
        raise RuntimeError(f"{n} labelled candidates, one class only in training: more history is needed")
    if spec.kind == "logreg":
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=spec.C, max_iter=2000, random_state=spec.seed))
    else:
        pipe = make_pipeline(GradientBoostingClassifier(n_estimators=spec.n_estimators, max_depth=spec.max_depth,
                                                        random_state=spec.seed))
    pipe.fit(ds.X[:split], ds.y[:split])
    metrics = {"n_train": split, "n_test": n - split, "positive_rate_train": float(ds.y[:split].mean())}
    metrics.update(classification_metrics(ds.y[split:], pipe.predict_proba(ds.X[split:])[:, 1] if n > split else []))
    return pipe, metrics


def classification_metrics(y, p, threshold: float = 0.5) -> dict:
    require("train", "sklearn")
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y, p = np.asarray(y), np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return {"n": 0}
    sel = p >= threshold
    out = {"n": len(y), "positive_rate": float(y.mean()), "accuracy": float(accuracy_score(y, sel)),
           "threshold": threshold, "selected": int(sel.sum()),
           "precision_at_threshold": float(y[sel].mean()) if sel.any() else None,
           "auc": float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None}
    if len(np.unique(y)) == 2:
        out["log_loss"] = float(log_loss(y, np.clip(p, 1e-9, 1 - 1e-9), labels=[0, 1]))
    return out


@dataclass
class TrainOutcome:
    meta: object
    path: pathlib.Path
    metrics: dict
    n_samples: int
    max_onnx_diff: float


@dataclass
class TrainedModel:
    """A fitted model exported to ONNX and checked against scikit-learn (not yet in a registry)."""
    onnx: bytes
    metrics: dict
    features: tuple[str, ...]
    n_samples: int
    positive_rate: float | None
    max_onnx_diff: float


def fit_and_export(ds, spec: TrainSpec, progress: Progress = no_progress) -> TrainedModel:
    """Fit on a labelled dataset, export to ONNX, check that onnxruntime reproduces scikit-learn."""
    from ctrader.replay.training import ONNX_TOLERANCE, export_onnx, onnx_max_diff

    progress("fitting", 0, 1, f"{len(ds.y):,} samples")
    pipe, metrics = fit(ds, spec)
    progress("fitting", 1, 1, f"{len(ds.y):,} samples")
    blob = export_onnx(pipe, ds.X.shape[1])
    diff = onnx_max_diff(blob, pipe, ds.X)
    if diff > ONNX_TOLERANCE:
        raise RuntimeError(f"onnxruntime differs from scikit-learn by {diff:.2e} (> {ONNX_TOLERANCE})")
    metrics["onnx_max_abs_diff"] = diff
    return TrainedModel(blob, metrics, tuple(ds.features), len(ds.y),
                        float(ds.y.mean()) if len(ds.y) else None, diff)


def write_model(cfg, trained: TrainedModel, spec: TrainSpec, *, db: str, start_ns: int, end_ns: int,
                latency_ms: float, out_dir: str | pathlib.Path | None = None) -> TrainOutcome:
    """Write a trained model and its metadata into the registry (or ``out_dir``)."""
    from ctrader.model.registry import METADATA_FILE, MODEL_FILE, ModelMeta, registry_dir
    from ctrader.strategy.registry import strategy_names

    out = pathlib.Path(out_dir) if out_dir else registry_dir(cfg) / spec.name
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(trained.onnx)
    kind = "standard_scaler+logistic_regression" if spec.kind == "logreg" else "gradient_boosted_trees"
    meta = ModelMeta(
        name=spec.name, version=spec.version or time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
        strategy=strategy_names(cfg)[0], features=trained.features, kind=kind,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        training={"source": "store", "store": db, "start_ns": start_ns, "end_ns": end_ns,
                  "spec": asdict(spec), "label_latency_ms": latency_ms, "n_samples": trained.n_samples,
                  "positive_rate": trained.positive_rate,
                  "model_sha256": hashlib.sha256(trained.onnx).hexdigest()},
        metrics=trained.metrics, onnx={"input": "features", "probabilities": "probabilities", "opset": 17},
        path=str(out))
    (out / METADATA_FILE).write_text(meta.to_json())
    log.info("model %s v%s (%s) -> %s: %d samples, auc %s", meta.name, meta.version, kind, out, trained.n_samples,
             trained.metrics.get("auc"))
    return TrainOutcome(meta, out, trained.metrics, trained.n_samples, trained.max_onnx_diff)


def train_from_store(cfg, store, start_ns: int, end_ns: int, spec: TrainSpec,
                     out_dir: str | pathlib.Path | None = None, universe=None,
                     progress: Progress = no_progress) -> TrainOutcome:
    """Label recorded history, fit, export to ONNX, check onnxruntime, write it to the registry."""
    from ctrader.replay.runner import resolve_universe

    require("train")                    # before labelling hours of history, not after
    uni = universe or resolve_universe(cfg)
    latency = spec.latency_ms if spec.latency_ms is not None else label_horizon_ms(cfg)
    ds = collect_from_store(cfg, store, uni, start_ns, end_ns, latency, spec.sample_every_ms, progress)
    return write_model(cfg, fit_and_export(ds, spec, progress), spec, db=store.db, start_ns=start_ns, end_ns=end_ns,
                       latency_ms=latency, out_dir=out_dir)


# --- evaluation -----------------------------------------------------------------------------------

def evaluate_model(cfg, store, name: str, start_ns: int, end_ns: int, *, against: tuple[str, ...] = ("none", CURRENT),
                   save: bool = True, universe=None, dataset=None, progress: Progress = no_progress) -> dict:
    """AUC and precision at ``[strategy] min_score`` on labelled candidates of the period, and
    replay PnL with the model beside each of ``against`` ("none", "current", other names)."""
    from ctrader.replay.runner import load_strategy_model, replay_store, resolve_universe

    uni = universe or resolve_universe(cfg)
    model = load_strategy_model(cfg, name)
    if dataset is None:
        dataset = collect_from_store(cfg, store, uni, start_ns, end_ns, label_horizon_ms(cfg), progress=progress)
    p = model.score(dataset.X) if len(dataset.y) else np.zeros(0)
    out = {"model": name, "version": model.meta.version, "start_ns": start_ns, "end_ns": end_ns,
           "classification": classification_metrics(dataset.y, p, cfg.strategy.min_score), "replay": {}}
    runs = {name: (model, name)}
    cur = current_target(cfg)
    for other in against:
        if other == CURRENT:
            if cur is None or cur == name:
                continue
            runs["current:" + cur] = (load_strategy_model(cfg, cur), cur)
        elif other == "none":
            runs["none"] = (None, "none")
        elif other != name:
            runs[other] = (load_strategy_model(cfg, other), other)
    span_s = (end_ns - start_ns) / 1e9
    for i, (key, (m, label)) in enumerate(runs.items()):
        stage = f"replay {i + 1}/{len(runs)} (model {label})"
        r = replay_store(cfg, store, start_ns, end_ns, universe=uni, model=m, save=save, kind="eval",
                         label=f"eval {name}: {label}", params={"model": label},
                         progress=lambda events, ts_ns, stage=stage: progress(
                             stage, (ts_ns - start_ns) / 1e9, span_s, f"{events:,} events"))
        out["replay"][key] = _replay_figures(r.run_id, r.result.summary)
    return _compare_replays(out, name)


def _replay_figures(run_id: str, s: dict) -> dict:
    return {"run_id": run_id, "pnl": s["pnl"], "groups": s["groups"], "groups_complete": s["groups_complete"],
            "fills": s["fills"]}


def _compare_replays(out: dict, name: str) -> dict:
    base = out["replay"].get("none")
    if base is not None:
        out["pnl_vs_none"] = out["replay"][name]["pnl"] - base["pnl"]
    cur_key = next((k for k in out["replay"] if k.startswith("current:")), None)
    if cur_key:
        out["pnl_vs_current"] = out["replay"][name]["pnl"] - out["replay"][cur_key]["pnl"]
    return out


# --- registry: promotion ---------------------------------------------------------------------------

def promote(cfg, name: str, reason: str = "") -> str | None:
    """Point ``current`` at model ``name`` atomically; returns the previous target.

    The model is loaded and checked first, as the strategy will load it (``verify_model``: ONNX
    loads, features equal the configured strategy's, a test batch scores): one that fails raises
    ``ModelError`` and ``current`` stays where it was, so no restart can meet a broken model."""
    from ctrader.model.registry import MODEL_FILE, registry_dir
    from ctrader.model.scoring import verify_model
    from ctrader.strategy.registry import strategy_class

    reg = registry_dir(cfg)
    target = reg / name
    if name == CURRENT or not (target / MODEL_FILE).is_file():
        raise FileNotFoundError(f"model {name!r} is not in the registry {reg}")
    meta = verify_model(target, strategy_class(cfg.strategy.name).features).meta
    previous = current_target(cfg)
    tmp = reg / f".{CURRENT}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(name, tmp)                # relative: the registry can move
    os.replace(tmp, reg / CURRENT)       # atomic: a reader sees the old or the new model, never none
    entry = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "model": name,
             "version": meta.version, "previous": previous, "reason": reason}
    with open(reg / PROMOTIONS_LOG, "a") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
    log.info("promoted model %s v%s (was %s)", name, meta.version, previous)
    return previous


def promotions(cfg) -> list[dict]:
    from ctrader.model.registry import registry_dir

    path = registry_dir(cfg) / PROMOTIONS_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- retraining ------------------------------------------------------------------------------------

@dataclass
class RetrainResult:
    name: str
    train_window: tuple[int, int]
    eval_window: tuple[int, int]
    train_metrics: dict
    evaluation: dict
    promoted: bool
    reason: str
    previous: str | None = None
    extra: dict = field(default_factory=dict)


# Retraining runs as tasks on the compute backend (``ctrader.replay.compute``): training, the
# evaluation period's labels and the reference model's replay at once, then the new model's
# replay. Each task gets the configuration, the universe and its market data slice; models travel
# as bytes; the driver writes the registry and the store.

@dataclass
class TrainTask:
    cfg: object
    exchange_info: dict
    md: MdSlice
    spec: TrainSpec
    latency_ms: float

    def run(self) -> TrainedModel:
        from ctrader.market.universe import load_universe

        uni = load_universe(self.cfg, self.exchange_info)
        ds = collect_labelled(self.cfg, uni, self.md.chunks(self.cfg.replay.chunk_rows), self.latency_ms,
                              self.spec.sample_every_ms)
        return fit_and_export(ds, self.spec)


@dataclass
class LabelTask:
    cfg: object
    exchange_info: dict
    md: MdSlice
    latency_ms: float

    def run(self):
        from ctrader.market.universe import load_universe

        uni = load_universe(self.cfg, self.exchange_info)
        return collect_labelled(self.cfg, uni, self.md.chunks(self.cfg.replay.chunk_rows), self.latency_ms)


@dataclass
class ReplayOutcome:
    """A replay's result and every journal record its sink would have received."""
    result: object
    journal: tuple[np.ndarray, np.ndarray, np.ndarray]     # candidates, intents, executions
    wall_s: float


@dataclass
class ReplayTask:
    cfg: object
    exchange_info: dict
    md: MdSlice
    model: object            # ModelFiles or None

    def run(self) -> ReplayOutcome:
        from ctrader.core.arrays import concat
        from ctrader.core.records import CANDIDATE, EXEC_EVENT, ORDER_INTENT
        from ctrader.market.universe import load_universe
        from ctrader.replay.runner import replay_chunks
        from ctrader.strategy.registry import strategy_class

        t0 = time.perf_counter()
        uni = load_universe(self.cfg, self.exchange_info)
        model = None
        if self.model is not None:
            model = self.model.load(strategy_class(self.cfg.strategy.name).features, self.cfg.model.threads)
        parts: tuple[list, list, list] = ([], [], [])

        def keep(cands, intents, execs) -> None:
            for kept, recs in zip(parts, (cands, intents, execs)):
                if len(recs):
                    kept.append(recs.copy())

        result = replay_chunks(self.cfg, uni, self.md.chunks(self.cfg.replay.chunk_rows), model=model,
                               on_batch=keep)
        journal = tuple(concat(p, dtype) for p, dtype in zip(parts, (CANDIDATE, ORDER_INTENT, EXEC_EVENT)))
        return ReplayOutcome(result, journal, time.perf_counter() - t0)


def run_task(task):
    """The one function the backend runs: each task knows its work."""
    return task.run()


def _save_replay(cfg, store, uni, outcome: ReplayOutcome, *, lo: int, hi: int, label: str, params: dict,
                 model_version: str) -> str:
    """Save a task's replay as ``replay_store`` saves its own (run row, fills, PnL, journal)."""
    from ctrader.replay.results import (
        ReplayResults,
        RunMeta,
        code_version,
        config_dict,
        config_hash,
        new_run_id,
    )

    run_id = new_run_id("eval")
    result = outcome.result
    meta = RunMeta(kind="eval", label=label, strategy=cfg.strategy.name, config_hash=config_hash(cfg),
                   code_version=code_version(), model_version=model_version, data_start_ns=lo, data_end_ns=hi,
                   symbols=[s.name for s in uni.symbols], params=params, config=config_dict(cfg),
                   wall_s=outcome.wall_s)
    s = result.summary
    s["wall_s"] = outcome.wall_s
    s["events_per_s"] = s["events"] / outcome.wall_s if outcome.wall_s > 0 else None
    s["run_id"], s["model_version"], s["config_hash"] = run_id, model_version, meta.config_hash
    rs = ReplayResults(store)
    sink = rs.sink(run_id, uni)
    sink.on_batch(*outcome.journal)
    sink.close()
    rs.save_run(run_id, meta, result, uni)
    return run_id


def retrain(cfg, store, train_s: float, eval_s: float, *, end_ns: int | None = None, spec: TrainSpec | None = None,
            promote_if_better: bool = True, backend=None, progress: Progress = no_progress) -> RetrainResult:
    """Train on [end - eval - train, end - eval), evaluate on [end - eval, end) in replay against the
    current model (or no model when none is promoted); promote only if the replay PnL is higher.

    The work runs on ``backend`` (default: ``[compute]``'s, closed after); the result does not
    depend on which.
    """
    from ctrader.model.scoring import ModelFiles
    from ctrader.replay.compute import history_slices, open_backend
    from ctrader.replay.runner import data_range, resolve_universe

    uni = resolve_universe(cfg)
    if end_ns is None:
        end_ns = data_range(store)[1]
    eval_lo = end_ns - int(eval_s * 1e9)
    train_lo = eval_lo - int(train_s * 1e9)
    spec = spec or TrainSpec()
    name = spec.name if spec.name != "candidate" else f"rt{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    spec = TrainSpec(**dict(asdict(spec), name=name))
    latency = spec.latency_ms if spec.latency_ms is not None else label_horizon_ms(cfg)
    cur = current_target(cfg)
    ref_key, ref_files = (f"{CURRENT}:{cur}", ModelFiles.read(cfg, cur)) if cur else ("none", None)
    names = [s.name for s in uni.symbols]
    ids = {s.name: s.id for s in uni.symbols}
    own_backend = backend is None
    backend = backend or open_backend(cfg)
    try:
        progress("retrain: reading history", 0, 3, "")
        train_md, eval_md = history_slices(backend, store, names, ids, [(train_lo, eval_lo), (eval_lo, end_ns)],
                                           cfg.replay.chunk_rows)
        progress("retrain: training, labels, reference replay", 1, 3, "")
        trained, labels, ref_replay = backend.map(run_task, [
            TrainTask(cfg, uni.exchange_info, train_md, spec, latency),
            LabelTask(cfg, uni.exchange_info, eval_md, label_horizon_ms(cfg)),
            ReplayTask(cfg, uni.exchange_info, eval_md, ref_files)])
        outcome = write_model(cfg, trained, spec, db=store.db, start_ns=train_lo, end_ns=eval_lo, latency_ms=latency)
        mine_files = ModelFiles.read(cfg, name)
        progress("retrain: the new model's replay", 2, 3, "")
        (new_replay,) = backend.map(run_task, [ReplayTask(cfg, uni.exchange_info, eval_md, mine_files)])
        progress("retrain: done", 3, 3, "")
    finally:
        if own_backend:
            backend.close()
    from ctrader.strategy.registry import strategy_class

    model = mine_files.load(strategy_class(cfg.strategy.name).features, cfg.model.threads)
    p = model.score(labels.X) if len(labels.y) else np.zeros(0)
    ev = {"model": name, "version": model.meta.version, "start_ns": eval_lo, "end_ns": end_ns,
          "classification": classification_metrics(labels.y, p, cfg.strategy.min_score), "replay": {}}
    for key, label, rep, version in (
            (name, name, new_replay, f"{model.meta.name}:{model.meta.version}"),
            (ref_key, cur or "none", ref_replay,
             f"{ref_files.meta.name}:{ref_files.meta.version}" if ref_files else "none")):
        run_id = _save_replay(cfg, store, uni, rep, lo=eval_lo, hi=end_ns, label=f"eval {name}: {label}",
                              params={"model": label}, model_version=version)
        ev["replay"][key] = _replay_figures(run_id, rep.result.summary)
    ev = _compare_replays(ev, name)
    mine = ev["replay"][name]["pnl"]
    ref = ev["replay"][ref_key]["pnl"]
    better = mine > ref
    reason = f"replay PnL {mine:.6g} vs {ref_key} {ref:.6g} on the evaluation window"
    previous = None
    promoted = False
    if better and promote_if_better:
        previous = promote(cfg, name, reason=reason)
        promoted = True
    return RetrainResult(name, (train_lo, eval_lo), (eval_lo, end_ns), outcome.metrics, ev, promoted,
                         ("promoted: " if promoted else "kept the current model: ") + reason, previous)


