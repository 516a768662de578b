"""Simulcast: a Producer of three encodings, consumers switching layers at keyframes.

A real Worker and real transports with plaintext "SRTP" (tests/test_forwarding.py's Capture):
the packet path runs as in the server, and what the worker sends is read back.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from mediaserver import producer as producer_module
from mediaserver.api import open_media
from mediaserver.config import MediaConfig
from mediaserver.control import MediaControl
from mediaserver.local_control import LocalMediaControl
from mediaserver.params import (
    Codec,
    ConsumerParams,
    Encoding,
    MediaError,
    ParamsError,
    ProducerParams,
)
from mediaserver.remote_control import RemoteMediaControl, control_server
from mediaserver.rtp.packet import (
    EXT_MID,
    EXT_REPAIRED_RID,
    EXT_RID,
    build_extensions,
    build_packet,
    payload_offset,
)
from mediaserver.rtp.rtcp import Pli, ReceiverReport, parse_compound
from mediaserver.simulcast import SimulcastConsumer
from mediaserver.worker import Worker
from signaling import sdp
from tests.support.sdp_samples import CHROME_OFFER, INFO
from tests.test_forwarding import CONT, DELTA, KEY, VP8, Capture, Captured, header

H264 = Codec("H264", 102, 90000, fmtp="packetization-mode=1", rtx_payload_type=103, nack=True,
             pli=True)
H264_IDR = b"\x65" + b"i" * 40  # NAL type 5
H264_SLICE = b"\x41" + b"p" * 40  # NAL type 1: a non-IDR slice
SSRCS = (10, 20, 30)  # q, h, f: lowest to highest
RTX = (11, 21, 31)
EXTS = {EXT_MID: 1, EXT_RID: 2, EXT_REPAIRED_RID: 3}


class Layers:
    """Three encodings sending as a browser does: each with its own random sequence and
    timestamp bases; `frame` sends one frame (a packet, or a keyframe and its continuation)."""

    def __init__(self, producer) -> None:
        self.producer = producer
        self.streams = {s.ssrc: s for s in producer.streams}
        self.seq = {10: 100, 20: 30000, 30: 65530}  # one wraps soon
        self.ts = {10: 1_000, 20: 2_000_000_000, 30: 4_294_000_000}
        self.pt = producer.codec.payload_type

    def frame(self, layer: int, *payloads: bytes) -> None:
        ssrc = SSRCS[layer]
        self.ts[ssrc] = (self.ts[ssrc] + 3000) & 0xFFFFFFFF
        for i, payload in enumerate(payloads):
            self.seq[ssrc] = (self.seq[ssrc] + 1) & 0xFFFF
            packet = build_packet(self.pt, self.seq[ssrc], self.ts[ssrc], ssrc, payload,
                                  i == len(payloads) - 1)
            self.streams[ssrc].receive(packet, time.monotonic())

    def all(self, *payloads: bytes) -> None:
        for layer in range(3):
            self.frame(layer, *payloads)


async def setup(codec: Codec = VP8, consumers: int = 1):
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    router_id = worker.create_router()
    capture = Capture(worker)
    pub = capture.transport(router_id)
    encodings = [Encoding(rid, ssrc, rtx) for rid, ssrc, rtx in zip("qhf", SSRCS, RTX,
                                                                     strict=True)]
    pid = worker.produce(pub.id, ProducerParams("video", "0", codec, extensions=EXTS,
                                                encodings=encodings))
    subs, made = [], []
    for i in range(consumers):
        sub = capture.transport(router_id)
        info = worker.consume(sub.id, pid, ConsumerParams(str(i), codec, ssrc=5000 + i,
                                                          rtx_ssrc=6000 + i))
        subs.append(sub)
        made.append(worker.consumers[info.id])
    return worker, pub, subs, worker.producers[pid], made


def plis(pub: Captured) -> list[int]:
    """The SSRCs keyframes were asked from, in order; clears what was read."""
    out = [i.media_ssrc for p in pub.rtcp for i in parse_compound(p) if isinstance(i, Pli)]
    pub.rtcp.clear()
    return out


def forget_throttle(producer) -> None:
    for stream in producer.streams:
        stream._last_keyframe_request = -1e9


def assert_continuous(packets: list[bytes]) -> None:
    """One stream to the subscriber: consecutive sequence numbers (nothing to NACK), one SSRC,
    timestamps that never go back."""
    heads = [header(p) for p in packets]
    assert len({h[4] for h in heads}) == 1
    for (_, _, seq0, ts0, _), (_, _, seq1, ts1, _) in zip(heads, heads[1:], strict=False):
        assert seq1 == (seq0 + 1) & 0xFFFF
        assert ((ts1 - ts0) & 0xFFFFFFFF) < 0x80000000


def bodies(packets: list[bytes]) -> list[bytes]:
    return [p[payload_offset(p):] for p in packets]


@pytest.mark.parametrize(("codec", "key", "delta"), [(VP8, KEY, DELTA), (H264, H264_IDR,
                                                                           H264_SLICE)])
async def test_switches_only_at_a_keyframe_of_the_target_and_stays_continuous(
        codec: Codec, key: bytes, delta: bytes) -> None:
    worker, pub, (sub,), producer, (consumer,) = await setup(codec)
    assert isinstance(consumer, SimulcastConsumer)
    # the highest encoding is the default target; the lower ones start a picture sooner
    assert plis(pub) == [10, 20, 30]
    layers = Layers(producer)
    layers.all(delta)  # no keyframe yet: nothing
    assert sub.rtp == []
    layers.frame(2, key, CONT)
    layers.all(delta)
    assert bodies(sub.rtp) == [key, CONT, delta]  # the top encoding only
    assert consumer.spatial_layer == 2

    plis(pub)
    forget_throttle(producer)  # (the request at creation was less than 0.5 s ago)
    worker.set_preferred_layers(consumer.id, 0, 0)
    assert plis(pub) == [10]  # asked from the target's SSRC
    layers.all(delta)  # still the top encoding until the target's keyframe
    layers.frame(1, key)  # not the target
    layers.frame(2, delta)
    assert consumer.spatial_layer == 2 and bodies(sub.rtp)[-2:] == [delta, delta]
    before = len(sub.rtp)
    layers.frame(0, key, CONT)
    layers.all(delta)
    assert consumer.spatial_layer == 0 and consumer.layer_switches == 1
    assert bodies(sub.rtp)[before:] == [key, CONT, delta]  # the low encoding only from here

    forget_throttle(producer)
    worker.set_preferred_layers(consumer.id, 3, 0)  # more than there is: the highest
    assert consumer.target_spatial_layer == 2 and plis(pub) == [30]
    time.sleep(0.002)  # wall-clock time to carry into the timestamp
    layers.frame(2, key)
    layers.all(delta)
    assert consumer.spatial_layer == 2 and consumer.layer_switches == 2
    assert_continuous(sub.rtp)
    # across the switch the timestamp moved by the wall-clock time between the two packets
    # (at least 2 ms here), not by the distance between the encodings' random bases
    jump = (header(sub.rtp[-2])[3] - header(sub.rtp[-3])[3]) & 0xFFFFFFFF
    assert 180 <= jump < 90000 * 5
    heads = [header(p) for p in sub.rtp]
    assert [h[4] for h in heads] == [5000] * len(heads)
    (c,) = worker.dump().consumers
    assert (c.spatial_layer, c.target_spatial_layer) == (2, 2)


async def test_starts_on_a_lower_keyframe_and_moves_up_at_the_target() -> None:
    worker, pub, (sub,), producer, (consumer,) = await setup()
    plis(pub)
    layers = Layers(producer)
    layers.frame(0, KEY)
    assert consumer.spatial_layer == 0 and bodies(sub.rtp) == [KEY]
    layers.frame(2, DELTA)
    layers.frame(2, KEY)
    layers.frame(0, DELTA)
    assert consumer.spatial_layer == 2 and len(sub.rtp) == 2
    assert_continuous(sub.rtp)


async def test_follows_the_encodings_that_arrive() -> None:
    """The target is the highest encoding that arrives, at or below the preferred one."""
    worker, pub, (sub,), producer, (consumer,) = await setup()
    layers = Layers(producer)
    layers.frame(0, DELTA)
    layers.frame(1, DELTA)  # the top encoding is not sent (a small camera, a slow uplink)
    assert consumer.target_spatial_layer == 1
    layers.frame(1, KEY)
    assert consumer.spatial_layer == 1
    plis(pub)
    forget_throttle(producer)
    layers.frame(2, DELTA)  # it starts: the consumer moves up at its keyframe
    assert consumer.target_spatial_layer == 2 and plis(pub) == [30]
    layers.frame(2, KEY)
    assert consumer.spatial_layer == 2
    # it stops: a receiver report interval without packets
    top = producer.streams[2]
    top.report_block(time.monotonic())
    forget_throttle(producer)
    layers.frame(1, DELTA)
    top.report_block(time.monotonic())
    assert not top.active and consumer.target_spatial_layer == 1 and plis(pub) == [20]
    assert top.bitrate == 0  # nothing in the last interval
    layers.frame(1, KEY)
    assert consumer.spatial_layer == 1 and consumer.preferred_spatial_layer == 2
    assert bodies(sub.rtp) == [KEY, KEY, KEY]
    assert_continuous(sub.rtp)


async def test_each_encoding_measures_its_bitrate() -> None:
    """What forwarding each encoding costs, per receiver-report interval (the allocator's)."""
    worker, pub, (sub,), producer, (consumer,) = await setup()
    layers = Layers(producer)
    now = time.monotonic()
    for stream in producer.streams:
        stream.report_block(now - 1.0)
    for _ in range(10):
        layers.frame(0, DELTA)
        layers.frame(1, DELTA, DELTA)
    for stream in producer.streams:
        stream.report_block(now)
    size = len(DELTA) + 12  # the packets as they came (header included)
    expected = [10 * size * 8, 20 * size * 8, 0]
    got = [s.bitrate for s in producer.streams]
    assert all(abs(g - e) <= e // 100 for g, e in zip(got, expected, strict=True)), got
    (dumped,) = worker.dump().producers
    assert [(e.rid, e.ssrc, e.active) for e in dumped.encodings] == [
        ("q", 10, True), ("h", 20, True), ("f", 30, False)]
    assert [e.bitrate for e in dumped.encodings] == got


async def test_keyframe_requests_merge_per_encoding() -> None:
    worker, pub, subs, producer, consumers = await setup(consumers=3)
    layers = Layers(producer)
    layers.all(DELTA)  # all three encodings arrive
    layers.frame(2, KEY)  # all three consumers forward the top one
    plis(pub)
    forget_throttle(producer)
    for consumer in consumers:
        worker.set_preferred_layers(consumer.id, 1, 0)
    worker.set_preferred_layers(consumers[0].id, 0, 0)
    assert plis(pub) == [20, 10]  # one per encoding, however many consumers asked


async def test_nack_after_a_switch_is_served_from_the_current_encoding() -> None:
    worker, pub, (sub,), producer, (consumer,) = await setup()
    layers = Layers(producer)
    layers.frame(2, KEY)
    worker.set_preferred_layers(consumer.id, 1, 0)
    layers.frame(1, KEY, CONT)
    layers.frame(1, DELTA)
    out = [header(p)[2] for p in sub.rtp]
    sub.rtp.clear()
    assert len(out) == 4  # the top keyframe, then the middle encoding's three
    consumer.on_nack([out[0], out[3]])  # one from before the switch, one after
    (rtx,) = sub.rtp
    assert header(rtx)[4] == 6000
    body = rtx[payload_offset(rtx):]
    assert int.from_bytes(body[:2], "big") == out[3] and body[2:] == DELTA


async def test_subscriber_pli_asks_the_encoding_it_is_on() -> None:
    worker, pub, (sub,), producer, (consumer,) = await setup()
    layers = Layers(producer)
    layers.frame(2, KEY)
    plis(pub)
    forget_throttle(producer)
    consumer.request_keyframe()
    assert plis(pub) == [30]


async def test_ssrcs_are_learnt_from_rid_and_repaired_rid() -> None:
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    router_id = worker.create_router()
    capture = Capture(worker)
    pub = capture.transport(router_id)
    pid = worker.produce(pub.id, ProducerParams(
        "video", "0", VP8, extensions=EXTS, encodings=[Encoding(r) for r in "qhf"]))
    producer = worker.producers[pid]
    transport = pub.transport
    for layer, rid in enumerate("qhf"):
        ext = build_extensions([(1, b"0"), (2, rid.encode())])
        transport.on_srtp(build_packet(96, 1, 0, SSRCS[layer], KEY, extensions=ext))
        rtx_ext = build_extensions([(1, b"0"), (3, rid.encode())])
        transport.on_srtp(build_packet(97, 1, 0, RTX[layer], b"\x00\x02" + KEY,
                                       extensions=rtx_ext))
    assert [s.ssrc for s in producer.streams] == list(SSRCS)
    assert [s.rtx_ssrc for s in producer.streams] == list(RTX)
    assert [(s.received, s.retransmitted_in) for s in producer.streams] == [(1, 1)] * 3
    # an unknown rid binds nothing
    transport.on_srtp(build_packet(96, 1, 0, 99, KEY,
                                   extensions=build_extensions([(1, b"0"), (2, b"x")])))
    assert 99 not in transport.producers_by_ssrc
    # receiver reports carry a block per encoding
    transport.send_reports(time.monotonic(), 0)
    blocks = [b.ssrc for p in pub.rtcp for i in parse_compound(p)
              if isinstance(i, ReceiverReport) for b in i.reports]
    assert sorted(blocks) == list(SSRCS)
    worker.close_producer(pid)
    assert transport.producers_by_ssrc == {} and transport.rtx_by_ssrc == {}


def test_encodings_are_checked() -> None:
    with pytest.raises(ParamsError):
        Encoding()  # neither rid nor ssrc
    with pytest.raises(ParamsError):
        Encoding("x" * 17)
    with pytest.raises(ParamsError):
        ProducerParams("video", "0", VP8, ssrc=1, encodings=[Encoding("q")])
    with pytest.raises(ParamsError):
        ProducerParams("video", "0", VP8, encodings=[Encoding(r) for r in "abcde"])
    with pytest.raises(ParamsError):
        ProducerParams("video", "0", VP8, encodings=[Encoding("q"), Encoding("q")])
    with pytest.raises(ParamsError):
        ProducerParams("audio", "0", VP8, encodings=[Encoding("q")])


async def _layers_through(media: MediaControl) -> None:
    router = await media.create_router()
    pub = await media.create_transport(router)
    producer = await media.produce(pub.id, ProducerParams(
        "video", "0", VP8, extensions=EXTS, encodings=[Encoding(r) for r in "qhf"]))
    sub = await media.create_transport(router)
    consumer = await media.consume(sub.id, producer, ConsumerParams("0", VP8))
    (c,) = (await media.dump()).consumers
    assert (c.spatial_layer, c.target_spatial_layer) == (-1, 2)
    (p,) = (await media.dump()).producers
    assert [(e.rid, e.ssrc, e.active) for e in p.encodings] == [(r, None, False) for r in "qhf"]
    await media.set_preferred_layers(consumer.id, 1, 0)
    (c,) = (await media.dump()).consumers
    assert c.target_spatial_layer == 1
    with pytest.raises(MediaError):
        await media.set_preferred_layers(consumer.id, -1, 0)
    with pytest.raises(MediaError):
        await media.set_preferred_layers("nope", 0, 0)
    await media.close_router(router)


async def test_set_preferred_layers_in_process_and_over_rpc(tmp_path: Path) -> None:
    media = open_media(MediaConfig(port=0))
    await media.start()
    try:
        await _layers_through(media)
    finally:
        await media.stop()
    local = LocalMediaControl(Worker(MediaConfig(port=0, id_prefix="w7.")))
    await local.start()
    unix = await control_server(local).serve(str(tmp_path / "w.sock"))
    remote = RemoteMediaControl(lambda transport_id, reason: None)
    await remote.rpc.connect(str(tmp_path / "w.sock"))
    try:
        await _layers_through(remote)
    finally:
        await remote.rpc.close()
        unix.close()
        await local.stop()


# ---- the publish answer (RFC 8853) ----------------------------------------------------------


def simulcast_offer(*drop: str) -> str:
    """The Chrome offer of tests/support, its video sent as Chromium sends simulcast: three
    rids and no a=ssrc lines; lines starting with `drop` left out."""
    video = CHROME_OFFER.index("m=video")
    lines = [line for line in CHROME_OFFER[video:].split("\r\n")
             if not line.startswith(("a=ssrc", *drop)) and line]
    lines += ["a=rid:q send", "a=rid:h send", "a=rid:f send", "a=simulcast:send q;h;f"]
    return CHROME_OFFER[:video] + "\r\n".join(lines) + "\r\n"


def test_publish_answer_receives_simulcast() -> None:
    answer, media = sdp.publish_answer(sdp.parse(simulcast_offer()), INFO)
    video = media[1]
    assert [e.rid for e in video.encodings] == ["q", "h", "f"]
    assert video.ssrc is None and video.rtx_ssrc is None  # learnt from the rid extensions
    assert video.extensions[EXT_RID] == 10 and video.extensions[EXT_REPAIRED_RID] == 11
    section = answer[answer.index("m=video"):]
    for line in ("a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f",
                 f"a=extmap:10 {EXT_RID}", f"a=extmap:11 {EXT_REPAIRED_RID}"):
        assert line + "\r\n" in section
    assert "a=simulcast" not in answer[:answer.index("m=video")]  # not on the audio
    assert sdp.parse(answer).media[1].rids == ["q", "h", "f"]  # it parses back
    # and the media plane takes what was published
    ProducerParams(video.kind, video.mid, video.codec, extensions=video.extensions,
                   encodings=video.encodings)


def test_publish_answer_without_the_rid_extension_declines_simulcast() -> None:
    answer, media = sdp.publish_answer(sdp.parse(simulcast_offer(f"a=extmap:10 {EXT_RID}")),
                                       INFO)
    assert media[1].encodings == [] and "a=simulcast" not in answer and "a=rid" not in answer
    assert EXT_RID not in media[1].extensions


class Sink(asyncio.DatagramProtocol):
    """The far end of a pipe: what arrives, to await."""

    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.got.put_nowait(data)

    async def rtp(self, count: int) -> list[bytes]:
        out = []
        while len(out) < count:
            data = await asyncio.wait_for(self.got.get(), 10)
            if not 191 < data[1] < 224:
                out.append(data)
        return out


async def test_a_pipe_carries_one_encoding_renumbered() -> None:
    """To the recorder or another worker: one continuous stream, switching as a consumer."""
    worker, pub, (sub,), producer, (consumer,) = await setup()
    loop = asyncio.get_running_loop()
    udp, sink = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    try:
        pipe = await worker.create_pipe_transport(producer.router_id)
        worker.connect_pipe_transport(pipe.id, "127.0.0.1", udp.get_extra_info("sockname")[1])
        mirror = worker.pipe_consume(pipe.id, producer.id)
        assert mirror.encodings == [] and mirror.ssrc is not None  # the far side: one stream
        layers = Layers(producer)
        layers.frame(0, DELTA)
        layers.frame(1, KEY, CONT)  # the top encoding is not sent: the middle one is carried
        layers.frame(0, DELTA)
        layers.frame(1, DELTA)
        (piped,) = [c for c in worker.consumers.values() if c is not consumer]
        worker.set_preferred_layers(piped.id, 0, 0)
        layers.frame(1, DELTA)
        layers.frame(0, KEY)
        layers.frame(1, DELTA)
        got = await sink.rtp(5)
        assert bodies(got) == [KEY, CONT, DELTA, DELTA, KEY]
        assert_continuous(got)
        assert {header(p)[4] for p in got} == {mirror.ssrc}
        # a NACK from the far side is answered from the encoding now carried
        piped.on_nack([header(got[4])[2], header(got[0])[2]])
        (again,) = await sink.rtp(1)
        assert again == got[4]
    finally:
        udp.close()


async def test_a_packet_is_offered_only_to_the_consumers_of_its_encoding(monkeypatch) -> None:
    """The fan-out of a simulcast packet skips consumers that forward another encoding and do
    not aim at it (two thirds of the calls with a 0/1/2 audience), and the lists follow every
    layer change, including many at once (rebuilt once, at the next packet)."""
    # The spy sees each `forward` call: the Python loop's (the C lane walks the same lists but
    # calls `forward` only for what it leaves to Python).
    monkeypatch.setattr(producer_module, "LANE", False)
    worker, pub, subs, producer, consumers = await setup(consumers=3)
    offered: list[tuple[int, int]] = []  # (consumer index, layer of the packet)
    for i, consumer in enumerate(consumers):
        def spy(*args, i=i, forward=consumer.forward):
            offered.append((i, producer.arriving.layer))
            forward(*args)
        consumer.forward = spy
    for i, consumer in enumerate(consumers):
        worker.set_preferred_layers(consumer.id, i, 0)
    layers = Layers(producer)
    layers.all(KEY)  # before anything was sent each may start below its target
    assert sorted(offered) == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
    assert [c.spatial_layer for c in consumers] == [0, 1, 2]
    offered.clear()
    layers.all(DELTA)
    assert sorted(offered) == [(0, 0), (1, 1), (2, 2)]  # each its own encoding only
    for consumer in consumers:  # all at once, as when the top encoding stops arriving
        worker.set_preferred_layers(consumer.id, 0, 0)
    offered.clear()
    layers.all(DELTA)  # forwarded as before until the target's keyframe, which each awaits
    assert sorted(offered) == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 2)]
    layers.frame(0, KEY)
    offered.clear()
    layers.all(DELTA)
    assert sorted(offered) == [(0, 0), (1, 0), (2, 0)] and not producer.relisten_due
    assert all(bodies(sub.rtp)[-1] == DELTA for sub in subs)


