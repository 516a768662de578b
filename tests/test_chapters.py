"""Chapter markers: wall-clock marks to media offsets (across a crash's discontinuity), merging,
clamping, the WebVTT file, and marks that outlive the signalling process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

from signaling import chapters
from signaling.recordings import Recordings
from signaling.store import SqliteStore
from signaling.webhooks import Webhooks
from tests.support.webvtt import parse_chapters

# Two parts: 0-4 s recorded from wall-clock 1000, a crash, then 4-8 s from wall-clock 1010.
PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-MAP:URI="init_0.mp4"
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:40.000Z
#EXTINF:2.000,
seg_00000.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:42.000Z
#EXTINF:2.000,
seg_00001.m4s
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI="init_1.mp4"
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:50.000Z
#EXTINF:2.000,
seg_00002.m4s
#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:52.000Z
#EXTINF:2.000,
seg_00003.m4s
#EXT-X-ENDLIST
"""


def marks(*pairs: tuple[float, str]) -> list[dict[str, Any]]:
    return [{"at": at, "title": title} for at, title in pairs]


def test_offsets_follow_program_date_time_across_a_discontinuity() -> None:
    spans = chapters.playlist_spans(PLAYLIST)
    assert [s[:2] for s in spans] == [(1000.0, 0.0), (1002.0, 2.0), (1010.0, 4.0), (1012.0, 6.0)]
    assert chapters.media_offset(999.0, spans) == 0.0  # before the first frame
    assert chapters.media_offset(1003.25, spans) == 3.25
    assert chapters.media_offset(1006.0, spans) == 4.0  # in the crash's gap: the resumed part
    assert chapters.media_offset(1011.5, spans) == 5.5
    assert chapters.media_offset(1030.0, spans) == 8.0


def test_chapters_ordered_gapless_merged_and_clamped() -> None:
    spans = chapters.playlist_spans(PLAYLIST)
    made = chapters.build(marks((1011.5, "Bob presents"), (995.0, "Ann presents"),
                                (1003.25, "Poll: dose?"), (1006.0, "Answered: a"),
                                (1008.0, "Answered: b"), (1040.0, "Poll: late")), spans, 7.9)
    assert made == [
        {"start": 0.0, "end": 3.25, "title": "Ann presents"},
        {"start": 3.25, "end": 4.0, "title": "Poll: dose?"},
        {"start": 4.0, "end": 5.5, "title": "Answered: a; Answered: b"},
        # a mark past the end joins the last chapter rather than being a 0 s one
        {"start": 5.5, "end": 7.9, "title": "Bob presents; Poll: late"},
    ]
    assert chapters.build(marks((1001.0, "x")), spans, 0.0) == []
    assert chapters.build([], spans, 8.0) == []


def test_webvtt_file_reads_back_with_the_same_cues(tmp_path: Path) -> None:
    (tmp_path / "index.m3u8").write_text(PLAYLIST)
    made = chapters.write(tmp_path, marks((1001.0, "Ann presents"),
                                          (1012.5, "Poll: more --> or\nless?")), 8.0, None)
    assert made is not None and made[1]["title"] == "Poll: more -> or less?"
    cues = parse_chapters((tmp_path / chapters.VTT).read_text(encoding="utf-8"))
    assert [(c.start, c.end, c.text) for c in cues] == [
        (c["start"], c["end"], c["title"]) for c in made]
    assert chapters.webvtt([{"start": 3723.5, "end": 4000.0, "title": "t"}]).splitlines()[3] \
        == "01:02:03.500 --> 01:06:40.000"
    long = chapters.title("Answered: ", "why " * 100)
    assert len(long) == chapters.MAX_TITLE and long.endswith("…")


def test_pertrack_and_no_media_fall_back_to_wall_clock_starts(tmp_path: Path) -> None:
    (tmp_path / "tracks.json").write_text('{"start_time": 2000.0, "tracks": []}')
    assert chapters.write(tmp_path, marks((2003.0, "a")), 10.0, 1990.0) == [
        {"start": 3.0, "end": 10.0, "title": "a"}]
    bare = tmp_path / "bare"
    bare.mkdir()
    assert chapters.write(bare, marks((1995.0, "a")), 10.0, 1990.0) == [
        {"start": 5.0, "end": 10.0, "title": "a"}]
    assert chapters.write(tmp_path / "missing", marks((1.0, "a")), 10.0, 0.0) is None


async def test_marks_outlive_signalling_and_reach_a_crash_recovered_vod(tmp_path: Path) -> None:
    """Marks noted by one signalling process are in the entry, the file and the webhook when
    another one (after a restart) hears that the recorder finalized the interrupted recording."""
    store = SqliteStore(tmp_path / "store.sqlite3")
    await store.open()
    try:
        directory = tmp_path / "recordings"
        (directory / "rec-1").mkdir(parents=True)
        (directory / "rec-1" / "index.m3u8").write_text(PLAYLIST)
        await store.put_recording({"id": "rec-1", "room": "r", "mode": "composite",
                                   "state": "recording", "started": 999.5})
        await store.add_recording_chapter("rec-1", 1003.0, "Poll: before the restart")
        sent: list[dict[str, Any]] = []
        hooks = Webhooks("", "secret")
        hooks.send = lambda event, data: sent.append(data)  # type: ignore[method-assign]
        fresh = Recordings(store, cast(Any, None), directory, "secret", hooks)
        fresh._on_event({"event": "recording.ready", "recording_id": "rec-1", "room": "r",
                         "interrupted": True, "participants": ["Ann"], "duration": 8.0,
                         "size": 10, "playlist": str(directory / "rec-1" / "index.m3u8")})
        deadline = time.monotonic() + 10
        while (entry := await store.get_recording("rec-1"))["state"] != "ready":
            assert time.monotonic() < deadline, entry
            await asyncio.sleep(0.02)
        expected = [{"start": 3.0, "end": 8.0, "title": "Poll: before the restart"}]
        assert entry["chapters"] == expected and entry["interrupted"] is True
        assert entry["files"]["chapters"] == "chapters.vtt"
        assert sent and sent[0]["chapters"] == expected and "chapters" in sent[0]["links"]
        assert "&chapters=" in sent[0]["links"]["player"]
        cues = parse_chapters((directory / "rec-1" / "chapters.vtt").read_text())
        assert [(c.start, c.end, c.text) for c in cues] == [(3.0, 8.0, expected[0]["title"])]
    finally:
        await store.close()
