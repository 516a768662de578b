"""PipeTransport: plain RTP between two Routers on different workers (DESIGN.md section 7).

A webinar larger than one worker keeps its presenters' Producers on the first worker and
mirrors them into Routers on other workers, each serving a share of the audience. The origin
side sends every packet of a piped Producer unchanged but for the SSRC; the far side receives
it into a mirror Producer with its own retransmission cache. Keyframe requests and NACKs flow
back through the same socket. Loopback or a private network only: it is not encrypted.

A simulcast Producer goes to an edge worker with every encoding (`EncodingPipeConsumer`, one
SSRC each), so that the edge's subscribers get the layer and temporal layers their own links
and tiles call for, as on the origin; into the recorder it goes as one stream
(`simulcast.SimulcastPipeConsumer`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from typing import TYPE_CHECKING

from .consumer import MAX_NACK_SEQS, BaseConsumer
from .params import Encoding, ParamsError, ProducerParams, check_int
from .rtp.packet import payload_offset
from .rtp.rtcp import Nack, Pli, SenderReport, build_nack, build_pli, build_sr, parse_compound

if TYPE_CHECKING:
    from .links import WorkerLink
    from .producer import Producer, RecvStream
    from .worker import Worker


class PipeConsumer(BaseConsumer):
    """Origin side: copies one Producer's packets into the pipe under a fixed SSRC, plain RTP."""

    transport: PipeTransport

    def __init__(self, consumer_id: str, producer: Producer, pipe: PipeTransport,
                 link: WorkerLink) -> None:
        super().__init__(consumer_id, producer, pipe, link)
        self.ssrc = random.getrandbits(32) or 1
        self._ssrc_bytes = self.ssrc.to_bytes(4, "big")
        self.started = True  # every packet goes on, whatever it is: the far side's consumers wait

    def forward(self, data: bytes, payload: memoryview, seq: int, ts: int,
                abs_time: bytes | None, level: bytes | None, now: float) -> None:
        packet = data[:8] + self._ssrc_bytes + data[12:]
        self.packets += 1
        self.bytes += len(packet)
        self.transport.send_rtp(packet)

    def on_sender_report(self, report: SenderReport) -> None:
        if report.ssrc != self.stream.ssrc and len(self.producer.streams) > 1:
            return  # another encoding's
        self.transport.send_rtcp(build_sr(self.ssrc, report.ntp_timestamp, report.rtp_timestamp,
                                          self.packets, self.bytes))

    def on_nack(self, seqs: list[int]) -> None:
        self.nacks_received += 1
        buffer = self.stream.buffer
        if buffer is None:
            return
        for seq in seqs[:MAX_NACK_SEQS]:
            data = buffer.get(seq)
            if data is not None:
                self.retransmitted += 1
                self.transport.send_rtp(data[:8] + self._ssrc_bytes + data[12:])


class EncodingPipeConsumer(PipeConsumer):
    """Origin side, towards an edge worker: one encoding of a simulcast Producer under an SSRC
    of its own (its packets, its keyframe requests, its NACKs, its sender reports)."""

    def __init__(self, consumer_id: str, producer: Producer, pipe: PipeTransport,
                 link: WorkerLink, layer: int) -> None:
        super().__init__(consumer_id, producer, pipe, link)
        self.stream = producer.streams[layer]

    def listens(self, layer: int) -> bool:
        return layer == self.stream.layer

    def forward(self, data: bytes, payload: memoryview, seq: int, ts: int,
                abs_time: bytes | None, level: bytes | None, now: float) -> None:
        if self.producer.arriving is self.stream:
            super().forward(data, payload, seq, ts, abs_time, level, now)


