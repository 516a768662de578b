"""Live HLS (RFC 8216) from a fragmented MP4 muxer: one file per fragment, an EVENT playlist.

The muxer (PyAV's mp4 with `frag_keyframe+empty_moov+default_base_moof`) writes into an
`HlsWriter`: the ftyp+moov become the init segment (EXT-X-MAP), each moof+mdat a media segment.
The encoder puts a key frame exactly every segment length, so every segment starts on one and
lasts the target duration (the last may be shorter). Every file, the playlist included, is
written to a hidden temporary name, fsynced and renamed over (`os.replace`), segment first and
playlist after: a reader never sees a half file nor a playlist naming a missing segment, and a
crash loses only the fragment in progress. The EVENT playlist only grows (section 6.2.1); a
resumed recording appends EXT-X-DISCONTINUITY, a new EXT-X-MAP, and continues with a timeline
that starts again at 0 (section 6.3.3: timestamps may restart after a discontinuity).
Low-latency HLS (parts, preload hint, blocking reload) is an option: see llhls.py.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .fmp4 import BoxSplitter, fragment_times, track_info

PLAYLIST = "index.m3u8"


def write_atomic(path: Path, data: bytes) -> None:
    """Write then rename, so readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def format_pdt(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def parse_pdt(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(slots=True)
class Part:
    """A partial segment (LL-HLS, EXT-X-PART): one or more moof+mdat of its parent segment."""

    uri: str
    duration: float
    independent: bool  # starts with a key frame


@dataclass(slots=True)
class Segment:
    uri: str
    duration: float
    pdt: float  # wall-clock start (EXT-X-PROGRAM-DATE-TIME)
    map_uri: str | None = None  # set on the first segment after a new EXT-X-MAP
    discontinuity: bool = False
    parts: list[Part] = field(default_factory=list)  # low latency only, recent segments only


@dataclass(slots=True)
class Playlist:
    target: int
    segments: list[Segment] = field(default_factory=list)
    ended: bool = False
    # Low-latency HLS: PART-TARGET in seconds (None: no parts), the segment still being cut
    # into parts (its tags and parts are listed, not its URI), the next part's name.
    part_target: float | None = None
    open: Segment | None = None
    preload_hint: str | None = None

    @property
    def low_latency(self) -> bool:
        return self.part_target is not None and not self.ended

    def render(self) -> str:
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{self.target}"]
        if self.low_latency:
            assert self.part_target is not None
            # PART-HOLD-BACK: at least 2, and should be 3 part targets (RFC 8216bis 4.4.3.8).
            lines += [f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                      f"PART-HOLD-BACK={3 * self.part_target:.3f}",
                      f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}"]
        lines += ["#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:EVENT",
                  "#EXT-X-INDEPENDENT-SEGMENTS"]
        with_parts = self._segments_with_parts()
        for i, seg in enumerate(self.segments):
            _segment_tags(lines, seg)
            if i >= with_parts:
                _part_tags(lines, seg.parts)
            lines.append(f"#EXTINF:{seg.duration:.3f},")
            lines.append(seg.uri)
        if self.low_latency and self.open is not None:
            _segment_tags(lines, self.open)  # they apply to its first part too (4.4.4.9)
            _part_tags(lines, self.open.parts)
        if self.low_latency and self.preload_hint:
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{self.preload_hint}"')
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def _segments_with_parts(self) -> int:
        """Index of the first segment whose parts are listed: parts leave the playlist once
        they are more than three target durations from its end (RFC 8216bis 6.2.2)."""
        if not self.low_latency:
            return len(self.segments)
        behind = sum(p.duration for p in self.open.parts) if self.open else 0.0
        i = len(self.segments)
        while i > 0 and behind < 3 * self.target:
            i -= 1
            behind += self.segments[i].duration
        return i

    @classmethod
    def parse(cls, text: str) -> Playlist:
        """Read back a playlist this module wrote (for recovery and resume).

        Low-latency parts are not read back: after a crash the segment they belonged to is
        incomplete and dropped, and a resumed run starts a part numbering of its own."""
        pl = cls(target=2)
        pending: dict[str, object] = {}
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("#EXT-X-TARGETDURATION:"):
                pl.target = int(line.split(":", 1)[1])
            elif line == "#EXT-X-DISCONTINUITY":
                pending["discontinuity"] = True
            elif line.startswith("#EXT-X-MAP:"):
                m = re.search(r'URI="([^"]+)"', line)
                pending["map_uri"] = m.group(1) if m else None
            elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pending["pdt"] = parse_pdt(line.split(":", 1)[1])
            elif line.startswith("#EXTINF:"):
                pending["duration"] = float(line[8:].split(",")[0])
            elif line == "#EXT-X-ENDLIST":
                pl.ended = True
            elif line and not line.startswith("#"):
                pl.segments.append(Segment(
                    line, float(pending.get("duration", 0.0)),  # type: ignore[arg-type]
                    float(pending.get("pdt", 0.0)),  # type: ignore[arg-type]
                    pending.get("map_uri"), bool(pending.get("discontinuity"))))  # type: ignore[arg-type]
                pending = {}
        return pl

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)


def _segment_tags(lines: list[str], seg: Segment) -> None:
    if seg.discontinuity:
        lines.append("#EXT-X-DISCONTINUITY")
    if seg.map_uri:
        lines.append(f'#EXT-X-MAP:URI="{seg.map_uri}"')
    lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_pdt(seg.pdt)}")


