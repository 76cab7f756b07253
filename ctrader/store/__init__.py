"""History in ClickHouse (embedded chDB by default, a server by URL) and live state in Redis.

- ``store.Store``: open, migrate, insert Arrow tables, ``info()``, and the reader API for replay
  and training (``read_md``, ``read_candidates``, ``read_executions``).
- ``migrations``: the schema as numbered migrations; ``columns``: records <-> Arrow columns.
- ``lock``: one process per embedded store, with an error that names the holder.
- ``recorder``: the recorder component (``run_recorder``) and its in-process ``RecorderEngine``;
  ``spill``: the on-disk queue used while the store is down; ``live_state``: Redis publisher.

    from ctrader.store.store import Store
    with Store.from_config(cfg) as store:
        for chunk in store.read_md(["BTCUSDT", "ETHBTC", "ETHUSDT"], "2026-01-01", "2026-01-02"):
            ...   # MD_EVENT records in time order
"""
