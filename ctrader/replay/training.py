"""Training the candidate model from simulator data, offline and reproducibly from a seed.

1. md events from the simulator's market model run in-process (``ctrader.sim.offline``), with
   more dislocations than the default so that arbitrage appears often;
2. the strategy's own kernels find candidates (the same code the live engine runs);
3. each tradeable candidate is labelled by what would have happened after ``latency_ms``: the
   same triangle re-evaluated, capped at the candidate's size, on the books as they are then.
   A positive net edge after fees -> 1. Candidates of one triangle are sampled at most every
   ``sample_every_ms`` (consecutive updates of one dislocation are nearly the same row);
4. a scikit-learn pipeline (standardise + logistic regression) is fitted on the first part of
   the run and validated on the last part (a split in time, never shuffled);
5. skl2onnx exports it; onnxruntime must reproduce ``predict_proba`` within 1e-5;
6. ``model.onnx`` + ``metadata.json`` go to the output directory::

    result = train_from_sim(cfg, TrainOptions(seed=7), out_dir)
    result.meta.metrics["auc"]
"""
from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import pathlib
from dataclasses import asdict, dataclass

import numpy as np

from ctrader.core.extras import require
from ctrader.core.progress import Progress, no_progress
from ctrader.model.registry import METADATA_FILE, MODEL_FILE, ModelMeta
from ctrader.strategy import kernels as K
from ctrader.strategy.registry import strategy_names

log = logging.getLogger(__name__)
ONNX_TOLERANCE = 1e-5


@dataclass(frozen=True)
class TrainOptions:
    seed: int = 7
    market_seconds: float = 900.0
    dislocations_per_min: float = 20.0
    latency_ms: float = 200.0
    sample_every_ms: float = 50.0
    test_fraction: float = 0.25
    C: float = 1.0
    name: str = "default"
    version: str = ""            # "" -> "sim-s{seed}"


@dataclass
class Dataset:
    X: np.ndarray                # float32 (n, k)
    y: np.ndarray                # int8 (n,)
    t_ns: np.ndarray             # event time of each row
    features: tuple[str, ...]
    window: dict


@dataclass
class TrainResult:
    meta: ModelMeta
    path: pathlib.Path
    dataset: Dataset
    max_onnx_diff: float


class CandidateSampler:
    """Which tradeable candidates become training rows: at most one per triangle every
    ``every_ms`` of market time, so a dislocation that lasts seconds is not thousands of
    near-identical rows. Shared by simulator training and training from recorded history."""

    def __init__(self, every_ms: float) -> None:
        self.every_ns = int(every_ms * 1e6)
        self._last: dict[int, int] = {}

    def pick(self, ev, t_ns: int) -> list[int]:
        """Rows of ``ev`` (a strategy evaluation) to sample at market time ``t_ns``."""
        chosen = []
        for j in np.flatnonzero(ev.verdict == 0):
            tri = int(ev.key[j])
            if t_ns - self._last.get(tri, -self.every_ns) < self.every_ns:
                continue
            self._last[tri] = t_ns
            chosen.append(int(j))
        return chosen

def _label(strategy, tri: int, size: float, now_ns: int) -> int:
    status, f, _ = strategy.evaluate_one(tri, now_ns, size)
    if status == K.ST_OK:
        return int(f[K.F_EDGE] > 0.0)
    if status == K.ST_FILTER:       # rounding to the smaller size broke a filter: judge the edge
        return int(f[K.F_EDGE_RAW] > 0.0)
    return 0


def collect_dataset(cfg, opts: TrainOptions, progress: Progress = no_progress) -> Dataset:
    """Candidates and their labels from ``opts.market_seconds`` of simulated market."""
    from ctrader.market.universe import Universe
    from ctrader.sim.offline import OfflineMarket, offline_sim_config
    from ctrader.strategy.triangular import TriangularArbitrage

    market = OfflineMarket(offline_sim_config(cfg.sim, dislocations_per_min=opts.dislocations_per_min),
                           seed=opts.seed)
    fee = cfg.sim.accounts[0].taker_commission if cfg.sim.accounts else 0.001
    uni = Universe.from_exchange_info(market.exchange_info, symbols=cfg.market.symbols or None,
                                      start_assets=cfg.market.start_assets, taker_fee=fee, maker_fee=fee)
    market.map_symbols(uni.by_name)
    strategy = TriangularArbitrage(cfg, uni)
    strategy.warmup(full=True)
    latency_ns = int(opts.latency_ms * 1e6)
    sampler = CandidateSampler(opts.sample_every_ms)
    pending: collections.deque = collections.deque()     # (due_ns, row index)
    rows_x: list[np.ndarray] = []
    rows_t: list[int] = []
    rows_meta: list[tuple[int, float]] = []               # (triangle, size)
    labels: dict[int, int] = {}

    snaps = market.snapshots()
    strategy.scan(snaps, 0, len(snaps))
    first_ns = last_ns = int(snaps[0]["recv_mono_ns"])
    for batch in market.run(opts.market_seconds):
        now = int(batch[0]["recv_mono_ns"])
        while pending and pending[0][0] <= now:           # the books as they are at the due time
            _, r = pending.popleft()
            labels[r] = _label(strategy, *rows_meta[r], now)
        n, i = len(batch), 0
        while i < n:
            i, m = strategy.scan(batch, i, n)
            if m == 0:
                break
            t = int(batch[i - 1]["recv_mono_ns"])
            ev = strategy.evaluation(m)
            for j in sampler.pick(ev, t):
                r = len(rows_x)
                rows_x.append(ev.features[j].copy())
                rows_t.append(t)
                rows_meta.append((int(ev.key[j]), float(ev.size[j])))
                pending.append((t + latency_ns, r))
        last_ns = now
        progress("simulating market", (now - first_ns) / 1e9, opts.market_seconds, f"{len(rows_x):,} candidates")
    keep = [r for r in range(len(rows_x)) if r in labels]   # rows whose due time came before the end
    if not keep:
        raise RuntimeError("no candidates: raise market_seconds or dislocations_per_min")
    X = np.stack([rows_x[r] for r in keep]).astype(np.float32)
    y = np.array([labels[r] for r in keep], dtype=np.int8)
    t = np.array([rows_t[r] for r in keep], dtype=np.int64)
    window = {"market_start_ns": first_ns, "market_end_ns": last_ns, "market_seconds": opts.market_seconds,
              "epoch_ms": market.clock.epoch_ms}
    log.info("dataset: %d candidates, %.1f%% positive", len(y), 100.0 * y.mean())
    return Dataset(X, y, t, tuple(strategy.features), window)


