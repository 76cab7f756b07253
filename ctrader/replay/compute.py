"""Where sweeps, walk-forward rankings and retraining run: local processes or a Ray cluster.

    with open_backend(cfg) as backend:                   # [compute] backend = "local" | "ray"
        slices = history_slices(backend, store, names, ids, windows, chunk_rows)
        results = backend.map(run_job, jobs)             # in the order of ``jobs``

A task is a picklable function and argument; it gets its market data as an ``MdSlice``:

- a ClickHouse server: each task opens the store itself and reads its own window (``StoreSlice``);
- the embedded store: chDB admits one process, so the driver reads each window once and ships
  it — to a flat file of MD_EVENT records that local workers map read-only (``FileSlice``), or
  into Ray's object store, a chunk per object (``ObjectSlice``; workers on the same node map it
  without a copy).

A task never reads the driver's files (registry, configuration files): it receives the loaded
configuration, the universe's exchangeInfo and models as bytes (``ModelFiles``), so a Ray cluster
needs only ctrader installed on its nodes.

``local`` (the default) runs tasks in ``spawn``ed processes, or in this process with one worker.
``ray`` connects to ``[compute] address``, or starts a local Ray on demand with ``num_cpus`` CPUs,
``object_store_mb`` of object store and no dashboard, shut down again when the backend closes.
Both run the same task functions on the same data, so their results are identical.
"""
from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from ctrader.core.records import MD_EVENT

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int, int], None]


class ComputeError(RuntimeError):
    """The compute backend cannot run (Ray missing or unreachable, a bad setting)."""


# --- market data for a task ----------------------------------------------------------------------

class MdSlice(Protocol):
    """A window of MD_EVENT records, read where the task runs."""

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]: ...


@dataclass(frozen=True)
class FileSlice:
    """A flat file of MD_EVENT records (the driver wrote it; workers on this host map it)."""
    path: str

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        if os.path.getsize(self.path) == 0:
            return
        md = np.memmap(self.path, dtype=MD_EVENT, mode="r")
        for i in range(0, len(md), chunk_rows):
            yield np.array(md[i:i + chunk_rows])


@dataclass(frozen=True)
class ObjectSlice:
    """Chunks the driver put into Ray's object store (read-only in the worker, copied per chunk
    so a consumer may keep them)."""
    refs: tuple

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        import ray

        for ref in self.refs:
            recs = ray.get(ref)
            for i in range(0, len(recs), chunk_rows):
                yield np.array(recs[i:i + chunk_rows])


@dataclass(frozen=True)
class StoreSlice:
    """A window read from a ClickHouse server by the task itself."""
    url: str
    database: str
    symbols: tuple[str, ...]
    symbol_ids: tuple[tuple[str, int], ...]
    lo_ns: int
    hi_ns: int

    def chunks(self, chunk_rows: int) -> Iterator[np.ndarray]:
        from ctrader.store.store import Store

        store = Store.open(self.url, self.database, migrate=False)
        try:
            yield from store.read_md(list(self.symbols), self.lo_ns, self.hi_ns, chunk_rows=chunk_rows,
                                     symbol_ids=dict(self.symbol_ids))
        finally:
            store.close()


# --- backends ------------------------------------------------------------------------------------

class ComputeBackend(Protocol):
    name: str

    @property
    def workers(self) -> int: ...

    def ship(self, chunks: Iterable[np.ndarray]) -> MdSlice:
        """Market data the driver read (embedded store), made readable by this backend's tasks."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T], progress: Progress | None = None) -> list[R]:
        """``fn`` over ``items`` in parallel; results in the order of ``items``. A task's error is
        raised here (functions that must not sink a whole sweep catch their own)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> ComputeBackend: ...

    def __exit__(self, *exc) -> None: ...


