"""Run an iterator one step ahead on a thread: the next item is produced while the caller works
on the current one.

Replay reads market data from the store (query, decode: C code that releases the GIL) while the
strategy runs the chunk before, so the two overlap on two cores instead of taking turns::

    for chunk in prefetched(store_chunks(), depth=1):
        engine.run(chunk)

At most ``depth`` items wait ready, plus the one the thread is producing: memory stays bounded.
An exception in the iterator is raised in the caller at the item where it happened. Leaving the
loop early (``break``, an exception, ``close()``) stops the thread before ``prefetched`` returns,
so nothing runs behind a caller that has moved on (e.g. closed the store being read).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.05          # how often a producer blocked on a full queue checks for a stop


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterable[T], depth: int = 1, name: str = "prefetch") -> Iterator[T]:
    """``items``, produced on a thread up to ``depth`` items ahead of the caller."""
    if depth < 1:
        raise ValueError("depth must be >= 1")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:       # handed to the caller, raised there
            put(_Failed(exc))
        finally:
            if isinstance(source, Generator):
                source.close()              # a generator's finally runs on its own thread

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


__all__ = ["prefetched"]
