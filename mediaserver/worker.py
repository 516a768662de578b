"""Worker: one event loop, one UDP port shared by every peer (DESIGN.md section 3).

`datagram_received` is the top of the packet path: it demultiplexes by remote address and
first byte (RFC 7983) and hands the datagram to its transport synchronously. Unknown addresses
are only accepted through an authenticated STUN Binding request (ICE-lite). The worker's TCP
port (ICE-TCP, tcp.py) hands each framed packet of a connection to the same method, with the
connection's `TcpAddr` as the address.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from . import ice
from .allocation import ALLOCATE_INTERVAL, ALLOCATE_SLICES, PACE_INTERVAL, AllocationRounds
from .config import MediaConfig
from .consumer import BaseConsumer, Consumer
from .dtls import DtlsCertificate
from .links import WorkerLink
from .params import (
    CLOSED_BY_SIGNALLING,
    CONSENT_EXPIRED,
    MAX_ENCODINGS,
    MAX_TEMPORAL_LAYER,
    ConsumerInfo,
    ConsumerParams,
    IceCandidate,
    MediaDump,
    MediaError,
    PipeInfo,
    ProducerParams,
    RemoteParams,
    TransportInfo,
    check_int,
    check_view,
)
from .pipe import EncodingPipeConsumer, PipeConsumer, PipeTransport
from .producer import Producer
from .rounds import Slices, TimerFaults
from .router import Router
from .rtp.rtcp import ntp_now
from .sendbatch import set_buffers
from .simulcast import SimulcastConsumer, SimulcastPipeConsumer
from .speaker import INTERVAL as SPEAKER_INTERVAL
from .speaker import ActiveSpeakers
from .stats import (
    consumer_counters,
    producer_counters,
    transport_counters,
    worker_dump,
    worker_stats,
)
from .tcp import TCP_PRIORITY, TcpAddr, TcpServer
from .transport import WebRtcTransport

log = logging.getLogger(__name__)
T = TypeVar("T")


__all__ = ["CONSENT_EXPIRED", "MediaError", "Worker"]

REPORT_SLICES = 10  # each RTCP interval's reports are spread over this many ticks


def new_id(prefix: str, owner: str = "") -> str:
    """Ids carry their worker's prefix ("w1.") so a pool of workers can route calls by id."""
    return f"{owner}{prefix}-{secrets.token_hex(6)}"


