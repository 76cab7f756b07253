"""``ctrader start`` without ``--processes``: the simulator, feed, strategy, executor and recorder
run as threads of one process. Every component must make progress while the others wait on
their rings (no thread may hold the GIL while it waits): the strategy sees the market, the
recorder stores market data during the run (not only when it stops) and the executor trades.
The session compiles the strategy's numba kernels before the feed starts (numba holds the GIL
while compiling, 10+ s after a source edit), so even a first run sees the market from the start.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import socket
import threading

from ctrader.config import load_config
from ctrader.runtime.session import BACKGROUND_NICE, in_background, run_session
from ctrader.store.store import Store

COMPONENTS = ["sim", "feed", "strategy", "executor", "recorder"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_threads_session_moves_market_data_to_strategy_executor_and_store(tmp_path):
    cfg = load_config(overrides={"run.data_dir": str(tmp_path), "sim.port": str(_free_port()),
                                 "sim.market.dislocations_per_min": "30"}, env={})
    snapshots: list[dict] = []
    summary = run_session(cfg, COMPONENTS, duration_s=10, processes=False, on_status=snapshots.append,
                          status_every_s=1.0)

    assert summary["failed"] == [] and set(summary["exit_codes"].values()) == {0}
    stats = summary["stats"]
    feed, strategy, executor, recorder = (stats[k] for k in ("feed", "strategy", "executor", "recorder"))
    assert feed["records"] > 500
    # the strategy and the executor read the md ring while the feed was writing it
    assert strategy["events"] > feed["records"] // 2, (strategy["events"], feed["records"])
    assert executor["events"] > feed["records"] // 2, (executor["events"], feed["records"])
    assert strategy["candidates"] > 0
    # the recorder inserted rows while the session ran, not only in its final flush
    during = [s["recorder"] for s in snapshots if "recorder" in s]
    assert any(r.get("rows_md_book", 0) > 0 for r in during), during[-1:] or "no recorder stats during the run"
    assert recorder["md_lost"] == 0 and recorder["read_md"] == feed["records"]
    with Store.from_config(cfg) as store:
        info = store.info()
    assert sum(s["book_rows"] + s["trade_rows"] for s in info["symbols"]) == feed["records"]


def _nice_after_in_background(out) -> None:
    in_background()
    out.put(os.getpriority(os.PRIO_PROCESS, 0))


def test_background_components_are_niced_in_their_own_process_but_not_as_threads():
    before = os.getpriority(os.PRIO_PROCESS, 0)
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_nice_after_in_background, args=(out,))
    child.start()
    assert out.get(timeout=60) == min(before + BACKGROUND_NICE, 19)
    child.join(30)
    seen = []
    thread = threading.Thread(target=lambda: (in_background(), seen.append(os.getpriority(os.PRIO_PROCESS, 0))))
    thread.start()
    thread.join()
    assert seen == [before]          # a niced thread holding the GIL would hold up the whole run