def _part_tags(lines: list[str], parts: list[Part]) -> None:
    for part in parts:
        independent = ",INDEPENDENT=YES" if part.independent else ""
        lines.append(f'#EXT-X-PART:DURATION={part.duration:.5f},URI="{part.uri}"{independent}')


def segment_name(index: int) -> str:
    return f"seg_{index:05d}.m4s"


def init_name(part: int) -> str:
    return f"init_{part}.mp4"


class HlsWriter:
    """File-like sink for the fMP4 muxer of one recording part (one run of the encoder).

    Every part's timeline starts at 0 and `wall_start` is the wall-clock time of 0: segment
    program-date-times follow from each fragment's tfdt.
    """

    def __init__(self, directory: Path, playlist: Playlist, part: int, next_index: int,
                 wall_start: float) -> None:
        self.dir = directory
        self.playlist = playlist
        self.part = part
        self.next_index = next_index
        self.wall_start = wall_start
        self._split = BoxSplitter()
        self._init: list[bytes] = []
        self._timescale = 0
        self._video_id = 0
        self._moof: bytes | None = None
        self._new_part = True
        self.on_segment: list = []  # callables(Segment)

    def write(self, data: bytes) -> int:
        n = self._split.write(bytes(data))
        for kind, box in self._split.take():
            self._box(kind, box)
        return n

    def _box(self, kind: str, box: bytes) -> None:
        if kind in ("ftyp", "moov"):
            self._init.append(box)
            if kind == "moov":
                for t in track_info(box):
                    if t.handler == "vide":
                        self._video_id, self._timescale = t.track_id, t.timescale
                write_atomic(self.dir / init_name(self.part), b"".join(self._init))
        elif kind == "moof":
            self._moof = box
        elif kind == "mdat" and self._moof is not None:
            self._fragment(self._moof, box)
            self._moof = None
        # styp, sidx, mfra...: not needed by HLS

    def _fragment(self, moof: bytes, mdat: bytes) -> None:
        times = self._video_times(moof)
        if times is None:
            return  # a fragment without video cannot start with a key frame: skip it
        seg = self._new_segment(times[0])
        seg.duration = times[1]
        write_atomic(self.dir / seg.uri, moof + mdat)
        self._publish(seg)

    def finish(self) -> None:
        """The muxer is closed: nothing is left in progress here (see PartWriter)."""

    def _video_times(self, moof: bytes) -> tuple[float, float] | None:
        """(start, duration) in seconds of the video in a moof; None if it has none."""
        times = fragment_times(moof, self._video_id) if self._timescale else None
        if times is None or times[2] == 0:
            return None
        return times[0] / self._timescale, times[1] / self._timescale

    def _new_segment(self, start: float) -> Segment:
        seg = Segment(segment_name(self.next_index), 0.0, self.wall_start + start)
        self.next_index += 1
        if self._new_part:
            seg.map_uri = init_name(self.part)
            seg.discontinuity = bool(self.playlist.segments)
            self._new_part = False
        return seg

    def _publish(self, seg: Segment) -> None:
        """List a segment whose file is complete."""
        self.playlist.segments.append(seg)
        self._write_playlist()
        for callback in self.on_segment:
            callback(seg)

    def _write_playlist(self) -> None:
        write_atomic(self.dir / PLAYLIST, self.playlist.render().encode())


def target_duration(segment_seconds: float) -> int:
    """EXT-X-TARGETDURATION: >= every EXTINF rounded to the nearest integer (section 4.3.3.1)."""
    return max(1, math.ceil(segment_seconds))
