"""Live state for people and dashboards, published to Redis from a background thread.

The recorder hands over the newest state with ``offer`` (never blocks: the previous unpublished
state is simply replaced) and a thread writes it at most every ``interval_s``. When Redis is
down, errors are counted, logged once per outage, and the thread reconnects on the next round;
nothing upstream ever waits on Redis.

Keys (``{prefix}`` is ``ctrader`` by default):

- ``{prefix}:tob``     hash: symbol -> JSON {bid, bid_qty, ask, ask_qty, recv_ts_ns, stale}
- ``{prefix}:status``  hash: run_id, updated_ns, and one JSON document per component
                        (``recorder``, and whatever ``read_stats(run_dir)`` has: feed health,
                        strategy counters, executor positions/PnL)

    live = LiveStatePublisher("redis://127.0.0.1:6379/0", interval_s=0.25)
    live.offer({"tob": {"BTCUSDT": {...}}, "status": {"run_id": "r1", "recorder": {...}}})
    live.close()
"""
from __future__ import annotations

import json
import logging
import threading
import time

log = logging.getLogger(__name__)


class LiveStatePublisher:
    def __init__(self, url: str, interval_s: float = 0.25, prefix: str = "ctrader",
                 timeout_s: float = 0.5) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.interval_s = interval_s
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                           health_check_interval=0)
        self._pending: dict | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.published = 0
        self.errors = 0
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="ctrader-live-state", daemon=True)
        self._thread.start()

    def offer(self, state: dict) -> None:
        """Hand over the newest state; returns at once."""
        with self._cond:
            self._pending = state
            self._cond.notify()

    def stats(self) -> dict:
        return {"redis_published": self.published, "redis_errors": self.errors,
                "redis_ok": not self._failing}

    def close(self, flush: bool = True) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(5)
        if flush and self._pending is not None:
            self._publish(self._pending)
        try:
            self._redis.close()
        except Exception:
            pass

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                state, self._pending = self._pending, None
            started = time.monotonic()
            self._publish(state)
            # at most one write per interval: what arrives meanwhile replaces what waits
            with self._cond:
                remaining = self.interval_s - (time.monotonic() - started)
                if remaining > 0 and not self._closed:
                    self._cond.wait(remaining)

    def _publish(self, state: dict) -> None:
        try:
            pipe = self._redis.pipeline(transaction=False)
            tob = state.get("tob") or {}
            if tob:
                pipe.hset(f"{self.prefix}:tob", mapping={s: json.dumps(v) for s, v in tob.items()})
            status = state.get("status") or {}
            if status:
                pipe.hset(f"{self.prefix}:status", mapping={
                    k: v if isinstance(v, (str, int, float)) else json.dumps(v, default=str)
                    for k, v in status.items()})
            pipe.execute()
            self.published += 1
            if self._failing:
                log.info("redis at %s is reachable again: live state published", self.url)
                self._failing = False
        except Exception as exc:   # redis-py raises ConnectionError, TimeoutError, ResponseError ...
            self.errors += 1
            if not self._failing:
                log.warning("redis at %s: publishing live state failed (%s); will keep retrying, "
                            "errors are counted in the recorder stats", self.url, exc)
                self._failing = True
