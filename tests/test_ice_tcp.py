"""ICE-TCP (mediaserver/tcp.py) against a real Worker on loopback: the passive TCP candidate,
connectivity checks, DTLS, SRTP, RTCP and retransmissions over RFC 4571 framing, and what a
bad or slow connection may cost (only itself).

aioice (aiortc's ICE) has no ICE-TCP, so the peers here are minimal: a TCP connection that
frames STUN checks (tests/support/stun_checks.py), the project's own DtlsEndpoint as the DTLS
client, SRTP contexts from its keys."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest
import uvloop
from aioice import stun

from mediaserver import tcp
from mediaserver.config import MediaConfig
from mediaserver.dtls import DtlsCertificate, DtlsEndpoint
from mediaserver.params import Codec, ConsumerParams, ProducerParams, RemoteParams
from mediaserver.pool import WorkerPool
from mediaserver.rtp.packet import RTP_HEADER, build_packet, payload_offset
from mediaserver.rtp.rtcp import Nack, Pli, build_nack, build_pli, build_rr, parse_compound
from mediaserver.srtp import SrtpPair
from mediaserver.tcp import TCP_PRIORITY, TcpAddr
from mediaserver.worker import Worker
from signaling.sdp import parse, publish_answer
from tests.support.sdp_samples import CHROME_OFFER
from tests.support.stun_checks import binding_request

VP8 = Codec("VP8", 96, 90000, rtx_payload_type=97, nack=True, pli=True)
SUB_VP8 = Codec("VP8", 100, 90000, rtx_payload_type=101, nack=True, pli=True)
KEY = b"\x10\x00\x00\x9d\x01\x2a" + b"k" * 40  # VP8 descriptor S=1, then a keyframe header
DELTA = b"\x10\x01\x00" + b"d" * 40
WAIT = 5.0


async def started_worker(**config) -> Worker:
    worker = Worker(MediaConfig(host="127.0.0.1", port=0, **config))
    await worker.start()
    return worker


async def until(predicate: Callable[[], object], timeout: float = WAIT) -> None:
    """Yield to the loop until the worker has handled what was sent (loopback is immediate)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


class TcpPeer:
    """One ICE-TCP connection from the peer's side (its active candidate): RFC 4571 frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.addr = writer.get_extra_info("sockname")

    @classmethod
    async def open(cls, worker: Worker) -> TcpPeer:
        assert worker.tcp is not None
        return cls(*await asyncio.open_connection("127.0.0.1", worker.tcp.port))

    def send(self, packet: bytes) -> None:
        self.writer.write(len(packet).to_bytes(2, "big") + packet)

    async def recv(self, timeout: float = WAIT) -> bytes:
        size = int.from_bytes(await asyncio.wait_for(self.reader.readexactly(2), timeout), "big")
        return await asyncio.wait_for(self.reader.readexactly(size), timeout)

    async def check(self, ufrag: str, pwd: str, nominate: bool = True,
                    remote_ufrag: str = "peer") -> stun.Message:
        request = binding_request(f"{ufrag}:{remote_ufrag}", pwd, nominate)
        self.send(request)
        response = stun.parse_message(await self.recv())
        assert response.transaction_id == stun.parse_message(request).transaction_id
        return response

    async def closed_by_server(self, timeout: float = WAIT) -> bool:
        """True once the server closed the connection (EOF or reset) within the time."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


def server_addr(worker: Worker, peer: TcpPeer) -> TcpAddr:
    """The worker's TcpAddr of the peer's connection."""
    return next(c.addr for c in worker.tcp.connections  # type: ignore[union-attr]
                if c.addr is not None and (c.addr[0], c.addr[1]) == peer.addr)


# ---- candidates -----------------------------------------------------------------------------


