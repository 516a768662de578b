"""VP8 temporal layers: a simulcast consumer forwarding only the frames of the temporal layers
it was asked for (mediaserver/rtp/vp8.py, simulcast.py).

A real Worker and transports with plaintext "SRTP" (tests/test_forwarding.py's Capture), as in
tests/test_simulcast.py; the publisher's packets carry RFC 7741 descriptors with PictureID,
TL0PICIDX, TID and Y, and what the subscriber receives is read back and checked: whole frames,
one continuous sequence, PictureIDs and TL0PICIDX without gaps, NACKs mapped through drops.
"""

from __future__ import annotations

import time

from mediaserver.rtp.packet import build_packet, payload_offset
from mediaserver.rtp.vp8 import Descriptor
from mediaserver.stats import worker_dump
from tests.test_allocation import Room
from tests.test_forwarding import Captured, header
from tests.test_simulcast import SSRCS, assert_continuous, forget_throttle, setup

PATTERN = (0, 2, 1, 2)  # libwebrtc's three temporal layers


class Encoding:
    """One simulcast encoding sending VP8 frames of two packets (the second continues the
    frame: S=0), each with its PictureID (15 bits), TL0PICIDX and TID."""

    def __init__(self, producer, layer: int, pid: int, tl0: int, seq: int) -> None:
        self.stream = next(s for s in producer.streams if s.ssrc == SSRCS[layer])
        self.ssrc, self.pt = SSRCS[layer], producer.codec.payload_type
        self.pid, self.tl0, self.seq, self.ts = pid, tl0, seq, 1000 * (layer + 1)

    def frame(self, tid: int, sync: bool = False, key: bool = False,
              hold: tuple[int, ...] = ()) -> list[bytes]:
        """Send a frame; the packets at the indices in `hold` are returned instead (lost, or
        to come late)."""
        self.pid = (self.pid + 1) & 0x7FFF
        if tid == 0:
            self.tl0 = (self.tl0 + 1) & 0xFF
        self.ts = (self.ts + 3000) & 0xFFFFFFFF
        held = []
        for i in range(2):
            desc = bytes((0x90 if i == 0 else 0x80, 0xE0, 0x80 | self.pid >> 8,
                          self.pid & 0xFF, self.tl0, tid << 6 | sync << 5))
            body = (b"\x00\x00\x00\x9d\x01\x2a" if key else b"\x01\x00\x00") if i == 0 else b""
            body += f"pid {self.pid} part {i}".encode()
            self.seq = (self.seq + 1) & 0xFFFF
            packet = build_packet(self.pt, self.seq, self.ts, self.ssrc, desc + body, i == 1)
            if i in hold:
                held.append(packet)
            else:
                self.deliver(packet)
        return held

    def raw(self, payload: bytes) -> None:
        """A packet of its own timestamp carrying `payload` as it is."""
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 3000) & 0xFFFFFFFF
        self.deliver(build_packet(self.pt, self.seq, self.ts, self.ssrc, payload, True))

    def deliver(self, packet: bytes) -> None:
        self.stream.receive(packet, time.monotonic())


async def on_top(pid: int, tl0: int, seq: int, temporal: int | None = 0):
    """A consumer of the top encoding (asked for temporal layers up to `temporal`), and that
    encoding's sender."""
    worker, _, (sub,), producer, (consumer,) = await setup()
    if temporal is not None:
        worker.set_preferred_layers(consumer.id, 2, temporal)
    return worker, sub, consumer, Encoding(producer, 2, pid=pid, tl0=tl0, seq=seq)


def received(sub: Captured) -> list[tuple[int, int, int, int, bytes]]:
    """(seq, PictureID, TL0PICIDX, TID, what follows the descriptor) of each media packet."""
    out = []
    d = Descriptor()
    for packet in sub.rtp:
        if header(packet)[4] >= 6000:  # RTX
            continue
        body = memoryview(packet)[payload_offset(packet):]
        d.read(body)
        out.append((header(packet)[2], d.picture_id, d.tl0, d.tid, bytes(d.rest)))
    return out


def assert_one_stream(got: list[tuple[int, int, int, int, bytes]]) -> None:
    """Consecutive sequence numbers and PictureIDs (one per frame: two packets each), and
    TL0PICIDX advancing by one at each base-layer frame."""
    for (seq0, pid0, tl00, _, _), (seq1, pid1, tl01, tid1, _) in zip(got, got[1:],
                                                                       strict=False):
        assert seq1 == (seq0 + 1) & 0xFFFF
        assert pid1 in (pid0, (pid0 + 1) & 0x7FFF)
        if pid1 != pid0:
            assert tl01 == ((tl00 + 1) & 0xFF if tid1 == 0 else tl00)


def parts(got: list[tuple[int, int, int, int, bytes]]) -> list[str]:
    """What each packet carried, as the publisher wrote it: 'pid N part I'."""
    return [rest[rest.index(b"pid "):].decode() for *_, rest in got]


