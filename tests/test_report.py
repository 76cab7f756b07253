"""The live status line and exit summary are built from the components' stats files."""
from ctrader.runtime.report import render_status, render_summary, summarise
from ctrader.core.stats import StatsFile, read_stats


def test_status_and_summary_from_stats_files(tmp_path):
    StatsFile(tmp_path, "feed").write({"messages": 1200, "gaps": 0, "recv_to_ring_us_p50": 31.4,
                                       "recv_to_ring_us_p99": 217.0})
    StatsFile(tmp_path, "executor").write({"orders_sent": 9, "fills": 8, "pnl": 1.25,
                                           "tick_to_order": {"n": 9, "p50_us": 1021.0, "p99_us": 2302.0}})
    stats = read_stats(tmp_path)
    line = render_status(stats)
    assert "msgs 1200" in line and "orders 9" in line and "fills 8" in line and "pnl 1.25" in line
    assert "feed p50/p99 31/217us" in line and "tick->order p50/p99 1021/2302us" in line

    result = {"run_id": "r1", "run_dir": str(tmp_path), "started_at": 100.0, "ended_at": 160.5,
              "processes": True, "exit_codes": {"feed": 0, "executor": 0}, "failed": [],
              "components": ["feed", "executor"], "stats": stats}
    summary = summarise(result)
    assert summary["duration_s"] == 60.5 and summary["executor"]["fills"] == 8
    assert "pid" not in summary["feed"] and "written_at" not in summary["feed"]
    text = render_summary(summary)
    assert text.startswith("run r1: 60.5s, processes") and "fills" in text and "FAILED" not in text
