"""Producer -> Consumer forwarding without sockets: rewriting, continuity, RTX, RTCP.

A real Worker and real transports, connected with identity "SRTP" (WebRtcTransport.set_connected)
and a worker send that captures datagrams by address, so the packet path runs exactly as in the
server and what it sends can be read back.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from pylibsrtp._binding import ffi as srtp_ffi

from mediaserver.consumer import RESEND_FLOOR
from mediaserver.params import Codec, ConsumerParams, ProducerParams
from mediaserver.rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_TRANSPORT_CC,
    RTP_HEADER,
    build_extensions,
    build_packet,
    parse_extensions,
    payload_offset,
)
from mediaserver.rtp.rtcp import Nack, Pli, SenderReport, parse_compound
from mediaserver.sendbatch import PLAIN_PROTECT
from mediaserver.transport import WebRtcTransport
from mediaserver.worker import Worker

VP8 = Codec("VP8", 96, 90000, rtx_payload_type=97, nack=True, pli=True)
OPUS = Codec("opus", 111, 48000, channels=2)
KEY = b"\x10\x00\x00\x9d\x01\x2a" + b"k" * 40  # VP8 descriptor S=1, then a keyframe header
DELTA = b"\x10\x01\x00" + b"d" * 40  # VP8 payload header P bit set: inter frame
CONT = b"\x00" + b"c" * 40  # S=0: continuation of a frame


class PlainSrtp:
    """Identity "encryption", so captured packets can be read back."""

    profile = SimpleNamespace(openssl_name=b"PLAIN")  # what the connection's log line reads

    def __init__(self) -> None:
        self.tx_buffer = srtp_ffi.new("unsigned char[]", 2048)  # where the C builds copies
        self.tx_view = srtp_ffi.buffer(self.tx_buffer)
        # the fan-out's C "protects" with a function that leaves the packet as it is
        self.tx_native = (1, PLAIN_PROTECT, int(srtp_ffi.cast("uintptr_t", self.tx_buffer)))

    def protect(self, packet: bytes) -> bytes:
        return packet

    protect_rtcp = unprotect = unprotect_rtcp = protect

    def protect_parts(self, b0: int, b1: int, seq: int, ts: int, ssrc: int, ext: bytes,
                      prefix: bytes, payload: memoryview) -> int:
        packet = RTP_HEADER.pack(b0, b1, seq, ts, ssrc) + bytes(ext) + prefix + payload
        self.tx_view[0:len(packet)] = packet
        return len(packet)


class Captured:
    """One transport of a Capture and the datagrams the worker sent to its address."""

    def __init__(self, transport: WebRtcTransport, addr: tuple) -> None:
        self.transport = transport
        self.id = transport.id
        self.addr = addr
        self.rtp: list[bytes] = []
        self.rtcp: list[bytes] = []

    def connect(self) -> None:
        """As ICE and DTLS would connect it, with plaintext "SRTP"."""
        self.transport.set_connected(self.addr, PlainSrtp())  # type: ignore[arg-type]

    def capture(self, data: bytes) -> None:
        (self.rtcp if 191 < data[1] < 224 else self.rtp).append(data)


class Capture:
    """A worker whose socket is replaced by lists: each transport made here gets an address of
    its own, and what the worker sends to it lands in that transport's lists."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.by_addr: dict[tuple, Captured] = {}
        worker.sendto = lambda data, addr: self.by_addr[addr].capture(data)

    def transport(self, router_id: str, connected: bool = True) -> Captured:
        info = self.worker.create_transport(router_id)
        addr = ("127.0.0.1", len(self.by_addr) + 1)  # never a real socket's
        captured = self.by_addr[addr] = Captured(self.worker.transports[info.id], addr)
        if connected:
            captured.connect()
        return captured


