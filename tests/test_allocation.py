"""The bandwidth allocator wired into a real Worker (allocation.py): a simulcast producer whose
three encodings are measured from the packets fed to it and sized from their VP8 key frames,
subscriber transports whose estimate is set as the estimator would give it (how feedback
becomes an estimate is tests/test_bwe.py's and test_bwe_wiring.py's subject), and the
allocation round run by hand: which encoding each consumer aims at, what is held for budget
or view, how much resending the estimate allows, and the prober's padding."""

from __future__ import annotations

import asyncio
import struct
import time

import av
import pytest

from mediaserver.allocation import (
    ALLOCATE_INTERVAL,
    BUSY_LAG,
    PACE_INTERVAL,
    PADDING,
    RESEND_SHARE,
)
from mediaserver.params import Codec, ConsumerParams, Encoding, ProducerParams
from mediaserver.rtp.codecs import vp8_keyframe_size
from mediaserver.rtp.packet import (
    EXT_MID,
    EXT_RID,
    EXT_TRANSPORT_CC,
    build_packet,
    payload_offset,
)
from mediaserver.rtp.rtcp import build_nack
from mediaserver.rtp.twcc import tcc_seq_of
from mediaserver.worker import Worker
from tests.test_forwarding import DELTA, VP8, Capture, header

SIZES = ((320, 180), (640, 360), (1280, 720))  # q, h, f
RATES = (150_000, 500_000, 1_500_000)  # bit/s each encoding is fed at
SSRCS = (10, 20, 30)
AUDIO = Codec("opus", 111, 48000, channels=2)
TCC_ID = 3


def keyframe(width: int, height: int) -> bytes:
    """The first packet of a VP8 key frame: descriptor (S=1), frame tag (P=0), start code,
    the two sizes (RFC 6386 9.1)."""
    return b"\x10" + b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", width, height) + \
        b"k" * 40