async def test_temporal_0_forwards_whole_base_layer_frames_as_one_stream() -> None:
    # PictureID, TL0PICIDX and sequence numbers wrap
    worker, sub, consumer, top = await on_top(pid=32760, tl0=254, seq=65530)
    top.frame(0, key=True)
    for i in range(12):
        top.frame(PATTERN[i % 4])
    got = received(sub)
    # the keyframe, then the base layer only: every 4th frame, both of its packets
    assert parts(got) == [f"pid {pid} part {p}" for pid in (32761, 32762, 32766, 2)
                          for p in range(2)]
    assert [tid for *_, tid, _ in got] == [0] * 8
    assert_continuous(sub.rtp)
    assert_one_stream(got)
    assert consumer.temporal is not None and consumer.temporal.frames_dropped == 9
    (dump,) = worker_dump(worker).consumers
    assert (dump.temporal_layer, dump.target_temporal_layer) == (0, 0)


async def test_moves_up_only_at_a_sync_frame_one_layer_at_a_time_and_down_at_once() -> None:
    worker, sub, consumer, top = await on_top(pid=100, tl0=7, seq=500)
    top.frame(0, key=True)
    worker.set_preferred_layers(consumer.id, 2, 2)
    for tid, sync in [(2, False), (1, False), (2, True), (0, False),  # no way up yet
                      (2, False), (1, True),  # TL1 sync: up to 1
                      (2, False), (1, False), (0, False), (2, True),  # TL2 sync: up to 2
                      (1, False), (2, False)]:
        top.frame(tid, sync)
    got = received(sub)
    tids = [tid for _, _, _, tid, _ in got[::2]]
    assert tids == [0, 0, 1, 1, 0, 2, 1, 2]
    assert_continuous(sub.rtp)
    assert_one_stream(got)
    assert consumer.temporal is not None and consumer.temporal.current == 2
    (dump,) = worker_dump(worker).consumers
    assert (dump.temporal_layer, dump.target_temporal_layer) == (2, 2)

    sub.rtp.clear()
    worker.set_preferred_layers(consumer.id, 2, 0)  # down at the next frame, whatever it is
    for tid in (2, 1, 2, 0, 2):
        top.frame(tid)
    assert [tid for _, _, _, tid, _ in received(sub)] == [0, 0]
    assert_one_stream(got[-2:] + received(sub))
    assert header(sub.rtp[0])[2] == (got[-1][0] + 1) & 0xFFFF


async def test_a_keyframe_takes_the_target_at_once() -> None:
    worker, sub, consumer, top = await on_top(pid=5, tl0=0, seq=1)
    top.frame(0, key=True)
    top.frame(1)
    worker.set_preferred_layers(consumer.id, 2, 1)
    top.frame(0, key=True)
    top.frame(2)  # above the target
    top.frame(1)  # no Y, but after a keyframe
    assert [tid for _, _, _, tid, _ in received(sub)[::2]] == [0, 0, 1]
    assert_one_stream(received(sub))


async def test_pictureid_and_tl0picidx_continue_across_a_spatial_switch() -> None:
    worker, pub, (sub,), producer, (consumer,) = await setup()
    top = Encoding(producer, 2, pid=20000, tl0=90, seq=7000)
    mid = Encoding(producer, 1, pid=31000, tl0=3, seq=100)
    worker.set_preferred_layers(consumer.id, 2, 1)
    top.frame(0, key=True)
    for i in range(1, 8):
        top.frame(PATTERN[i % 4])
        mid.frame(PATTERN[i % 4])
    forget_throttle(producer)
    worker.set_preferred_layers(consumer.id, 1, 1)
    mid.frame(0, key=True)
    top.frame(0)
    for i in range(1, 8):
        mid.frame(PATTERN[i % 4])
        top.frame(PATTERN[i % 4])
    got = received(sub)
    assert consumer.spatial_layer == 1
    # the top's keyframe and its TL0/TL1 frames (4 of 8), then the middle one's likewise
    assert len(got) == 2 * (4 + 4)
    assert_continuous(sub.rtp)
    assert_one_stream(got)
    assert got[8][4].endswith(b"pid 31008 part 0")  # the middle encoding's keyframe
    assert got[8][1] == got[7][1] + 1 and got[8][2] == (got[7][2] + 1) & 0xFF