def fit(ds: Dataset, opts: TrainOptions):
    """(pipeline, metrics) with a split in time: the last ``test_fraction`` validates."""
    require("train", "sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = len(ds.y)
    split = int(n * (1.0 - opts.test_fraction))
    if len(np.unique(ds.y[:split])) < 2:
        raise RuntimeError("training labels have one class only: more market time is needed")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=opts.C, max_iter=2000, random_state=opts.seed))
    pipe.fit(ds.X[:split], ds.y[:split])
    Xt, yt = ds.X[split:], ds.y[split:]
    metrics = {"n_train": split, "n_test": n - split, "positive_rate_train": float(ds.y[:split].mean())}
    if len(yt):
        p = pipe.predict_proba(Xt)[:, 1]
        metrics.update(positive_rate_test=float(yt.mean()), accuracy=float(accuracy_score(yt, p >= 0.5)),
                       log_loss=float(log_loss(yt, p, labels=[0, 1])),
                       auc=float(roc_auc_score(yt, p)) if len(np.unique(yt)) == 2 else None)
    return pipe, metrics


def export_onnx(pipe, n_features: int) -> bytes:
    require("train", "skl2onnx")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    clf = pipe.steps[-1][1]
    onx = convert_sklearn(pipe, initial_types=[("features", FloatTensorType([None, n_features]))],
                          options={id(clf): {"zipmap": False}}, target_opset=17)
    onx.graph.name = "ctrader_candidate_model"     # skl2onnx names the graph with a random uuid
    return onx.SerializeToString()


def onnx_max_diff(model_bytes: bytes, pipe, X: np.ndarray) -> float:
    """Largest |onnxruntime - predict_proba| over ``X``, for class 1."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {"features": X.astype(np.float32)})[0][:, 1]
    want = pipe.predict_proba(X)[:, 1]
    return float(np.max(np.abs(got.astype(np.float64) - want))) if len(X) else 0.0


def train_from_sim(cfg, opts: TrainOptions, out_dir: str | pathlib.Path,
                   progress: Progress = no_progress) -> TrainResult:
    require("train")                    # before minutes of simulated market, not after
    if strategy_names(cfg) != ["triangular"]:
        raise ValueError("--from-sim labels triangular candidates only: train other strategies --from-store")
    ds = collect_dataset(cfg, opts, progress)
    progress("fitting", 0, 1, f"{len(ds.y):,} samples")
    pipe, metrics = fit(ds, opts)
    progress("fitting", 1, 1, f"{len(ds.y):,} samples")
    blob = export_onnx(pipe, ds.X.shape[1])
    diff = onnx_max_diff(blob, pipe, ds.X)
    if diff > ONNX_TOLERANCE:
        raise RuntimeError(f"onnxruntime differs from scikit-learn by {diff:.2e} (> {ONNX_TOLERANCE})")
    metrics["onnx_max_abs_diff"] = diff
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(blob)
    meta = ModelMeta(
        name=opts.name, version=opts.version or f"sim-s{opts.seed}", strategy="triangular",
        features=ds.features, kind="standard_scaler+logistic_regression",
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        training={"source": "sim-offline", "options": asdict(opts), "window": ds.window,
                  "n_samples": len(ds.y), "positive_rate": float(ds.y.mean()),
                  "model_sha256": hashlib.sha256(blob).hexdigest()},
        metrics=metrics, onnx={"input": "features", "probabilities": "probabilities", "opset": 17},
        path=str(out))
    (out / METADATA_FILE).write_text(meta.to_json())
    log.info("model %s v%s -> %s (auc %s, onnx diff %.1e)", meta.name, meta.version, out, metrics.get("auc"), diff)
    return TrainResult(meta, out, ds, diff)