class PipeTransport(asyncio.DatagramProtocol):
    def __init__(self, worker: Worker, pipe_id: str, router_id: str) -> None:
        self.worker = worker
        self.id = pipe_id
        self.router_id = router_id
        self.remote: tuple[str, int] | None = None
        self.udp: asyncio.DatagramTransport | None = None
        self.port = 0
        self.producers: dict[str, Producer] = {}
        self.producers_by_ssrc: dict[int, RecvStream] = {}  # each encoding's, by its SSRC
        self.consumers_by_ssrc: dict[int, PipeConsumer] = {}
        self.rtcp_ssrc = random.getrandbits(32) or 1
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0
        self.rtcp_in = self.rtcp_out = self.srtp_errors = self.nacks_sent = self.plis_sent = 0
        self.closed = False

    async def start(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        self.port = self.udp.get_extra_info("sockname")[1]
        return self.port

    def connect(self, ip: str, port: int) -> None:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ParamsError(f"pipe address must be an IP address, not {ip!r:.40}") from None
        check_int(port, 1, 65535, "pipe port")
        self.remote = (ip, port)

    # ---- packets ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if addr != self.remote or len(data) < 12:
            self.worker.dropped += 1
            return
        try:
            if 191 < data[1] < 224:
                self._on_rtcp(data)
                return
            producer = self.producers_by_ssrc.get(int.from_bytes(data[8:12], "big"))
            if producer is None:
                self.worker.dropped += 1
                return
            self.packets_in += 1
            self.bytes_in += len(data)
            payload_offset(data)  # reject malformed headers before they reach consumers
            producer.receive(data, time.monotonic())
        except ValueError:
            self.worker.dropped += 1
        except Exception:  # as in Worker.datagram_received: counted, never raised
            self.worker.errors += 1

    def _on_rtcp(self, data: bytes) -> None:
        self.rtcp_in += 1
        now = time.monotonic()
        for item in parse_compound(data):
            if isinstance(item, Pli):
                consumer = self.consumers_by_ssrc.get(item.media_ssrc)
                if consumer is not None:
                    consumer.request_keyframe()
            elif isinstance(item, Nack):
                consumer = self.consumers_by_ssrc.get(item.media_ssrc)
                if consumer is not None:
                    consumer.on_nack(item.seqs)
            elif isinstance(item, SenderReport):
                producer = self.producers_by_ssrc.get(item.ssrc)
                if producer is not None:
                    producer.on_sender_report(item, now)

    def send_rtp(self, packet: bytes) -> None:
        if self.udp is not None and self.remote is not None:
            self.packets_out += 1
            self.bytes_out += len(packet)
            self.udp.sendto(packet, self.remote)

    def send_rtcp(self, packet: bytes) -> None:
        if self.udp is not None and self.remote is not None:
            self.rtcp_out += 1
            self.udp.sendto(packet, self.remote)

    def send_keyframe_request(self, producer: Producer) -> None:
        if producer.ssrc is not None:
            self.plis_sent += 1
            self.send_rtcp(build_pli(self.rtcp_ssrc, producer.ssrc))

    def send_nacks(self, producer: Producer, seqs: list[int]) -> None:
        if producer.ssrc is not None:
            self.nacks_sent += 1
            self.send_rtcp(build_nack(self.rtcp_ssrc, producer.ssrc, seqs))

    def send_reports(self, now: float, ntp: int) -> None:
        pass  # the pipe carries the origin's sender reports; nothing else is needed

    # ---- control ------------------------------------------------------------------------

    def add_consumer(self, consumer: PipeConsumer) -> None:
        self.consumers_by_ssrc[consumer.ssrc] = consumer

    def remove_consumer(self, consumer: BaseConsumer) -> None:
        for ssrc, c in list(self.consumers_by_ssrc.items()):
            if c is consumer:
                del self.consumers_by_ssrc[ssrc]

    def add_producer(self, producer: Producer) -> None:
        self.producers[producer.id] = producer
        for stream in producer.streams:
            if stream.ssrc is not None:
                self.producers_by_ssrc[stream.ssrc] = stream

    def remove_producer(self, producer: Producer) -> None:
        self.producers.pop(producer.id, None)
        for stream in producer.streams:
            if stream.ssrc is not None and self.producers_by_ssrc.get(stream.ssrc) is stream:
                del self.producers_by_ssrc[stream.ssrc]

    def mirror_params(self, consumers: list[PipeConsumer]) -> ProducerParams:
        """What the far side needs to build the mirror Producer: one stream, or the encodings
        of `consumers` (EncodingPipeConsumer), lowest first."""
        p = consumers[0].producer.params
        if len(consumers) == 1:
            return ProducerParams(kind=p.kind, mid=p.mid, codec=p.codec, ssrc=consumers[0].ssrc,
                                  rtx_ssrc=None, extensions=p.extensions, cname=p.cname,
                                  source=p.source)
        return ProducerParams(kind=p.kind, mid=p.mid, codec=p.codec, extensions=p.extensions,
                              cname=p.cname, source=p.source,
                              encodings=[Encoding(ssrc=c.ssrc) for c in consumers])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for consumer in list(self.consumers_by_ssrc.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            producer.close()
        if self.udp is not None:
            self.udp.close()
        self.worker.pipes.pop(self.id, None)