class _Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class LocalBackend(_Closing):
    """Tasks in ``spawn``ed processes on this host (in this process with one worker). The
    processes start with the first parallel ``map`` and serve every later one until ``close``."""

    name = "local"

    def __init__(self, workers: int = 0) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._tmp: pathlib.Path | None = None
        self._pool: cf.ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def ship(self, chunks: Iterable[np.ndarray]) -> FileSlice:
        if self._tmp is None:
            self._tmp = pathlib.Path(tempfile.mkdtemp(prefix="ctrader-compute-"))
        fd, path = tempfile.mkstemp(suffix=".md", dir=self._tmp)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(np.ascontiguousarray(chunk).tobytes())
        return FileSlice(path)

    def map(self, fn: Callable[[T], R], items: Sequence[T], progress: Progress | None = None) -> list[R]:
        if self._workers <= 1 or len(items) <= 1:
            out = []
            for item in items:
                out.append(fn(item))
                if progress:
                    progress(len(out), len(items))
            return out
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"))
        results: list[Any] = [None] * len(items)
        futures = {self._pool.submit(fn, item): i for i, item in enumerate(items)}
        for done, fut in enumerate(cf.as_completed(futures), 1):
            results[futures[fut]] = fut.result()
            if progress:
                progress(done, len(items))
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class RayBackend(_Closing):
    """Tasks on Ray: an existing cluster (``address``) or a local Ray started here and shut down
    on close. One CPU a task; shipped market data lives in the object store until close."""

    name = "ray"

    def __init__(self, address: str = "", num_cpus: int = 0, object_store_mb: int = 0,
                 temp_dir: str = "") -> None:
        try:
            import ray
        except ImportError:
            raise ComputeError("[compute] backend = \"ray\" needs Ray: pip install 'ctrader[compute]'") from None
        self._ray = ray
        self._started = False
        self._refs: list = []
        if not ray.is_initialized():
            t0 = time.perf_counter()
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                kwargs: dict[str, Any] = {"num_cpus": num_cpus or os.cpu_count() or 1, "include_dashboard": False,
                                          "logging_level": logging.WARNING, "log_to_driver": False}
                if object_store_mb:
                    kwargs["object_store_memory"] = object_store_mb * 1024 * 1024
                if temp_dir:
                    kwargs["_temp_dir"] = temp_dir
                ray.init(**kwargs)
            self._started = True
            log.info("ray: %s in %.1f s, %s CPUs", f"connected to {address}" if address else "started locally",
                     time.perf_counter() - t0, ray.cluster_resources().get("CPU"))

    @property
    def workers(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def ship(self, chunks: Iterable[np.ndarray]) -> ObjectSlice:
        refs = tuple(self._ray.put(np.ascontiguousarray(chunk)) for chunk in chunks)
        self._refs.extend(refs)
        return ObjectSlice(refs)

    def map(self, fn: Callable[[T], R], items: Sequence[T], progress: Progress | None = None) -> list[R]:
        ray = self._ray
        task = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = [task.remote(item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(items)
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                results[index[ref]] = ray.get(ref)
            if progress:
                progress(len(items) - len(waiting), len(items))
        return results

    def close(self) -> None:
        self._refs.clear()
        if self._started:
            self._ray.shutdown()
            self._started = False


def open_backend(cfg, workers: int = 0) -> ComputeBackend:
    """The backend ``[compute]`` names; ``workers`` caps local processes (0: ``[replay] workers``,
    then one per core)."""
    c = cfg.compute
    if c.backend == "ray":
        return RayBackend(c.address, c.num_cpus, c.object_store_mb)
    return LocalBackend(workers or cfg.replay.workers)


def history_slices(backend: ComputeBackend, store, symbols: list[str], symbol_ids: dict[str, int],
                   windows: Sequence[tuple[int, int]], chunk_rows: int) -> list[MdSlice]:
    """Each window's market data as the backend's tasks will read it (see the module docstring)."""
    if not store.embedded:
        ids = tuple(sorted(symbol_ids.items()))
        return [StoreSlice(store.url, store.db, tuple(symbols), ids, lo, hi) for lo, hi in windows]
    return [backend.ship(store.read_md(symbols, lo, hi, chunk_rows=chunk_rows, symbol_ids=symbol_ids))
            for lo, hi in windows]


__all__ = ["ComputeBackend", "ComputeError", "FileSlice", "LocalBackend", "MdSlice", "ObjectSlice", "RayBackend",
           "StoreSlice", "history_slices", "open_backend"]