async def test_transport_offers_udp_then_passive_tcp_on_the_same_port_number() -> None:
    worker = await started_worker()
    try:
        info = worker.create_transport(worker.create_router())
        udp, tcp_candidate = info.candidates
        assert (udp.protocol, udp.port, udp.tcptype) == ("udp", worker.port, "")
        assert tcp_candidate.protocol == "tcp" and tcp_candidate.tcptype == "passive"
        assert tcp_candidate.port == worker.tcp.port  # type: ignore[union-attr]
        assert tcp_candidate.priority == TCP_PRIORITY < udp.priority
        assert tcp_candidate.foundation != udp.foundation  # RFC 8445 5.1.1.3
        assert tcp_candidate.ip == udp.ip == "127.0.0.1"
        # the same number as UDP unless that was taken (the UDP port here is ephemeral)
        with socket.create_connection(("127.0.0.1", tcp_candidate.port), timeout=WAIT):
            pass
        answer, _ = publish_answer(parse(CHROME_OFFER), info)
        lines = [line for line in answer.splitlines() if line.startswith("a=candidate")]
        assert lines[0] == f"a=candidate:1 1 udp {udp.priority} 127.0.0.1 {udp.port} typ host"
        assert lines[1] == (f"a=candidate:2 1 tcp {TCP_PRIORITY} 127.0.0.1 "
                            f"{tcp_candidate.port} typ host tcptype passive")
        assert answer.count("a=candidate") == 2 * answer.count("m=")
    finally:
        await worker.stop()


async def test_tcp_port_is_configurable_or_off() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    worker = await started_worker(tcp_port=port)
    try:
        assert worker.tcp is not None and worker.tcp.port == port
        info = worker.create_transport(worker.create_router())
        assert info.candidates[1].port == port
    finally:
        await worker.stop()
    with socket.socket() as again:  # the listener is gone with the worker
        again.bind(("127.0.0.1", port))
    off = await started_worker(ice_tcp=False)
    try:
        assert off.tcp is None
        info = off.create_transport(off.create_router())
        assert [c.protocol for c in info.candidates] == ["udp"]
    finally:
        await off.stop()
    with pytest.raises(ValueError):
        MediaConfig(tcp_port=70000)


async def test_pool_workers_answer_checks_over_tcp() -> None:
    """Worker processes (worker_main) listen on TCP too, and answer there."""
    pool = WorkerPool(MediaConfig(host="127.0.0.1", port=0), 2)
    await pool.start()
    try:
        for _ in range(2):
            router = await pool.create_router()
            info = await pool.create_transport(router)
            candidate = info.candidates[1]
            assert (candidate.protocol, candidate.tcptype) == ("tcp", "passive")
            reader, writer = await asyncio.open_connection("127.0.0.1", candidate.port)
            peer = TcpPeer(reader, writer)
            try:
                ok = await peer.check(info.ice_ufrag, info.ice_pwd)
                assert ok.message_class == stun.Class.RESPONSE
                assert ok.attributes["XOR-MAPPED-ADDRESS"] == peer.addr
            finally:
                peer.close()
    finally:
        await pool.stop()


# ---- checks and addresses -------------------------------------------------------------------


async def test_authenticated_check_over_tcp_makes_the_connection_an_address() -> None:
    worker = await started_worker()
    peer = await TcpPeer.open(worker)
    try:
        info = worker.create_transport(worker.create_router())
        transport = worker.transports[info.id]
        bad = await peer.check(info.ice_ufrag, "wrong-password-xxxxxxxxx")
        assert bad.message_class == stun.Class.ERROR and bad.attributes["ERROR-CODE"][0] == 401
        assert not transport.addrs and worker.tcp.unbound == 1  # type: ignore[union-attr]

        ok = await peer.check(info.ice_ufrag, info.ice_pwd, nominate=True)
        assert ok.message_class == stun.Class.RESPONSE
        assert ok.attributes["XOR-MAPPED-ADDRESS"] == peer.addr
        assert ok.check_message_integrity(info.ice_pwd.encode())
        addr = transport.addr
        assert isinstance(addr, TcpAddr) and (addr[0], addr[1]) == peer.addr
        assert worker.transport_ids_by_addr()[addr] == info.id
        assert transport.out.c.addrlen == 0  # never in the sendmmsg batch
        assert worker.tcp.unbound == 0  # type: ignore[union-attr]
        assert worker.sendto == worker._send_any  # TCP open: the send looks at the address
        (dump,) = worker.dump().transports
        assert dump.protocol == "tcp"
        stats = worker.stats()
        assert stats["tcp_connections"] == 1 and stats["tcp_frames_in"] == 2
        assert stats["tcp_frames_out"] == 2

        # the peer goes away: the address is forgotten, UDP sends are direct again
        peer.close()
        await until(lambda: not transport.addrs)
        assert transport.addr is None and worker.transport_ids_by_addr() == {}
        assert not worker.tcp.connections  # type: ignore[union-attr]
        assert worker.sendto == worker._udp_send
    finally:
        peer.close()
        await worker.stop()


