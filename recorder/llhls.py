"""Low-latency HLS (RFC 8216bis; Apple's LL-HLS): every fragment the muxer writes is a part.

With `low_latency` the compositor asks the mp4 muxer for a fragment every `frames` video
frames (`frag_duration` just under that span, so the video frame completing it cuts the
fragment before the audio would; key frames cut as well). `PartWriter` writes each fragment
(moof+mdat) as a part file `part_<run>_<n>.m4s` and lists it with EXT-X-PART, INDEPENDENT=YES
when it starts with a key frame; such a part begins a new segment, and the finished segment,
the concatenation of its parts, is written as `seg_<n>.m4s` (the same file and the same
playlist line as without parts). Every file is written before the playlist that names it, and
the playlist always hints the next part (EXT-X-PRELOAD-HINT). Parts leave the playlist three
target durations from its end (RFC 8216bis 6.2.2) and their files are deleted later still, so
a client that has just read an older playlist can fetch them. Parts are numbered per encoder
run, so a resumed recording never reuses a name a client may have seen.
"""

from __future__ import annotations

import math
from collections import deque
from pathlib import Path

from .fmp4 import starts_with_sync
from .hls import HlsWriter, Part, Playlist, Segment, write_atomic

AAC_PRIMING = 1024 / 48000  # encoder delay, carried by the first video sample of a run
PART_FILES_KEPT = 8  # target durations of parts kept on disk behind the playlist's end


def part_frames(part_seconds: float, fps: int) -> int:
    return max(1, round(part_seconds * fps))


def frag_duration_us(frames: int, fps: int) -> int:
    """The muxer's frag_duration: it cuts before a packet at least this far from the
    fragment's first one. Just under `frames` frames, so the frame that completes the span
    cuts, while the audio (1024-sample frames) reaches the limit only later."""
    return math.floor(frames * 1_000_000 / fps) - 100


def part_target(frames: int, fps: int) -> float:
    """PART-TARGET: every part is at most this long (RFC 8216bis 4.4.4.9). The first part of a
    run is longer than the others by the audio encoder's priming."""
    return math.ceil((frames / fps + AAC_PRIMING) * 1000) / 1000


def part_name(run: int, n: int) -> str:
    return f"part_{run}_{n:05d}.m4s"


def is_part_file(name: str) -> bool:
    return name.startswith("part_") and name.endswith(".m4s")


class PartWriter(HlsWriter):
    """HlsWriter whose fragments are parts, grouped into segments at key frames."""

    def __init__(self, directory: Path, playlist: Playlist, part: int, next_index: int,
                 wall_start: float) -> None:
        super().__init__(directory, playlist, part, next_index, wall_start)
        self._next_part = 0
        self._open_data: list[bytes] = []  # the open segment's parts, as written
        self._held = b""  # a fragment without video goes out with the next part
        self._with_files: deque[Segment] = deque()  # sealed segments whose parts are on disk

    def _fragment(self, moof: bytes, mdat: bytes) -> None:
        data = self._held + moof + mdat
        times = self._video_times(moof)
        if times is None:
            self._held = data
            return
        self._held = b""
        start, duration = times
        pl = self.playlist
        independent = bool(starts_with_sync(moof, self._video_id))
        if independent and pl.open is not None:
            self._seal()  # a key frame begins the next segment
        if pl.open is None:
            pl.open = self._new_segment(start)
        part = Part(part_name(self.part, self._next_part), duration, independent)
        self._next_part += 1
        write_atomic(self.dir / part.uri, data)
        self._open_data.append(data)
        pl.open.parts.append(part)
        pl.open.duration += duration
        pl.preload_hint = part_name(self.part, self._next_part)
        self._write_playlist()

    def finish(self) -> None:
        """The muxer is closed: the open segment is complete (a trailing fragment without
        video is dropped, as HlsWriter drops it)."""
        self.playlist.preload_hint = None
        if self.playlist.open is not None:
            self._seal()
        self._write_playlist()

    def _seal(self) -> None:
        seg = self.playlist.open
        assert seg is not None
        self.playlist.open = None
        write_atomic(self.dir / seg.uri, b"".join(self._open_data))
        self._open_data = []
        self.playlist.segments.append(seg)
        for callback in self.on_segment:
            callback(seg)
        self._with_files.append(seg)
        self._prune()

    def _prune(self) -> None:
        """Delete the part files of segments far behind the end (their tags left long ago)."""
        keep = PART_FILES_KEPT * self.playlist.target
        behind = sum(s.duration for s in self._with_files)
        while self._with_files and behind - self._with_files[0].duration > keep:
            old = self._with_files.popleft()
            behind -= old.duration
            for p in old.parts:
                (self.dir / p.uri).unlink(missing_ok=True)
            old.parts = []
