"""Plain-RTP sources for the recorder, standing in for the SFU's taps (benchmark and tests).

`Stream` numbers one SSRC's packets (random sequence and timestamp bases) and keeps a history
for retransmission; `FeedbackTap` is one UDP socket to the recorder, like a PipeTransport,
that answers NACKs from the histories and passes PLIs on. `LoopSender` plays pre-encoded
media (benchmarks/media.py: VP8 pattern video and an Opus tone, encoded once, looped) for
several senders in real time with sender reports, as the benchmark needs: encoding live
would cost more than the recorder it measures. The tests' senders (tests/support/
recorder_media.py) encode patterns live instead, flashes and beeps included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mediaserver.rtp.packet import build_packet
from mediaserver.rtp.rtcp import Nack, Pli, build_sr, parse_compound, seconds_to_ntp

from .media import AUDIO_CLOCK, AUDIO_SAMPLES, VIDEO_CLOCK, MediaLoop, MediaSpec, load_media

VP8_PT, OPUS_PT = 96, 111
HISTORY = 2000  # packets kept per stream for NACKs


@dataclass
class Stream:
    ssrc: int
    payload_type: int
    clock_rate: int
    seq: int = field(default_factory=lambda: random.randrange(1 << 16))
    ts_base: int = field(default_factory=lambda: random.randrange(1 << 32))
    history: dict[int, bytes] = field(default_factory=dict)
    packets: int = 0
    octets: int = 0

    def packet(self, ts: int, payload: bytes, marker: bool) -> bytes:
        data = build_packet(self.payload_type, self.seq, (self.ts_base + ts) & 0xFFFFFFFF,
                            self.ssrc, payload, marker)
        self.history[self.seq] = data
        self.history.pop((self.seq - HISTORY) & 0xFFFF, None)
        self.seq = (self.seq + 1) & 0xFFFF
        self.packets += 1
        self.octets += len(payload)
        return data

    def sender_report(self, ntp_seconds: float, media_time: float) -> bytes:
        """RFC 3550 6.4.1: this NTP time is this RTP time (media_time seconds from ts 0)."""
        rtp = (self.ts_base + round(media_time * self.clock_rate)) & 0xFFFFFFFF
        return build_sr(self.ssrc, seconds_to_ntp(ntp_seconds), rtp, self.packets, self.octets)


class FeedbackTap(asyncio.DatagramProtocol):
    """One UDP socket sending to the recorder and answering its RTCP feedback."""

    def __init__(self, dest: tuple[str, int], streams: list[Stream],
                 on_pli: Callable[[Stream], None]) -> None:
        self.dest = dest
        self.streams = {s.ssrc: s for s in streams}
        self.on_pli = on_pli
        self.udp: asyncio.DatagramTransport | None = None
        self.feedback: list[object] = []
        self.sent = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(lambda: self,
                                                          local_addr=("127.0.0.1", 0))

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        for item in parse_compound(data):
            self.feedback.append(item)
            stream = self.streams.get(getattr(item, "media_ssrc", -1))
            if stream is None:
                continue
            if isinstance(item, Pli):
                self.on_pli(stream)
            elif isinstance(item, Nack):
                self.on_nack(stream, item.seqs)

    def on_nack(self, stream: Stream, seqs: list[int]) -> None:
        for seq in seqs:
            if (data := stream.history.get(seq)) is not None:
                self.send(data)

    def send(self, data: bytes) -> None:
        assert self.udp is not None
        self.sent += 1
        self.udp.sendto(data, self.dest)

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()


@dataclass
class LoopSource:
    """One participant: a looped video and audio track with their streams."""

    name: str
    loop: MediaLoop
    video: Stream = field(default_factory=lambda: Stream(random.getrandbits(32) | 1, VP8_PT,
                                                         VIDEO_CLOCK))
    audio: Stream = field(default_factory=lambda: Stream(random.getrandbits(32) | 1, OPUS_PT,
                                                         AUDIO_CLOCK))

    def tracks(self) -> list[dict]:
        """add_track arguments for the recorder."""
        return [{"ssrc": self.video.ssrc, "kind": "video", "participant_name": self.name,
                 "codec": {"name": "VP8", "payload_type": VP8_PT, "clock_rate": VIDEO_CLOCK}},
                {"ssrc": self.audio.ssrc, "kind": "audio", "participant_name": self.name,
                 "codec": {"name": "opus", "payload_type": OPUS_PT, "clock_rate": AUDIO_CLOCK,
                           "channels": 2}}]


class LoopSender:
    """Several LoopSources over one FeedbackTap, paced in real time: each video frame and
    each 20 ms of audio goes out when due; sender reports once a second."""

    def __init__(self, count: int, dest: tuple[str, int], spec: MediaSpec | None = None) -> None:
        base = spec or MediaSpec(0)
        self.sources = []
        for i in range(count):
            media = load_media(dataclasses.replace(base, sender_id=i))
            loop = MediaLoop(media, picture_id=random.getrandbits(15))
            self.sources.append(LoopSource(f"Sender {i + 1}", loop))
        self.fps = base.fps
        streams = [s for src in self.sources for s in (src.video, src.audio)]
        self.tap = FeedbackTap(dest, streams, self._pli)
        self.plis = 0

    def _pli(self, stream: Stream) -> None:
        for src in self.sources:
            if src.video is stream:
                self.plis += 1
                src.loop.jump_to_keyframe()

    async def run(self, seconds: float) -> None:
        await self.tap.open()
        wall0, mono0 = time.time(), time.monotonic()
        frames = audio = reports = 0
        while (elapsed := time.monotonic() - mono0) < seconds:
            while reports <= elapsed:  # sender reports first: they anchor the media after
                for src in self.sources:
                    for s in (src.video, src.audio):
                        self.tap.send(s.sender_report(wall0 + reports, reports))
                reports += 1
            while frames / self.fps <= elapsed:
                for src in self.sources:
                    _, _, payloads = src.loop.next_video()
                    ts = frames * (VIDEO_CLOCK // self.fps)
                    for i, p in enumerate(payloads):
                        self.tap.send(src.video.packet(ts, p, i == len(payloads) - 1))
                frames += 1
            while audio * AUDIO_SAMPLES / AUDIO_CLOCK <= elapsed:
                for src in self.sources:
                    _, payload = src.loop.next_audio()
                    self.tap.send(src.audio.packet(audio * AUDIO_SAMPLES, payload, False))
                audio += 1
            next_due = min(frames / self.fps, audio * AUDIO_SAMPLES / AUDIO_CLOCK, reports)
            await asyncio.sleep(max(0.0, next_due - (time.monotonic() - mono0)))

    def close(self) -> None:
        self.tap.close()