async def test_closed_tcp_connection_falls_back_to_a_checked_udp_address() -> None:
    worker = await started_worker()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    peer = await TcpPeer.open(worker)
    try:
        info = worker.create_transport(worker.create_router())
        transport = worker.transports[info.id]
        loop = asyncio.get_running_loop()
        udp.sendto(binding_request(f"{info.ice_ufrag}:peer", info.ice_pwd),
                   ("127.0.0.1", worker.port))
        await asyncio.wait_for(loop.sock_recv(udp, 2048), WAIT)
        assert transport.addr == udp.getsockname()
        await peer.check(info.ice_ufrag, info.ice_pwd, nominate=True)
        assert isinstance(transport.addr, TcpAddr)
        peer.close()
        await until(lambda: transport.addr == udp.getsockname())
        assert transport.addrs == {udp.getsockname()}
    finally:
        udp.close()
        peer.close()
        await worker.stop()


# ---- everything above the transport ---------------------------------------------------------


class MediaPeer:
    """A peer connection over ICE-TCP: checks, then DTLS as the client (we answered
    a=setup:passive), then SRTP; frames it receives are sorted by RFC 7983."""

    def __init__(self, worker: Worker, tcp_peer: TcpPeer, ufrag: str, pwd: str,
                 remote_ufrag: str) -> None:
        self.worker, self.tcp, self.ufrag, self.pwd = worker, tcp_peer, ufrag, pwd
        self.remote_ufrag = remote_ufrag
        self.certificate = DtlsCertificate()
        loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[SrtpPair] = loop.create_future()
        self.rtp: asyncio.Queue[bytes] = asyncio.Queue()
        self.rtcp: asyncio.Queue[bytes] = asyncio.Queue()
        self.dtls: DtlsEndpoint | None = None
        self._reader: asyncio.Task | None = None

    async def connect(self) -> SrtpPair:
        ok = await self.tcp.check(self.ufrag, self.pwd, True, self.remote_ufrag)
        assert ok.message_class == stun.Class.RESPONSE
        self._reader = asyncio.create_task(self._read())  # from now on frames are sorted
        self.dtls = DtlsEndpoint(
            self.certificate, "client", [("sha-256", self.worker.certificate.fingerprint)],
            self.tcp.send, lambda pair: self.connected.done() or self.connected.set_result(pair),
            lambda reason: self.connected.done() or self.connected.set_exception(
                AssertionError(reason)))
        self.dtls.start()
        return await asyncio.wait_for(self.connected, WAIT)

    async def _read(self) -> None:
        while True:
            try:
                data = await self.tcp.recv(timeout=3600)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if 19 < data[0] < 64 and self.dtls is not None:
                self.dtls.receive(data)
            elif 127 < data[0] < 192:
                (self.rtcp if 191 < data[1] < 224 else self.rtp).put_nowait(data)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.dtls is not None:
            self.dtls.close()
        self.tcp.close()


async def media_peer(worker: Worker, transport_id: str, ufrag: str
                     ) -> tuple[MediaPeer, SrtpPair]:
    info = worker.transport_info(transport_id)
    peer = MediaPeer(worker, await TcpPeer.open(worker), info.ice_ufrag, info.ice_pwd, ufrag)
    fingerprint = ("sha-256", peer.certificate.fingerprint)
    worker.connect_transport(transport_id, RemoteParams(ufrag, "p" * 22, [fingerprint],
                                                        "server"))
    return peer, await peer.connect()


