"""The analytics benchmark runs (small): its synthetic webinar gives one session with everyone
in it and its replay a heatmap of the recording's length; through both back ends of the event
log (SQLite, a real redis-server) the replay figures from the view summaries equal those from
the raw reports. No timing is asserted (DESIGN.md: speed is measured in benchmarks/, never
asserted in tests)."""

from __future__ import annotations

from benchmarks import analytics as bench


def test_benchmark_runs_small() -> None:
    result = bench.main(["--attendees", "40", "--views", "15", "--hours", "0.25", "--runs", "1",
                         "--out", ""])
    assert result["report_participants"] == 40 + 4  # attendees, a host and three presenters
    assert result["heatmap_seconds"] == 900 and result["heatmap_views"] >= 1
    assert set(result["logs"]) == {"sqlite", "redis"}
    for rows in result["logs"].values():
        # (a room's read carries the log's node.start too)
        assert rows["report_via_log"]["read"] == result["live_events"] + 1
        assert rows["heatmap_via_log"]["read"] == 15  # one summary per view
        assert rows["heatmap_via_raw_reports"]["read"] == result["play_events"]
        assert rows["same_figures"] is True
        for part in ("report_via_log", "heatmap_via_log", "heatmap_via_raw_reports"):
            assert rows[part]["cpu_s"] >= 0
    assert "redis" in bench.markdown(result)
