"""Per-track mode: every track remuxed without transcoding, with start offsets in a sidecar.

VP8 and Opus go to WebM (Matroska), H.264 to fragmented MP4 (valid up to the last fragment if
the process dies). Packet times are the RTP timestamps since the track's first frame, in the
RTP clock (RFC 3550 section 5.1), so gaps stay gaps; `tracks.json` gives each file's start as
wall-clock time (synced per participant from the sender reports) and as an offset from the
earliest track, which is what aligning the files later needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .depacketize import Frame, vp8_dimensions
from .hls import write_atomic
from .sync import TrackClock

SIDECAR = "tracks.json"


@dataclass(slots=True)
class TrackMeta:
    track_id: str
    ssrc: int
    kind: str
    codec: str  # upper-case: VP8, H264, OPUS
    clock_rate: int
    channels: int
    participant: str
    participant_name: str
    clock: TrackClock


@dataclass(slots=True)
class TrackFile:
    meta: TrackMeta
    path: Path
    part: int
    first_ext: int | None = None
    last_ext: int | None = None
    last_duration: int = 0
    frames: int = 0
    _out: av.container.OutputContainer | None = None
    _stream: av.stream.Stream | None = None
    closed: bool = False

    def write(self, frame: Frame, ext: int) -> None:
        if self.closed:
            return
        if self._out is None:
            if not self._open(frame):
                return
            self.first_ext = ext
        assert self._out is not None and self.first_ext is not None
        if self.last_ext is not None and ext <= self.last_ext:
            return  # muxers want increasing timestamps; jitter output never goes back
        packet = av.Packet(frame.data)
        packet.stream = self._stream
        packet.time_base = Fraction(1, self.meta.clock_rate)
        packet.pts = packet.dts = ext - self.first_ext
        packet.is_keyframe = frame.keyframe
        if frame.duration:
            packet.duration = frame.duration
        self._out.mux(packet)
        self.last_ext = ext
        self.last_duration = frame.duration or 0
        self.frames += 1

    def _open(self, frame: Frame) -> bool:
        m = self.meta
        if m.codec == "OPUS":
            out = av.open(str(self.path), "w", format="webm")
            layout = "stereo" if m.channels == 2 else "mono"
            # An (unused) libopus encoder context gives the stream its OpusHead (RFC 7845
            # section 5.1), which Matroska stores as CodecPrivate.
            stream = out.add_stream("libopus", rate=48000, layout=layout)
        else:
            size = vp8_dimensions(frame.data) if m.codec == "VP8" else _h264_size(frame.data)
            if size is None:
                return False  # the first frame must be a key frame that tells the size
            if m.codec == "VP8":
                out = av.open(str(self.path), "w", format="webm")
                stream = out.add_mux_stream("vp8", width=size[0], height=size[1])
            else:
                out = av.open(str(self.path), "w", format="mp4", options={
                    "movflags": "frag_keyframe+empty_moov+default_base_moof"})
                stream = out.add_mux_stream("h264", width=size[0], height=size[1])
        self._out, self._stream = out, stream
        return True

    def close(self) -> None:
        self.closed = True
        if self._out is not None:
            out, self._out = self._out, None
            out.close()

    def describe(self, origin: float) -> dict:
        m = self.meta
        start = m.clock.time_of_ext(self.first_ext) if self.first_ext is not None else None
        span = (self.last_ext - self.first_ext + self.last_duration
                if self.first_ext is not None and self.last_ext is not None else 0)
        return {
            "file": self.path.name, "track_id": m.track_id, "ssrc": m.ssrc, "kind": m.kind,
            "codec": m.codec.lower(), "participant": m.participant,
            "participant_name": m.participant_name, "part": self.part,
            "start_time": start, "start_offset": None if start is None else start - origin,
            "duration": span / m.clock_rate, "frames": self.frames,
        }


def _h264_size(data: bytes) -> tuple[int, int] | None:
    """Decode the first key frame once to learn the picture size."""
    try:
        dec = av.CodecContext.create("h264", "r")
        frames = dec.decode(av.Packet(data))
        return (frames[0].width, frames[0].height) if frames else None
    except av.FFmpegError:
        return None


class PerTrackSink:
    def __init__(self, directory: Path, recording_id: str, part: int = 0) -> None:
        self.dir = directory
        self.recording_id = recording_id
        self.part = part
        self.files: dict[str, TrackFile] = {}
        self.done: list[TrackFile] = []
        old = directory / SIDECAR
        self._previous: list[dict] = json.loads(old.read_text())["tracks"] if old.exists() else []

    def add_track(self, meta: TrackMeta) -> None:
        ext = "mp4" if meta.codec == "H264" else "webm"
        suffix = f"_p{self.part}" if self.part else ""
        name = f"{meta.kind}_{meta.ssrc:08x}{suffix}.{ext}"
        n = 1
        while (self.dir / name).exists() or any(f.path.name == name for f in self.done):
            name = f"{meta.kind}_{meta.ssrc:08x}{suffix}_{n}.{ext}"
            n += 1
        self.files[meta.track_id] = TrackFile(meta, self.dir / name, self.part)

    def remove_track(self, track_id: str) -> None:
        f = self.files.pop(track_id, None)
        if f is not None:
            f.close()
            self.done.append(f)
            self.write_sidecar()

    def push(self, track_id: str, frame: Frame) -> None:
        f = self.files.get(track_id)
        if f is not None:
            f.write(frame, f.meta.clock.extend(frame.timestamp))
            if f.frames == 1:
                self.write_sidecar()  # so a crash still leaves the start offsets

    def stats(self) -> dict[str, float | int]:
        """Media seconds written (the longest track) and frames written."""
        files = [*self.done, *self.files.values()]
        spans = [(f.last_ext - f.first_ext) / f.meta.clock_rate for f in files
                 if f.first_ext is not None and f.last_ext is not None]
        return {"output_seconds": max(spans, default=0.0),
                "frames": sum(f.frames for f in files)}

    def stop(self) -> dict:
        for track_id in list(self.files):
            self.remove_track(track_id)
        return self.write_sidecar()

    def write_sidecar(self) -> dict:
        written = [f for f in [*self.done, *self.files.values()] if f.first_ext is not None]
        starts = [f.meta.clock.time_of_ext(f.first_ext) for f in written
                  if f.first_ext is not None]
        starts += [t["start_time"] for t in self._previous if t.get("start_time")]
        origin = min(starts) if starts else 0.0
        tracks = []
        for t in self._previous:
            if t.get("start_time") is not None:
                t = {**t, "start_offset": t["start_time"] - origin}
            tracks.append(t)
        tracks += [f.describe(origin) for f in written]
        doc = {"recording_id": self.recording_id, "start_time": origin, "tracks": tracks}
        write_atomic(self.dir / SIDECAR, json.dumps(doc, indent=1).encode())
        return doc