async def test_dtls_srtp_rtcp_and_retransmissions_over_tcp() -> None:
    """A publisher and a subscriber both on ICE-TCP: the handshake, forwarding, the
    subscriber's NACK answered with RTX, its PLI reaching the publisher, reports."""
    worker = await started_worker()
    peers: list[MediaPeer] = []
    try:
        router = worker.create_router()
        pub_id = worker.create_transport(router).id
        sub_id = worker.create_transport(router).id
        pub, pub_srtp = await media_peer(worker, pub_id, "pubpeer")
        sub, sub_srtp = await media_peer(worker, sub_id, "subpeer")
        peers += [pub, sub]
        assert worker.transports[pub_id].state == worker.transports[sub_id].state == "connected"
        producer = worker.produce(pub_id, ProducerParams("video", "0", VP8, ssrc=1111,
                                                         rtx_ssrc=2222))
        consumer = worker.consume(sub_id, producer, ConsumerParams("5", SUB_VP8, {},
                                                                   ssrc=3333, rtx_ssrc=4444))
        payloads = [KEY, DELTA, DELTA, DELTA]
        for i, payload in enumerate(payloads):
            pub.tcp.send(pub_srtp.protect(build_packet(96, 500 + i, 3000 * i, 1111, payload,
                                                       True)))
        got = [bytes(sub_srtp.unprotect(await asyncio.wait_for(sub.rtp.get(), WAIT)))
               for _ in payloads]
        seqs = []
        for packet, payload in zip(got, payloads, strict=True):
            b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(packet, 0)
            assert ssrc == 3333 and b1 & 0x7F == 100
            assert packet[payload_offset(packet):] == payload
            seqs.append(seq)

        # the subscriber lost the third packet: its NACK brings it back on the RTX stream
        sub.tcp.send(sub_srtp.protect_rtcp(build_rr(0x5151) + build_nack(0x5151, 3333,
                                                                          [seqs[2]])))
        rtx = bytes(sub_srtp.unprotect(await asyncio.wait_for(sub.rtp.get(), WAIT)))
        body = rtx[payload_offset(rtx):]
        assert RTP_HEADER.unpack_from(rtx, 0)[4] == 4444
        assert int.from_bytes(body[:2], "big") == seqs[2] and body[2:] == DELTA

        # its keyframe request reaches the publisher, over the publisher's TCP connection
        sub.tcp.send(sub_srtp.protect_rtcp(build_rr(0x5151) + build_pli(0x5151, 3333)))
        deadline = time.monotonic() + WAIT
        plis: list = []
        while not plis:
            data = await asyncio.wait_for(pub.rtcp.get(), max(0.01, deadline - time.monotonic()))
            items = parse_compound(bytes(pub_srtp.unprotect_rtcp(data)))
            plis = [i for i in items if isinstance(i, Pli) and i.media_ssrc == 1111]
            assert not any(isinstance(i, Nack) for i in items)  # nothing was lost upstream

        (dump,) = [t for t in worker.dump().transports if t.id == sub_id]
        assert dump.protocol == "tcp" and dump.packets_out == 5
        assert worker.consumers[consumer.id].retransmitted == 1
        assert worker.stats()["tcp_send_dropped"] == 0
    finally:
        for peer in peers:
            peer.close()
        await worker.stop()


# ---- what a connection may cost -------------------------------------------------------------


@pytest.mark.parametrize("frame", [
    (60000).to_bytes(2, "big") + b"\x00" * 64,  # longer than any packet: closed at the header
    (tcp.MAX_FRAME + 1).to_bytes(2, "big"),
    b"\x00\x00",  # empty frame
    b"\x00\x05GET /",  # not a packet of ours (RFC 7983)
    b"\x00\x0dSSH-2.0-x\r\n\r\n",
    b"\x00\x20" + b"\x16\xfe\xfd" + b"\x00" * 29,  # DTLS before any check
], ids=["60000", "max+1", "empty", "http", "ssh", "dtls-first"])
async def test_bad_frames_close_only_that_connection(frame: bytes) -> None:
    worker = await started_worker()
    good = await TcpPeer.open(worker)
    bad = await TcpPeer.open(worker)
    try:
        info = worker.create_transport(worker.create_router())
        await good.check(info.ice_ufrag, info.ice_pwd)
        errors = worker.errors
        bad.writer.write(frame)
        assert await bad.closed_by_server()
        await until(lambda: len(worker.tcp.connections) == 1)  # type: ignore[union-attr]
        assert worker.tcp.rejected == 1  # type: ignore[union-attr]
        assert worker.errors == errors
        ok = await good.check(info.ice_ufrag, info.ice_pwd)  # the other one goes on
        assert ok.message_class == stun.Class.RESPONSE
    finally:
        good.close()
        bad.close()
        await worker.stop()


