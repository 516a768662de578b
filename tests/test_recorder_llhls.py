"""Low-latency HLS: the playlist with parts (rendering rules of RFC 8216bis), the parts the
compositor cuts (each a fragment, segments their concatenation, INDEPENDENT on key frames),
and a recorder process fed RTP with `low_latency` on, checked live and after stop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av

from recorder.composite import CompositeOptions, Compositor, PartStart
from recorder.fmp4 import iter_boxes
from recorder.hls import Part, Playlist, Segment
from recorder.llhls import PART_FILES_KEPT, frag_duration_us, part_frames, part_target
from recorder.vod import finalize
from tests.support.recorder_control import RecorderProcess
from tests.support.recorder_hls import (
    M3u8,
    PartTag,
    attributes,
    check_playlist,
    ffprobe_path,
    parse_m3u8,
    segment_starts_with_keyframe,
    until_playlist,
)
from tests.support.recorder_media import Participant, Source, Tap

T0 = 1_800_000_000.0


def _parts(prefix: str, n: int, first_independent: bool = True) -> list[Part]:
    return [Part(f"{prefix}_{i}.m4s", 0.33333, first_independent and i == 0) for i in range(n)]


def ll_playlist(complete: int, open_parts: int) -> Playlist:
    pl = Playlist(target=2, part_target=0.355)
    for i in range(complete):
        pl.segments.append(Segment(f"seg_{i:05d}.m4s", 2.0, T0 + 2 * i,
                                   "init_0.mp4" if i == 0 else None, parts=_parts(f"p{i}", 6)))
    pl.open = Segment(f"seg_{complete:05d}.m4s", 0.33333 * open_parts, T0 + 2 * complete,
                      parts=_parts(f"p{complete}", open_parts))
    pl.preload_hint = f"p{complete}_{open_parts}.m4s"
    return pl


# ---- the playlist ------------------------------------------------------------------------------


def test_ll_playlist_parts_preload_hint_and_server_control() -> None:
    pl = ll_playlist(complete=2, open_parts=3)
    text = pl.render()
    m3u8 = parse_m3u8(text)
    control = attributes(m3u8.tags["#EXT-X-SERVER-CONTROL"])
    part_inf = attributes(m3u8.tags["#EXT-X-PART-INF"])
    assert control["CAN-BLOCK-RELOAD"] == "YES"
    assert float(part_inf["PART-TARGET"]) == 0.355
    # PART-HOLD-BACK must be at least two part targets, should be three (4.4.3.8)
    assert float(control["PART-HOLD-BACK"]) >= 3 * 0.355 - 1e-9
    assert [s.uri for s in m3u8.segments] == ["seg_00000.m4s", "seg_00001.m4s"]
    for i, seg in enumerate(m3u8.segments):
        assert [p.uri for p in seg.parts] == [f"p{i}_{k}.m4s" for k in range(6)]
        assert [p.independent for p in seg.parts] == [True] + [False] * 5
        assert abs(sum(p.duration for p in seg.parts) - seg.duration) < 0.01
    assert [p.uri for p in m3u8.open_parts] == ["p2_0.m4s", "p2_1.m4s", "p2_2.m4s"]
    assert m3u8.preload_hint == {"TYPE": "PART", "URI": "p2_3.m4s"}
    # The open segment's date-time applies to its first part: it comes before it (4.4.4.9).
    lines = text.splitlines()
    first_open = lines.index('#EXT-X-PART:DURATION=0.33333,URI="p2_0.m4s",INDEPENDENT=YES')
    assert lines[first_open - 1].startswith("#EXT-X-PROGRAM-DATE-TIME:2027-01-15T08:00:04")
    assert lines.index("#EXT-X-PART-INF:PART-TARGET=0.355") < lines.index(
        "#EXT-X-MEDIA-SEQUENCE:0")
    assert not m3u8.endlist


def test_parts_leave_the_playlist_three_target_durations_from_its_end() -> None:
    m3u8 = parse_m3u8(ll_playlist(complete=8, open_parts=2).render())
    listed = [i for i, s in enumerate(m3u8.segments) if s.parts]
    # 3 target durations = 6 s: the open parts (0.67 s) and the last three segments
    assert listed == [5, 6, 7]
    assert len(m3u8.segments) == 8  # the segments themselves all stay (EVENT, DVR)


def test_ended_and_plain_playlists_carry_no_low_latency_tags() -> None:
    pl = ll_playlist(complete=2, open_parts=0)
    pl.open, pl.ended = None, True
    text = pl.render()
    for tag in ("#EXT-X-PART", "#EXT-X-SERVER-CONTROL", "#EXT-X-PRELOAD-HINT"):
        assert tag not in text
    assert parse_m3u8(text).endlist
    plain = Playlist(target=2, segments=[Segment("seg_00000.m4s", 2.0, T0, "init_0.mp4")])
    assert "#EXT-X-PART" not in plain.render() and "SERVER-CONTROL" not in plain.render()


def test_a_low_latency_playlist_reads_back_without_its_parts() -> None:
    back = Playlist.parse(ll_playlist(complete=2, open_parts=3).render())
    assert [s.uri for s in back.segments] == ["seg_00000.m4s", "seg_00001.m4s"]
    assert [s.map_uri for s in back.segments] == ["init_0.mp4", None]
    assert back.segments[1].pdt == T0 + 2 and back.open is None and back.part_target is None


def test_part_sizes_keep_the_part_target_rules() -> None:
    for seconds, fps, frames in ((1 / 3, 30, 10), (0.5, 30, 15), (0.4, 25, 10)):
        assert part_frames(seconds, fps) == frames
        target = part_target(frames, fps)
        span = frames / fps
        # every part at most PART-TARGET (the first one carries the AAC priming), the others
        # at least 85% of it (RFC 8216bis 4.4.4.9)
        assert span + 1024 / 48000 <= target and span >= 0.85 * target
        assert (frames - 1) / fps < frag_duration_us(frames, fps) / 1e6 < span


# ---- parts cut by the compositor -------------------------------------------------------------


def check_parts(directory: Path, m3u8: M3u8, work: Path) -> int:
    """Every listed part a fragment (moof+mdat only), decodable after the init segment, its
    INDEPENDENT flag true exactly when it starts with a key frame, within PART-TARGET; every
    segment whose parts are all listed is their concatenation. Returns the parts checked."""
    target = float(attributes(m3u8.tags["#EXT-X-PART-INF"])["PART-TARGET"])
    init = directory / next(s.map_uri for s in m3u8.segments if s.map_uri)
    checked = 0
    for seg in [*m3u8.segments, None]:
        parts = seg.parts if seg is not None else m3u8.open_parts
        for k, part in enumerate(parts):
            data = (directory / part.uri).read_bytes()
            kinds = [kind for kind, _s, _e in iter_boxes(data)]
            assert kinds and kinds[-2:] == ["moof", "mdat"] and set(kinds) == {"moof", "mdat"}
            assert part.duration <= target + 1e-6
            if not part.independent and (seg is None or k < len(parts) - 1):
                assert part.duration >= 0.85 * target, part  # unless its segment's last
            key = segment_starts_with_keyframe(init, directory / part.uri, work)
            assert key == part.independent, f"{part.uri}: INDEPENDENT={part.independent}"
            checked += 1
        if seg is not None and parts:
            assert parts[0].independent, f"{seg.uri} does not start with an independent part"
            joined = b"".join((directory / p.uri).read_bytes() for p in parts)
            assert joined == (directory / seg.uri).read_bytes(), seg.uri
            assert abs(sum(p.duration for p in parts) - seg.duration) < 0.002
    return checked


def test_compositor_cuts_parts_and_prunes_old_part_files(tmp_path: Path) -> None:
    ffprobe_path()
    out = tmp_path / "rec"
    out.mkdir()
    options = CompositeOptions(width=320, height=180, segment_seconds=1.0, low_latency=True)
    comp = Compositor(out, options, PartStart(Playlist(1)))
    comp.start()
    source = Source(0)
    comp.add_track("v", "video", "VP8", "Ann", "ann")
    comp.add_track("a", "audio", "opus", "Ann", "ann")
    seconds = PART_FILES_KEPT + 4  # target duration 1 s: the oldest part files go
    t0 = time.time() + 2.0
    for i in range(seconds * 30):
        for f in source.video_frame(i):
            comp.push("v", f, t0 + i / 30)
        for k in range(i * 5 // 3, (i + 1) * 5 // 3):
            for f in source.audio_frame(k, loud=False):
                comp.push("a", f, t0 + k * 0.02)
    comp.stop()
    comp.join()
    assert comp.error is None
    m3u8 = parse_m3u8((out / "index.m3u8").read_text())
    assert not m3u8.endlist and m3u8.preload_hint is None and not m3u8.open_parts
    assert abs(sum(s.duration for s in m3u8.segments) - seconds) < 0.3
    listed = [s for s in m3u8.segments if s.parts]
    assert 3 <= len(listed) <= 4 and listed[-1] is m3u8.segments[-2 if len(
        m3u8.segments[-1].parts) == 0 else -1]
    assert all(len(s.parts) == 3 for s in listed[:-1])  # 1 s segments of 10-frame parts
    assert check_parts(out, m3u8, tmp_path) >= 9
    on_disk = sorted(p.name for p in out.glob("part_*.m4s"))
    # the first segments' parts are deleted, the last PART_FILES_KEPT target durations' kept
    assert "part_0_00000.m4s" not in on_disk
    assert PART_FILES_KEPT * 3 <= len(on_disk) <= (PART_FILES_KEPT + 2) * 3, on_disk
    check_playlist(m3u8, out)
    result = finalize(out, comp.part.playlist)
    assert not list(out.glob("part_*.m4s")) and "#EXT-X-PART" not in (
        out / "index.m3u8").read_text()
    with av.open(str(result["mp4"])) as c:
        assert abs(float(c.duration or 0) / av.time_base - seconds) < 0.3


# ---- a recorder process with low_latency on ---------------------------------------------------


def all_parts(m3u8: M3u8) -> list[PartTag]:
    return [p for s in m3u8.segments for p in s.parts] + m3u8.open_parts


async def test_recorder_process_low_latency(tmp_path: Path) -> None:
    ffprobe_path()
    recorder = RecorderProcess(tmp_path / "recordings", tmp_path / "control.sock")
    people = [Participant(0, "Ann", 6.0), Participant(1, "Bob", 6.0, tone_hz=660.0)]
    await recorder.start()
    try:
        started = await recorder.request("start", recording_id="ll-1", room="r", mode="composite",
                                         layout="grid", low_latency=True)
        for p in people:
            for track in p.codecs():
                await recorder.request("add_track", recording_id="ll-1", **track)
        directory = Path(started["directory"])
        tap = Tap(people, ("127.0.0.1", started["rtp_port"]))
        await tap.open()
        sending = asyncio.create_task(tap.run())
        # Live: two complete segments and parts of the third.
        live = await until_playlist(directory / "index.m3u8",
                                    lambda m: len(m.segments) >= 2 and m.open_parts)
        snapshot = tmp_path / "live"
        snapshot.mkdir()
        for name in {s.map_uri for s in live.segments if s.map_uri} | {
                s.uri for s in live.segments} | {p.uri for p in all_parts(live)}:
            (snapshot / name).write_bytes((directory / name).read_bytes())
        await sending
        result = await recorder.request("stop", recording_id="ll-1")
        tap.close()
    finally:
        await recorder.close()
    assert attributes(live.tags["#EXT-X-SERVER-CONTROL"])["CAN-BLOCK-RELOAD"] == "YES"
    hint = live.preload_hint
    assert hint is not None and hint["TYPE"] == "PART"
    numbers = [int(p.uri[-9:-4]) for p in all_parts(live)]
    assert numbers == list(range(len(numbers))) and hint["URI"] == f"part_0_{len(numbers):05d}.m4s"
    assert check_parts(snapshot, live, tmp_path) == len(numbers)
    assert all(len(s.parts) == 6 for s in live.segments)  # 2 s of 1/3 s parts
    # After stop: a VOD playlist without parts, their files gone, the MP4 whole.
    vod = parse_m3u8((directory / "index.m3u8").read_text())
    assert vod.endlist and not any(s.parts for s in vod.segments) and vod.preload_hint is None
    assert not list(directory.glob("part_*.m4s"))
    check_playlist(vod, directory)
    assert abs(result["duration"] - 6.0) < 1.0
