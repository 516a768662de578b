"""A 20 s meeting of aiortc participants recorded through the server, checked for content and
lip sync: WebRTC senders (aiortc's encoders, RTP timestamps and sender reports), the SFU's tap,
the recorder's jitter buffer, sync and compositor, HLS and the VOD MP4.

Each participant's camera flashes white while its microphone beeps (tests/support/av_sync.py):
in the recording every flash must have a beep within 120 ms, and each tile shows its own
sender's pattern with a counter that only moves forward.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.support.client import Client
from tests.support.recorder_analysis import analyse_video, beep_onsets
from tests.support.recorder_hls import (
    check_playlist,
    ffprobe,
    parse_m3u8,
    segment_starts_with_keyframe,
)
from tests.support.server import API_KEY, running_server
from tests.support.tracks import PatternVideoTrack, SharedClock, ToneAudioTrack

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SECONDS = 20.0
FPS = 30


async def test_recorded_meeting_keeps_patterns_and_lip_sync(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server:
        await server.create_room("sync")
        bots: list[Client] = []
        videos: list[PatternVideoTrack] = []
        try:
            async with aiohttp.ClientSession() as s:
                # Recording starts first, so each flash schedule is relative to media the
                # recording holds from its start on.
                async with s.post(server.base_url + "/api/rooms/sync/recordings",
                                  json={"mode": "composite", "layout": "grid"},
                                  headers=AUTH) as r:
                    assert r.status == 201, await r.text()
                    rid = (await r.json())["recordingId"]
                for sender, freq in ((1, 440.0), (2, 660.0)):
                    c = Client(server.base_url, server.token("sync", f"bot{sender}",
                                                             f"Dr {sender}"))
                    await c.connect()
                    await c.join()
                    clock = SharedClock()
                    video = PatternVideoTrack(sender, clock=clock, flash_until=SECONDS)
                    await c.publish(video, ToneAudioTrack(freq, clock, video.flashes))
                    bots.append(c)
                    videos.append(video)
                await asyncio.wait_for(
                    asyncio.gather(*(v.sent(int(SECONDS * FPS)) for v in videos)),
                    SECONDS + 30)
                async with s.post(server.base_url + "/api/rooms/sync/recordings/stop",
                                  headers=AUTH) as r:
                    assert r.status == 200, await r.text()
                    recording = (await r.json())["recording"]
                async with s.get(server.base_url + recording["links"]["mp4"]) as r:
                    assert r.status == 200
                    mp4 = tmp_path / "vod.mp4"
                    mp4.write_bytes(await r.read())
        finally:
            for c in bots:
                await c.close()
        directory = tmp_path / "data" / "recordings" / rid

    # ffprobe: codecs, size, 48 kHz, duration within 1 s of the meeting's.
    info = ffprobe(mp4, "-show_streams", "-show_format")
    streams = {st["codec_type"]: st for st in info["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (1280, 720)
    assert streams["audio"]["sample_rate"] == "48000"
    duration = float(info["format"]["duration"])
    assert abs(duration - SECONDS) <= 1.5, duration  # the second bot joined a little later
    assert abs(recording["duration"] - duration) <= 0.1

    # HLS: the playlist's rules, and every segment starts on a keyframe.
    playlist = parse_m3u8((directory / "index.m3u8").read_text())
    assert playlist.endlist
    check_playlist(playlist, directory)
    init = directory / playlist.segments[0].map_uri  # type: ignore[operator]
    for seg in playlist.segments:
        assert segment_starts_with_keyframe(init, directory / seg.uri, tmp_path), seg.uri

    # Content: each tile shows one sender, moving forward; flashes have their beeps.
    traces = analyse_video(mp4, 2)
    beeps = beep_onsets(mp4)
    shown = set()
    for i, trace in enumerate(traces):
        reads = [r for t, r in trace.reads if t > 2.0 and r is not None]
        assert len(reads) > 10 * FPS, f"tile {i}: only {len(reads)} readable frames"
        senders = {sid for sid, _ in reads}
        assert len(senders) == 1, f"tile {i} shows {senders}"
        shown |= senders
        counters = [c for _, c in reads]
        assert counters == sorted(counters), f"tile {i} goes back in time"
        assert len(trace.flashes) >= 7, trace.flashes  # a flash every 2 s of ~19 s
        for flash in trace.flashes:
            nearest = min(beeps, key=lambda b, f=flash: abs(b - f))
            assert abs(nearest - flash) <= 0.12, f"tile {i}: beep {nearest:.3f} s vs flash " \
                                                 f"{flash:.3f} s"
    assert shown == {1, 2}
    flashes = [f for t in traces for f in t.flashes]
    for beep in beeps:  # and no beep without its flash
        assert min(abs(beep - f) for f in flashes) <= 0.12, f"beep {beep:.3f} s without a flash"