async def test_garbage_after_checks_closes_the_connection_and_forgets_it() -> None:
    worker = await started_worker()
    peer = await TcpPeer.open(worker)
    try:
        info = worker.create_transport(worker.create_router())
        transport = worker.transports[info.id]
        await peer.check(info.ice_ufrag, info.ice_pwd)
        assert transport.addrs
        peer.send(b"\x70" + b"x" * 20)  # 112: no protocol of RFC 7983
        assert await peer.closed_by_server()
        await until(lambda: not transport.addrs and transport.addr is None)
    finally:
        peer.close()
        await worker.stop()


async def test_frames_split_and_joined_across_reads() -> None:
    worker = await started_worker()
    peer = await TcpPeer.open(worker)
    try:
        info = worker.create_transport(worker.create_router())
        requests = [binding_request(f"{info.ice_ufrag}:peer", info.ice_pwd) for _ in range(3)]
        stream = b"".join(len(r).to_bytes(2, "big") + r for r in requests)
        for i in range(len(stream)):  # a byte at a time
            peer.writer.write(stream[i:i + 1])
            await peer.writer.drain()
            await asyncio.sleep(0)
        peer.writer.write(stream + stream[:7])  # three whole frames and a start in one write
        await peer.writer.drain()
        await asyncio.sleep(0.05)
        peer.writer.write(stream[7:])
        ids = [stun.parse_message(await peer.recv()).transaction_id for _ in range(9)]
        wanted = [stun.parse_message(r).transaction_id for r in requests]
        assert ids == wanted * 3
    finally:
        peer.close()
        await worker.stop()


async def test_connection_without_a_valid_check_is_closed(monkeypatch) -> None:
    monkeypatch.setattr(tcp, "BIND_TIMEOUT", 0.3)
    worker = await started_worker()
    silent = await TcpPeer.open(worker)
    wrong = await TcpPeer.open(worker)
    good = await TcpPeer.open(worker)
    try:
        info = worker.create_transport(worker.create_router())
        await wrong.check(info.ice_ufrag, "not-the-password-xxxxxxx")
        await good.check(info.ice_ufrag, info.ice_pwd)
        assert await silent.closed_by_server() and await wrong.closed_by_server()
        assert worker.tcp.expired == 2  # type: ignore[union-attr]
        await asyncio.sleep(0.5)
        ok = await good.check(info.ice_ufrag, info.ice_pwd)  # bound: no deadline
        assert ok.message_class == stun.Class.RESPONSE

        # its transport closes: the connection is unbound again and ends like the others
        worker.close_transport(info.id)
        assert await good.closed_by_server()
    finally:
        for peer in (silent, wrong, good):
            peer.close()
        await worker.stop()


async def test_connections_waiting_for_a_check_are_limited(monkeypatch) -> None:
    monkeypatch.setattr(tcp, "MAX_UNBOUND", 2)
    worker = await started_worker()
    peers = [await TcpPeer.open(worker) for _ in range(3)]
    try:
        assert await peers[2].closed_by_server()
        await until(lambda: worker.tcp.rejected == 1)  # type: ignore[union-attr]
        assert len(worker.tcp.connections) == 2  # type: ignore[union-attr]
        info = worker.create_transport(worker.create_router())
        await peers[0].check(info.ice_ufrag, info.ice_pwd)  # bound: room for one more
        late = await TcpPeer.open(worker)
        peers.append(late)
        ok = await late.check(info.ice_ufrag, info.ice_pwd)
        assert ok.message_class == stun.Class.RESPONSE
    finally:
        for peer in peers:
            peer.close()
        await worker.stop()