def padding_only(ssrc: int, seq: int, ts: int, pt: int) -> bytes:
    """A packet of padding only (P bit, RFC 3550 5.1), as a browser probes its uplink with."""
    packet = bytearray(build_packet(pt, seq, ts, ssrc, b""))
    packet[0] |= 0x20
    return bytes(packet) + bytes(223) + b"\xe0"


async def test_an_encoding_sending_only_padding_is_not_arriving() -> None:
    """A browser stops encoding its top encoding (CPU, uplink) but goes on probing with
    padding on it, on its RTX SSRC: the encoding is not arriving, and the consumer goes to the
    one below rather than waiting for a keyframe that never comes. A probe is not unwrapped
    as a retransmission (its 'original sequence number' would be padding bytes)."""
    worker, pub, (sub,), producer, (consumer,) = await setup()
    layers = Layers(producer)
    layers.all(KEY)
    assert consumer.spatial_layer == 2
    top = producer.streams[2]
    highest, received = top.highest, top.received
    top.report_block(time.monotonic())
    for i in range(5):  # probes on the RTX SSRC, whose padding bytes read as OSN 0xe0e0...
        packet = bytearray(padding_only(RTX[2], 40 + i, 0, VP8.rtx_payload_type))
        packet[12:14] = b"\xff\xf0"  # even a first "OSN" just ahead of the stream's sequence
        top.receive_rtx(bytes(packet), time.monotonic())
    forget_throttle(producer)
    plis(pub)
    layers.frame(1, DELTA)
    top.report_block(time.monotonic())
    assert (top.highest, top.received, top.retransmitted_in) == (highest, received, 0)
    assert not top.active and consumer.target_spatial_layer == 1 and plis(pub) == [20]
    layers.frame(1, KEY)
    assert consumer.spatial_layer == 1
    # the same with padding on the media SSRC (a browser without RTX): counted, not arriving
    layers.seq[30] = (layers.seq[30] + 1) & 0xFFFF
    top.receive(padding_only(SSRCS[2], layers.seq[30], 0, VP8.payload_type), time.monotonic())
    top.report_block(time.monotonic())
    assert not top.active and top.received == received + 1
    # media again: arriving at once, and the consumer aims back at it
    forget_throttle(producer)
    layers.frame(2, DELTA)
    assert top.active and consumer.target_spatial_layer == 2 and plis(pub) == [30]