async def test_nacks_map_through_drops_and_late_packets_take_their_place() -> None:
    worker, sub, consumer, top = await on_top(pid=300, tl0=1, seq=40000)
    top.frame(0, key=True)
    top.frame(2)
    top.frame(1)
    late = top.frame(0, hold=(1,))  # its second packet comes after two dropped frames
    top.frame(2)
    lost = top.frame(1, hold=(0,))  # a dropped frame's first packet never comes
    top.frame(0)
    got = received(sub)
    seqs = [seq for seq, *_ in got]
    # keyframe (2), base frame part 0, a gap for part 1 (late) and one for the dropped
    # frame's lost packet (never seen, so not known to be dropped), the next base frame (2)
    assert parts(got) == ["pid 301 part 0", "pid 301 part 1", "pid 304 part 0",
                          "pid 307 part 0", "pid 307 part 1"]
    assert seqs[3] == (seqs[2] + 3) & 0xFFFF
    assert seqs[4] == (seqs[3] + 1) & 0xFFFF
    assert [pid for _, pid, *_ in got] == [301, 301, 302, 303, 303]

    sub.rtp.clear()
    top.deliver(late[0])  # late, numbered as it would have been
    top.deliver(lost[0])  # late too, of a dropped frame: not forwarded
    (seq, pid, tl0, tid, rest) = received(sub)[0]
    assert len(sub.rtp) == 1
    assert (seq, pid, tl0, tid) == ((seqs[2] + 1) & 0xFFFF, 302, got[2][2], 0)
    assert rest.endswith(b"pid 304 part 1")

    sub.rtp.clear()
    consumer.on_nack([seqs[1], seqs[3]])  # kept packets: resent as they went out, over RTX
    resent = [(int.from_bytes(p[payload_offset(p):][:2], "big"), p[payload_offset(p) + 2:])
              for p in sub.rtp]
    assert [osn for osn, _ in resent] == [seqs[1], seqs[3]]
    d = Descriptor()
    for (_osn, body), (_, pid, tl0, tid, rest) in zip(resent, (got[1], got[3]), strict=True):
        d.read(body)
        assert (d.picture_id, d.tl0, d.tid, bytes(d.rest)) == (pid, tl0, tid, rest)

    sub.rtp.clear()
    # the lost packet's place: whatever it maps to belongs to a dropped frame, not resent
    consumer.on_nack([(seqs[2] + 2) & 0xFFFF])
    assert sub.rtp == []


async def test_packets_without_temporal_ids_pass_as_they_came() -> None:
    worker, pub, (sub,), producer, (consumer,) = await setup()
    worker.set_preferred_layers(consumer.id, 2, 0)
    stream = next(s for s in producer.streams if s.ssrc == SSRCS[2])
    payloads = [b"\x90\x80\x81\x00" + b"\x00\x00\x00\x9d\x01\x2a",  # PictureID, no T
                b"\x90\x80\x81\x01\x01\x00\x00", b"\x10\x01abc"]
    for i, payload in enumerate(payloads):
        stream.receive(build_packet(96, 10 + i, 3000 * i, SSRCS[2], payload, True),
                       time.monotonic())
    assert [p[payload_offset(p):] for p in sub.rtp] == payloads
    (dump,) = worker_dump(worker).consumers
    assert dump.temporal_layer == -1


async def test_truncated_descriptors_are_dropped_or_passed_never_raise() -> None:
    worker, sub, consumer, top = await on_top(pid=1, tl0=1, seq=1, temporal=None)
    top.frame(0, key=True)
    for junk in [b"", b"\x80", b"\x80\xe0", b"\x90\xe0\x80", b"\x90\xe0\x80\x01",
                 b"\x90\xe0\x80\x01\x05", b"\xff" * 3]:
        top.raw(junk)
    top.frame(0)  # and the stream goes on
    assert received(sub)[-1][4].endswith(b"pid 3 part 1")


async def test_a_budget_short_of_the_lowest_encoding_gets_its_base_temporal_layer() -> None:
    """Instead of holding a video whose lowest encoding does not fit, the allocator gives it
    that encoding's base temporal layer while 40% of it fits (allocation.TEMPORAL_SHARES)."""
    room = Room()
    room.second_of_media()  # audio at 40 kbit/s, the lowest encoding at 150 kbit/s
    room.allocate(300_000)
    video = room.video_consumers[0]
    assert video.spatial_layer == 0 and not video.paused
    low = Encoding(room.video, 0, pid=10, tl0=0, seq=room.seq[SSRCS[0]])
    low.frame(0, key=True)
    for i in range(8):  # the consumer learns that the encoding has temporal layers
        low.frame(PATTERN[i % 4])
    sub = room.subs[0]
    sub.rtp.clear()

    room.allocate(40_000 + 70_000)  # under half of the lowest encoding: held, before
    assert not video.paused and video.target_spatial_layer == 0
    assert video.temporal is not None and video.temporal.target == 0
    assert room.dump(video).target_temporal_layer == 0
    for i in range(8):
        low.frame(PATTERN[i % 4])
    assert [tid for *_, tid, _ in received(sub)] == [0] * 4  # two frames of eight
    assert_one_stream(received(sub))

    room.allocate(40_000 + 40_000)  # not even that: held
    assert room.dump(video).paused_by == ["budget"]
    room.allocate(600_000)
    room.allocate(600_000)  # (a raise waits for a second round)
    assert not video.paused and video.temporal.target == 3

    room.worker.set_preferred_layers(video.id, 2, 1)  # the control call's ceiling holds
    room.allocate(600_000)
    assert video.temporal.target == 1
