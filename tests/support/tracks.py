"""aiortc tracks that publish pattern media, and checkers that verify what a subscriber gets."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .av_sync import flash_times, flashing, tone_with_beeps, white_frame
from .patterns import MAX_COUNTER, dominant_frequency, make_tone, make_video_frame, read_video_frame

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_FRAME_SAMPLES = 960  # 20 ms at 48 kHz


class SharedClock:
    """Start time shared by a participant's tracks, so their media times mean the same instant
    (a camera and a microphone captured together)."""

    start: float | None = None


class _PacedTrack(MediaStreamTrack):
    """Real-time pacing shared by the sources: frame n is due at start + n * period."""

    def __init__(self, clock: SharedClock | None = None) -> None:
        super().__init__()
        self._clock = clock or SharedClock()
        self._index = 0

    async def _next_index(self, period: float) -> int:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._clock.start is None:
            self._clock.start = now
        index = self._index
        self._index += 1
        delay = self._clock.start + index * period - now
        if delay > 0:
            await asyncio.sleep(delay)
        return index


class PatternVideoTrack(_PacedTrack):
    """Video source of pattern frames for `sender_id` with a counter that advances per frame."""

    kind = "video"

    def __init__(self, sender_id: int, width: int = 320, height: int = 240, fps: int = 30,
                 clock: SharedClock | None = None, flash_until: float = 0.0) -> None:
        super().__init__(clock)
        make_video_frame(sender_id, 0, width, height)  # validate arguments now, not in recv()
        self.sender_id = sender_id
        self.width = width
        self.height = height
        self.fps = fps
        # flash_until > 0: white frames on the av_sync schedule, for lip-sync checks
        self.flashes = flash_times(sender_id, flash_until) if flash_until else []
        self._waiters: list[tuple[int, asyncio.Future]] = []

    @property
    def frames_sent(self) -> int:
        return self._index

    async def sent(self, count: int) -> None:
        """Until `count` frames went out: the media itself is the clock of a recording test."""
        if self._index < count:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((count, waiter))
            await waiter

    async def recv(self) -> av.VideoFrame:
        index = await self._next_index(1 / self.fps)
        for count, waiter in [w for w in self._waiters if w[0] <= self._index]:
            self._waiters.remove((count, waiter))
            if not waiter.done():
                waiter.set_result(None)
        if self.flashes and flashing(self.flashes, index / self.fps):
            rgb = white_frame(self.width, self.height)
        else:
            rgb = make_video_frame(self.sender_id, index & MAX_COUNTER, self.width, self.height)
        # Convert here: the encoders want yuv420p and would otherwise convert per frame anyway.
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index * VIDEO_CLOCK // self.fps
        frame.time_base = Fraction(1, VIDEO_CLOCK)
        return frame


class ToneAudioTrack(_PacedTrack):
    """Audio source: a continuous sine at `freq_hz`, 20 ms frames of 48 kHz mono s16."""

    kind = "audio"

    def __init__(self, freq_hz: float, clock: SharedClock | None = None,
                 flashes: list[float] | None = None) -> None:
        super().__init__(clock)
        self.freq_hz = freq_hz
        self.flashes = flashes or []  # beeps when the participant's video flashes

    async def recv(self) -> av.AudioFrame:
        index = await self._next_index(AUDIO_FRAME_SAMPLES / AUDIO_RATE)
        start = index * AUDIO_FRAME_SAMPLES
        samples = (tone_with_beeps(self.flashes, self.freq_hz, start, AUDIO_FRAME_SAMPLES)
                   if self.flashes else
                   make_tone(self.freq_hz, AUDIO_RATE, AUDIO_FRAME_SAMPLES, start))
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_RATE)
        return frame


@dataclass
class SenderStats:
    """What a FrameChecker saw from one sender."""

    readable: int = 0
    advances: int = 0  # readable frames whose counter moved forward over the previous one
    first_counter: int | None = None
    last_counter: int | None = None


class FrameChecker:
    """Reads the pattern of every frame of a remote video track and keeps statistics."""

    def __init__(self) -> None:
        self.frames_received = 0
        self.frames_readable = 0
        self.senders: dict[int, SenderStats] = {}
        self.last_size: tuple[int, int] | None = None  # (width, height) of the latest frame
        self.readable_at: list[float] = []  # monotonic arrival time of each readable frame
        self.ended = False
        self._changed = asyncio.Condition()

    @property
    def sender_ids(self) -> set[int]:
        return set(self.senders)

    async def run(self, track: MediaStreamTrack) -> None:
        """Consume `track` until it ends; run it in a task."""
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                self._add(frame.to_ndarray(format="rgb24"))
                async with self._changed:
                    self._changed.notify_all()
        finally:
            self.ended = True
            async with self._changed:
                self._changed.notify_all()

    def _add(self, rgb: np.ndarray) -> None:
        self.frames_received += 1
        self.last_size = (rgb.shape[1], rgb.shape[0])
        result = read_video_frame(rgb)
        if result is None:
            return
        sender_id, counter = result
        self.frames_readable += 1
        self.readable_at.append(time.monotonic())
        stats = self.senders.setdefault(sender_id, SenderStats())
        stats.readable += 1
        if stats.last_counter is None:
            stats.first_counter = counter
        else:
            # Modular comparison so the 16-bit counter may wrap; a repeat is not an advance.
            step = (counter - stats.last_counter) & MAX_COUNTER
            if 0 < step < (MAX_COUNTER + 1) // 2:
                stats.advances += 1
        stats.last_counter = counter

    def freezes(self, longer_than: float = 0.5) -> list[float]:
        """Gaps between readable frames longer than `longer_than` seconds (a freeze, as
        WebRTC's freezeCount counts them)."""
        times = self.readable_at
        return [b - a for a, b in zip(times, times[1:], strict=False) if b - a > longer_than]

    def _good(self, sender_id: int) -> int:
        """Readable frames from the sender that arrived in advancing order (the first counts)."""
        stats = self.senders.get(sender_id)
        return 0 if stats is None or stats.readable == 0 else 1 + stats.advances

    def describe(self) -> str:
        per_sender = ", ".join(
            f"{sid}: readable={s.readable} advances={s.advances} "
            f"counters={s.first_counter}..{s.last_counter}"
            for sid, s in sorted(self.senders.items())
        )
        return (
            f"received={self.frames_received} readable={self.frames_readable} "
            f"size={self.last_size} ended={self.ended} senders={{{per_sender}}}"
        )

    async def wait_for(self, sender_id: int, count: int, timeout: float) -> SenderStats:
        """Wait until `count` readable frames with advancing counters came from `sender_id`."""
        def done() -> bool:
            return self.ended or self._good(sender_id) >= count

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(done), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"{count} advancing frames from sender {sender_id} not seen within "
                    f"{timeout} s: {self.describe()}"
                ) from None
        if self._good(sender_id) < count:
            raise RuntimeError(
                f"track ended before {count} advancing frames from sender {sender_id}: "
                f"{self.describe()}"
            )
        return self.senders[sender_id]


