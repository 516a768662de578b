"""Plain-RTP media sources for the recorder tests, standing in for the SFU's taps.

A `Participant` sends VP8 pattern video (`make_video_frame`) and Opus audio: a quiet tone with
loud beeps exactly when the video flashes white. Its RTP carries its own random SSRCs, sequence
numbers and timestamp bases; its sender reports use its own NTP clock (optionally skewed), as a
browser's relayed by the SFU would. It answers NACKs from a history and PLIs with a key frame.
A `Tap` is one UDP socket carrying several participants, like a PipeTransport (RTP numbering and
feedback handling shared with the benchmark: benchmarks/recorder_media.py). A `Source` makes
whole frames (no RTP) for driving the compositor directly.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np

from benchmarks.recorder_media import FeedbackTap, Stream
from recorder.depacketize import Frame

from .av_sync import flash_times, flashing, tone_with_beeps, white_frame
from .patterns import make_video_frame

FPS = 30
VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
OPUS_SAMPLES = 960
MAX_PAYLOAD = 1100
VP8_PT, OPUS_PT, H264_PT = 96, 111, 102
LEAD = 0.05  # video encoding starts this long before the frame is due


def vp8_payloads(frame: bytes, picture_id: int) -> list[bytes]:
    """RFC 7741 section 4.2 descriptor: X=1, S on the first packet, PID 0, 15-bit PictureID."""
    chunks = [frame[i : i + MAX_PAYLOAD] for i in range(0, len(frame), MAX_PAYLOAD)] or [b""]
    pid = bytes([0x80 | (picture_id >> 8) & 0x7F, picture_id & 0xFF])
    return [bytes([0x90 if i == 0 else 0x80, 0x80]) + pid + c for i, c in enumerate(chunks)]


def h264_payloads(access_unit: bytes) -> list[bytes]:
    """RFC 6184: SPS+PPS aggregated in a STAP-A (5.7.1), other NAL units single (5.6) or FU-A
    (5.8) when larger than MAX_PAYLOAD."""
    nals = [n for n in re.split(b"\x00\x00\x00\x01|\x00\x00\x01", access_unit) if n]
    params = [n for n in nals if n[0] & 0x1F in (7, 8)]
    out = []
    if params:
        out.append(bytes([0x18]) + b"".join(len(n).to_bytes(2, "big") + n for n in params))
    for nal in nals:
        if nal[0] & 0x1F in (7, 8):
            continue
        if len(nal) <= MAX_PAYLOAD:
            out.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | 28
        body = nal[1:]
        chunks = [body[i : i + MAX_PAYLOAD] for i in range(0, len(body), MAX_PAYLOAD)]
        for i, chunk in enumerate(chunks):
            header = (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
            out.append(bytes([indicator, header | (nal[0] & 0x1F)]) + chunk)
    return out


class Participant:
    def __init__(self, sender_id: int, name: str, duration: float, tone_hz: float = 440.0,
                 ntp_skew: float = 0.0, drop_every: int = 0, width: int = 320,
                 height: int = 240, video_codec: str = "VP8", audio: bool = True) -> None:
        self.sender_id = sender_id
        self.name = name
        self.duration = duration
        self.tone_hz = tone_hz
        self.ntp_skew = ntp_skew
        self.drop_every = drop_every  # drop every n-th video packet once (NACK repairs it)
        self.video_codec = video_codec
        self.has_audio = audio
        self.video = Stream(random.getrandbits(32) | 1,
                            VP8_PT if video_codec == "VP8" else H264_PT, VIDEO_CLOCK)
        self.audio = Stream(random.getrandbits(32) | 1, OPUS_PT, AUDIO_RATE)
        self.flashes = flash_times(sender_id, duration)
        self.size = (width, height)
        self.force_key = True
        self.plis = self.nacks = self.retransmitted = self.dropped = 0
        self.frames_sent = 0
        self.video_packets_sent = 0
        self._venc = self._aenc = None

    def codecs(self) -> list[dict]:
        """add_track arguments for the recorder."""
        out = [{"ssrc": self.video.ssrc, "kind": "video", "participant_name": self.name,
                "codec": {"name": self.video_codec, "payload_type": self.video.payload_type,
                          "clock_rate": VIDEO_CLOCK}}]
        if self.has_audio:
            out.append({"ssrc": self.audio.ssrc, "kind": "audio", "participant_name": self.name,
                        "codec": {"name": "opus", "payload_type": OPUS_PT,
                                  "clock_rate": AUDIO_RATE, "channels": 2}})
        return out

    def video_packets(self, index: int) -> list[bytes]:
        if self._venc is None:
            h264 = self.video_codec == "H264"
            enc = av.CodecContext.create("libx264" if h264 else "libvpx", "w")
            enc.width, enc.height = self.size
            enc.pix_fmt = "yuv420p"
            enc.time_base = Fraction(1, VIDEO_CLOCK)
            enc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                           "g": "3000", "forced-idr": "1"} if h264 else {
                "deadline": "realtime", "cpu-used": "-16", "g": "3000", "lag-in-frames": "0",
                "b": "600k"}
            self._venc = enc
        t = index / FPS
        if flashing(self.flashes, t):
            rgb = white_frame(*self.size)
        else:
            rgb = make_video_frame(self.sender_id, index & 0xFFFF, *self.size)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index * (VIDEO_CLOCK // FPS)
        if self.force_key:
            frame.pict_type = av.video.frame.PictureType.I
            self.force_key = False
        out = []
        for p in self._venc.encode(frame):
            payloads = (h264_payloads(bytes(p)) if self.video_codec == "H264"
                        else vp8_payloads(bytes(p), index & 0x7FFF))
            ts = index * (VIDEO_CLOCK // FPS)
            out += [self.video.packet(ts, pl, i == len(payloads) - 1)
                    for i, pl in enumerate(payloads)]
        self.frames_sent += 1
        return out

    def audio_packets(self, index: int) -> list[bytes]:
        if self._aenc is None:
            enc = av.CodecContext.create("libopus", "w")
            enc.sample_rate, enc.layout, enc.format = AUDIO_RATE, "mono", "s16"
            enc.time_base = Fraction(1, AUDIO_RATE)
            self._aenc = enc
        samples = tone_with_beeps(self.flashes, self.tone_hz, index * OPUS_SAMPLES,
                                  OPUS_SAMPLES)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = index * OPUS_SAMPLES
        return [self.audio.packet(index * OPUS_SAMPLES, bytes(p), False)
                for p in self._aenc.encode(frame)]

    def sender_reports(self, media_time: float, wall_start: float) -> list[bytes]:
        streams = (self.video, self.audio) if self.has_audio else (self.video,)
        return [s.sender_report(wall_start + self.ntp_skew + media_time, media_time)
                for s in streams]


class Tap(FeedbackTap):
    """One UDP socket sending several participants to the recorder, answering its feedback."""

    def __init__(self, participants: list[Participant], dest: tuple[str, int]) -> None:
        self.participants = participants
        self.by_ssrc = {s.ssrc: p for p in participants for s in (p.video, p.audio)}
        super().__init__(dest, [s for p in participants for s in (p.video, p.audio)],
                         self._pli)

    def _pli(self, stream: Stream) -> None:
        p = self.by_ssrc[stream.ssrc]
        p.plis += 1
        p.force_key = True

    def on_nack(self, stream: Stream, seqs: list[int]) -> None:
        p = self.by_ssrc[stream.ssrc]
        p.nacks += 1
        p.retransmitted += sum(seq in stream.history for seq in seqs)
        super().on_nack(stream, seqs)

    async def run(self, speed: float = 1.0, start_frame: int = 0,
                  seconds: float | None = None) -> None:
        """Send every participant's media from `start_frame`, paced at `speed` x real time.

        Video is encoded on one worker thread per participant (PyAV releases the GIL), started
        LEAD seconds before it is due, so the loop keeps answering NACKs and PLIs meanwhile.
        """
        duration = self.participants[0].duration if seconds is None else seconds
        wall_start = time.time() - start_frame / FPS
        first_audio = start_frame * AUDIO_RATE // FPS // OPUS_SAMPLES
        events = [(i / FPS, 0, i) for i in range(start_frame, round(duration * FPS))]
        events += [(k * OPUS_SAMPLES / AUDIO_RATE, 1, k)
                   for k in range(first_audio, round(duration * AUDIO_RATE / OPUS_SAMPLES))]
        events.sort()
        if not events:
            return
        loop = asyncio.get_running_loop()
        workers = [ThreadPoolExecutor(1) for _ in self.participants]
        encoded: dict[int, list[asyncio.Future]] = {}
        video = [index for _, kind, index in events if kind == 0]
        started = 0
        t0, m0 = time.monotonic(), events[0][0]
        next_sr = m0
        try:
            for media_t, kind, index in events:
                while started < len(video) and video[started] / FPS <= media_t + LEAD:
                    i = video[started]
                    encoded[i] = [loop.run_in_executor(w, p.video_packets, i)
                                  for p, w in zip(self.participants, workers, strict=True)]
                    started += 1
                delay = t0 + (media_t - m0) / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if media_t >= next_sr:  # RFC 3550 section 6.4.1 SR, before the media it maps
                    for p in self.participants:
                        for sr in p.sender_reports(media_t, wall_start):
                            self.send(sr)
                    next_sr = media_t + 1.0
                if kind == 0:
                    batches = await asyncio.gather(*encoded.pop(index))
                    for p, packets in zip(self.participants, batches, strict=True):
                        self._send_video(p, packets)
                else:
                    for p in self.participants:
                        if p.has_audio:
                            for data in p.audio_packets(index):
                                self.send(data)
        finally:
            for w in workers:
                w.shutdown(wait=True, cancel_futures=True)

    def _send_video(self, p: Participant, packets: list[bytes]) -> None:
        for data in packets:
            p.video_packets_sent += 1
            if p.drop_every and p.video_packets_sent % p.drop_every == 0:
                p.dropped += 1  # lost once; the history still answers the NACK
                continue
            self.send(data)



class Source:
    def __init__(self, sender: int, size: tuple[int, int] = (320, 240)) -> None:
        self.sender = sender
        self.resize(size)
        self.audio = av.CodecContext.create("libopus", "w")
        self.audio.sample_rate, self.audio.layout, self.audio.format = 48000, "mono", "s16"
        self.audio.time_base = Fraction(1, 48000)

    def resize(self, size: tuple[int, int]) -> None:
        self.size = size
        self.video = av.CodecContext.create("libvpx", "w")
        self.video.width, self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.time_base = Fraction(1, 90000)
        self.video.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}

    def video_frame(self, i: int) -> list[Frame]:
        rgb = make_video_frame(self.sender, i, *self.size)
        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        vf.pts = i * 3000
        return [Frame(bytes(p), i * 3000, p.is_keyframe) for p in self.video.encode(vf)]

    def audio_frame(self, k: int, loud: bool) -> list[Frame]:
        t = np.arange(k * 960, (k + 1) * 960) / 48000
        pcm = (0.4 if loud else 0.01) * np.sin(2 * np.pi * 440 * t)
        af = av.AudioFrame.from_ndarray((pcm * 32767).astype(np.int16)[None, :], format="s16",
                                        layout="mono")
        af.sample_rate, af.pts = 48000, k * 960
        return [Frame(bytes(p), k * 960, True) for p in self.audio.encode(af)]