async def setup(codec: Codec = VP8, extensions: dict[str, int] | None = None,
                consumer_exts: dict[str, int] | None = None, sub_connected: bool = True):
    worker = Worker()
    worker.loop = asyncio.get_running_loop()
    router_id = worker.create_router()
    capture = Capture(worker)
    pub = capture.transport(router_id)
    sub = capture.transport(router_id, connected=sub_connected)  # or DTLS still to come
    kind = codec.kind
    pid = worker.produce(pub.id, ProducerParams(kind, "0", codec, ssrc=1111, rtx_ssrc=2222,
                                                extensions=extensions or {}))
    sub_codec = Codec(codec.name, 100 if kind == "video" else 109, codec.clock_rate,
                      rtx_payload_type=101 if kind == "video" else None, nack=True, pli=True)
    info = worker.consume(sub.id, pid, ConsumerParams("5", sub_codec, consumer_exts or {},
                                                      ssrc=3333, rtx_ssrc=4444))
    return worker, pub, sub, worker.producers[pid], worker.consumers[info.id]


def header(packet: bytes) -> tuple[int, int, int, int, int]:
    return RTP_HEADER.unpack_from(packet, 0)


def feed(producer, seq: int, ts: int, payload: bytes, marker: bool = False,
         ext: bytes = b"") -> None:
    producer.receive(build_packet(96, seq, ts, 1111, payload, marker, ext),
                     time.monotonic())


async def test_consumer_starts_on_keyframe_and_rewrites_header() -> None:
    worker, pub, sub, producer, consumer = await setup()
    # a keyframe was requested from the publisher when the consumer was created
    assert any(isinstance(i, Pli) and i.media_ssrc == 1111
               for p in pub.rtcp for i in parse_compound(p))
    feed(producer, 100, 9000, DELTA)  # before any keyframe: not forwarded
    assert sub.rtp == []
    feed(producer, 101, 12000, KEY)
    feed(producer, 102, 12000, CONT, marker=True)
    feed(producer, 103, 15000, DELTA, marker=True)
    assert len(sub.rtp) == 3
    heads = [header(p) for p in sub.rtp]
    assert [h[4] for h in heads] == [3333] * 3  # our SSRC
    assert [h[1] & 0x7F for h in heads] == [100] * 3  # subscriber's payload type
    assert [h[1] >> 7 for h in heads] == [0, 1, 1]  # marker kept
    seqs = [h[2] for h in heads]
    assert seqs[1] == (seqs[0] + 1) & 0xFFFF and seqs[2] == (seqs[0] + 2) & 0xFFFF
    ts = [h[3] for h in heads]
    assert ts[0] == ts[1] and (ts[2] - ts[0]) & 0xFFFFFFFF == 3000
    assert [p[payload_offset(p):] for p in sub.rtp] == [KEY, CONT, DELTA]


async def test_sequence_wraps_and_reordering_maps_consistently() -> None:
    worker, pub, sub, producer, consumer = await setup()
    feed(producer, 65534, 0, KEY)
    feed(producer, 0, 3000, DELTA)  # 65535 is late
    feed(producer, 65535, 0, CONT)
    feed(producer, 1, 6000, DELTA)
    seqs = [header(p)[2] for p in sub.rtp]
    base = seqs[0]
    assert seqs == [base, (base + 2) & 0xFFFF, (base + 1) & 0xFFFF, (base + 3) & 0xFFFF]


async def test_pause_resume_keeps_output_continuous() -> None:
    worker, pub, sub, producer, consumer = await setup()
    feed(producer, 10, 1000, KEY)
    feed(producer, 11, 4000, DELTA)
    worker.pause_consumer(consumer.id, True)
    feed(producer, 12, 7000, DELTA)
    pub.rtcp.clear()
    producer._last_keyframe_request = -1e9
    worker.pause_consumer(consumer.id, False)
    # resuming asks the publisher for a keyframe and waits for it
    assert any(isinstance(i, Pli) for p in pub.rtcp for i in parse_compound(p))
    feed(producer, 500, 90000, DELTA)
    feed(producer, 501, 93000, KEY)
    heads = [header(p) for p in sub.rtp]
    assert len(heads) == 3
    # no gap in sequence numbers the subscriber would NACK, and time moves forward
    assert heads[2][2] == (heads[1][2] + 1) & 0xFFFF
    assert 0 < (heads[2][3] - heads[1][3]) & 0xFFFFFFFF < 90000 * 5


