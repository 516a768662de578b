"""Just enough ISO BMFF (ISO/IEC 14496-12) reading to cut a fragmented MP4 stream into HLS files.

`BoxSplitter` turns the byte stream a muxer writes into whole top-level boxes; `track_info`
reads the video track id and timescale from a moov; `fragment_times` reads a moof's start time
(tfdt) and duration (trun/tfhd sample durations) for one track; `starts_with_sync` tells whether
a track's first sample in a moof is a sync sample (a key frame).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_HDR = struct.Struct(">I4s")


def iter_boxes(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[str, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = _HDR.unpack_from(data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind.decode("latin-1"), pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    for k, s, e in iter_boxes(data, start, end):
        if k == kind:
            return s, e
    return None


class BoxSplitter:
    """File-like sink for a muxer: collects bytes and hands out complete top-level boxes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.boxes: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> int:
        self._buf += data
        pos = 0
        while len(self._buf) - pos >= 8:
            size, kind = _HDR.unpack_from(self._buf, pos)
            if size == 1:
                if len(self._buf) - pos < 16:
                    break
                size = struct.unpack_from(">Q", self._buf, pos + 8)[0]
            if size < 8:
                raise ValueError("fMP4 box with an unbounded or bad size")
            if len(self._buf) - pos < size:
                break
            self.boxes.append((kind.decode("latin-1"), bytes(self._buf[pos : pos + size])))
            pos += size
        del self._buf[:pos]
        return len(data)

    def take(self) -> list[tuple[str, bytes]]:
        boxes, self.boxes = self.boxes, []
        return boxes


@dataclass(slots=True)
class TrackInfo:
    track_id: int
    timescale: int
    handler: str  # 'vide' or 'soun'


def track_info(moov: bytes) -> list[TrackInfo]:
    """Tracks of a moov box (given whole, header included)."""
    out = []
    for kind, s, e in iter_boxes(moov, 8):
        if kind != "trak":
            continue
        tkhd = _child(moov, s, e, "tkhd")
        mdia = _child(moov, s, e, "mdia")
        if tkhd is None or mdia is None:
            continue
        version = moov[tkhd[0]]
        track_id = struct.unpack_from(">I", moov, tkhd[0] + (20 if version == 1 else 12))[0]
        mdhd = _child(moov, mdia[0], mdia[1], "mdhd")
        hdlr = _child(moov, mdia[0], mdia[1], "hdlr")
        if mdhd is None or hdlr is None:
            continue
        version = moov[mdhd[0]]
        timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if version == 1 else 12))[0]
        handler = moov[hdlr[0] + 8 : hdlr[0] + 12].decode("latin-1")
        out.append(TrackInfo(track_id, timescale, handler))
    return out


def fragment_times(moof: bytes, track_id: int) -> tuple[int, int, int] | None:
    """(base decode time, summed sample durations, sample count) of one track in a moof."""
    for kind, s, e in iter_boxes(moof, 8):
        if kind != "traf":
            continue
        tfhd = _child(moof, s, e, "tfhd")
        if tfhd is None:
            continue
        flags = int.from_bytes(moof[tfhd[0] + 1 : tfhd[0] + 4], "big")
        if struct.unpack_from(">I", moof, tfhd[0] + 4)[0] != track_id:
            continue
        pos = tfhd[0] + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
        default_duration = struct.unpack_from(">I", moof, pos)[0] if flags & 0x08 else 0
        tfdt = _child(moof, s, e, "tfdt")
        base = 0
        if tfdt is not None:
            v1 = moof[tfdt[0]] == 1
            base = struct.unpack_from(">Q" if v1 else ">I", moof, tfdt[0] + 4)[0]
        duration = count = 0
        for k, ts, _te in iter_boxes(moof, s, e):
            if k != "trun":
                continue
            tflags = int.from_bytes(moof[ts + 1 : ts + 4], "big")
            n = struct.unpack_from(">I", moof, ts + 4)[0]
            pos = ts + 8 + (4 if tflags & 0x01 else 0) + (4 if tflags & 0x04 else 0)
            per_sample = 4 * bin(tflags & 0xF00).count("1")
            for _ in range(n):
                duration += struct.unpack_from(">I", moof, pos)[0] if tflags & 0x100 else (
                    default_duration)
                pos += per_sample
            count += n
        return base, duration, count
    return None


_NON_SYNC = 0x00010000  # sample_is_non_sync_sample in sample_flags (section 8.8.3.1)


def starts_with_sync(moof: bytes, track_id: int) -> bool | None:
    """Whether the track's first sample in this moof is a sync sample; None without samples.

    The flags come from the trun (first_sample_flags, or per-sample flags), else from the
    tfhd's default_sample_flags; a muxer that sets none of them (trex defaults) counts as sync.
    """
    for kind, s, e in iter_boxes(moof, 8):
        if kind != "traf":
            continue
        tfhd = _child(moof, s, e, "tfhd")
        if tfhd is None or struct.unpack_from(">I", moof, tfhd[0] + 4)[0] != track_id:
            continue
        flags = int.from_bytes(moof[tfhd[0] + 1 : tfhd[0] + 4], "big")
        pos = tfhd[0] + 8 + sum(n for bit, n in ((0x01, 8), (0x02, 4), (0x08, 4), (0x10, 4))
                                if flags & bit)
        sample_flags = struct.unpack_from(">I", moof, pos)[0] if flags & 0x20 else 0
        trun = _child(moof, s, e, "trun")
        if trun is None:
            return None
        tflags = int.from_bytes(moof[trun[0] + 1 : trun[0] + 4], "big")
        if struct.unpack_from(">I", moof, trun[0] + 4)[0] == 0:
            return None
        pos = trun[0] + 8 + (4 if tflags & 0x01 else 0)
        if tflags & 0x04:
            sample_flags = struct.unpack_from(">I", moof, pos)[0]
        elif tflags & 0x400:
            pos += 4 * bin(tflags & 0x300).count("1")  # duration and size come first
            sample_flags = struct.unpack_from(">I", moof, pos)[0]
        return not sample_flags & _NON_SYNC
    return None
