"""An independent m3u8 reader and the playlist rules of RFC 8216 the recorder must keep, plus
ffprobe helpers. Written from the RFC, not from the recorder's code, so it checks rather than
mirrors it."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass
class PartTag:
    uri: str
    duration: float
    independent: bool


@dataclass
class Seg:
    uri: str
    duration: float
    pdt: float | None
    discontinuity: bool
    map_uri: str | None
    parts: list[PartTag] = field(default_factory=list)


@dataclass
class M3u8:
    tags: dict[str, str] = field(default_factory=dict)  # header tags, first value
    segments: list[Seg] = field(default_factory=list)
    endlist: bool = False
    open_parts: list[PartTag] = field(default_factory=list)  # after the last segment URI
    preload_hint: dict[str, str] | None = None


def attributes(value: str) -> dict[str, str]:
    """An attribute-list (RFC 8216 4.2): NAME=value pairs, quoted strings unquoted."""
    out = {}
    for m in re.finditer(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', value):
        out[m.group(1)] = m.group(2).strip('"')
    return out


def parse_m3u8(text: str) -> M3u8:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    assert lines and lines[0] == "#EXTM3U", "a playlist starts with #EXTM3U (RFC 8216 4.3.1.1)"
    pl = M3u8()
    duration: float | None = None
    pdt: float | None = None
    disc = False
    current_map: str | None = None
    map_changed = False
    parts: list[PartTag] = []
    for line in lines[1:]:
        if line.startswith("#EXT-X-PART:"):
            a = attributes(line.split(":", 1)[1])
            parts.append(PartTag(a["URI"], float(a["DURATION"]), a.get("INDEPENDENT") == "YES"))
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            pl.preload_hint = attributes(line.split(":", 1)[1])
        elif line.startswith("#EXTINF:"):
            duration = float(line[len("#EXTINF:") :].split(",")[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            value = line.split(":", 1)[1].replace("Z", "+00:00")
            pdt = datetime.fromisoformat(value).timestamp()
        elif line == "#EXT-X-DISCONTINUITY":
            disc = True
        elif line.startswith("#EXT-X-MAP:"):
            current_map = line.split('URI="', 1)[1].split('"', 1)[0]
            map_changed = True
        elif line == "#EXT-X-ENDLIST":
            pl.endlist = True
        elif line.startswith("#EXT"):
            key, _, value = line.partition(":")
            pl.tags.setdefault(key, value)
        elif not line.startswith("#"):
            assert duration is not None, f"segment {line} without EXTINF"
            pl.segments.append(Seg(line, duration, pdt, disc, current_map if map_changed else None,
                                   parts))
            duration, pdt, disc, map_changed, parts = None, None, False, False, []
    pl.open_parts = parts
    return pl


def check_playlist(pl: M3u8, directory: Path) -> None:
    """The rules the issue lists: EVENT, TARGETDURATION, contiguous sequence, PDT vs EXTINF."""
    assert pl.tags.get("#EXT-X-PLAYLIST-TYPE") == "EVENT"
    assert pl.tags.get("#EXT-X-MEDIA-SEQUENCE", "0") == "0"
    target = int(pl.tags["#EXT-X-TARGETDURATION"])
    assert pl.segments, "no segment"
    assert pl.segments[0].map_uri, "first segment needs an EXT-X-MAP (fMP4, RFC 8216 4.3.2.5)"
    numbers = []
    for i, seg in enumerate(pl.segments):
        assert round(seg.duration) <= target, f"{seg.uri}: EXTINF {seg.duration} > {target}"
        assert seg.pdt is not None, f"{seg.uri} has no EXT-X-PROGRAM-DATE-TIME"
        assert (directory / seg.uri).is_file(), f"{seg.uri} missing"
        numbers.append(int(seg.uri.split("_")[1].split(".")[0]))
        if i and not seg.discontinuity:
            prev = pl.segments[i - 1]
            assert prev.pdt is not None
            gap = seg.pdt - prev.pdt - prev.duration
            assert abs(gap) < 0.01, f"{seg.uri}: PDT off by {gap:.3f}s from the previous EXTINF"
        if seg.discontinuity:
            assert seg.map_uri, "a discontinuity in fMP4 brings its own EXT-X-MAP"
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers


def ffprobe_path() -> str:
    path = shutil.which("ffprobe")
    assert path, "ffprobe is required (apt-get install ffmpeg): the recorder tests fail without"
    return path


def ffprobe(path: Path, *args: str) -> dict:
    out = subprocess.run(
        [ffprobe_path(), "-v", "error", "-print_format", "json", *args, str(path)],
        capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def segment_starts_with_keyframe(init: Path, segment: Path, work: Path) -> bool:
    joined = work / f"{segment.stem}.mp4"
    joined.write_bytes(init.read_bytes() + segment.read_bytes())
    info = ffprobe(joined, "-select_streams", "v:0", "-show_entries", "packet=flags,pts",
                   "-read_intervals", "%+#1")
    packets = info.get("packets", [])
    return bool(packets) and "K" in packets[0]["flags"]


async def until_playlist(path: Path, ready: Callable[[M3u8], object],
                         timeout: float = 30.0) -> M3u8:
    """Read the playlist each time it is replaced until `ready(m3u8)`."""
    seen = None
    async with asyncio.timeout(timeout):
        while True:
            if path.exists() and (stat := path.stat()).st_mtime_ns != seen:
                seen = stat.st_mtime_ns
                m3u8 = parse_m3u8(path.read_text())
                if ready(m3u8):
                    return m3u8
            await asyncio.sleep(0.02)  # the recorder is another process: poll its file