class Worker(asyncio.DatagramProtocol):
    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self.certificate = DtlsCertificate()
        self.routers: dict[str, Router] = {}
        self.transports: dict[str, WebRtcTransport] = {}
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, BaseConsumer] = {}
        self.pipes: dict[str, PipeTransport] = {}
        self._by_ufrag: dict[str, WebRtcTransport] = {}
        self._by_addr: dict[tuple, WebRtcTransport] = {}
        # all that producers and consumers see of the worker (links.py)
        self.link = WorkerLink(self.forget_producer, self.forget_consumer)
        self._udp: asyncio.DatagramTransport | None = None
        # the RTCP and consent STUN of a read batch, handled after its media (_run_late)
        self._late: list[tuple[bytes, tuple]] = []
        self._late_handle: asyncio.Handle | None = None
        self.reports = Slices(lambda: self.transports.values(), REPORT_SLICES, shuffle=True)
        self._udp_send: Callable[[bytes, tuple], None] = self.link.sendto
        self.tcp: TcpServer | None = None  # ICE-TCP (tcp.py), when config.ice_tcp
        self._tcp_open = False  # any TCP connection open: sends go through _send_any
        self._timers: list[asyncio.TimerHandle] = []
        self.port = 0
        self.transport_closed_listeners: list[Callable[[str, str], None]] = []
        # timer steps (one transport's reports, one producer's NACKs...) that raised: each is
        # isolated, so the worker's other transports still get theirs
        self.fault = TimerFaults()
        self.speakers = ActiveSpeakers(self.fault)  # active speaker per router (speaker.py)
        # bandwidth allocation of every subscriber transport, a slice a tick (allocation.py)
        self.allocation = AllocationRounds(self.transports, self.speakers, self.fault,
                                           lambda: self.lag)
        self.lag = 0.0  # how late its timers run (s): a stall is remembered for ~10 timer runs
        # counters; `retired` keeps the totals of closed objects so sums never go down
        self.retired: Counter[str] = Counter()
        self.datagrams_in = 0
        self.dropped = 0
        self.errors = 0
        self.stun_in = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.link.loop

    @loop.setter
    def loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.link.loop = loop

    @property
    def sendto(self) -> Callable[[bytes, tuple], None]:
        """The socket's send (tests put a capture in its place)."""
        return self.link.sendto

    @sendto.setter
    def sendto(self, sendto: Callable[[bytes, tuple], None]) -> None:
        self._udp_send = sendto
        self.link.sendto = self._send_any if self._tcp_open else sendto

    def _send_any(self, data: bytes, addr: tuple) -> None:
        """The send while TCP connections are open: a TcpAddr's packets go to its connection
        (framed, bounded, tcp.py), every other one to the UDP socket."""
        if addr.__class__ is TcpAddr:
            addr.conn.send(data)  # type: ignore[attr-defined]
        else:
            self._udp_send(data, addr)

    def tcp_in_use(self, in_use: bool) -> None:
        """The first TCP connection opened or the last one closed (tcp.py): only meanwhile
        does a UDP send pay for the check of `_send_any`."""
        self._tcp_open = in_use
        self.link.sendto = self._send_any if in_use else self._udp_send

    def tcp_lost(self, addr: TcpAddr) -> None:
        """A TCP connection closed: its transport forgets it (and sends elsewhere)."""
        transport = self._by_addr.get(addr)
        if transport is not None:
            transport.lost_addr(addr)

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        set_buffers(sock, self.config.recv_buffer, self.config.send_buffer)
        sock.bind((self.config.host, self.config.port))
        sock.setblocking(False)
        self._udp, _ = await self.loop.create_datagram_endpoint(lambda: self, sock=sock)
        self.sendto = self._udp.sendto
        self.link.batch.fd = sock.fileno()
        self.port = sock.getsockname()[1]
        if self.config.ice_tcp:
            # Same port number as UDP unless configured (other protocol, no clash); a worker
            # on an ephemeral UDP port (tests) takes any TCP port if that number is taken.
            tcp_port = self.config.tcp_port
            self.tcp = TcpServer(self)
            await self.tcp.start(self.config.host, self.port if tcp_port is None else tcp_port,
                                 fallback=tcp_port is None and self.config.port == 0)
        # a slice of the transports per tick, each still about once per interval
        self._schedule(self.config.rtcp_interval / REPORT_SLICES, self._report_tick, jitter=True)
        self._schedule(self.config.nack_interval, self._nack_tick)
        self._schedule(self.config.twcc_interval, self._twcc_tick)
        # a few ticks per consent period, at most one a second
        self._schedule(min(1.0, self.config.consent_timeout / 4), self._consent_tick)
        self._schedule(SPEAKER_INTERVAL, lambda: self.speakers.tick(self.routers.values()))
        self._schedule(ALLOCATE_INTERVAL / ALLOCATE_SLICES, self.allocation.tick)
        self._schedule(PACE_INTERVAL, self.allocation.pace)
        log.info("media worker on udp %s:%d%s", self.config.host, self.port,
                 f", tcp {self.tcp.port}" if self.tcp else "")

    async def stop(self) -> None:
        for pipe in list(self.pipes.values()):
            pipe.close()
        for router in list(self.routers.values()):
            router.close()
        for transport in list(self.transports.values()):
            transport.close("worker stopped")
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self.tcp is not None:
            await self.tcp.stop()
        if self._udp is not None:
            self.link.batch.fd = -1
            self._udp.close()
            self._udp = None

    # ---- packet path --------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.datagrams_in += 1
        if not data:
            self.dropped += 1
            return
        try:
            transport = self._by_addr.get(addr)
            first = data[0]
            if transport is None:
                if first < 4:
                    self._on_stun(data, addr)
                else:
                    self.dropped += 1
            elif 127 < first < 192 and not (len(data) > 1 and 191 < data[1] < 224):
                transport.on_srtp(data)  # RTP
            elif 19 < first < 64:
                transport.on_dtls(data)
            elif first < 4 and transport.srtp is None:
                self._on_stun(data, addr)  # ICE under way: its DTLS may be right behind
            elif first < 4 or 127 < first < 192:
                # RTCP (feedback, reports) and consent checks wait for the media read with
                # them: a publisher's RTP never waits behind feedback that came just before
                self._late.append((data, addr))
                if self._late_handle is None:
                    self._late_handle = self.loop.call_soon(self._run_late)
            else:
                self.dropped += 1
        except Exception:  # a malformed packet must never take the worker down
            self._bad_datagram(addr)

    def _run_late(self) -> None:
        """The RTCP and STUN of the last read batch (uvloop reads up to 32 datagrams per
        wakeup), after its media."""
        self._late_handle = None
        late, self._late = self._late, []
        for data, addr in late:
            try:
                if data[0] < 4:
                    self._on_stun(data, addr)
                elif (transport := self._by_addr.get(addr)) is not None:
                    transport.on_srtp(data)
                else:  # its transport closed meanwhile
                    self.dropped += 1
            except Exception:
                self._bad_datagram(addr)

    def _bad_datagram(self, addr: tuple) -> None:
        self.errors += 1
        if self.errors <= 10 or self.errors % 1000 == 0:
            log.exception("error handling a datagram from %s (%d so far)", addr, self.errors)

    def error_received(self, exc: Exception) -> None:
        self.errors += 1

    def _on_stun(self, data: bytes, addr: tuple) -> None:
        self.stun_in += 1
        request = ice.parse_request(data)
        if request is None:
            self.dropped += 1
            return
        ufrag = ice.username_ufrag(request)
        transport = self._by_ufrag.get(ufrag) if ufrag else None
        if transport is None or not ice.routable_from(self.config.host, addr[0]):
            self.dropped += 1
            return
        transport.on_stun(request, addr)

    # ---- registries used by transports --------------------------------------------------

    def register_addr(self, addr: tuple, transport: WebRtcTransport) -> None:
        previous = self._by_addr.get(addr)
        if previous is not None and previous is not transport:
            previous.forget_addr(addr)
        self._by_addr[addr] = transport
        if addr.__class__ is TcpAddr:
            addr.conn.bind(True)  # type: ignore[attr-defined]

    def unregister_addr(self, addr: tuple, transport: WebRtcTransport) -> None:
        if self._by_addr.get(addr) is transport:
            del self._by_addr[addr]
            if addr.__class__ is TcpAddr:
                addr.conn.bind(False)  # type: ignore[attr-defined]

    def register_ufrag(self, transport: WebRtcTransport) -> None:
        self._by_ufrag[transport.local_ufrag] = transport

    def unregister_ufrag(self, ufrag: str) -> None:
        self._by_ufrag.pop(ufrag, None)

    def transport_ids_by_addr(self) -> dict[tuple, str]:
        """The remote addresses the packet path demultiplexes by, and their transports."""
        return {addr: t.id for addr, t in self._by_addr.items()}

    def transport_ids_by_ufrag(self) -> dict[str, str]:
        """The ICE usernames a STUN check is accepted for, and their transports."""
        return {ufrag: t.id for ufrag, t in self._by_ufrag.items()}

    def on_transport_closed(self, transport: WebRtcTransport, reason: str) -> None:
        if self.transports.pop(transport.id, None) is not None:
            self.retired.update(transport_counters(transport))
        self._by_ufrag.pop(transport.local_ufrag, None)
        for addr in transport.addrs:
            self.unregister_addr(addr, transport)
        router = self.routers.get(transport.router_id)
        if router is not None:
            router.transports.pop(transport.id, None)
        for listener in self.transport_closed_listeners:
            try:
                listener(transport.id, reason)
            except Exception:
                self.fault("transport-closed listener", transport.id)

    # ---- timers -------------------------------------------------------------------------

    def _schedule(self, delay: float, callback: Callable[[], None], jitter: bool = False
                  ) -> None:
        """`callback` every `delay` seconds until the worker stops; with `jitter` each wait is
        drawn from [0.5, 1.5] x delay (RFC 3550 6.3.1: reports must not synchronize)."""
        def run() -> None:
            self._timers.remove(handle)
            self.lag = max(self.loop.time() - due, self.lag * 0.8)
            try:
                callback()
            finally:
                if self._udp is not None:
                    self._schedule(delay, callback, jitter)

        due = self.loop.time() + (delay * (0.5 + random.random()) if jitter else delay)
        handle = self.loop.call_at(due, run)
        self._timers.append(handle)

    @property
    def timer_errors(self) -> int:
        return self.fault.count

    def _report_tick(self) -> None:
        now, ntp = time.monotonic(), ntp_now()
        for transport in self.reports.take():
            try:
                if transport.state != "closed":  # closed since its round began
                    transport.send_reports(now, ntp)
            except Exception:
                self.fault("RTCP reports", transport.id)

    def _twcc_tick(self) -> None:
        """Transport-cc feedback to the publishers that number their packets."""
        for transport in list(self.transports.values()):
            if transport.twcc is not None:
                try:
                    transport.send_transport_feedback()
                except Exception:
                    self.fault("transport-cc feedback", transport.id)

    def _nack_tick(self) -> None:
        pending = self.link.nack_pending
        if not pending:
            return
        now = time.monotonic()
        for producer in list(pending):
            try:
                if producer.closed:
                    pending.discard(producer)
                    continue
                seqs = producer.due_nacks(now)
                if seqs:
                    producer.transport.send_nacks(producer, seqs)
                if not producer.missing:
                    pending.discard(producer)
            except Exception:
                pending.discard(producer)  # its gaps are given up, not retried
                producer.missing.clear()
                self.fault("NACKs", producer.id)

    def _consent_tick(self) -> None:
        """RFC 7675: a connection that was up and has had no authenticated check for
        consent_timeout is closed. A transport that never saw a check is left alone: it
        belongs to a session that is waiting (nothing to carry yet, a client still setting
        up) and closes with that session, never by a timer."""
        now = time.monotonic()
        limit = now - self.config.consent_timeout
        for transport in list(self.transports.values()):
            last = transport.last_stun
            if last is not None and last < limit:
                log.info("transport %s: no ICE check for %.1f s, consent expired", transport.id,
                         now - last)
                try:
                    transport.close(CONSENT_EXPIRED)
                except Exception:
                    self.fault("consent expiry", transport.id)
                    if self.transports.get(transport.id) is transport:
                        self.on_transport_closed(transport, CONSENT_EXPIRED)  # gone all the same

    # ---- control (the calls of control.py, through local_control.py) -------------------

    def create_router(self, exclude: tuple[str, ...] = ()) -> str:
        if self.config.id_prefix in exclude:
            raise MediaError("no media worker available")
        router = Router(new_id("rt", self.config.id_prefix))
        self.routers[router.id] = router
        return router.id

    def worker_of(self, some_id: str) -> str:
        """Ours: this call reached the worker that made the id."""
        return self.config.id_prefix

    def close_router(self, router_id: str) -> None:
        router = self.routers.pop(router_id, None)
        if router is not None:
            router.close()
            for pipe in [p for p in self.pipes.values() if p.router_id == router_id]:
                pipe.close()

    def create_transport(self, router_id: str) -> TransportInfo:
        router = self._router(router_id)
        transport = WebRtcTransport(self, new_id("tr", self.config.id_prefix), router_id)
        self.transports[transport.id] = transport
        router.transports[transport.id] = transport
        self.register_ufrag(transport)
        return self.transport_info(transport.id)

    def transport_info(self, transport_id: str) -> TransportInfo:
        t = self._transport(transport_id)
        ip = self.config.candidate_ip
        candidates = [IceCandidate(ip=ip, port=self.port)]
        if self.tcp is not None:  # after UDP, with a lower priority (RFC 6544)
            candidates.append(IceCandidate(ip=ip, port=self.tcp.port, protocol="tcp",
                                           priority=TCP_PRIORITY, foundation="2",
                                           tcptype="passive"))
        return TransportInfo(t.id, t.local_ufrag, t.local_pwd, self.certificate.fingerprint,
                             candidates)

    def connect_transport(self, transport_id: str, remote: RemoteParams) -> None:
        self._transport(transport_id).connect(remote)

    def restart_ice(self, transport_id: str) -> TransportInfo:
        self._transport(transport_id).restart_ice()
        return self.transport_info(transport_id)

    def close_transport(self, transport_id: str) -> None:
        transport = self.transports.get(transport_id)
        if transport is not None:
            transport.close(CLOSED_BY_SIGNALLING)

    def produce(self, transport_id: str, params: ProducerParams) -> str:
        transport = self._transport(transport_id)
        router = self._router(transport.router_id)
        for ssrc in (params.ssrc, params.rtx_ssrc,
                     *(s for e in params.encodings for s in (e.ssrc, e.rtx_ssrc))):
            if ssrc is not None and (ssrc in transport.producers_by_ssrc or
                                     ssrc in transport.rtx_by_ssrc):
                raise MediaError(f"ssrc {ssrc} is already produced on this transport")
        if params.ssrc is not None and params.ssrc == params.rtx_ssrc:
            raise MediaError(f"ssrc {params.ssrc} given for both media and retransmissions")
        producer = Producer(new_id("pr", self.config.id_prefix), transport, self.link, params,
                            router.id)
        transport.add_producer(producer)
        router.producers[producer.id] = producer
        self.producers[producer.id] = producer
        return producer.id

    def close_producer(self, producer_id: str) -> None:
        producer = self.producers.get(producer_id)
        if producer is not None:
            producer.close()

    def pause_producer(self, producer_id: str, paused: bool) -> None:
        producer = self._producer(producer_id)
        was_paused, producer.paused = producer.paused, paused
        if was_paused and not paused:
            for consumer in producer.consumers:
                consumer.restart()
            producer.request_keyframes()

    def consume(self, transport_id: str, producer_id: str, params: ConsumerParams) -> ConsumerInfo:
        transport = self._transport(transport_id)
        producer = self._producer(producer_id)
        if producer.router_id != transport.router_id:
            raise MediaError("producer and transport are in different routers")
        kind = SimulcastConsumer if len(producer.streams) > 1 else Consumer
        consumer = kind(new_id("co", self.config.id_prefix), producer, transport, self.link,
                        params)
        transport.add_consumer(consumer)
        producer.add_consumer(consumer)
        self.consumers[consumer.id] = consumer
        if not consumer.paused and transport.srtp is not None:
            # Not yet connected: the request waits for DTLS (_on_dtls_connected). Sent now, its
            # keyframe would pass before the subscriber can take it, and the throttle would hold
            # the next request back by up to KEYFRAME_INTERVAL.
            consumer.ask_keyframe()
        return ConsumerInfo(consumer.id, producer.id, consumer.kind, consumer.ssrc,
                            consumer.rtx_ssrc, consumer.cname)

    def pause_consumer(self, consumer_id: str, paused: bool) -> None:
        self._consumer(consumer_id).hold("app", paused)

    def set_consumer_view(self, consumer_id: str, visible: bool, width: int, height: int
                          ) -> None:
        check_view(visible, width, height)
        self._consumer(consumer_id).set_view(visible, width, height)

    def set_preferred_layers(self, consumer_id: str, spatial: int, temporal: int) -> None:
        check_int(spatial, 0, MAX_ENCODINGS - 1, "spatial")
        check_int(temporal, 0, MAX_TEMPORAL_LAYER, "temporal")
        self._consumer(consumer_id).set_preferred_layers(spatial, temporal)

    def close_consumer(self, consumer_id: str) -> None:
        consumer = self.consumers.get(consumer_id)
        if consumer is not None:
            consumer.close()

    def forget_consumer(self, consumer: BaseConsumer) -> None:
        if self.consumers.pop(consumer.id, None) is not None:
            self.retired.update(consumer_counters(consumer))

    def forget_producer(self, producer: Producer) -> None:
        if self.producers.pop(producer.id, None) is not None:
            self.retired.update(producer_counters(producer))
        router = self.routers.get(producer.router_id)
        if router is not None:
            router.producers.pop(producer.id, None)
        self.link.nack_pending.discard(producer)

    def request_keyframe(self, producer_id: str) -> None:
        self._producer(producer_id).request_keyframes()

    # ---- pipes between workers ----------------------------------------------------------

    async def create_pipe_transport(self, router_id: str) -> PipeInfo:
        self._router(router_id)
        pipe = PipeTransport(self, new_id("pp", self.config.id_prefix), router_id)
        host = self.config.host if self.config.host not in ("0.0.0.0", "::") else "127.0.0.1"
        port = await pipe.start(host)
        self.pipes[pipe.id] = pipe
        return PipeInfo(pipe.id, host, port)

    def connect_pipe_transport(self, pipe_id: str, ip: str, port: int) -> None:
        self._pipe(pipe_id).connect(ip, port)

    def close_pipe_transport(self, pipe_id: str) -> None:
        pipe = self.pipes.get(pipe_id)
        if pipe is not None:
            pipe.close()

    def pipe_consume(self, pipe_id: str, producer_id: str,
                     every_encoding: bool = False) -> ProducerParams:
        """Send a Producer into the pipe; returns what the far side mirrors it with: a
        simulcast one as one stream (SimulcastPipeConsumer), or with `every_encoding` (an edge
        worker's subscribers choose layers there) each encoding on an SSRC of its own."""
        pipe = self._pipe(pipe_id)
        producer = self._producer(producer_id)

        def make(kind: type[PipeConsumer], *layer: int) -> PipeConsumer:
            return kind(new_id("co", self.config.id_prefix), producer, pipe, self.link, *layer)

        if len(producer.streams) < 2:
            consumers = [make(PipeConsumer)]
        elif every_encoding:
            consumers = [make(EncodingPipeConsumer, s.layer) for s in producer.streams]
        else:
            consumers = [make(SimulcastPipeConsumer)]
        for consumer in consumers:
            pipe.add_consumer(consumer)
            producer.add_consumer(consumer)
            producer.report_listeners = (*producer.report_listeners, consumer)
            self.consumers[consumer.id] = consumer
            consumer.ask_keyframe()
        return pipe.mirror_params(consumers)

    def pipe_produce(self, pipe_id: str, params: ProducerParams) -> str:
        """The mirror of a far Producer, fed by the pipe, in the pipe's Router."""
        pipe = self._pipe(pipe_id)
        router = self._router(pipe.router_id)
        producer = Producer(new_id("pr", self.config.id_prefix), pipe, self.link, params,
                            router.id)
        pipe.add_producer(producer)
        router.producers[producer.id] = producer
        self.producers[producer.id] = producer
        return producer.id

    def stats(self) -> dict[str, int]:
        return worker_stats(self)

    def dump(self) -> MediaDump:
        return worker_dump(self)

    def _pipe(self, pipe_id: str) -> PipeTransport:
        return _find(self.pipes, pipe_id, "pipe transport")

    def _router(self, router_id: str) -> Router:
        return _find(self.routers, router_id, "router")

    def _transport(self, transport_id: str) -> WebRtcTransport:
        return _find(self.transports, transport_id, "transport")

    def _producer(self, producer_id: str) -> Producer:
        return _find(self.producers, producer_id, "producer")

    def _consumer(self, consumer_id: str) -> BaseConsumer:
        return _find(self.consumers, consumer_id, "consumer")


def _find(table: dict[str, T], key: str, what: str) -> T:
    """`table[key]`, or the MediaError a control call answers with."""
    found = table.get(key)
    if found is None:
        raise MediaError(f"no {what} {key}")
    return found