class ToneChecker:
    """Collects the decoded audio of a remote track and measures its dominant frequency."""

    def __init__(self, skip_seconds: float = 0.3, keep_seconds: float = 5.0) -> None:
        self.skip_seconds = skip_seconds  # Opus decoders ramp up: the start is not the tone
        self.keep_seconds = keep_seconds
        self.sample_rate = AUDIO_RATE
        self.frames_received = 0
        self.samples_received = 0  # mono samples, including skipped ones
        self.last_measurement: float | None = None
        self.ended = False
        self._chunks: deque[np.ndarray] = deque()
        self._kept = 0
        self._changed = asyncio.Condition()

    async def run(self, track: MediaStreamTrack) -> None:
        """Consume `track` until it ends; run it in a task."""
        try:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                self._add(frame)
                async with self._changed:
                    self._changed.notify_all()
        finally:
            self.ended = True
            async with self._changed:
                self._changed.notify_all()

    def _add(self, frame: av.AudioFrame) -> None:
        self.frames_received += 1
        self.sample_rate = frame.sample_rate
        data = frame.to_ndarray().astype(np.float32)
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            mono = data.reshape(channels, -1).mean(axis=0)
        else:
            mono = data.reshape(-1, channels).mean(axis=1)
        skip = max(0, int(self.skip_seconds * self.sample_rate) - self.samples_received)
        self.samples_received += len(mono)
        if skip >= len(mono):
            return
        self._chunks.append(mono[skip:])
        self._kept += len(mono) - skip
        # Bound memory; the measurement only ever uses the latest window.
        limit = int(self.keep_seconds * self.sample_rate)
        while self._chunks and self._kept - len(self._chunks[0]) >= limit:
            self._kept -= len(self._chunks.popleft())

    def _measure(self, seconds: float) -> float | None:
        needed = int(seconds * self.sample_rate)
        if self._kept < needed:
            return None
        window = np.concatenate(list(self._chunks))[-needed:]
        self.last_measurement = dominant_frequency(window, self.sample_rate)
        return self.last_measurement

    async def wait_for_frequency(
        self,
        expected_hz: float,
        tolerance_hz: float = 20,
        seconds: float = 1.0,
        timeout: float = 10,
    ) -> float:
        """Dominant frequency of the latest `seconds` of audio, once it is near `expected_hz`."""
        measured_at = -1  # re-measure only when new audio arrived

        def done() -> bool:
            nonlocal measured_at
            if self.ended:
                return True
            if self.samples_received == measured_at:
                return False
            measured_at = self.samples_received
            freq = self._measure(seconds)
            return freq is not None and abs(freq - expected_hz) <= tolerance_hz

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(done), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"no {expected_hz} Hz (+-{tolerance_hz}) tone within {timeout} s: "
                    f"{self.describe()}"
                ) from None
        freq = self.last_measurement
        if freq is None or abs(freq - expected_hz) > tolerance_hz:
            raise RuntimeError(f"track ended before a {expected_hz} Hz tone: {self.describe()}")
        return freq

    def describe(self) -> str:
        return (
            f"last measurement={self.last_measurement} Hz, frames={self.frames_received}, "
            f"seconds received={self.samples_received / self.sample_rate:.2f}, "
            f"rate={self.sample_rate}, ended={self.ended}"
        )