async def retry_fired(stream) -> None:
    """Until the stream's repeat timer armed now has run (one is armed with each request
    sent, and again by a retry)."""
    armed = stream._retry_timer
    for _ in range(200):
        if stream._retry_timer is not armed or armed is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the keyframe retry timer never ran")


async def test_an_unanswered_keyframe_request_is_repeated_while_a_switch_waits(
        monkeypatch) -> None:
    """Chromium drops a PLI that comes within 300 ms of its last one: a switch whose keyframe
    does not come asks again (KEYFRAME_RETRY, here shortened), and stops asking once it came
    or nobody waits for it any more."""
    from mediaserver import producer as producer_module
    monkeypatch.setattr(producer_module, "KEYFRAME_RETRY", 0.05)
    monkeypatch.setattr(producer_module, "KEYFRAME_INTERVAL", 0.01)
    worker, pub, (sub,), producer, (consumer,) = await setup()
    layers = Layers(producer)
    worker.set_preferred_layers(consumer.id, 0, 0)
    layers.all(KEY)
    assert consumer.spatial_layer == 0
    await retry_fired(producer.streams[0])
    plis(pub)
    middle = producer.streams[1]
    worker.set_preferred_layers(consumer.id, 1, 0)
    assert plis(pub) == [20]
    layers.all(DELTA)  # the publisher dropped it
    await retry_fired(middle)
    assert plis(pub) == [20] and middle.keyframe_retries == 1
    layers.frame(1, KEY)
    assert consumer.spatial_layer == 1
    await retry_fired(middle)
    assert plis(pub) == [] and middle.keyframe_retries == 1  # answered: asked no more
    # the subscriber's estimate falls before the keyframe comes: nobody waits, nobody asks
    worker.set_preferred_layers(consumer.id, 2, 0)
    assert plis(pub) == [30]
    worker.set_preferred_layers(consumer.id, 1, 0)
    await retry_fired(producer.streams[2])
    assert plis(pub) == [] and producer.streams[2].keyframe_retries == 0