async def test_a_slow_tcp_reader_costs_only_itself() -> None:
    """A subscriber whose TCP connection is not read: its packets beyond the write buffer are
    dropped and counted, its queue stays bounded, and a UDP subscriber of the same producer
    gets every packet at once (nothing on the loop waits for the slow one: ~0.3 s here for
    all 4,000)."""
    worker = await started_worker(rtcp_interval=3600.0)  # only the media's frames to count
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
    try:
        router = worker.create_router()
        pub = worker.transports[worker.create_transport(router).id]
        fast = worker.transports[worker.create_transport(router).id]
        lagging = worker.transports[worker.create_transport(router).id]
        pub.set_connected(("127.0.0.1", 9), _plain())
        fast.set_connected(udp.getsockname(), _plain())
        loop = asyncio.get_running_loop()
        await loop.sock_connect(slow, ("127.0.0.1", worker.tcp.port))  # type: ignore[union-attr]
        request = binding_request(f"{lagging.local_ufrag}:peer", lagging.local_pwd, True)
        await loop.sock_sendall(slow, len(request).to_bytes(2, "big") + request)
        await until(lambda: isinstance(lagging.addr, TcpAddr))
        lagging._on_dtls_connected(_plain())
        producer = worker.produce(pub.id, ProducerParams("video", "0", VP8, ssrc=1111))
        for t in (fast, lagging):
            worker.consume(t.id, producer, ConsumerParams("5", SUB_VP8, {}, ssrc=3333))
        conn = lagging.addr.conn  # type: ignore[union-attr]
        stream = worker.producers[producer]
        payload = DELTA + b"x" * 1000
        count = 4000  # ~4 MB: more than the kernel's buffers and ours together
        received = 0
        for i in range(count):
            stream.receive(build_packet(96, i, 3000 * i, 1111, KEY if i == 0 else payload,
                                        True), time.monotonic())
            assert conn.transport.get_write_buffer_size() <= tcp.WRITE_BUFFER
            if i % 50 == 49:
                await asyncio.sleep(0)  # the loop runs: the TCP writer drains what it can
                received += _drain(udp)
        await asyncio.sleep(0.05)
        received += _drain(udp)
        assert received == count  # the UDP subscriber lost nothing
        assert conn.send_dropped > 0 and worker.stats()["tcp_send_dropped"] == conn.send_dropped
        assert conn.frames_out + conn.send_dropped == count + 1  # + the check's answer
    finally:
        udp.close()
        slow.close()
        await worker.stop()


async def test_a_send_racing_a_reset_is_a_drop_not_an_error() -> None:
    """uvloop closes a reset connection's transport before calling connection_lost: a write
    in between raises, and must cost that packet only, never the rest of a fan-out."""
    worker = await started_worker()
    peer = await TcpPeer.open(worker)
    try:
        info = worker.create_transport(worker.create_router())
        await peer.check(info.ice_ufrag, info.ice_pwd)
        conn = worker.transports[info.id].addr.conn  # type: ignore[union-attr]

        class Closed:
            def get_write_buffer_size(self) -> int:
                return 0

            def write(self, data: bytes) -> None:
                raise RuntimeError("unable to perform operation: the handler is closed")

        real, conn.transport = conn.transport, Closed()
        worker.sendto(b"\x80" * 100, conn.addr)
        assert conn.send_dropped == 1
        conn.transport = real
    finally:
        peer.close()
        await worker.stop()


def _plain() -> SrtpPair:
    from tests.test_forwarding import PlainSrtp

    return PlainSrtp()  # type: ignore[return-value]


def _drain(sock: socket.socket) -> int:
    n = 0
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            return n
        n += 1


@pytest.mark.parametrize("scenario", [
    test_dtls_srtp_rtcp_and_retransmissions_over_tcp,
    test_a_slow_tcp_reader_costs_only_itself,
    test_frames_split_and_joined_across_reads,
    test_garbage_after_checks_closes_the_connection_and_forgets_it,
], ids=lambda f: f.__name__.removeprefix("test_"))
def test_on_uvloop(scenario) -> None:
    """The worker runs on uvloop in production (and in worker processes), whose TCP
    transports write and count their queue differently from asyncio's: the same there."""

    async def run() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        await scenario()

    uvloop.run(run())
