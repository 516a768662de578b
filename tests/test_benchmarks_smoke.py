"""Smoke run of every load-generator scenario at small scale (benchmarks/, issue 3).

Checks that the tools work end to end (server subprocess, bot processes, media flowing, sampled
decodes verified, reports written), never how fast anything is: speed lives in benchmarks/.
The side-by-side run also starts Janus 1.1.2 (Debian's `janus`, installed by `make test`) in a
network namespace; without Janus that test fails, it never skips.
Small video (320x180, a 2 s loop) keeps the one-time encoding short.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["--seconds", "3", "--warmup", "1", "--video-size", "320x180", "--bitrate", "300000",
          "--media-seconds", "2", "--sample-every", "2"]


def run_scenario(out: Path, *args: str, plots: bool = False, timeout: float = 60) -> dict:
    extra = [] if plots else ["--no-plots"]
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", *args, *COMMON, *extra,
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    reports = sorted(out.glob("*.json"))
    assert len(reports) == 1, reports
    assert reports[0].with_suffix(".md").exists()
    results = json.loads(reports[0].read_text())
    if not any(a.startswith("--compare") for a in args):  # one target: latest.md updated
        assert (out / "latest.md").exists()
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


@pytest.mark.timeout(150)
def test_webinar_compare_with_janus(tmp_path: Path) -> None:
    """The same bots against ours and Janus 1.1.2 in one run: one report with both and the
    ratios. Janus is installed by `make test` (Debian's janus): missing, this fails."""
    for tool, package in (("janus", "janus"), ("unshare", "util-linux"), ("ip", "iproute2")):
        assert shutil.which(tool), f"`{tool}` is missing: apt-get install -y {package}"
    # the publisher in a bot process of its own: latency through Janus then comes from a
    # send log shared between processes
    results = run_scenario(tmp_path, "webinar", "--compare", "--step", "2", "--max", "3",
                           "--bot-procs", "2", "--publisher-proc", "--no-aiortc", plots=True,
                           timeout=120)
    assert results["scenario"] == "webinar-steps-2-3-compare"
    for target in ("ours", "janus"):
        run = results[target]
        assert run["target"] == target and run["error"] == "", run["error"]
        assert [s["label"] for s in run["steps"]] == ["1x2", "1x3"]
        for step, attendees in zip(run["steps"], (2, 3), strict=True):
            check_step(step, subscribers=attendees, publishers=1, new=attendees - 2 or 2)
            # every stream got latency samples: through Janus from the publisher's send log
            assert step["latency_ms"]["streams_measured"] == step["latency_ms"]["streams"] > 0
    assert results["janus"]["steps"][0]["forwarded_counted_by"] == "bots"
    assert [r["label"] for r in results["ratios"]] == ["1x2", "1x3"]
    assert all(r["efficiency_ratio"] > 0 for r in results["ratios"])
    assert set(results["capacity"]) == {"ours", "janus"}
    md = next(tmp_path.glob("*-compare-*.md")).read_text()
    assert "## Ours / Janus" in md and "Janus 1.1.2" in md
    png = next(tmp_path.glob("*-compare-*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(150)
def test_webinar_over_ice_tcp_against_udp(tmp_path: Path) -> None:
    """The same steps with the audience over ICE-TCP (the media worker's passive TCP
    candidate, RFC 4571 framing), then over UDP: one report with the TCP / UDP ratios, and the
    TCP run's media really came over TCP (the bots' connections and the server's counters)."""
    results = run_scenario(tmp_path, "webinar", "--compare-transports", "--step", "2", "--max",
                           "3", "--no-aiortc", timeout=140)
    assert results["scenario"] == "webinar-steps-2-3-tcp-vs-udp"
    for key, over in (("tcp", "tcp"), ("udp", "udp")):
        run = results[key]
        assert run["error"] == "", run["error"]
        assert run["options"]["ice_tcp"] is (over == "tcp")
        assert [s["label"] for s in run["steps"]] == ["1x2", "1x3"]
        for step, attendees in zip(run["steps"], (2, 3), strict=True):
            check_step(step, subscribers=attendees, publishers=1, new=attendees - 2 or 2)
            t = step["transport"]
            assert t["subscribers_over"] == over, t
            if over == "tcp":
                # one connection per attendee, held by the bots and accepted by the server
                assert t["tcp_connected"] == t["server_tcp_connections"] == attendees, t
                # every RTP packet the audience received came in a TCP frame
                assert t["tcp_frames_in_per_s"] >= step["traffic"]["received_by_bots_per_s"]
                assert t["server_tcp_send_dropped"] == 0, t
            else:
                assert t["tcp_connected"] == t["server_tcp_connections"] == 0, t
                assert t["tcp_frames_in_per_s"] == 0, t
    assert [r["label"] for r in results["ratios"]] == ["1x2", "1x3"]
    for row in results["medians"]:
        assert row["media_ratio_median"] > 0 and None not in row["p99_ms_median"], row
        assert all(n > 0 for n in row["forwarded_per_media_cpu_s_median"]), row
    md = next(tmp_path.glob("*-tcp-vs-udp-*.md")).read_text()
    assert "## ICE-TCP / UDP: the media worker's efficiency, p99 and loss" in md
    assert "Attendees over ICE-TCP" in md
