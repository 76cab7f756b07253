"""The monitor: a component of ``ctrader start`` that watches a running session from beside the
hot path and serves it to people and tools.

    process.run_monitor(ctx)     # the component (its own process at nice +10, or a thread)

It reads what the other components already publish and never waits on any of them: their
stats files (``runtime.stats``), the shared health table, the exec ring as an observer the
executor never waits for (``runtime.resources.OBSERVERS``) and the md ring as a broadcast
consumer. From those it serves an HTTP API and a live dashboard (``app``), Prometheus metrics
(``metrics``) and sends alerts through apprise from a queue (``alerts``, ``rules``).

Modules: ``watch`` (ring readers), ``status`` (the status document, also built by ``ctrader
status`` from a run directory), ``collector`` (one poll of everything), ``auth`` (token),
``venue_probe`` (venue clock and balances over REST), ``app`` (FastAPI), ``process`` (entry).
"""
