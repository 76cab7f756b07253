"""Open a clickhouse-connect client for a store URL: the embedded engine or a server.

clickhouse-connect (1.12 here) opens ``chdb://`` itself (an in-process chDB engine behind the
same client interface: ``query``, ``insert_arrow``, ``command``), so the embedded engine and a
ClickHouse server run exactly the same code and SQL. For the embedded engine we first take the
store's process lock (``lock.py``): chDB admits one process per directory.

    client, lock = open_client("chdb://{data_dir}/store", data_dir="~/.ctrader")
    client, lock = open_client("http://clickhouse:8123")          # lock is None for a server

Bulk reads (market data for replay) take the engine's Native format through ``native_query``:
in place from the embedded engine, ``raw_query`` bytes from a server; same SQL, same decoder.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol
from urllib.parse import urlparse

from ctrader.store.lock import StoreLock

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The store cannot be reached or refused an operation (the recorder spills and retries)."""


def resolve_url(url: str, data_dir: str | None = None) -> str:
    """Expand ``{data_dir}`` and ``~`` in a store URL."""
    if "{data_dir}" in url:
        url = url.replace("{data_dir}", os.path.expanduser(data_dir or "~/.ctrader"))
    if url.startswith("chdb://"):
        path = url[len("chdb://"):]
        return "chdb://" + os.path.abspath(os.path.expanduser(path))
    return url


def embedded_path(url: str) -> str | None:
    """The directory of a ``chdb://`` URL (after ``resolve_url``); None for a server URL."""
    if not url.startswith("chdb://"):
        return None
    return url[len("chdb://"):]


def describe(url: str) -> str:
    """The URL without credentials, for logs and errors."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def open_client(url: str, data_dir: str | None = None, **kwargs):
    """A connected client and the process lock it holds (None for a server).

    Raises ``StoreLockedError`` if another process holds an embedded store and
    ``StoreUnavailable`` if a server cannot be reached.
    """
    import clickhouse_connect

    url = resolve_url(url, data_dir)
    path = embedded_path(url)
    if path is not None:
        lock = StoreLock.acquire(path)
        try:
            return clickhouse_connect.get_client(interface="chdb", path=path, **kwargs), lock
        except BaseException:
            lock.release()
            raise
    try:
        return clickhouse_connect.get_client(dsn=url, **kwargs), None
    except Exception as exc:   # clickhouse-connect raises several kinds for "cannot connect"
        raise StoreUnavailable(f"ClickHouse at {describe(url)} is unreachable: {exc}") from exc


# --- result bytes for the columnar readers -----------------------------------------------------

class NativeQuery(Protocol):
    """Runs a SELECT and lends its result in ClickHouse's Native format (``ctrader.store.native``).

    The buffer is valid inside the ``with`` only: decode it (or copy out of it) there.
    """

    def native(self, sql: str) -> AbstractContextManager[memoryview | bytes]: ...

    def close(self) -> None: ...


class ClientNativeQuery:
    """Native results through clickhouse-connect's ``raw_query``: the path a ClickHouse server
    takes (an uncompressed HTTP body; the client is shared with the store's other calls)."""

    def __init__(self, client) -> None:
        self.client = client

    @contextmanager
    def native(self, sql: str) -> Iterator[bytes]:
        yield self.client.raw_query(sql, fmt="Native")

    def close(self) -> None:
        pass


class EmbeddedNativeQuery:
    """Native results from the embedded engine, lent in place (chDB's result buffer, no copy).

    A result copied into Python ``bytes`` costs as much as the query itself (hundreds of MB/s of
    freshly faulted pages), so the embedded store reads through a chDB connection of its own on
    the engine this process already runs (chDB shares one engine between the connections of a
    process; the store's process lock is already held by then). Calls are serialised: a chDB
    connection takes one query at a time.
    """

    def __init__(self, path: str) -> None:
        import chdb

        self._conn = chdb.connect(os.path.realpath(path))
        self._lock = threading.Lock()

    @contextmanager
    def native(self, sql: str) -> Iterator[memoryview]:
        with self._lock:
            if self._conn is None:
                raise StoreUnavailable("the store's reader is closed")
            result = self._conn.query(sql, "Native")
        lent = result.get_memview()
        view = lent.view()
        try:
            yield view
        finally:
            view.release()
            lent.release()
            del result

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def native_query(url: str, client) -> NativeQuery:
    """The Native reader for a store URL (after ``resolve_url``) and the store's client."""
    path = embedded_path(url)
    return EmbeddedNativeQuery(path) if path is not None else ClientNativeQuery(client)