class Room:
    """A worker with a simulcast video and an audio producer, and `subscribers` transports
    consuming both (transport-cc negotiated, RTX on the video)."""

    def __init__(self, subscribers: int = 1, without_tcc: tuple[int, ...] = ()) -> None:
        self.worker = worker = Worker()
        worker.loop = asyncio.get_running_loop()
        self.router = worker.create_router()
        capture = Capture(worker)
        self.pub = capture.transport(self.router)
        encodings = [Encoding(rid, ssrc) for rid, ssrc in zip("qhf", SSRCS, strict=True)]
        self.video = worker.producers[worker.produce(self.pub.id, ProducerParams(
            "video", "0", VP8, extensions={EXT_MID: 1, EXT_RID: 2}, encodings=encodings))]
        self.audio = worker.producers[worker.produce(self.pub.id, ProducerParams(
            "audio", "1", AUDIO, ssrc=40))]
        self.subs, self.video_consumers, self.audio_consumers = [], [], []
        for i in range(subscribers):
            sub = capture.transport(self.router)
            exts = {} if i in without_tcc else {EXT_TRANSPORT_CC: TCC_ID}
            video = worker.consume(sub.id, self.video.id, ConsumerParams(
                f"v{i}", VP8, exts, ssrc=5000 + i, rtx_ssrc=6000 + i))
            audio = worker.consume(sub.id, self.audio.id, ConsumerParams(
                f"a{i}", AUDIO, exts, ssrc=7000 + i))
            self.subs.append(sub)
            self.video_consumers.append(worker.consumers[video.id])
            self.audio_consumers.append(worker.consumers[audio.id])
        self.seq = {ssrc: 1000 * ssrc for ssrc in (*SSRCS, 40)}
        self.now = time.monotonic()

    def send(self, ssrc: int, payload: bytes, ts: int = 0) -> None:
        self.seq[ssrc] += 1
        stream = self.video.transport.producers_by_ssrc[ssrc]
        stream.receive(build_packet(stream.codec.payload_type, self.seq[ssrc] & 0xFFFF, ts,
                                    ssrc, payload, True), time.monotonic())

    def second_of_media(self) -> None:
        """Each encoding starts with a key frame of its size, then a second of packets at its
        rate (and audio at 40 kbit/s), measured as the receiver reports measure them."""
        streams = [*self.video.streams, self.audio]
        for stream in streams:
            stream.report_block(self.now)
        for (width, height), ssrc in zip(SIZES, SSRCS, strict=True):
            self.send(ssrc, keyframe(width, height))
        for rate, ssrc in zip(RATES, SSRCS, strict=True):
            for _ in range(rate // 8 // 1000):
                self.send(ssrc, DELTA + b"x" * (1000 - 12 - len(DELTA)))
        for _ in range(50):
            self.send(40, b"o" * (100 - 12))
        self.now += 1.0
        for stream in streams:
            stream.report_block(self.now)

    def allocate(self, *estimates: int | None) -> None:
        """One round with these estimates (None: the subscriber sent no feedback)."""
        for sub, estimate in zip(self.subs, estimates, strict=True):
            if estimate is not None:  # as SendSideEstimator.on_feedback leaves it
                sub.transport.bwe.estimate = estimate
                sub.transport.bwe.feedbacks += 1
        rounds = self.worker.allocation
        rounds.tick()  # a round is spread over the ticks of a half second
        while rounds.slices.queue:
            rounds.tick()

    def dump(self, consumer):
        return next(c for c in self.worker.dump().consumers if c.id == consumer.id)


async def test_layers_are_measured_and_sized_from_the_packets() -> None:
    room = Room()
    room.second_of_media()
    assert [(s.width, s.height) for s in room.video.streams] == list(SIZES)
    for stream, rate in zip(room.video.streams, RATES, strict=True):
        assert rate * 0.9 <= stream.bitrate <= rate * 1.1
    assert [s.watch_keyframe for s in room.video.streams] == [False] * 3  # until the next request


async def test_each_subscriber_gets_the_layer_its_estimate_carries() -> None:
    room = Room(subscribers=5, without_tcc=(3,))
    room.second_of_media()
    room.allocate(3_000_000, 1_000_000, 300_000, None, None)
    targets = [c.target_spatial_layer for c in room.video_consumers]
    # 1.5M+40k fits 3M; 1M: 500k+40k; 300k: the lowest; without transport-cc no limit: the
    # top; with it but no feedback yet: the start rate (300k), the lowest
    assert targets == [2, 1, 0, 2, 0]
    assert [room.dump(c).paused_by for c in room.video_consumers] == [[]] * 5
    dumps = {t.id: t for t in room.worker.dump().transports}
    lowest = room.video.streams[0].bitrate + room.audio.bitrate  # as measured
    assert dumps[room.subs[2].id].allocated == lowest
    assert dumps[room.subs[3].id].allocated == 0  # nothing to allocate against
    # the weak one's link improves: a second round that still says so raises it (one round
    # is one feedback's swing), the switch waits for a keyframe
    room.allocate(3_000_000, 1_000_000, 3_000_000, None, None)
    assert room.video_consumers[2].target_spatial_layer == 0
    room.allocate(3_000_000, 1_000_000, 3_000_000, None, None)
    assert room.video_consumers[2].target_spatial_layer == 2
    # a dip of one round moves nothing down; a capacity step far below does at once
    room.allocate(1_400_000, 1_000_000, 3_000_000, None, None)
    assert room.video_consumers[0].target_spatial_layer == 2
    room.allocate(3_000_000, 250_000, 3_000_000, None, None)  # < 60% of the 500k sent
    assert [c.target_spatial_layer for c in room.video_consumers[:2]] == [2, 0]


async def test_what_does_not_fit_is_held_and_audio_goes_on() -> None:
    room = Room()
    room.second_of_media()
    room.allocate(100_000)  # audio fits, the lowest video (150k) does not
    video, audio = room.video_consumers[0], room.audio_consumers[0]
    assert room.dump(video).paused_by == ["budget"] and video.paused
    assert not audio.paused
    sent = len(room.subs[0].rtp)
    room.send(SSRCS[0], keyframe(*SIZES[0]))
    room.send(40, b"o" * 80)
    assert len(room.subs[0].rtp) == sent + 1  # the audio packet only
    room.allocate(600_000)  # room again for a second: it resumes, on a key frame
    assert video.paused
    room.allocate(600_000)
    assert not video.paused and video.target_spatial_layer == 1
    room.send(SSRCS[1], keyframe(*SIZES[1]))
    assert header(room.subs[0].rtp[-1])[4] == 5000  # forwarded under the consumer's SSRC


async def test_the_tile_caps_the_layer_and_a_hidden_tile_gets_nothing() -> None:
    room = Room()
    room.second_of_media()
    video = room.video_consumers[0]
    room.worker.set_consumer_view(video.id, True, 300, 170)  # a thumbnail
    room.allocate(5_000_000)
    assert video.target_spatial_layer == 0  # 320x180 covers it, plenty of budget or not
    room.worker.set_consumer_view(video.id, True, 1280, 720)
    room.allocate(5_000_000)
    room.allocate(5_000_000)
    assert video.target_spatial_layer == 2
    room.worker.set_consumer_view(video.id, False, 0, 0)
    room.allocate(5_000_000)
    assert room.dump(video).paused_by == ["view"]
    sent = len(room.subs[0].rtp)
    for ssrc, size in zip(SSRCS, SIZES, strict=True):
        room.send(ssrc, keyframe(*size))
    assert len(room.subs[0].rtp) == sent
    room.worker.set_consumer_view(video.id, True, 640, 360)
    room.allocate(5_000_000)
    assert not video.paused and video.target_spatial_layer == 1


async def test_views_are_checked_at_the_border() -> None:
    room = Room()
    video = room.video_consumers[0]
    for bad in ((1, 10, 10), (True, -1, 10), (True, 10, 10**6)):
        with pytest.raises(ValueError):
            room.worker.set_consumer_view(video.id, *bad)
    assert room.dump(video).paused_by == []


async def test_resends_take_at_most_their_share_of_the_estimate() -> None:
    room = Room()
    room.second_of_media()
    room.allocate(400_000)  # the lowest layer; resends may take a quarter of 400k
    allowance = 400_000 * RESEND_SHARE * ALLOCATE_INTERVAL / 8
    sub = room.subs[0]
    for _ in range(200):
        room.send(SSRCS[0], keyframe(*SIZES[0]) + b"x" * 900)
    seqs = [header(p)[2] for p in sub.rtp if header(p)[4] == 5000]
    before = len(sub.rtp)
    nack = build_nack(0x5151, 5000, seqs)
    sub.transport.on_srtp(nack)  # the subscriber lost all of them
    resent = sub.rtp[before:]
    assert resent and sum(len(p) for p in resent) <= allowance + 1200
    assert sub.transport.resends_over_budget >= 1 and len(resent) < len(seqs)
    room.allocate(400_000)  # the next round: a new allowance
    sub.transport.on_srtp(build_nack(0x5151, 5000, seqs[-20:]))
    assert len(sub.rtp) > before + len(resent)


async def paces(room: Room, count: int) -> None:
    """What the worker's pacing timer does every PACE_INTERVAL (this worker has no timers)."""
    for _ in range(count):
        await asyncio.sleep(PACE_INTERVAL)
        room.worker.allocation.pace()


async def test_prober_pads_towards_what_the_subscriber_could_use_and_backs_off() -> None:
    room = Room()
    room.second_of_media()
    sub = room.subs[0]
    room.send(SSRCS[0], keyframe(*SIZES[0]))  # the consumer is forwarding
    room.allocate(400_000)
    prober = sub.transport.allocator.prober
    assert prober.probing and room.worker.dump().transports[1].probing
    before = len(sub.rtp)
    await paces(room, 5)
    padding = [p for p in sub.rtp[before:] if header(p)[4] == 6000]
    assert padding, "no padding sent"
    for packet in padding:
        assert packet[0] & 0x20  # P bit
        assert packet[-1] == PADDING and len(packet) - payload_offset(packet) == PADDING
        assert tcc_seq_of(packet, TCC_ID) >= 0  # counted in the subscriber's feedback
        assert header(packet)[1] & 0x7F == VP8.rtx_payload_type
    # padding is not media: the consumer's own counters leave it out
    assert room.dump(room.video_consumers[0]).packets == sum(
        1 for p in sub.rtp if header(p)[4] == 5000)
    # the link filled up: the estimate fell, the probe stops and waits before the next
    sub.transport.bwe.estimate = 300_000
    await paces(room, 1)
    assert not prober.probing and prober.failures == 1
    room.allocate(300_000)
    assert not prober.probing  # backing off


def test_vp8_keyframe_size_of_a_real_encoder() -> None:
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 480, 270, "yuv420p"
    frame = av.VideoFrame(480, 270, "yuv420p")
    packets = codec.encode(frame) + codec.encode(None)
    data = bytes(packets[0])
    assert vp8_keyframe_size(b"\x10" + data) == (480, 270)
    assert vp8_keyframe_size(b"\x90\x80\x81\x23" + data) == (480, 270)  # with a picture id
    assert vp8_keyframe_size(b"\x00" + data) is None  # not the start of the frame
    assert vp8_keyframe_size(b"\x10" + data[:8]) is None
    assert vp8_keyframe_size(DELTA) is None


def test_a_probe_result_raises_the_estimate_only_upwards_and_never_in_overuse() -> None:
    from mediaserver.bwe.delay import OVERUSE
    from mediaserver.bwe.estimator import SendSideEstimator
    bwe = SendSideEstimator(initial=300_000)
    bwe.raise_to(200_000)
    assert bwe.estimate == 300_000
    bwe.raise_to(900_000)
    assert bwe.estimate == 900_000
    bwe.usage = OVERUSE
    bwe.raise_to(2_000_000)
    assert bwe.estimate == 900_000


async def test_no_probing_while_the_worker_is_behind_its_packets() -> None:
    """Padding on an overloaded worker only feeds the overload: a probe neither starts nor
    goes on while the worker's timers run late, and starts again once they catch up."""
    room = Room()
    room.second_of_media()
    sub = room.subs[0]
    room.send(SSRCS[0], keyframe(*SIZES[0]))
    room.worker.lag = 2 * BUSY_LAG
    room.allocate(400_000)
    prober = sub.transport.allocator.prober
    assert not prober.probing and prober.paused_busy == 1
    room.worker.lag = 0.0
    room.allocate(400_000)
    assert prober.probing
    before = len(sub.rtp)
    room.worker.lag = 2 * BUSY_LAG  # behind in the middle of a probe
    await paces(room, 1)
    assert not prober.probing and prober.failures == 0 and prober.paused_busy == 2
    assert not [p for p in sub.rtp[before:] if header(p)[4] == 6000]
