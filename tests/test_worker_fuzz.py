"""A live media worker under hostile datagrams, while a real publisher -> subscriber flow runs.

A real Worker on its UDP port; a publisher and a subscriber made of the project's own ICE,
DTLS and SRTP (benchmarks/peer.py, as the load generator's bots), connected through the
worker's control calls. While the publisher sends numbered frames, attackers send the worker
random datagrams and mutations of real ones (STUN checks, DTLS records, SRTP and SRTCP,
replays of the publisher's packets) from several addresses; one of them even holds valid ICE
credentials of a transport of its own and passes checks from dozens of source addresses.
Afterwards the subscriber has decoded the frames intact and in order, no table grew past its
bound, and the subscriber's sender reports kept coming though another publisher's producer
carries an SSRC no report can hold (the report tick's per-transport isolation).

`make test` sends a few thousand attack datagrams; `make fuzz` sends 100,000.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Callable

import pytest

from benchmarks.peer import Peer
from benchmarks.sdp_client import RemoteTransport
from mediaserver.config import MediaConfig
from mediaserver.dtls import DtlsCertificate
from mediaserver.params import Codec, ConsumerParams, ProducerParams, RemoteParams
from mediaserver.producer import MAX_MISSING
from mediaserver.rtp.packet import build_packet, payload_offset
from mediaserver.rtp.rtcp import SenderReport, build_nack, build_pli, build_rr, parse_compound
from mediaserver.transport import MAX_ADDRS, MAX_EARLY_DTLS, MAX_EARLY_DTLS_BYTES
from mediaserver.worker import Worker
from tests.support.fuzz import fuzz_examples
from tests.support.stun_checks import binding_request

pytestmark = pytest.mark.fuzz

VP8 = Codec("VP8", 96, 90000, nack=True, pli=True)
PUB_SSRC, SUB_SSRC, BAD_SSRC = 0x1111, 0x5555, 0x2222
KEY = b"\x10\x00\x00\x9d\x01\x2a"  # VP8 descriptor S=1, key frame header
DELTA = b"\x10\x01\x00\x00\x00\x00"  # P bit set: inter frame (as long as KEY)
RATE = 250  # frames (one packet each) per second
ATTACK_DATAGRAMS = fuzz_examples(3000)


def udp_sockets(n: int) -> list[socket.socket]:
    """n loopback sockets: as many source addresses."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    return socks


def frame_payload(n: int) -> bytes:
    """Frame n: key every 25th; its number and a pattern only it has, to check what arrives."""
    body = struct.pack("!I", n) + bytes((n * 7 + i) & 0xFF for i in range(200))
    return (KEY if n % 25 == 0 else DELTA) + body


