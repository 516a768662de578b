"""The analytics benchmark runs (small): its synthetic webinar gives one session with everyone
in it and its replay a heatmap of the recording's length. No timing is asserted (DESIGN.md:
speed is measured in benchmarks/, never asserted in tests)."""

from __future__ import annotations

from benchmarks import analytics as bench


def test_benchmark_runs_small() -> None:
    result = bench.main(["--attendees", "40", "--views", "15", "--hours", "0.25", "--runs", "1",
                         "--out", ""])
    assert result["report_participants"] == 40 + 4  # attendees, a host and three presenters
    assert result["heatmap_seconds"] == 900 and result["heatmap_views"] >= 1
    # (a room's read carries the log's node.start too)
    assert result["report_via_log"]["events"] == result["live_events"] + 1
    assert result["heatmap_via_log"]["events"] == result["play_events"]
    for part in ("report", "heatmap", "report_via_log", "heatmap_via_log"):
        assert result[part]["cpu_s"] >= 0
