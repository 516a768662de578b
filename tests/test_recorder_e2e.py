"""The recorder process records two plain-RTP participants into live HLS and a VOD MP4.

Real parts only: the recorder runs as its own process, media goes over UDP on 127.0.0.1
(VP8 pattern video and Opus, with one sender losing packets that NACKs repair and a sender
clock 3.7 s off), outputs are checked with ffprobe, an m3u8 reader and by decoding. Set
RECORDER_E2E_SECONDS=20 for the long variant of the issue (10 s keeps CI time down).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.support.recorder_analysis import analyse_video, beep_onsets
from tests.support.recorder_control import RecorderProcess
from tests.support.recorder_hls import (
    check_playlist,
    ffprobe,
    ffprobe_path,
    parse_m3u8,
    segment_starts_with_keyframe,
)
from tests.support.recorder_media import Participant, Tap

SECONDS = float(os.environ.get("RECORDER_E2E_SECONDS", "10"))


async def watch_playlist(path: Path, snapshots: list[str], stop: asyncio.Event) -> None:
    """Read the live playlist as a player would; every segment it names must exist already."""
    while not stop.is_set():
        if path.exists():
            text = path.read_text()
            if not snapshots or text != snapshots[-1]:
                for seg in parse_m3u8(text).segments:
                    assert (path.parent / seg.uri).is_file(), f"{seg.uri} listed before written"
                snapshots.append(text)
        await asyncio.sleep(0.1)


async def test_composite_recording_end_to_end(tmp_path: Path) -> None:
    ffprobe_path()
    recorder = RecorderProcess(tmp_path / "recordings", tmp_path / "control.sock")
    alice = Participant(0, "Alice", SECONDS)
    bob = Participant(1, "Bob Smith", SECONDS, tone_hz=660.0, ntp_skew=3.7, drop_every=40)
    snapshots: list[str] = []
    done = asyncio.Event()
    await recorder.start()
    try:
        started = await recorder.request("start", recording_id="meeting-1", room="room-a",
                                         mode="composite", layout="grid")
        playlist = Path(started["directory"]) / "index.m3u8"
        for p in (alice, bob):
            for track in p.codecs():
                await recorder.request("add_track", recording_id="meeting-1", **track)
        tap = Tap([alice, bob], ("127.0.0.1", started["rtp_port"]))
        await tap.open()
        watcher = asyncio.create_task(watch_playlist(playlist, snapshots, done))
        await tap.run()
        await asyncio.sleep(0.3)
        done.set()
        await watcher
        assert not watcher.exception()
        result = await recorder.request("stop", recording_id="meeting-1")
        ready = await recorder.wait_event("recording.ready")
        tap.close()
    finally:
        await recorder.close()

    # The answer and the event.
    assert ready["recording_id"] == "meeting-1" and ready["mp4"] == result["mp4"]
    assert result["participants"] == ["Alice", "Bob Smith"]
    assert abs(result["duration"] - SECONDS) <= 1.0, result["duration"]
    assert result["size"] == Path(result["mp4"]).stat().st_size > 0
    bob_video = next(t for t in result["tracks"] if t["ssrc"] == bob.video.ssrc)
    assert bob.dropped > 0 and bob.retransmitted > 0 and bob_video["nacks"] > 0
    assert bob_video["frames"] >= 0.9 * bob.frames_sent, bob_video

    # ffprobe: codecs, size, rate, duration.
    info = ffprobe(Path(result["mp4"]), "-show_streams", "-show_format")
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (1280, 720)
    assert streams["audio"]["sample_rate"] == "48000"
    assert abs(float(info["format"]["duration"]) - SECONDS) <= 1.0
    poster = ffprobe(Path(result["poster"]), "-show_streams")["streams"][0]
    assert poster["codec_name"] == "mjpeg" and poster["width"] == 1280

    # The live playlist only grew, never ended early; the final one keeps every rule.
    live = [s for s in snapshots if "#EXTINF" in s]
    assert len(live) >= 3, "the playlist was not updated live"
    for before, after in zip(live, live[1:], strict=False):
        assert after.startswith(before), "the EVENT playlist changed other than by appending"
        assert "#EXT-X-ENDLIST" not in before
    final_text = playlist.read_text()
    assert final_text.startswith(live[-1].replace("#EXT-X-ENDLIST\n", ""))
    final = parse_m3u8(final_text)
    assert final.endlist
    check_playlist(final, playlist.parent)
    assert abs(sum(s.duration for s in final.segments) - SECONDS) <= 1.0
    init = playlist.parent / final.segments[0].map_uri  # type: ignore[operator]
    for seg in final.segments:
        assert segment_starts_with_keyframe(init, playlist.parent / seg.uri, tmp_path), seg.uri

    # Each tile shows its sender's pattern, in order; flashes and beeps line up.
    traces = analyse_video(Path(result["mp4"]), 2)
    beeps = beep_onsets(Path(result["mp4"]))
    for sender, (trace, p) in enumerate(zip(traces, (alice, bob), strict=True)):
        reads = [r for t, r in trace.reads if t > 1.0 and r is not None]
        flashing = sum(1 for t, r in trace.reads if t > 1.0 and r is None)
        assert len(reads) >= 0.85 * (len(trace.reads) - flashing), f"tile {sender} unreadable"
        assert all(sid == sender for sid, _ in reads), f"tile {sender} shows another sender"
        counters = [c for _, c in reads]
        assert counters == sorted(counters), f"tile {sender} goes back in time"
        assert len(trace.flashes) == len(p.flashes), (trace.flashes, p.flashes)
        for flash in trace.flashes:
            nearest = min(beeps, key=lambda b, f=flash: abs(b - f))
            assert abs(nearest - flash) <= 0.12, f"beep {nearest:.3f}s vs flash {flash:.3f}s"
    assert len(beeps) == len(alice.flashes) + len(bob.flashes), beeps
    # Participants line up with each other too (Bob's clock is 3.7 s off; flashes 0.5 s apart).
    offsets = [b - a for a, b in zip(traces[0].flashes, traces[1].flashes, strict=False)]
    assert offsets and all(abs(d - 0.5) <= 0.1 for d in offsets), offsets
