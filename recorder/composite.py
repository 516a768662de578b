"""Composite mode: decode every track, lay out 1280x720 at 30 fps, mix audio, H.264/AAC to HLS.

Runs in its own thread (the network side only queues frames), driven by media time: output
frame n shows, for each tile, the newest picture whose synced time is not after t0 + n/fps.
Output advances up to a watermark, the newest media time seen minus `latency`, so a track
late by less than that still makes it; when nothing at all arrives for `wall_latency` the
output goes on in real time, so a silent room does not stall the live stream. Audio is
decoded to 48 kHz stereo float, placed by its synced time (kept contiguous per track), summed
and clipped.
Keyframes are forced every `segment_seconds`, so each HLS segment starts on one. With
`low_latency` the muxer also cuts a fragment every `part_seconds`, each an LL-HLS part
(llhls.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .depacketize import Frame
from .hls import HlsWriter, Playlist
from .layout import GRID, SPEAKER, Painter, SpeakerTracker, TileView, main_picture
from .llhls import PartWriter, frag_duration_us, part_frames, part_target

log = logging.getLogger(__name__)
VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AAC_FRAME = 1024
_DECODERS = {"VP8": "vp8", "H264": "h264", "OPUS": "opus"}


@dataclass(slots=True)
class CompositeOptions:
    layout: str = GRID
    width: int = 1280
    height: int = 720
    fps: int = 30
    segment_seconds: float = 2.0
    latency: float = 0.5  # media seconds waited for late tracks
    wall_latency: float = 1.5  # no input for this long: the output moves on by itself
    stale: float = 1.0  # a tile with no new picture for this long shows its placeholder
    # A screen share sends pictures only when its content changes: its last one stays longer.
    screen_stale: float = 30.0
    crf: int = 23
    preset: str = "veryfast"
    low_latency: bool = False  # LL-HLS parts, preload hint, blocking reload
    part_seconds: float = 1 / 3


@dataclass(slots=True)
class PartStart:
    """Where this encoder run starts: its playlist, part number, first segment number."""

    playlist: Playlist
    part: int = 0
    next_index: int = 0


@dataclass(slots=True)
class _Track:
    kind: str
    key: str  # participant
    name: str
    decoder: av.CodecContext
    pending: deque = field(default_factory=lambda: deque(maxlen=90))  # (time, VideoFrame)
    image: av.VideoFrame | None = None
    image_time: float = -1e18
    waiting_key: bool = True
    next_pos: int | None = None  # audio: expected sample position of the next frame
    removed_at: float | None = None  # media time after which the tile goes away
    resampler: av.AudioResampler | None = None
    screen: bool = False  # a screen share (video): the main picture


class MixBuffer:
    """Sum of every audio track, by absolute sample position since t0."""

    def __init__(self, channels: int = 2, capacity: int = AUDIO_RATE * 4) -> None:
        self.buf = np.zeros((channels, capacity), dtype=np.float32)
        self.base = 0  # absolute position of buf[:, start]
        self.start = 0

    def add(self, pos: int, samples: np.ndarray) -> None:
        n = samples.shape[1]
        if pos + n <= self.base:
            return  # too late: already encoded
        if pos < self.base:
            samples = samples[:, self.base - pos :]
            pos, n = self.base, samples.shape[1]
        at = self.start + pos - self.base
        if at + n > self.buf.shape[1]:
            live = self.buf[:, self.start :]
            size = max(self.buf.shape[1], 2 * (pos - self.base + n))
            self.buf = np.zeros((self.buf.shape[0], size), dtype=np.float32)
            self.buf[:, : live.shape[1]] = live
            self.start, at = 0, pos - self.base
        self.buf[:, at : at + n] += samples

    def take(self, n: int) -> np.ndarray:
        out = np.clip(self.buf[:, self.start : self.start + n], -1.0, 1.0)
        if out.shape[1] < n:
            out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
        self.buf[:, self.start : self.start + n] = 0.0
        self.start += n
        self.base += n
        return out


class Compositor:
    def __init__(self, directory: Path, options: CompositeOptions, start: PartStart,
                 request_keyframe: Callable[[str], None] | None = None) -> None:
        self.dir = directory
        self.opt = options
        self.part = start
        self.request_keyframe = request_keyframe
        if options.low_latency:
            frames = part_frames(options.part_seconds, options.fps)
            start.playlist.part_target = part_target(frames, options.fps)
        self.tracks: dict[str, _Track] = {}
        self.speakers = SpeakerTracker()
        # the room's active speaker (set_speaker), preferred to `speakers` (the fallback)
        self.given_speaker: str | None = None
        self.mix = MixBuffer()
        self.painter = Painter(options.width, options.height)
        self.t0: float | None = None
        self.max_seen = -1e18
        self._last_input = time.monotonic()
        self.frames_out = 0
        self.samples_out = 0
        self.writer: HlsWriter | None = None
        self.error: BaseException | None = None
        self._out: av.container.OutputContainer | None = None
        self._v: av.VideoStream | None = None
        self._a: av.AudioStream | None = None
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=f"composite:{directory.name}",
                                         daemon=True)

    # ---- called from the network thread --------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def add_track(self, track_id: str, kind: str, codec: str, name: str, key: str,
                  screen: bool = False) -> None:
        """`screen`: a screen share, shown as the main picture while it lasts."""
        self._q.put(("add", track_id, kind, codec, name, key, screen))

    def remove_track(self, track_id: str) -> None:
        self._q.put(("remove", track_id))

    def set_speaker(self, key: str | None) -> None:
        """The participant the room says is speaking (None: our own levels decide)."""
        self._q.put(("speaker", key))

    def set_layout(self, layout: str) -> None:
        self._q.put(("layout", layout))

    def push(self, track_id: str, frame: Frame, t: float) -> None:
        if self.error is None:  # a failed thread reads nothing more
            self._q.put(("frame", track_id, frame, t))

    def stop(self) -> None:
        """Ask the thread to render what is left and close the output; then join()."""
        self._q.put(("stop",))

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # ---- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    batch = [self._q.get(timeout=0.02)]
                except queue.Empty:
                    batch = []
                while len(batch) < 64:
                    try:
                        batch.append(self._q.get_nowait())
                    except queue.Empty:
                        break
                for msg in batch:
                    if msg[0] == "stop":
                        self._finish()
                        return
                    self._handle(msg)
                if self.t0 is not None:
                    watermark = self.max_seen - self.opt.latency
                    idle = time.monotonic() - self._last_input
                    if idle > self.opt.wall_latency and self._q.empty():
                        # Nothing arrives (everyone muted or gone): the live output goes on
                        # in real time from the last media seen.
                        watermark = max(watermark, self.max_seen + idle - self.opt.wall_latency)
                    self._advance(watermark)
        except BaseException as exc:  # reported to the service, which fails the recording
            log.exception("compositor failed")
            self.error = exc
            self._close_output()

    def _handle(self, msg: tuple) -> None:
        op = msg[0]
        if op == "add":
            _, track_id, kind, codec, name, key, screen = msg
            dec = av.CodecContext.create(_DECODERS[codec.upper().rpartition("/")[2]], "r")
            if kind == "video":
                # FFmpeg's own threads decode (frame threading, a frame of delay per thread,
                # well inside `latency`): with many inputs, decoding alone is most of a core,
                # and this keeps it off the compositor thread.
                dec.thread_type = "AUTO"
                dec.thread_count = 2
            screen = screen and kind == "video"
            track = _Track(kind, key, f"{name} (screen)" if screen else name, dec, screen=screen)
            if kind == "audio":
                dec.sample_rate, dec.layout = AUDIO_RATE, "stereo"
                track.resampler = av.AudioResampler(format="fltp", layout="stereo",
                                                    rate=AUDIO_RATE)
            self.tracks[track_id] = track
        elif op == "remove":
            # Its last frames are still ahead of the output (up to `latency`): leave then.
            track = self.tracks.get(msg[1])
            if track is not None:
                track.removed_at = self.max_seen
        elif op == "speaker":
            self.given_speaker = msg[1]
        elif op == "layout":
            self.opt.layout = msg[1]
        elif op == "frame":
            _, track_id, frame, t = msg
            track = self.tracks.get(track_id)
            if track is not None:
                self._last_input = time.monotonic()
                if self.t0 is None:
                    self._open(t)
                self.max_seen = max(self.max_seen, t)
                if track.kind == "video":
                    self._decode_video(track_id, track, frame, t)
                else:
                    self._decode_audio(track, frame, t)

    def _decode_video(self, track_id: str, track: _Track, frame: Frame, t: float) -> None:
        if track.waiting_key and not frame.keyframe:
            return
        try:
            for vf in track.decoder.decode(av.Packet(frame.data)):
                if track.image is None and not track.pending:
                    log.debug("first picture of %s at %.3f", track_id, t)
                track.pending.append((t, vf))
            track.waiting_key = False
        except av.FFmpegError:
            track.waiting_key = True
            if self.request_keyframe is not None:
                self.request_keyframe(track_id)

    def _decode_audio(self, track: _Track, frame: Frame, t: float) -> None:
        assert self.t0 is not None and track.resampler is not None
        try:
            decoded = track.decoder.decode(av.Packet(frame.data))
        except av.FFmpegError:
            return
        pos = round((t - self.t0) * AUDIO_RATE)
        if track.next_pos is not None and abs(pos - track.next_pos) < AUDIO_RATE // 50:
            pos = track.next_pos  # keep a track's frames contiguous despite rounding
        for af in decoded:
            for rf in track.resampler.resample(af):
                samples = rf.to_ndarray()
                self.mix.add(pos, samples)
                rms = float(np.sqrt(np.mean(np.square(samples)))) if samples.size else 0.0
                self.speakers.add(track.key, rms, t)
                pos += samples.shape[1]
        track.next_pos = pos

    # ---- output --------------------------------------------------------------------------

    def _open(self, t0: float) -> None:
        log.debug("composite t0=%.3f (wall now %.3f)", t0, time.time())
        self.t0 = t0
        muxer = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
        writer: type[HlsWriter] = HlsWriter
        if self.opt.low_latency:
            frames = part_frames(self.opt.part_seconds, self.opt.fps)
            muxer["frag_duration"] = str(frag_duration_us(frames, self.opt.fps))
            writer = PartWriter
        self.writer = writer(self.dir, self.part.playlist, self.part.part, self.part.next_index,
                             t0)
        out = av.open(self.writer, "w", format="mp4", options=muxer)
        gop = str(round(self.opt.segment_seconds * self.opt.fps))
        v = out.add_stream("libx264", rate=self.opt.fps, options={
            "preset": self.opt.preset, "tune": "zerolatency", "crf": str(self.opt.crf),
            "g": gop, "keyint_min": gop, "sc_threshold": "0", "forced-idr": "1"})
        v.width, v.height, v.pix_fmt = self.opt.width, self.opt.height, "yuv420p"
        v.time_base = Fraction(1, VIDEO_CLOCK)
        a = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
        a.bit_rate = 128000
        self._out, self._v, self._a = out, v, a

    def _advance(self, watermark: float) -> None:
        assert self.t0 is not None
        fps = self.opt.fps
        while True:
            tv = self.t0 + self.frames_out / fps
            ta = self.t0 + (self.samples_out + AAC_FRAME) / AUDIO_RATE
            if min(tv, ta) > watermark:
                return
            if tv <= ta:
                self._render_video(tv)
            else:
                self._render_audio()

    def _tiles(self, t: float) -> list[TileView]:
        for track_id, tr in list(self.tracks.items()):
            if tr.removed_at is not None and t > tr.removed_at:
                del self.tracks[track_id]
                if not any(other.key == tr.key for other in self.tracks.values()):
                    self.speakers.forget(tr.key)
        tiles: list[tuple[str, TileView]] = []
        have_video = {tr.key for tr in self.tracks.values() if tr.kind == "video" and not tr.screen}
        shown: set[str] = set()
        half = 0.5 / self.opt.fps
        for tr in self.tracks.values():
            if tr.kind == "video":
                latest = None
                while tr.pending and tr.pending[0][0] <= t + half:
                    latest = tr.pending.popleft()
                if latest is not None:
                    tr.image_time, tr.image = latest
                stale = self.opt.screen_stale if tr.screen else self.opt.stale
                fresh = tr.image is not None and t - tr.image_time <= stale
                if tr.screen and not fresh:
                    continue  # a share without a picture (yet, or any more) is not shown
                tiles.append((tr.key, TileView(tr.name, tr.image if fresh else None,
                                               screen=tr.screen)))
            elif tr.key not in have_video and tr.key not in shown:
                shown.add(tr.key)
                tiles.append((tr.key, TileView(tr.name, None)))
        speaker = self.speakers.speaker(t, [k for k, _ in tiles])
        if self.given_speaker is not None and any(k == self.given_speaker for k, _ in tiles):
            speaker = self.given_speaker
        for key, view in tiles:
            view.speaking = key == speaker and not view.screen
        if self.opt.layout == SPEAKER and speaker is not None:
            tiles.sort(key=lambda kv: kv[0] != speaker)  # stable: the speaker first
        return [view for _, view in tiles]

    def _render_video(self, t: float) -> None:
        assert self._out is not None and self._v is not None
        canvas = self.painter.paint(*main_picture(self._tiles(t), self.opt.layout))
        frame = av.VideoFrame.from_ndarray(canvas, format="yuv420p")
        step = VIDEO_CLOCK // self.opt.fps
        frame.pts = self.frames_out * step
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        gop = round(self.opt.segment_seconds * self.opt.fps)
        if self.frames_out % gop == 0:
            frame.pict_type = av.video.frame.PictureType.I
        self._out.mux(self._v.encode(frame))
        self.frames_out += 1

    def _render_audio(self) -> None:
        assert self._out is not None and self._a is not None
        samples = self.mix.take(AAC_FRAME)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp",
                                           layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.samples_out
        frame.time_base = Fraction(1, AUDIO_RATE)
        self._out.mux(self._a.encode(frame))
        self.samples_out += AAC_FRAME

    def _finish(self) -> None:
        if self.t0 is not None:
            self._advance(self.max_seen + 1 / self.opt.fps)
            assert self._out is not None and self._v is not None and self._a is not None
            self._out.mux(self._v.encode(None))
            self._out.mux(self._a.encode(None))
        self._close_output()

    def _close_output(self) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            out.close()  # the muxer writes its last fragment now
            if self.writer is not None:
                self.writer.finish()

    @property
    def duration(self) -> float:
        return self.frames_out / self.opt.fps

    def stats(self) -> dict[str, float | int]:
        """How far the output is: media seconds rendered, how far that lags the wall clock
        (output time is synced wall-clock time; `latency` plus a segment when keeping up),
        and messages still queued for the thread (growing when it falls behind)."""
        lag = time.time() - (self.t0 + self.duration) if self.t0 is not None else 0.0
        return {"output_seconds": self.duration, "wall_lag": lag, "queued": self._q.qsize()}