async def test_nack_answered_with_rtx_from_producer_cache() -> None:
    worker, pub, sub, producer, consumer = await setup()
    for i, payload in enumerate((KEY, CONT, DELTA, DELTA)):
        feed(producer, 200 + i, 3000 * i, payload)
    out_seqs = [header(p)[2] for p in sub.rtp]
    sub.rtp.clear()
    consumer.on_nack([out_seqs[1], out_seqs[3], (out_seqs[3] + 50) & 0xFFFF])
    assert len(sub.rtp) == 2  # the unknown one is not invented
    for packet, wanted in zip(sub.rtp, (1, 3), strict=True):
        b0, b1, seq, ts, ssrc = header(packet)
        assert ssrc == 4444 and b1 & 0x7F == 101  # RTX stream
        body = packet[payload_offset(packet):]
        assert int.from_bytes(body[:2], "big") == out_seqs[wanted]  # original seq (RFC 4588)
        assert body[2:] == (CONT, CONT, DELTA, DELTA)[wanted]
    assert consumer.retransmitted == 2


async def test_a_packet_is_resent_at_most_once_per_round_trip() -> None:
    """A full link NACKs again before the resend can arrive: answering each NACK multiplied
    the load on exactly the link that could not carry it."""
    worker, pub, sub, producer, consumer = await setup()
    for i, payload in enumerate((KEY, CONT, DELTA, DELTA)):
        feed(producer, 200 + i, 3000 * i, payload)
    out_seqs = [header(p)[2] for p in sub.rtp]
    sub.rtp.clear()
    consumer.rtt = None  # unknown: RESEND_FLOOR applies
    for _ in range(5):  # five NACKs for the same two packets in a burst
        consumer.on_nack([out_seqs[1], out_seqs[2]])
    assert len(sub.rtp) == 2 and consumer.resends_skipped == 8
    await asyncio.sleep(RESEND_FLOOR + 0.02)  # a round trip later it may be lost again
    consumer.on_nack([out_seqs[1]])
    assert len(sub.rtp) == 3 and consumer.retransmitted == 3


async def test_upstream_gaps_become_nacks_and_rtx_fills_them() -> None:
    worker, pub, sub, producer, consumer = await setup()
    feed(producer, 1, 0, KEY)
    feed(producer, 4, 3000, DELTA)  # 2 and 3 lost
    assert set(producer.missing) == {2, 3}
    pub.rtcp.clear()
    worker._nack_tick()
    nacks = [i for p in pub.rtcp for i in parse_compound(p) if isinstance(i, Nack)]
    assert nacks and set(nacks[0].seqs) == {2, 3} and nacks[0].media_ssrc == 1111
    # the publisher resends 2 on its RTX stream
    rtx = build_packet(97, 77, 0, 2222, (2).to_bytes(2, "big") + CONT)
    producer.receive_rtx(rtx, time.monotonic())
    assert set(producer.missing) == {3}
    forwarded = sub.rtp[-1]
    assert header(forwarded)[4] == 3333 and forwarded[payload_offset(forwarded):] == CONT
    assert producer.retransmitted_in == 1


async def test_keyframe_requests_are_merged() -> None:
    worker, pub, sub, producer, consumer = await setup()
    pub.rtcp.clear()
    for _ in range(10):
        consumer.request_keyframe()
    plis = [i for p in pub.rtcp for i in parse_compound(p) if isinstance(i, Pli)]
    assert len(plis) <= 1
    assert producer._keyframe_timer is not None  # one more is scheduled, not ten


