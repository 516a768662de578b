"""Turning HLS segments into VOD outputs, and recovering a recording interrupted by a crash.

- `build_mp4`: remux every part (init + its segments) into one MP4 with its index at the front
  (PyAV's mp4 muxer with `movflags=faststart`); each part's timeline (starting at 0) is shifted
  to follow the end of the one before.
- `make_poster`: a JPEG of a frame from the middle of the MP4.
- `recover`: after kill -9, drop half-written files, LL-HLS parts and segments the playlist
  does not name; returns where the numbering stops, so a resumed run can append after it.
"""

from __future__ import annotations

import fractions
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av

from .hls import PLAYLIST, Playlist, write_atomic
from .llhls import is_part_file

MP4 = "recording.mp4"
POSTER = "poster.jpg"
_SEG = re.compile(r"seg_(\d+)\.m4s$")
_INIT = re.compile(r"init_(\d+)\.mp4$")


@dataclass(slots=True)
class RecoveredState:
    playlist: Playlist
    next_index: int  # number of the next segment file
    next_part: int  # number of the next init segment / encoder run


def _parts(directory: Path, playlist: Playlist) -> list[tuple[str, list[str]]]:
    parts: list[tuple[str, list[str]]] = []
    for seg in playlist.segments:
        if seg.map_uri or not parts:
            parts.append((seg.map_uri or "init_0.mp4", []))
        parts[-1][1].append(seg.uri)
    return parts


def build_mp4(directory: Path, playlist: Playlist, out_name: str = MP4) -> Path | None:
    """Concatenate the segments (part by part) into a faststart MP4; None if there are none."""
    parts = _parts(directory, playlist)
    if not parts:
        return None
    out_path = directory / out_name
    tmp = directory / f".{out_name}.tmp"
    with tempfile.TemporaryDirectory(dir=directory, prefix=".parts") as work:
        out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
        try:
            streams: dict[str, av.stream.Stream] = {}
            last_dts: dict[str, fractions.Fraction] = {}
            offset = end = fractions.Fraction(0)
            for i, (init, segs) in enumerate(parts):
                part_file = Path(work) / f"part{i}.mp4"
                with open(part_file, "wb") as f:
                    f.write((directory / init).read_bytes())
                    for s in segs:
                        f.write((directory / s).read_bytes())
                offset = end  # this part starts where the previous one ended
                with av.open(str(part_file)) as src:
                    for st in src.streams:
                        if st.type in ("video", "audio") and st.type not in streams:
                            streams[st.type] = out.add_stream_from_template(st)
                    for packet in src.demux():
                        kind = packet.stream.type
                        if packet.dts is None or kind not in streams:
                            continue
                        dst = streams[kind]
                        tb = packet.time_base
                        shift = round(offset / tb)
                        packet.dts += shift
                        if packet.pts is not None:
                            packet.pts += shift
                        # An overlap at a part boundary (encoder priming) is dropped: the
                        # muxer wants strictly increasing dts.
                        dts = packet.dts * tb
                        if kind in last_dts and dts <= last_dts[kind]:
                            continue
                        last_dts[kind] = dts
                        end = max(end, (packet.pts or packet.dts) * tb + packet.duration * tb)
                        packet.stream = dst
                        out.mux(packet)
        finally:
            out.close()
    tmp.replace(out_path)
    return out_path


def probe(path: Path) -> tuple[float, int]:
    """(duration in seconds, size in bytes) of a media file."""
    with av.open(str(path)) as c:
        duration = (c.duration or 0) / av.time_base
    return duration, path.stat().st_size


def make_poster(mp4: Path, out: Path, at: float | None = None) -> Path | None:
    """JPEG of the first frame at or after `at` seconds (default: the middle)."""
    with av.open(str(mp4)) as c:
        if not c.streams.video:
            return None
        stream = c.streams.video[0]
        duration = (c.duration or 0) / av.time_base
        target = duration / 2 if at is None else at
        if target > 0:
            c.seek(int(target * av.time_base), backward=True)
        frame = None
        for f in c.decode(stream):
            frame = f
            if f.time is not None and f.time >= target - 0.05:
                break
        if frame is None:
            return None
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = frame.width, frame.height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = fractions.Fraction(1, 25)
    packets = enc.encode(frame.reformat(format="yuvj420p")) + enc.encode(None)
    if not packets:
        return None
    write_atomic(out, bytes(packets[0]))
    return out


def recover(directory: Path) -> RecoveredState | None:
    """Clean a directory after a crash; None when it holds no playlist."""
    path = directory / PLAYLIST
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    if not path.exists():
        return None
    playlist = Playlist.parse(path.read_text())
    named = {s.uri for s in playlist.segments}
    maps = {s.map_uri for s in playlist.segments if s.map_uri}
    next_index = next_part = 0
    for f in directory.iterdir():
        if m := _SEG.match(f.name):
            if f.name not in named:
                f.unlink()  # written but never listed: the crash came between the renames
            else:
                next_index = max(next_index, int(m.group(1)) + 1)
        elif m := _INIT.match(f.name):
            next_part = max(next_part, int(m.group(1)) + 1)
            if f.name not in maps:
                f.unlink()
        elif is_part_file(f.name):
            f.unlink()  # LL-HLS parts of the crashed run: its complete segments hold them
    return RecoveredState(playlist, next_index, next_part)


def finalize(directory: Path, playlist: Playlist) -> dict[str, object]:
    """ENDLIST, MP4 and poster; returns what the `stop` answer and the event carry."""
    mp4 = build_mp4(directory, playlist)
    poster = make_poster(mp4, directory / POSTER) if mp4 is not None else None
    playlist.ended = True  # a VOD playlist lists no parts: their files go
    write_atomic(directory / PLAYLIST, playlist.render().encode())
    for f in directory.iterdir():
        if is_part_file(f.name):
            f.unlink()
    duration, size = probe(mp4) if mp4 is not None else (0.0, 0)
    return {
        "playlist": str(directory / PLAYLIST),
        "mp4": str(mp4) if mp4 else None,
        "poster": str(poster) if poster else None,
        "duration": round(duration, 3),
        "size": size,
    }
