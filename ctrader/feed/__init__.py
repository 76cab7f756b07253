"""The feed: Binance market streams in, order books kept in sync, MD_EVENT records out.

Modules, one job each:

- ``process``     ``run_feed(ctx)``: the component (md ring, universe, health, stats file);
- ``engine``      ``FeedEngine``: connections, book sync, snapshots and records on one asyncio loop;
- ``links``       one shard's socket life: backoff + jitter, make-before-break replacement;
- ``connection``  one picows WebSocket on ``/stream?streams=...`` (paced SUBSCRIBE, pongs);
- ``shards``      which streams go on which connection (1024 streams per socket at most);
- ``parse``       combined-stream frames -> (symbol id, kind, payload), and the strict grammar of
                  payloads (decimal strings, ids; anything else is a counted parse error). The C
                  path for bookTicker and depth-diff frames (``ext/feed_parse.pyx``) follows the
                  same grammar and is tested byte for byte against it;
- ``sync``        Binance's local-book algorithm as a pure state machine (``BookSync``);
- ``book``        the sorted local book (``LocalBook``, in C so that the C path applies diffs);
- ``snapshots``   REST depth snapshots; ``weight`` keeps them inside REQUEST_WEIGHT;
- ``batch``       staging of records and their batched write to the ring.

In-process use (tests, ``ctrader start`` without ``--processes``):

    engine = FeedEngine(cfg, load_universe(cfg), ring.producer().write)
    asyncio.run(engine.run(stop_event))
"""
