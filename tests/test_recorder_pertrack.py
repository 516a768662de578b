"""Per-track mode: each track remuxed untouched (VP8/Opus to WebM, H.264 to MP4), offsets known."""

from __future__ import annotations

import json
from pathlib import Path

import av

from tests.support.patterns import read_video_frame
from tests.support.recorder_control import RecorderProcess
from tests.support.recorder_hls import ffprobe, ffprobe_path
from tests.support.recorder_media import Participant, Tap

SECONDS = 4.0


def read_patterns(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as c:
        return [r for f in c.decode(video=0)
                if (r := read_video_frame(f.to_ndarray(format="rgb24"))) is not None]


async def test_pertrack_remux_with_offsets(tmp_path: Path) -> None:
    ffprobe_path()
    recorder = RecorderProcess(tmp_path / "recordings", tmp_path / "control.sock")
    alice = Participant(0, "Alice", SECONDS, drop_every=30)
    carol = Participant(2, "Carol", SECONDS, video_codec="H264", audio=False)
    await recorder.start()
    try:
        started = await recorder.request("start", recording_id="tracks-1", room="room-b",
                                         mode="pertrack", layout="grid")
        for p in (alice, carol):
            for track in p.codecs():
                await recorder.request("add_track", recording_id="tracks-1", **track)
        tap = Tap([alice, carol], ("127.0.0.1", started["rtp_port"]))
        await tap.open()
        await tap.run()
        result = await recorder.request("stop", recording_id="tracks-1")
        tap.close()
    finally:
        await recorder.close()

    sidecar = json.loads(Path(result["sidecar"]).read_text())
    tracks = {t["ssrc"]: t for t in sidecar["tracks"]}
    assert set(tracks) == {alice.video.ssrc, alice.audio.ssrc, carol.video.ssrc}
    directory = Path(started["directory"])
    expect = {alice.video.ssrc: ("video", "vp8", "webm"), alice.audio.ssrc: ("audio", "opus",
              "webm"), carol.video.ssrc: ("video", "h264", "mp4")}
    for ssrc, (kind, codec, ext) in expect.items():
        t = tracks[ssrc]
        path = directory / t["file"]
        assert path.suffix == f".{ext}" and t["kind"] == kind and t["codec"] == codec
        info = ffprobe(path, "-show_streams", "-show_format")
        (stream,) = info["streams"]
        assert stream["codec_name"] == codec
        if codec == "opus":
            assert stream["sample_rate"] == "48000"
        else:
            assert (stream["width"], stream["height"]) == (320, 240)
        assert abs(float(info["format"]["duration"]) - SECONDS) <= 0.5, (path, info["format"])
        assert abs(t["duration"] - SECONDS) <= 0.5
        assert t["start_offset"] is not None and 0 <= t["start_offset"] < 1.0
    assert min(t["start_offset"] for t in tracks.values()) == 0
    # Alice's audio and video started at the same capture time: their offsets agree.
    assert abs(tracks[alice.video.ssrc]["start_offset"]
               - tracks[alice.audio.ssrc]["start_offset"]) < 0.05
    assert tracks[alice.audio.ssrc]["participant_name"] == "Alice"
    # Untranscoded and complete despite the packets Alice lost (NACKs repaired them).
    assert alice.dropped > 0 and alice.retransmitted > 0
    for p in (alice, carol):
        reads = read_patterns(directory / tracks[p.video.ssrc]["file"])
        assert len(reads) >= 0.9 * p.frames_sent
        assert {sid for sid, _ in reads} == {p.sender_id}
        counters = [c for _, c in reads]
        assert counters == sorted(counters)