class Flow:
    """Publisher -> worker -> subscriber, each peer on its own socket."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.cert = DtlsCertificate()
        self.received: dict[int, bytes] = {}
        self.order: list[int] = []
        self.reports: list[float] = []  # arrival times of the subscriber's sender reports
        self.pub = Peer(self.cert, lambda data, t: None, lambda data: None, "publisher")
        self.sub = Peer(self.cert, self._on_rtp, self._on_rtcp, "subscriber")
        self.router = worker.create_router()

    def _on_rtp(self, data: bytes, arrival: int) -> None:
        assert self.sub.srtp is not None
        plain = self.sub.srtp.unprotect(data)
        assert int.from_bytes(plain[8:12], "big") == SUB_SSRC
        payload = bytes(plain[payload_offset(plain):])
        n = struct.unpack_from("!I", payload, len(DELTA))[0]
        self.received[n] = payload
        self.order.append(n)

    def _on_rtcp(self, data: bytes) -> None:
        if any(isinstance(i, SenderReport) and i.ssrc == SUB_SSRC for i in parse_compound(data)):
            self.reports.append(time.monotonic())

    async def connect(self, peer: Peer) -> str:
        info = self.worker.create_transport(self.router)
        peer.open()
        self.worker.connect_transport(info.id, RemoteParams(
            peer.local.ufrag, peer.local.pwd, [("sha-256", peer.local.fingerprint)], "server"))
        peer.connect(RemoteTransport(info.ice_ufrag, info.ice_pwd,
                                     [("sha-256", info.fingerprint)],
                                     ("127.0.0.1", self.worker.port)))
        await asyncio.wait_for(peer.connected, 10)
        return info.id

    async def start(self) -> None:
        pub_tid = await self.connect(self.pub)
        sub_tid = await self.connect(self.sub)
        pid = self.worker.produce(pub_tid, ProducerParams("video", "0", VP8, ssrc=PUB_SSRC))
        self.worker.consume(sub_tid, pid, ConsumerParams("0", VP8, ssrc=SUB_SSRC))

    async def send(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            packet = build_packet(96, n & 0xFFFF, n * 3600, PUB_SSRC, frame_payload(n), True)
            self.pub.send_rtp(packet)
            await asyncio.sleep(1 / RATE)

    def close(self) -> None:
        self.pub.close()
        self.sub.close()


class Attacker:
    """Sockets that send the worker random and mutated datagrams."""

    def __init__(self, worker: Worker, flow: Flow, sockets: int = 6, seed: int = 0) -> None:
        self.target = ("127.0.0.1", worker.port)
        self.flow = flow
        self.rand = random.Random(seed)
        self.socks = udp_sockets(sockets)
        self.captured: list[bytes] = []  # the publisher's real datagrams, to replay and mutate
        self.sent = 0

    def valid_samples(self, worker: Worker) -> list[bytes]:
        r = self.rand
        transport = next(iter(worker.transports.values()))
        check = binding_request(f"{transport.local_ufrag}:x", "not-the-password-at-all", True,
                                r.getrandbits(32))
        dtls = bytes([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 1, 0, 40]) + r.randbytes(40)
        rtp = build_packet(96, r.getrandbits(16), r.getrandbits(32), PUB_SSRC, r.randbytes(80))
        rtcp = build_rr(r.getrandbits(32)) + build_nack(1, SUB_SSRC, [1, 2, 3]) + \
            build_pli(1, PUB_SSRC)
        srtcp = rtcp + r.randbytes(14)  # the shape of SRTCP: index and tag after the packet
        return [check, dtls, rtp, rtcp, srtcp, *self.captured[-20:]]

    def datagram(self, worker: Worker) -> bytes:
        r = self.rand
        kind = r.random()
        if kind < 0.3:  # random bytes, first byte across every RFC 7983 range
            return bytes([r.choice([0, 1, 3, 20, 23, 63, 64, 127, 128, 191, 200, 255])]) + \
                r.randbytes(r.randrange(0, 300))
        data = bytearray(r.choice(self.valid_samples(worker)))
        for _ in range(r.randrange(1, 4)):
            op = r.random()
            i = r.randrange(len(data)) if data else 0
            if op < 0.4 and data:
                data[i] ^= 1 << r.randrange(8)
            elif op < 0.6:
                del data[i:]
            elif op < 0.8:
                data[i:i] = r.randbytes(r.randrange(1, 8))
            else:
                data += r.randbytes(r.randrange(1, 40))
        return bytes(data) or b"\x00"

    async def run(self, worker: Worker, count: int, stop: Callable[[], bool]) -> None:
        while self.sent < count and not stop():
            for _ in range(50):
                try:
                    self.rand.choice(self.socks).sendto(self.datagram(worker), self.target)
                except OSError:
                    pass
                self.sent += 1
            await asyncio.sleep(0.002)

    def close(self) -> None:
        for s in self.socks:
            s.close()


class CheckingPeer:
    """One with valid ICE credentials of a transport of its own (an authenticated peer that
    misbehaves): passes checks from many source addresses, then sends garbage from them."""

    def __init__(self, worker: Worker, router: str, addresses: int) -> None:
        info = worker.create_transport(router)
        self.transport = worker.transports[info.id]
        worker.connect_transport(info.id, RemoteParams("evil", "e" * 22, [("sha-256", "AA")],
                                                       "server"))
        self.info = info
        self.socks = udp_sockets(addresses)
        self.target = ("127.0.0.1", worker.port)

    def check(self, nominate: bool) -> bytes:
        return binding_request(f"{self.info.ice_ufrag}:evil", self.info.ice_pwd, nominate)

    async def run(self, rounds: int) -> None:
        r = random.Random(1)
        for _ in range(rounds):
            for s in self.socks:
                try:
                    s.sendto(self.check(nominate=r.random() < 0.1), self.target)
                    s.sendto(bytes([22]) + r.randbytes(r.randrange(1, 3000)), self.target)
                    s.sendto(bytes([0x80, 96]) + r.randbytes(100), self.target)
                except OSError:
                    pass
            await asyncio.sleep(0.01)

    def close(self) -> None:
        for s in self.socks:
            s.close()


async def test_live_worker_keeps_forwarding_under_hostile_datagrams() -> None:
    worker = Worker(MediaConfig(host="127.0.0.1", port=0, rtcp_interval=0.1))
    await worker.start()
    flow = Flow(worker)
    attacker = Attacker(worker, flow)
    evil: CheckingPeer | None = None
    try:
        # A publisher whose producer ends up with an SSRC no report can hold, made first so
        # the report tick visits it before the others (it used to stop the tick right there).
        bad = Peer(DtlsCertificate(), lambda d, t: None, lambda d: None, "bad publisher")
        bad_tid = await flow.connect(bad)
        bad_pid = worker.produce(bad_tid, ProducerParams("video", "0", VP8, ssrc=BAD_SSRC))
        bad.send_rtp(build_packet(96, 1, 0, BAD_SSRC, frame_payload(0), True))
        await flow.start()
        original_send = flow.pub._send_raw

        def capture(data: bytes) -> None:  # the attacker replays and mutates these
            attacker.captured.append(data)
            del attacker.captured[:-50]
            original_send(data)

        flow.pub._send_raw = capture  # type: ignore[method-assign]
        evil = CheckingPeer(worker, flow.router, addresses=3 * MAX_ADDRS)

        await flow.send(0, 50)  # the flow is up before the attack starts
        await asyncio.sleep(0.3)
        bad_producer = worker.producers[bad_pid]
        assert bad_producer.highest >= 0  # it has a report block to write
        bad_producer.ssrc = 2**32  # what an unchecked SDP would have given (refused now)
        errors_before = worker.timer_errors
        sent_from = 50
        frames = max(300, ATTACK_DATAGRAMS // 20)
        done = False
        await asyncio.gather(
            flow.send(sent_from, frames),
            attacker.run(worker, ATTACK_DATAGRAMS, lambda: done),
            evil.run(rounds=20),
        )
        done = True
        reports_during = [t for t in flow.reports]
        await asyncio.sleep(0.5)  # the last frames and reports arrive

        # the flow forwarded intact: every frame that arrived is the one sent, in order
        assert flow.received, "nothing forwarded"
        for n, payload in flow.received.items():
            assert payload == frame_payload(n), n
        assert flow.order == sorted(flow.order)
        sent = sent_from + frames
        assert len(flow.received) >= 0.9 * sent, (len(flow.received), sent)
        assert attacker.sent >= ATTACK_DATAGRAMS * 0.9

        # the faulty producer's transport lost its reports, the subscriber's kept coming
        assert worker.timer_errors > errors_before
        assert len(reports_during) >= 5
        assert flow.reports[-1] > time.monotonic() - 1.0

        # no table grew past its bound
        for t in worker.transports.values():
            assert len(t.addrs) <= MAX_ADDRS
            assert len(t._addr_checked) <= MAX_ADDRS
            assert len(t._early_dtls) <= MAX_EARLY_DTLS
            assert sum(map(len, t._early_dtls)) <= MAX_EARLY_DTLS_BYTES
            assert len(t.producers_by_ssrc) + len(t.rtx_by_ssrc) <= 2 * len(t.producers)
        assert len(evil.transport.addrs) == MAX_ADDRS
        assert len(worker.transport_ids_by_addr()) <= MAX_ADDRS * len(worker.transports)
        assert len(worker.transport_ids_by_ufrag()) == len(worker.transports)
        for p in worker.producers.values():
            assert len(p.missing) <= MAX_MISSING
        assert worker.dropped > 0 and len(worker.transports) == 4
        bad.close()
    finally:
        attacker.close()
        if evil is not None:
            evil.close()
        flow.close()
        await worker.stop()
