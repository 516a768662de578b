"""Chapter markers of a recording: room events noted while it runs, made media offsets at the end.

While a room is recorded, signalling notes marks, each the wall-clock time of an event and a
title ("Ann presents", "Poll: ...", "Answered: ..."), in the Store under the recording's id, so
they outlive a signalling restart. When the VOD is made they become offsets on the recording's
media timeline:

- composite: through the playlist the recorder wrote, whose EXT-X-PROGRAM-DATE-TIME is the
  wall-clock of each segment's start and whose EXTINF durations add up to the VOD timeline. A
  mark inside a segment lands at its place in that segment; a mark in the gap a crash left
  (before the resumed part after the EXT-X-DISCONTINUITY) lands where the resumed part begins.
- per-track: from the wall-clock start of the earliest track (`start_time` in tracks.json).
- no media written: from the wall-clock at which the recording was started (the entry's
  `started`).

Offsets are clamped to [0, duration]. Each chapter ends where the next begins, the last at the
end; marks that land on the same offset become one chapter ("A; B"). The chapters go into the
index entry and into `chapters.vtt` (WebVTT, the chapter menu of players).
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .rooms import Room, Track

VTT = "chapters.vtt"
MAX_TITLE = 120
PRESENTER_ROLES = frozenset({"host", "presenter"})
_PDT = "#EXT-X-PROGRAM-DATE-TIME:"
Span = tuple[float, float, float]  # (wall-clock start, media start, length) in seconds


def title(prefix: str, text: str) -> str:
    """One line of at most MAX_TITLE characters, never holding WebVTT's "-->"."""
    line = (prefix + " ".join(text.split())).replace("-->", "->")
    return line if len(line) <= MAX_TITLE else line[: MAX_TITLE - 1].rstrip() + "…"


def presenter(room: Room, track: Track) -> tuple[str, str] | None:
    """(participant id, chapter title) when this track puts someone on the stage presenting:
    camera video in the main room from a host, a presenter or an attendee promoted to the
    stage. Audio, breakout groups, meeting attendees and services are no presenter changes."""
    if track.kind != "video" or track.group is not None:
        return None
    who = room.participants.get(track.participant_id)
    if who is None or not (who.role in PRESENTER_ROLES or who.on_stage):
        return None
    return who.id, title("", who.name) + " presents"


# ---- wall-clock -> media offsets -----------------------------------------------------------

def playlist_spans(text: str) -> list[Span]:
    """Each segment of an HLS playlist as (program-date-time, start on the timeline, EXTINF)."""
    spans: list[Span] = []
    timeline, wall = 0.0, None
    for line in text.splitlines():
        if line.startswith(_PDT):
            stamp = line[len(_PDT):].strip().replace("Z", "+00:00")
            wall = datetime.fromisoformat(stamp).timestamp()
        elif line.startswith("#EXTINF:"):
            length = float(line[8:].split(",", 1)[0])
            if wall is not None:
                spans.append((wall, timeline, length))
            timeline += length
            wall = None
    return spans


def recording_spans(directory: Path, started: float | None) -> list[Span]:
    """How the recording's media maps to wall-clock, from what the recorder left behind."""
    playlist = directory / "index.m3u8"
    if playlist.is_file() and (spans := playlist_spans(playlist.read_text())):
        return spans
    try:
        origin = json.loads((directory / "tracks.json").read_text()).get("start_time")
    except (OSError, ValueError):
        origin = None
    if isinstance(origin, int | float) and origin > 0:
        return [(float(origin), 0.0, math.inf)]
    return [(started, 0.0, math.inf)] if started else []


def media_offset(at: float, spans: list[Span]) -> float:
    offset = 0.0
    for wall, start, length in spans:
        if wall > at:
            break
        offset = start + min(at - wall, length)
    return offset


def build(marks: list[dict[str, Any]], spans: list[Span], duration: float
          ) -> list[dict[str, Any]]:
    """[{"start", "end", "title"}]: the marks on the media timeline, in order, gapless."""
    if duration <= 0 or not spans:
        return []
    points: list[tuple[float, str]] = []
    for mark in sorted(marks, key=lambda m: m["at"]):
        start = round(min(max(media_offset(mark["at"], spans), 0.0), duration), 3)
        text = title("", mark["title"])  # whatever was stored, the file stays valid
        if points and (start - points[-1][0] < 0.001 or start >= duration):
            points[-1] = (points[-1][0], f"{points[-1][1]}; {text}")
        elif start < duration:
            points.append((start, text))
    if not points:
        return []
    ends = [start for start, _ in points[1:]] + [round(duration, 3)]
    return [{"start": start, "end": end, "title": text}
            for (start, text), end in zip(points, ends, strict=True)]


# ---- WebVTT ----------------------------------------------------------------------------------

def _timestamp(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def webvtt(chapters: list[dict[str, Any]]) -> str:
    lines = ["WEBVTT", ""]
    for number, chapter in enumerate(chapters, 1):
        lines += [f"chapter-{number}",
                  f"{_timestamp(chapter['start'])} --> {_timestamp(chapter['end'])}",
                  chapter["title"], ""]
    return "\n".join(lines)


def write(directory: Path, marks: list[dict[str, Any]], duration: float,
          started: float | None) -> list[dict[str, Any]] | None:
    """Compute the chapters and write chapters.vtt (write then rename); None if the recording
    left no directory."""
    if not directory.is_dir():
        return None
    chapters = build(marks, recording_spans(directory, started), duration)
    tmp = directory / f".{VTT}.tmp"
    tmp.write_text(webvtt(chapters), encoding="utf-8")
    os.replace(tmp, directory / VTT)
    return chapters
