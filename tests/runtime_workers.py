"""Toy components for supervisor tests (spawned children import them by name)."""
from __future__ import annotations

import os
import pathlib

import numpy as np

from ctrader.config import data_dir
from ctrader.core.records import ORDER_INTENT
from ctrader.core.ring import Ring
from ctrader.runtime.resources import consumer_id

TOTAL = 20_000


def intent_source(ctx) -> None:
    """Writes TOTAL intents (group_id = 0..TOTAL-1) in small batches, then idles until stopped."""
    ring = Ring.attach(ctx.ring_names["intents"], ORDER_INTENT)
    producer = ring.producer(timeout_s=30)
    batch = np.zeros(50, ORDER_INTENT)
    for start in range(0, TOTAL, 50):
        batch["group_id"] = np.arange(start, start + 50)
        producer.write(batch)
        ctx.health.beat(events=start + 50)
        if ctx.stop.wait(0.002):
            break
    while not ctx.stop.wait(0.05):
        ctx.health.beat()
    ring.close()


def intent_sink(ctx) -> None:
    """Records every intent's group id durably before releasing it from the ring."""
    ring = Ring.attach(ctx.ring_names["intents"], ORDER_INTENT)
    consumer = ring.consumer(consumer_id("intents", "executor"))
    out = np.empty(64, ORDER_INTENT)
    seen = pathlib.Path(data_dir(ctx.cfg)) / "seen.txt"
    with open(seen, "a") as fh:
        while not ctx.stop.is_set():
            n = consumer.peek_batch(out, timeout_s=0.05)
            if n:
                fh.write("".join(f"{g}\n" for g in out["group_id"][:n]))
                fh.flush()
                os.fsync(fh.fileno())
                consumer.commit(n)
            ctx.health.beat()
    ring.close()


def crasher(ctx) -> None:
    raise RuntimeError("this component always fails")


def idler(ctx) -> None:
    """Beats until told to stop, then appends "<name> <orderly|fast>" to ``{data_dir}/stops.txt``
    (one O_APPEND write: the order of the lines is the order the components stopped in)."""
    while not ctx.stop.wait(0.02):
        ctx.health.beat()
    idler_done(ctx)


def stubborn(ctx) -> None:
    """Never looks at its stop flag: the supervisor has to kill it."""
    import time

    while True:
        ctx.health.beat()
        time.sleep(0.05)


def lingerer(ctx) -> None:
    """Asked to stop, finishes only when the stop turns fast (a second Ctrl-C) or after 60 s:
    a component whose orderly stop takes long (a recorder draining a slow store)."""
    import time

    while not ctx.stop.wait(0.02):
        ctx.health.beat()
    deadline = time.monotonic() + 60
    while not ctx.stop.fast and time.monotonic() < deadline:
        time.sleep(0.01)
    idler_done(ctx)


def idler_done(ctx) -> None:
    line = f"{ctx.name} {'fast' if ctx.stop.fast else 'orderly'}\n".encode()
    fd = os.open(pathlib.Path(data_dir(ctx.cfg)) / "stops.txt", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
