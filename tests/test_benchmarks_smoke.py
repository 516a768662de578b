"""Smoke run of every load-generator scenario at small scale (benchmarks/, issue 3).

Checks that the tools work end to end (server subprocess, bot processes, media flowing, sampled
decodes verified, reports written), never how fast anything is: speed lives in benchmarks/.
Small video (320x180, a 2 s loop) keeps the one-time encoding short.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["--seconds", "3", "--warmup", "1", "--video-size", "320x180", "--bitrate", "300000",
          "--media-seconds", "2", "--sample-every", "2"]


def run_scenario(out: Path, *args: str, plots: bool = False) -> dict:
    extra = [] if plots else ["--no-plots"]
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", *args, *COMMON, *extra,
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    reports = sorted(out.glob("*.json"))
    assert len(reports) == 1, reports
    assert reports[0].with_suffix(".md").exists()
    assert (out / "latest.md").exists()
    results = json.loads(reports[0].read_text())
    assert results["error"] == ""
    return results


def check_step(step: dict, subscribers: int, publishers: int, new: int | None = None) -> None:
    """new: subscribers that joined in this step (all of them by default)."""
    assert step["bots"]["subscribers"] == subscribers
    assert step["bots"]["publishers"] == publishers
    assert step["bots"]["failed"] == 0, step["bots"]["failures"]
    assert step["traffic"]["packets_out_per_s"] > 0  # the server forwarded
    assert step["traffic"]["received_by_bots_per_s"] > 0  # and the bots received
    assert step["expected"] > 0
    assert step["loss_percent"] is not None and step["loss_percent"] < 5
    assert step["latency_ms"]["samples"] > 0
    assert step["samples"]["verified"] > 0, step["sample_errors"]
    assert step["samples"]["failed"] == 0, step["sample_errors"]
    assert step["join_s"]["bots"]["n"] == (subscribers if new is None else new)
    assert step["forwarded_per_cpu_s"] and step["server"]["rss_mib"] > 0


@pytest.mark.timeout(90)
def test_meeting_2x2(tmp_path: Path) -> None:
    results = run_scenario(tmp_path, "meeting", "--size", "2", "--no-aiortc")
    check_step(results["steps"][0], subscribers=2, publishers=2)


@pytest.mark.timeout(90)
def test_webinar_stepped_with_aiortc_join(tmp_path: Path) -> None:
    results = run_scenario(tmp_path, "webinar", "--step", "3", "--max", "5", plots=True)
    png = next(tmp_path.glob("*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert [s["label"] for s in results["steps"]] == ["1x3", "1x5"]
    for step, attendees in zip(results["steps"], (3, 5), strict=True):
        check_step(step, subscribers=attendees, publishers=1, new=attendees - 3 or 3)
        probe = step["join_s"]["aiortc"]
        assert probe["seconds"] is not None and probe["readable"], probe


@pytest.mark.timeout(90)
def test_rooms_2x2(tmp_path: Path) -> None:
    results = run_scenario(tmp_path, "rooms", "--rooms", "2", "--size", "2", "--no-aiortc")
    check_step(results["steps"][0], subscribers=4, publishers=4)
    assert "rooms-2x2" in (tmp_path / "latest.md").read_text()
