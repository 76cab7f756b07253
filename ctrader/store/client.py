"""Open a clickhouse-connect client for a store URL: the embedded engine or a server.

clickhouse-connect (1.12 here) opens ``chdb://`` itself (an in-process chDB engine behind the
same client interface: ``query``, ``insert_arrow``, ``command``), so the embedded engine and a
ClickHouse server run exactly the same code and SQL. For the embedded engine we first take the
store's process lock (``lock.py``): chDB admits one process per directory.

    client, lock = open_client("chdb://{data_dir}/store", data_dir="~/.ctrader")
    client, lock = open_client("http://clickhouse:8123")          # lock is None for a server
"""
from __future__ import annotations

import logging
import os
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
