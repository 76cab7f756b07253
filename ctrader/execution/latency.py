"""Latency models, shared by paper trading and replay: how late the strategy sees the market, how
late orders reach the venue, how late its answers come back.

``LatencyModel`` is the seam (``sample_ns``, ``reset``). ``SampledLatency`` is constant or drawn
from a seeded distribution, so a replay with the same seed gives the same latencies, run after
run; replay of a recorded session uses that session's own per-order latencies instead
(``replay.fidelity.SessionTiming``) and falls back to a model for the rest:

    feed = SampledLatency.parse("const:0")            # market event -> strategy (added to recorded data)
    order = SampledLatency.parse("lognormal:2:0.5", seed=7)   # order sent -> matched (median 2 ms)
    order.sample_ns()                               # one draw, in ns

Spec grammar (times in milliseconds):
- ``const:MS`` or just ``MS``          always MS
- ``uniform:LO:HI``                    uniform on [LO, HI]
- ``normal:MEAN:SD``                   normal, clipped at 0
- ``lognormal:MEDIAN:SIGMA``           log-normal with that median and log-space sigma (heavy right tail,
                                       what network latency looks like)
- ``empirical:FILE``                   resample the values (ms, one per line) of FILE

Draws come from one ``numpy.random.Generator`` per model, in the order they are asked for; the
driver asks in a deterministic order (intent order), so a replay is reproducible.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

KINDS = ("const", "uniform", "normal", "lognormal", "empirical")
_BLOCK = 4096     # draws are made in blocks: one numpy call per 4096 samples


class LatencySpecError(ValueError):
    pass


@runtime_checkable
class LatencyModel(Protocol):
    def sample_ns(self) -> int:
        """The next latency, ns (deterministic for a given seed and call order)."""
        ...

    def reset(self) -> None:
        """Start the draws again (a second replay of the same model)."""
        ...

    def describe(self) -> str:
        ...


@dataclass
class SampledLatency:
    kind: str = "const"
    a: float = 0.0                 # const: ms; uniform: lo; normal: mean; lognormal: median
    b: float = 0.0                 # uniform: hi; normal: sd; lognormal: sigma
    samples_ms: np.ndarray | None = None
    seed: int = 0
    spec: str = "const:0"
    _rng: np.random.Generator = field(init=False, repr=False)
    _buf: np.ndarray = field(init=False, repr=False)
    _pos: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reset()

    @classmethod
    def parse(cls, spec: str | float, seed: int = 0) -> SampledLatency:
        if isinstance(spec, (int, float)):
            spec = f"const:{spec}"
        text = str(spec).strip()
        parts = text.split(":")
        try:
            if len(parts) == 1:
                return cls("const", _ms(parts[0]), seed=seed, spec=f"const:{parts[0]}")
            kind = parts[0].lower()
            if kind == "const" and len(parts) == 2:
                return cls("const", _ms(parts[1]), seed=seed, spec=text)
            if kind in ("uniform", "normal", "lognormal") and len(parts) == 3:
                a, b = _ms(parts[1]), _ms(parts[2])
                if kind == "uniform" and b < a:
                    raise LatencySpecError(f"uniform latency needs LO <= HI, got {text!r}")
                if kind == "lognormal" and a <= 0:
                    raise LatencySpecError(f"lognormal latency needs a positive median, got {text!r}")
                return cls(kind, a, b, seed=seed, spec=text)
            if kind == "empirical" and len(parts) >= 2:
                path = ":".join(parts[1:])
                values = np.loadtxt(path, dtype=np.float64, ndmin=1)
                if values.size == 0 or np.any(values < 0):
                    raise LatencySpecError(f"{path}: needs one non-negative latency (ms) per line")
                return cls("empirical", samples_ms=values, seed=seed, spec=text)
        except (ValueError, OSError) as exc:
            if isinstance(exc, LatencySpecError):
                raise
            raise LatencySpecError(f"bad latency spec {text!r}: {exc}") from None
        raise LatencySpecError(
            f"bad latency spec {text!r}: expected MS, const:MS, uniform:LO:HI, normal:MEAN:SD, "
            f"lognormal:MEDIAN:SIGMA or empirical:FILE")

    def reset(self) -> None:
        """Start the draws again from the seed (a second replay of the same model)."""
        self._rng = np.random.default_rng(self.seed)
        self._buf = np.empty(0, np.int64)
        self._pos = 0

    @property
    def is_constant(self) -> bool:
        return self.kind == "const"

    def _draw(self, n: int) -> np.ndarray:
        if self.kind == "const":
            ms = np.full(n, self.a)
        elif self.kind == "uniform":
            ms = self._rng.uniform(self.a, self.b, n)
        elif self.kind == "normal":
            ms = np.maximum(self._rng.normal(self.a, self.b, n), 0.0)
        elif self.kind == "lognormal":
            ms = self.a * np.exp(self._rng.normal(0.0, self.b, n))
        else:
            ms = self._rng.choice(self.samples_ms, n)
        return np.round(ms * 1e6).astype(np.int64)

    def sample_ns(self) -> int:
        if self._pos >= len(self._buf):
            self._buf, self._pos = self._draw(_BLOCK), 0
        v = int(self._buf[self._pos])
        self._pos += 1
        return v

    def median_ms(self) -> float:
        """The model's median in ms (for reports; sampled kinds are estimated from a fresh stream)."""
        if self.kind == "const":
            return self.a
        probe = SampledLatency(self.kind, self.a, self.b, self.samples_ms, seed=self.seed, spec=self.spec)
        return float(np.median(probe._draw(20_000))) / 1e6

    def describe(self) -> str:
        return self.spec


def _ms(text: str) -> float:
    text = text.strip().lower()
    text = text.removesuffix("ms")
    value = float(text)
    if value < 0:
        raise LatencySpecError(f"a latency cannot be negative: {text}")
    return value