async def test_extensions_mapped_to_subscriber_ids() -> None:
    pub_exts = {EXT_ABS_SEND_TIME: 3, EXT_AUDIO_LEVEL: 1, EXT_MID: 9}
    sub_exts = {EXT_MID: 4, EXT_ABS_SEND_TIME: 2, EXT_TRANSPORT_CC: 3, EXT_AUDIO_LEVEL: 1}
    worker, pub, sub, producer, consumer = await setup(OPUS, pub_exts, sub_exts)
    ext = build_extensions([(3, b"\x01\x02\x03"), (1, b"\x85"), (9, b"0")])
    for seq in (7, 8):
        producer.receive(build_packet(111, seq, seq * 960, 1111, b"opus", extensions=ext),
                         time.monotonic())
    first, second = (parse_extensions(p) for p in sub.rtp)
    assert first[4] == b"5"  # the subscriber's mid
    assert first[2] == b"\x01\x02\x03"  # abs-send-time copied
    assert first[1] == b"\x85"  # audio level copied
    assert int.from_bytes(second[3], "big") == int.from_bytes(first[3], "big") + 1  # tcc seq
    assert 9 not in first  # the publisher's ids do not leak


async def test_sender_report_follows_publisher_clock() -> None:
    worker, pub, sub, producer, consumer = await setup(OPUS)
    feed_ts = 480_000
    producer.receive(build_packet(111, 1, feed_ts, 1111, b"x"), time.monotonic())
    now = time.monotonic()
    publisher_ntp = 0xE000_0000_0000_0000
    producer.on_sender_report(SenderReport(1111, publisher_ntp, feed_ts, 1, 1), now)
    later = now + 0.5
    sr = next(i for i in parse_compound(consumer.sender_report(later, 0))
              if isinstance(i, SenderReport))
    assert sr.ssrc == 3333
    # half a second after the publisher's SR, on both clocks, shifted by our timestamp offset
    assert abs(sr.ntp_timestamp - (publisher_ntp + (1 << 31))) < (1 << 20)
    expected_rtp = (feed_ts + 24000 + consumer.ts_offset) & 0xFFFFFFFF
    assert abs(((sr.rtp_timestamp - expected_rtp + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)) <= 2


async def test_receiver_report_block_counts_loss() -> None:
    worker, pub, sub, producer, consumer = await setup()
    for seq in (1, 2, 3, 5, 6, 10):
        feed(producer, seq, seq * 3000, DELTA)
    block = producer.report_block(time.monotonic())
    assert block.ssrc == 1111
    assert block.highest_seq == 10
    assert block.packets_lost == 4  # 4, 7, 8, 9
    assert block.fraction_lost == (4 * 256) // 10


def plis_to_publisher(pub: Captured) -> int:
    return sum(isinstance(i, Pli) and i.media_ssrc == 1111
               for p in pub.rtcp for i in parse_compound(p))


async def test_keyframe_is_requested_when_the_subscriber_can_take_it() -> None:
    """A consumer made before its transport's DTLS is done asks for the keyframe once DTLS
    completes, not before: a keyframe sent earlier would pass it by, and the request throttle
    would then hold the next one back (half a second of a browser's join time)."""
    worker, pub, sub, producer, consumer = await setup(sub_connected=False)
    assert plis_to_publisher(pub) == 0
    sub.connect()
    assert plis_to_publisher(pub) == 1 and producer.keyframe_requests == 1


async def test_forwarding_goes_on_past_half_the_sequence_space() -> None:
    """A consumer keeps forwarding a long stream: past 32768 packets after its start and
    across the wrap, while a packet from before a restart is still dropped."""
    worker, pub, sub, producer, consumer = await setup()
    feed(producer, 100, 0, KEY)
    for i in range(1, 70_000):
        feed(producer, (100 + i) & 0xFFFF, i * 3000, DELTA)
    assert len(sub.rtp) == 70_000
    seqs = [header(p)[2] for p in sub.rtp[-40_000:]]
    assert all(b == (a + 1) & 0xFFFF for a, b in zip(seqs, seqs[1:], strict=False))
    worker.pause_consumer(consumer.id, True)
    worker.pause_consumer(consumer.id, False)
    feed(producer, (100 + 70_000) & 0xFFFF, 0, KEY)  # restarts here
    feed(producer, (100 + 69_990) & 0xFFFF, 0, DELTA)  # from before the restart: dropped
    feed(producer, (100 + 70_001) & 0xFFFF, 0, DELTA)
    assert len(sub.rtp) == 70_002
