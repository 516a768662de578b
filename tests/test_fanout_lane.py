"""The fan-out's C lane (native/fanout.c `ms_fan`) sends what the Python reference sends.

The same scripted publisher, subscribers and control calls run twice on real Workers, once
with the lane (producer.LANE) and once with every copy through its consumer's `forward`, and
every datagram each subscriber (and the publisher, and a pipe) receives must be the same, byte
for byte, as must each consumer's numbering afterwards: simulcast switches, temporal targets
moved up and down, publisher loss, late, reordered and repeated packets, pauses and resumes,
producer restarts, NACKs (through temporal drops), keyframe waits, padding probes, RTX both
ways, encodings that stop, consumers that join and close. Both ways of sending are covered:
the sendmmsg batch on a real socket to real loopback sockets, and the copies a batch cannot
send (no socket: the link sends them) with a capture. A hypothesis test does the same over
random scripts. Clocks are the script's (consumer and producer modules) and `random` is seeded
per run, so that two runs can only differ by the lane.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import defaultdict
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaserver import consumer as consumer_module
from mediaserver import producer as producer_module
from mediaserver.consumer import Renumbering
from mediaserver.params import Codec, ConsumerParams, Encoding, ProducerParams
from mediaserver.rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_RID,
    EXT_TRANSPORT_CC,
    build_extensions,
    build_packet,
)
from mediaserver.sendbatch import ffi
from mediaserver.worker import Worker
from tests.support.fuzz import fuzz_examples
from tests.test_forwarding import OPUS, VP8, PlainSrtp

SSRCS, RTX = (10, 20, 30), (11, 21, 31)  # the simulcast encodings, lowest first
AUDIO_SSRC, PLAIN_SSRC, PLAIN_RTX = 40, 50, 51  # audio; a VP8 track of one encoding
PUB_EXTS = {EXT_MID: 1, EXT_RID: 2, EXT_ABS_SEND_TIME: 3, EXT_AUDIO_LEVEL: 4}
# the subscribers' extension ids and RTX, all different
SUB_EXTS = ({EXT_TRANSPORT_CC: 5, EXT_ABS_SEND_TIME: 3, EXT_MID: 1}, {},
            {EXT_TRANSPORT_CC: 7, EXT_AUDIO_LEVEL: 2}, {EXT_ABS_SEND_TIME: 9, EXT_MID: 14})
KINDS = ("video", "audio", "plain")


class World:
    """A worker, a publisher of a simulcast VP8 track (three encodings with temporal layers),
    an audio track and a VP8 track of one encoding, and subscribers consuming all three;
    optionally a pipe carrying the simulcast and the audio tracks. `real`: the worker sends
    from a UDP socket of its own (the fan-out's sendmmsg) to a socket per transport; else it
    has none and what it sends is captured by address."""

    def __init__(self, real: bool, subscribers: int = 3, pipe: bool = False) -> None:
        self.real = real
        self.pipe = pipe
        self.now = 1000.0
        self.got: dict[object, list[bytes]] = defaultdict(list)
        self.sockets: list[socket.socket] = []  # where datagrams arrive (real, and the pipe)
        self.addrs = 0
        self.consumers: list[dict[str, Renumbering]] = []
        self.held: list[tuple[object, bytes]] = []  # packets to come late
        self.sent: dict[int, list[bytes]] = defaultdict(list)  # per SSRC, for RTX
        self.seq = {10: 100, 20: 30000, 30: 65500, 40: 7, 50: 65000}  # some wrap soon
        self.ts = {10: 1000, 20: 2_000_000_000, 30: 4_294_960_000, 40: 5, 50: 77}
        self.pid = {10: 32700, 20: 5, 30: 100, 50: 0}
        self.tl0 = {10: 250, 20: 0, 30: 9, 50: 0}

    async def start(self) -> None:
        worker = self.worker = Worker()
        worker.loop = asyncio.get_running_loop()
        if self.real:
            out = self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            out.bind(("127.0.0.1", 0))
            worker.sendto = out.sendto
            worker.link.batch.fd = out.fileno()
        else:
            worker.sendto = lambda data, addr: self.got[addr].append(bytes(data))
        self.router = worker.create_router()
        pub = self.transport()
        encodings = [Encoding(rid, ssrc, rtx) for rid, ssrc, rtx in zip("qhf", SSRCS, RTX,
                                                                         strict=True)]
        ids = (worker.produce(pub, ProducerParams("video", "0", VP8, extensions=PUB_EXTS,
                                                  encodings=encodings)),
               worker.produce(pub, ProducerParams("audio", "1", OPUS, ssrc=AUDIO_SSRC,
                                                  extensions=PUB_EXTS)),
               worker.produce(pub, ProducerParams("video", "2", VP8, ssrc=PLAIN_SSRC,
                                                  rtx_ssrc=PLAIN_RTX, extensions=PUB_EXTS)))
        self.producers = dict(zip(KINDS, (worker.producers[i] for i in ids), strict=True))
        self.streams = {s.ssrc: s for p in self.producers.values() for s in p.streams}
        for _ in range(self.subscribers_at_start):
            self.join()
        if self.pipe:
            sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sink.bind(("127.0.0.1", 0))
            sink.setblocking(False)
            self.sockets.append(sink)
            self.pipe_addr = sink.getsockname()
            pipe = await worker.create_pipe_transport(self.router)
            worker.connect_pipe_transport(pipe.id, *self.pipe_addr)
            for kind in ("video", "audio"):
                worker.pipe_consume(pipe.id, self.producers[kind].id)

    subscribers_at_start = 3

    def transport(self) -> str:
        transport_id = self.worker.create_transport(self.router).id
        if self.real:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sockets.append(s)
            addr = s.getsockname()
        else:
            self.addrs += 1
            addr = ("127.0.0.1", self.addrs)
        self.worker.transports[transport_id].set_connected(addr, PlainSrtp())  # type: ignore
        return transport_id

    def join(self) -> None:
        """A subscriber consuming the three tracks (video waits for a keyframe)."""
        i = len(self.consumers)
        transport = self.transport()
        exts = SUB_EXTS[i % len(SUB_EXTS)]
        rtx = i % 3 != 1
        video = Codec("VP8", 100, 90000, rtx_payload_type=101 if rtx else None, nack=True,
                      pli=True)
        audio = Codec("opus", 109, 48000, channels=2)
        made = {}
        for k, (kind, codec) in enumerate(zip(KINDS, (video, audio, video), strict=True)):
            info = self.worker.consume(transport, self.producers[kind].id, ConsumerParams(
                str(k), codec, exts, ssrc=5000 + 10 * i + k,
                rtx_ssrc=6000 + 10 * i + k if rtx and kind != "audio" else None))
            made[kind] = self.worker.consumers[info.id]
        self.consumers.append(made)

    # ---- what the publisher sends ----------------------------------------------------

    def deliver(self, stream, packet: bytes, rtx: bool = False) -> None:
        self.now += 0.004
        if rtx:
            stream.receive_rtx(packet, self.now)
        else:
            stream.receive(packet, self.now)

    def packet(self, ssrc: int, payload: bytes, marker: bool, new_ts: bool) -> bytes:
        self.seq[ssrc] = (self.seq[ssrc] + 1) & 0xFFFF
        if new_ts:
            step = 960 if ssrc == AUDIO_SSRC else 3000
            self.ts[ssrc] = (self.ts[ssrc] + step) & 0xFFFFFFFF
        n = self.seq[ssrc]
        elements = [(3, bytes((n & 0xFF, 7, n >> 8)))]
        if ssrc == AUDIO_SSRC:
            elements.append((4, bytes((0x80 | n % 100,))))
        pt = 111 if ssrc == AUDIO_SSRC else 96
        packet = build_packet(pt, n, self.ts[ssrc], ssrc, payload, marker,
                              build_extensions(elements) if n % 5 else b"")
        self.sent[ssrc].append(packet)
        return packet

    def frame(self, ssrc: int, tid: int, sync: bool, key: bool, packets: int, hold: int,
              narrow: bool = False) -> None:
        """A VP8 frame of `packets` packets with PictureID, TL0PICIDX and TID; the packet at
        index `hold` comes later (late, or lost for good if never delivered)."""
        self.pid[ssrc] = (self.pid[ssrc] + 1) & (0x7F if narrow else 0x7FFF)
        if tid == 0:
            self.tl0[ssrc] = (self.tl0[ssrc] + 1) & 0xFF
        pid = self.pid[ssrc]
        for i in range(packets):
            ids = bytes((pid,)) if narrow else bytes((0x80 | pid >> 8, pid & 0xFF))
            desc = bytes((0x90 if i == 0 else 0x80, 0xE0)) + ids + \
                bytes((self.tl0[ssrc], tid << 6 | sync << 5 | 1))
            body = (b"\x00\x00\x00\x9d\x01\x2a" if key else b"\x01\x00\x00") if i == 0 else b""
            body += f"{ssrc} {pid} {i}".encode() + bytes(i * 37)
            packet = self.packet(ssrc, desc + body, i == packets - 1, i == 0)
            if i == hold:
                self.held.append((self.streams[ssrc], packet))
            else:
                self.deliver(self.streams[ssrc], packet)

    def raw(self, ssrc: int, key: bool) -> None:
        """A VP8 packet without temporal layers (no X: a descriptor of one octet)."""
        body = b"\x10\x00\x00\x9d\x01\x2a" if key else b"\x10\x01\x00"
        self.deliver(self.streams[ssrc], self.packet(ssrc, body + b"raw", True, True))

    def rtx(self, ssrc: int, back: int) -> None:
        """The publisher resends a packet it sent `back` packets ago, as RTX."""
        sent = self.sent[ssrc]
        if not sent:
            return
        original = sent[-1 - back % len(sent)]
        rtx_ssrc = PLAIN_RTX if ssrc == PLAIN_SSRC else ssrc + 1
        self.seq[rtx_ssrc] = self.seq.get(rtx_ssrc, 900) + 1
        payload = original[2:4] + original[12:]  # its seq, then (no extensions here) payload
        if original[0] & 0x10:
            return  # keep it simple: only packets without extensions are repaired
        self.deliver(self.streams[ssrc], build_packet(97, self.seq[rtx_ssrc], int.from_bytes(
            original[4:8], "big"), rtx_ssrc, payload, bool(original[1] & 0x80)), rtx=True)

    # ---- one step of a script ----------------------------------------------------------

    def step(self, op: tuple) -> None:
        name, *args = op
        subs = [c for c in self.consumers if not c["video"].closed]
        sub = subs[args[0] % len(subs)] if subs and name in SUB_OPS else None
        worker = self.worker
        if name == "frame":
            layer, tid, sync, key, packets, hold, narrow = args
            self.frame(SSRCS[layer], tid, sync, key, packets, hold, narrow)
        elif name == "plain":
            key, packets, hold = args
            self.raw(PLAIN_SSRC, key) if packets == 1 else \
                self.frame(PLAIN_SSRC, 0, False, key, packets, hold)
        elif name == "raw":
            self.raw(SSRCS[args[0]], args[1])
        elif name == "audio":
            self.deliver(self.streams[AUDIO_SSRC],
                         self.packet(AUDIO_SSRC, b"opus" * args[0], False, True))
        elif name == "late":
            held, self.held = self.held, []
            for stream, packet in reversed(held):
                self.deliver(stream, packet)
        elif name == "again":  # a repeated packet
            ssrc = (*SSRCS, AUDIO_SSRC, PLAIN_SSRC)[args[0]]
            if self.sent[ssrc]:
                self.deliver(self.streams[ssrc], self.sent[ssrc][-1])
        elif name == "gap":
            ssrc = (*SSRCS, AUDIO_SSRC, PLAIN_SSRC)[args[0]]
            self.seq[ssrc] = (self.seq[ssrc] + args[1]) & 0xFFFF
        elif name == "rtx":
            self.rtx((*SSRCS, PLAIN_SSRC)[args[0]], args[1])
        elif name == "report":  # a receiver-report interval: encodings that stopped stop
            self.now += 1.0
            for stream in self.streams.values():
                stream.report_block(self.now)
        elif name == "producer_pause":
            worker.pause_producer(self.producers[KINDS[args[0]]].id, args[1])
        elif name == "join":
            if len(self.consumers) < 6:
                self.join()
        elif sub is not None and not sub[KINDS[args[1]]].closed:
            consumer = sub[KINDS[args[1]]]
            if name == "prefer":
                worker.set_preferred_layers(sub["video"].id, args[1], args[2])
            elif name == "aim":
                sub["video"].aim(args[1])
                sub["video"].aim_temporal(args[2])
            elif name == "pause":
                worker.pause_consumer(consumer.id, bool(args[2]))
            elif name == "view":
                worker.set_consumer_view(consumer.id, bool(args[2]), 320, 180)
            elif name == "nack":
                c = consumer._c
                consumer.on_nack([(c.next_seq - 1 - k * args[2]) & 0xFFFF for k in range(4)])
            elif name == "pli":
                consumer.request_keyframe()
            elif name == "padding" and hasattr(consumer, "send_padding"):
                consumer.send_padding(1 + args[2] * 50, self.now)
            elif name == "close":
                worker.close_consumer(consumer.id)
        self.drain()

    def drain(self) -> None:
        for i, s in enumerate(self.sockets):  # (their ports differ from run to run)
            while True:
                try:
                    self.got[i].append(s.recv(2048))
                except BlockingIOError:
                    break

    def state(self) -> list[tuple]:
        """Each consumer's numbering (and temporal layers) as it ended."""
        out = []
        for made in self.consumers:
            for consumer in made.values():
                c, t = consumer._c, consumer.temporal
                out.append((consumer.closed, c.started, c.paused, c.seq_offset, c.ts_offset,
                            c.start_seq, c.next_seq, c.last_ts, c.last_in_ts, c.last_time,
                            consumer.spatial_layer, c.packets, c.bytes,
                            None if t is None else (t.frames_dropped, ffi.buffer(t._c)[:])))
        return out

    def close(self) -> None:
        for s in self.sockets:
            s.close()
        if self.real:
            self.out.close()


SUB_OPS = {"prefer", "aim", "pause", "view", "nack", "pli", "padding", "close"}


async def run(ops: list[tuple], lane: bool, real: bool, pipe: bool = False,
              subscribers: int = 3) -> tuple[dict, list, int]:
    """What everyone received, the consumers' state, and how many times Python forwarded."""
    calls = 0
    forward = Renumbering.forward

    def counted(self, *args) -> None:
        nonlocal calls
        calls += 1
        forward(self, *args)

    world = World(real, pipe=pipe)
    world.subscribers_at_start = subscribers
    clock = SimpleNamespace(monotonic=lambda: world.now)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(producer_module, "LANE", lane)
        patch.setattr(consumer_module, "time", clock)
        patch.setattr(producer_module, "time", clock)
        patch.setattr(Renumbering, "forward", counted)
        random.seed(20261206)
        await world.start()
        try:
            for op in ops:
                world.step(op)
            await asyncio.sleep(0)  # the pipe's sends (asyncio's datagram transport)
            world.drain()
            return dict(world.got), world.state(), calls
        finally:
            world.close()


PATTERN = (0, 2, 1, 2)  # libwebrtc's three temporal layers


def media(count: int) -> list[tuple]:
    """A while of every track: a frame of each encoding in libwebrtc's temporal pattern (Y on
    the TL1 frames; 1 to 3 packets), audio and the plain track."""
    out: list[tuple] = []
    for i in range(count):
        tid = PATTERN[i % 4]
        out += [("frame", layer, tid, tid == 1, False, 1 + (i + layer) % 3, -1, False)
                for layer in range(3)]
        out += [("audio", 1 + i % 3), ("plain", False, 2, -1)]
    return out


def keyframes() -> list[tuple]:
    return [*[("frame", layer, 0, True, True, 3, -1, False) for layer in range(3)],
            ("plain", True, 3, -1)]


SCRIPT: list[tuple] = [
    ("audio", 2), *media(2),  # before any keyframe: video waits
    *keyframes(), *media(12),
    ("prefer", 0, 1, 1), ("prefer", 1, 0, 0), ("prefer", 2, 2, 2),  # switches, temporal
    *media(6), *keyframes(), *media(12),
    ("frame", 2, 2, False, False, 3, 1, False), ("frame", 2, 0, False, False, 2, 0, False),
    *media(3), ("late",),  # late packets, reordered, across temporal drops
    ("gap", 2, 3), ("gap", 3, 2), ("gap", 4, 1), *media(6),  # loss upstream
    ("nack", 0, 0, 1), ("nack", 1, 0, 2), ("nack", 2, 2, 1), ("nack", 0, 2, 3),
    ("rtx", 2, 3), ("rtx", 3, 1), ("again", 2), ("again", 3), ("again", 4),
    ("padding", 0, 0, 3), ("padding", 1, 0, 0), ("padding", 2, 0, 5),
    ("pause", 0, 1, True), ("pause", 1, 0, True), *media(4),
    ("pause", 0, 1, False), ("pause", 1, 0, False), *media(4), *keyframes(), *media(4),
    ("aim", 0, 0, 0), ("aim", 1, 2, 3), *media(8), ("aim", 0, 2, 3),
    ("frame", 1, 1, False, False, 2, 0, False), *media(8), ("late",),  # up at Y; S=0 first
    ("aim", 2, 2, 0), *media(4), ("aim", 2, 2, 3), *keyframes(), *media(2),  # up: keyframe
    ("raw", 2, False), ("raw", 1, True), *media(3),  # no TID on the encoding
    ("frame", 2, 1, True, False, 2, -1, True), ("frame", 2, 2, False, False, 1, -1, True),
    ("producer_pause", 0, True), *media(3), ("producer_pause", 0, False), *media(3),
    *keyframes(), *media(6),
    ("join",), *media(3), ("pli", 3, 0), ("pli", 0, 2), *keyframes(), *media(6),
    ("report",), *[op for op in media(10) if op[:2] != ("frame", 2)],
    ("report",), ("report",), *[op for op in media(10) if op[:2] != ("frame", 2)],
    *keyframes(), ("report",), *media(6),  # the top encoding stopped, then came back
    ("view", 2, 0, False), *media(3), ("view", 2, 0, True), *keyframes(), *media(3),
    ("gap", 0, 30000), ("gap", 4, 20000), *keyframes(), *media(4),  # publisher restarts
    ("close", 1, 0), ("close", 1, 1), *media(4), *keyframes(), *media(4),
]


@pytest.mark.parametrize("real", [True, False], ids=["sendmmsg", "link-sends"])
async def test_the_lane_sends_what_python_sends(real: bool) -> None:
    with_lane, state, lane_calls = await run(SCRIPT, lane=True, real=real, pipe=True)
    without, python_state, python_calls = await run(SCRIPT, lane=False, real=real, pipe=True)
    assert with_lane.keys() == without.keys()
    for addr in without:
        assert with_lane[addr] == without[addr], addr
    assert state == python_state
    copies = sum(len(v) for v in without.values())
    assert copies > 2000
    assert sum(s[-1][0] for s in state if s[-1] is not None) > 100  # temporal drops
    # the lane took most copies: Python forwarded the starts, switches, decisions and drops
    assert lane_calls < python_calls / 3, (lane_calls, python_calls)


OPS = st.one_of(
    st.tuples(st.just("frame"), st.integers(0, 2), st.integers(0, 3), st.booleans(),
              st.booleans(), st.integers(1, 3), st.integers(-1, 2), st.booleans()),
    st.tuples(st.just("plain"), st.booleans(), st.integers(1, 3), st.integers(-1, 2)),
    st.tuples(st.just("raw"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("audio"), st.integers(1, 3)),
    st.tuples(st.sampled_from(["late", "report", "join"])),
    st.tuples(st.sampled_from(["again", "gap"]), st.integers(0, 4), st.integers(1, 40)),
    st.tuples(st.just("rtx"), st.integers(0, 3), st.integers(0, 8)),
    st.tuples(st.just("producer_pause"), st.integers(0, 2), st.booleans()),
    st.tuples(st.sampled_from(sorted(SUB_OPS)), st.integers(0, 5), st.integers(0, 2),
              st.integers(0, 3)),
)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=10, max_size=80), st.integers(1, 4))
def test_random_scripts_send_the_same_with_and_without_the_lane(ops: list[tuple],
                                                                subscribers: int) -> None:
    # keyframes first, so that most scripts forward something
    script = [*keyframes(), *ops, *keyframes(), *ops]
    got = asyncio.run(run(script, lane=True, real=False, subscribers=subscribers))
    expected = asyncio.run(run(script, lane=False, real=False, subscribers=subscribers))
    assert got[0] == expected[0]
    assert got[1] == expected[1]
