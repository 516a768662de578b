"""kill -9 of the recorder mid-recording: what was written stays valid; a restart finalizes it
and resumes the same room into the same playlist after an EXT-X-DISCONTINUITY."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.support.recorder_control import RecorderProcess
from tests.support.recorder_hls import (
    check_playlist,
    ffprobe,
    ffprobe_path,
    parse_m3u8,
    segment_starts_with_keyframe,
)
from tests.support.recorder_media import FPS, Participant, Tap
from tests.support.recording_checks import check_resumed, tiles_shown

RID = "event-1"


async def add_tracks(recorder: RecorderProcess, people: list[Participant]) -> None:
    for p in people:
        for track in p.codecs():
            await recorder.request("add_track", recording_id=RID, **track)


async def record_until(recorder: RecorderProcess, people: list[Participant], room: str,
                       layout: str, segments: int) -> tuple[Path, Tap, asyncio.Task]:
    """Start a composite recording fed by a tap; return once the playlist lists `segments`."""
    started = await recorder.request("start", recording_id=RID, room=room, mode="composite",
                                     layout=layout)
    directory = Path(started["directory"])
    await add_tracks(recorder, people)
    tap = Tap(people, ("127.0.0.1", started["rtp_port"]))
    await tap.open()
    sending = asyncio.create_task(tap.run())
    playlist = directory / "index.m3u8"
    async with asyncio.timeout(30):
        while not playlist.exists() or playlist.read_text().count("#EXTINF") < segments:
            await asyncio.sleep(0.05)
    return directory, tap, sending


def decodes_cleanly(directory: Path, init: str, segments: list[str], work: Path) -> None:
    joined = work / "joined.mp4"
    joined.write_bytes(b"".join((directory / n).read_bytes() for n in [init, *segments]))
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(joined), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr.strip(), run.stderr


async def test_kill9_then_finalize_and_resume(tmp_path: Path) -> None:
    ffprobe_path()
    root = tmp_path / "recordings"
    people = [Participant(0, "Host", 60.0), Participant(1, "Guest", 60.0, tone_hz=660.0)]
    first = RecorderProcess(root, tmp_path / "a.sock")
    await first.start()
    try:
        directory, tap, sending = await record_until(first, people, "webinar", "speaker", 2)
        playlist = directory / "index.m3u8"
        first.kill9()  # mid-segment: media is still flowing
        assert first.proc is not None
        assert await first.proc.wait() == -9
        sending.cancel()
        tap.close()
    finally:
        await first.close()

    # Everything up to the last complete segment is valid.
    crashed = parse_m3u8(playlist.read_text())
    assert not crashed.endlist and len(crashed.segments) >= 2
    check_playlist(crashed, directory)
    init = crashed.segments[0].map_uri
    assert init is not None
    for seg in crashed.segments:
        assert segment_starts_with_keyframe(directory / init, directory / seg.uri, tmp_path)
    decodes_cleanly(directory, init, [s.uri for s in crashed.segments], tmp_path)
    frames_before = people[0].frames_sent

    second = RecorderProcess(root, tmp_path / "b.sock")
    await second.start()
    try:
        # Restart: the interrupted recording is finalized into a playable VOD.
        recovered = await second.wait_event("recording.ready")
        assert recovered["interrupted"] and recovered["recording_id"] == RID
        vod = parse_m3u8(playlist.read_text())
        assert vod.endlist and [s.uri for s in vod.segments] == [s.uri for s in crashed.segments]
        duration = float(ffprobe(Path(recovered["mp4"]), "-show_format")["format"]["duration"])
        assert abs(duration - sum(s.duration for s in crashed.segments)) < 0.3
        assert Path(recovered["poster"]).stat().st_size > 0

        # Resume the same room: same playlist, after a discontinuity.
        resumed = await second.request("start", recording_id=RID, room="webinar",
                                       mode="composite", layout="speaker")
        assert resumed["resumed"]
        await add_tracks(second, people)
        tap = Tap(people, ("127.0.0.1", resumed["rtp_port"]))
        await tap.open()
        await tap.run(start_frame=frames_before, seconds=frames_before / FPS + 4.5)
        result = await second.request("stop", recording_id=RID)
        tap.close()
    finally:
        await second.close()

    final = parse_m3u8(playlist.read_text())
    check_resumed(final, crashed, directory)
    n = len(crashed.segments)
    assert len(final.segments) >= n + 2
    after = final.segments[n]
    assert after.map_uri is not None
    before = crashed.segments[-1]
    assert after.pdt is not None and before.pdt is not None
    assert after.pdt >= before.pdt + before.duration  # wall-clock time went on
    for seg in final.segments[n:]:
        assert segment_starts_with_keyframe(directory / after.map_uri, directory / seg.uri,
                                            tmp_path)
    total = sum(s.duration for s in final.segments)
    info = ffprobe(Path(result["mp4"]), "-show_format", "-show_streams")
    assert abs(float(info["format"]["duration"]) - total) < 0.5
    assert {s["codec_name"] for s in info["streams"]} == {"h264", "aac"}
    # The resumed part shows both people within half a second (a PLI got their key frames).
    resume_at = sum(s.duration for s in crashed.segments) + 0.5
    assert tiles_shown(Path(result["mp4"]), resume_at, 2, "speaker") == {0, 1}


async def test_orphaned_recorder_finalizes_and_exits(tmp_path: Path) -> None:
    """The server dies hard (its recorder is orphaned): the recorder finalizes what runs and
    exits instead of recording an idle room for ever beside the next server's recorder."""
    ffprobe_path()
    people = [Participant(0, "Host", 60.0)]
    recorder = RecorderProcess(tmp_path / "recordings", tmp_path / "o.sock", via_parent=True)
    await recorder.start()
    try:
        directory, tap, sending = await record_until(recorder, people, "clinic", "grid", 1)
        playlist = directory / "index.m3u8"
        await recorder.orphan()
        ready = await recorder.wait_event("recording.ready")  # finalized on the way out
        async with asyncio.timeout(15):
            while recorder.running():
                await asyncio.sleep(0.1)
        sending.cancel()
        tap.close()
    finally:
        await recorder.close()
    assert ready["recording_id"] == RID
    final = parse_m3u8(playlist.read_text())
    assert final.endlist and final.segments
    info = ffprobe(Path(ready["mp4"]), "-show_format")
    assert float(info["format"]["duration"]) > 0.5
