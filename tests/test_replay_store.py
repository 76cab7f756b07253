"""Replay from the embedded store (chDB) end to end: results tables, runs list/compare, the CLI."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ctrader.cli.main import app
from ctrader.config import load_config
from ctrader.replay.history import simulated_md, write_md
from ctrader.replay.results import ReplayResults
from ctrader.replay.runner import data_range, replay_store, resolve_universe
from ctrader.store.store import Store


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A data dir whose embedded store holds 40 s of simulated market data."""
    d = tmp_path_factory.mktemp("replay-store")
    sets = {"model.name": "none", "run.data_dir": str(d), "store.url": f"chdb://{d}/store"}
    cfg = load_config(None, overrides=sets)
    uni = resolve_universe(cfg)
    md = simulated_md(cfg, uni, seconds=40, seed=3)
    store = Store.from_config(cfg)
    write_md(store, md, uni, run_id="rec-sim3")
    yield cfg, uni, md, store, sets
    store.close()


def cli(sets, *args):
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")] + list(args)
    res = CliRunner().invoke(app, argv, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.stdout


def test_store_reads_back_what_replay_needs(env):
    cfg, uni, md, store, _ = env
    lo, hi = data_range(store)
    assert lo == md["recv_ts_ns"].min() and hi == md["recv_ts_ns"].max() + 1
    n = sum(len(c) for c in store.read_md([s.name for s in uni.symbols], lo, hi, chunk_rows=7000,
                                          symbol_ids={s.name: s.id for s in uni.symbols}))
    assert n == len(md)


def test_replay_from_store_is_deterministic_and_saved(env):
    cfg, uni, md, store, _ = env
    lo, hi = data_range(store)
    a = replay_store(cfg, store, lo, hi, universe=uni, model=None, label="first")
    b = replay_store(cfg, store, lo, hi, universe=uni, model=None, label="second")
    assert a.result.summary["events"] == len(md)
    assert a.result.digests == b.result.digests
    assert a.result.summary["intents"] > 0
    rs = ReplayResults(store)
    runs = {r["run_id"]: r for r in rs.list_runs()}
    assert {a.run_id, b.run_id} <= set(runs)
    row = runs[a.run_id]
    assert row["config_hash"] == a.meta.config_hash and row["model_version"] == "none"
    assert row["events"] == len(md) and row["fills"] == a.result.summary["fills"]
    c = rs.compare(a.run_id, b.run_id)
    assert all(c["identical"].values()) and all(c["same"].values())
    assert c["figures"]["pnl"]["delta"] == 0
    # the journal tables hold the replay's candidates and executions under its run id
    cands = store.read_candidates(a.run_id)
    assert len(cands) == a.result.summary["candidates"]
    assert np.array_equal(np.sort(cands["group_id"]), np.sort(a.result.candidates["group_id"]))
    assert len(store.read_executions(a.run_id)) == len(a.result.execs)
    fills = rs.fills(a.run_id)
    assert fills.num_rows == a.result.summary["fills"]


def test_a_different_latency_is_a_different_run(env):
    cfg, uni, _, store, _ = env
    lo, hi = data_range(store)
    from ctrader.execution.latency import SampledLatency as LatencyModel
    from ctrader.replay.runner import options_from_config

    o = options_from_config(cfg)
    o.order_latency = LatencyModel.parse("400")
    base = replay_store(cfg, store, lo, hi, universe=uni, model=None)
    slow = replay_store(cfg, store, lo, hi, universe=uni, model=None, options=o)
    c = ReplayResults(store).compare(base.run_id, slow.run_id)
    assert c["identical"]["md"] and not c["identical"]["fills"]


def test_cli_replay_json_report_and_runs(env, tmp_path):
    _, _, md, _, sets = env
    report = tmp_path / "out.html"
    out = cli(sets, "replay", "--json", "--report", str(report), "--order-latency", "uniform:1:4", "--seed", "9")
    s = json.loads(out)
    assert s["events"] == len(md) and s["latency_ms"]["order"] == "uniform:1:4"
    assert report.stat().st_size > 100_000 and "Per-triangle contribution" in report.read_text()
    out2 = json.loads(cli(sets, "replay", "--json", "--order-latency", "uniform:1:4", "--seed", "9"))
    assert out2["digests"] == s["digests"]
    listed = json.loads(cli(sets, "runs", "list", "--json"))
    ids = [r["run_id"] for r in listed]
    assert s["run_id"] in ids and out2["run_id"] in ids
    text = cli(sets, "runs", "compare", s["run_id"], out2["run_id"])
    assert "identical: md yes, candidates yes, intents yes, fills yes" in text
    table = cli(sets, "runs", "list")
    assert s["run_id"] in table


def test_cli_replay_terminal_summary(env):
    _, _, _, _, sets = env
    out = cli(sets, "replay", "--no-save", "--model", "none", "--start", "2023-11-14T22:13:20", "--end",
              "2023-11-14T22:13:40")
    assert "events" in out and "PnL" in out and "digests" in out


def test_cli_replay_refuses_bad_latency(env):
    _, _, _, _, sets = env
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")] + ["replay", "--order-latency", "soon"]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code != 0 and "latency" in res.output


def _iso(ns):
    from ctrader.cli.replay_cmd import _iso

    return _iso(int(ns))


def test_cli_replay_refuses_an_end_at_or_before_the_start(env):
    _, _, md, _, sets = env
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")] + ["replay", "--no-save", "--model", "none"]
    lo = int(md["recv_ts_ns"].min())
    res = CliRunner().invoke(app, argv + ["--start", str(lo + 10**10), "--end", str(lo)])
    assert res.exit_code == 2
    assert f"--end {lo} ({_iso(lo)}) is before --start {lo + 10**10}" in res.output
    assert "the range to replay is empty" in res.output
    res = CliRunner().invoke(app, argv + ["--start", "2023-11-14T22:13:30", "--end", "2023-11-14T22:13:30"])
    assert res.exit_code == 2 and "is the same time as --start 2023-11-14T22:13:30" in res.output
    res = CliRunner().invoke(app, argv[:-4] + ["model", "train-history", "--name", "x", "--start", str(lo + 1),
                                               "--end", str(lo)])
    assert res.exit_code == 2 and "the range to train on is empty" in res.output


def test_cli_replay_of_a_range_without_data_exits_1(env):
    _, _, md, _, sets = env
    argv = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")] + ["replay", "--no-save", "--model", "none"]
    lo, hi = int(md["recv_ts_ns"].min()), int(md["recv_ts_ns"].max())
    held = f"the store holds {_iso(lo)} .. {_iso(hi + 1)}"
    res = CliRunner().invoke(app, argv + ["--start", "2030-01-01T00:00", "--end", "2030-01-02T00:00"])
    assert res.exit_code == 1
    assert "nothing to replay from 2030-01-01T00:00:00.000Z to 2030-01-02T00:00:00.000Z: no market data" in res.output
    assert held in res.output
    res = CliRunner().invoke(app, argv + ["--start", str(hi + 1)])           # after the last record
    assert res.exit_code == 1 and f"nothing to replay from {_iso(hi + 1)} to the last" in res.output
    res = CliRunner().invoke(app, argv + ["--end", str(lo)])                 # before the first
    assert res.exit_code == 1 and "from the first record to" in res.output and held in res.output
    res = CliRunner().invoke(app, argv + ["--symbols", "BTCUSDT", "--start", "2030-01-01T00:00"])
    assert res.exit_code == 1 and "no market data in ctrader.md_book for BTCUSDT in that range" in res.output


def test_speed_and_time_parsing():
    import typer

    from ctrader.cli.replay_cmd import parse_speed, parse_time

    assert parse_speed("fast") == 0 and parse_speed("realtime") == 1 and parse_speed("10x") == 10
    assert parse_time("1700000000000000000") == 1_700_000_000_000_000_000
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000_000_000
    with pytest.raises(typer.BadParameter):
        parse_speed("soon")


def test_paced_replay_decides_as_the_fast_one(env):
    from ctrader.replay.runner import options_from_config, replay_chunks

    cfg, uni, md, _, _ = env
    fast = replay_chunks(cfg, uni, [md[:20_000]])
    o = options_from_config(cfg)
    o.speed = 2000.0                     # 2000x market time: pacing on, still quick
    paced = replay_chunks(cfg, uni, [md[:20_000]], options=o)
    assert paced.digests == fast.digests


def _timing_with_arrivals(env, tmp_path, arrivals):
    """A ``SessionTiming`` of the recorded run whose strategy logged ``arrivals``: (exec records,
    0 or 1: after the first or the second of two md records). Returns it and those two records'
    receive times."""
    from ctrader.replay.fidelity import SessionTiming
    from ctrader.strategy.exec_arrivals import ExecArrivals

    _, _, md, store, _ = env
    seqs, counts = np.unique(md["seq"], return_counts=True)
    points = seqs[counts == 1][[10, 20]]
    run_dir = tmp_path / "runs" / "rec-sim3"
    log = ExecArrivals(run_dir)
    for records, which in arrivals:
        log.note(records, after_md_seq=int(points[which]), mono_ns=which + 1)
    log.close()
    timing = SessionTiming.from_store(store, "rec-sim3", 0, run_dir=run_dir)
    return timing, [int(md[md["seq"] == q]["recv_ts_ns"][0]) for q in points]


def test_session_timing_delivers_executions_where_the_session_strategy_saw_them(env, tmp_path):
    """The strategy process logs the md seq it had reached when each execution arrived; replay
    turns it into that md record's receive time (delivery right after it)."""
    from ctrader.core.records import EXEC_EVENT, ExecKind

    ex = np.zeros(2, EXEC_EVENT)
    ex["group_id"], ex["leg"], ex["kind"] = 7, [0, 1], ExecKind.FILL
    # the repeat of leg 0 after the second record: the first arrival counts
    timing, (at, _) = _timing_with_arrivals(env, tmp_path, [(ex, 0), (ex[:1], 1)])
    assert timing.exact_arrivals == 2
    assert timing.report_at(7, 0, int(ExecKind.FILL)) == at == timing.report_at(7, 1, int(ExecKind.FILL))
    assert timing.report_at(7, 2, int(ExecKind.FILL)) is None


def test_each_order_of_a_repriced_leg_is_delivered_where_the_session_strategy_saw_it(env, tmp_path):
    """A leg re-priced by cancel-replace is several orders on one (group, leg), each with its
    own CANCELED: each is delivered after the md record the session's strategy had reached when
    it arrived, not all at the first one's."""
    from ctrader.core.records import EXEC_EVENT, ExecKind

    ex = np.zeros(2, EXEC_EVENT)
    ex["group_id"], ex["leg"], ex["kind"] = 9, 0, ExecKind.CANCELED
    ex["client_order_id"] = [b"ct9L0", b"ct9L0r1"]          # the order, then its replacement
    timing, (first, second) = _timing_with_arrivals(env, tmp_path, [(ex[:1], 0), (ex[1:], 1)])
    canceled = int(ExecKind.CANCELED)
    assert timing.report_at(9, 0, canceled, "ct9L0") == first
    assert timing.report_at(9, 0, canceled, "ct9L0r1") == second
    assert timing.report_at(9, 0, canceled) == first           # by group and leg: the first
