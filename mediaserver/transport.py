"""WebRtcTransport: one RTCPeerConnection's ICE-lite state, DTLS handshake and SRTP contexts.

The Worker hands it datagrams already demultiplexed by remote address (RFC 7983 first-byte
ranges); RTP goes to Producers by SSRC, RTCP is terminated here and turned into calls on
Producers and Consumers. Sending goes straight to the Worker's socket.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

from aioice import stun

from . import ice
from .bwe.estimator import SendSideEstimator
from .bwe.history import SendHistory
from .dtls import DtlsEndpoint
from .params import RemoteParams
from .rtp.packet import EXT_MID, EXT_REPAIRED_RID, EXT_RID, EXT_TRANSPORT_CC, find_extension
from .rtp.rtcp import (
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    SenderReport,
    TransportCc,
    build_fir,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes_cname,
    ntp_now,
    ntp_to_middle32,
    parse_compound,
)
from .rtp.twcc import TwccRecorder, tcc_seq_of
from .sendbatch import Outbound
from .srtp import SrtpError, SrtpPair
from .tcp import TcpAddr

if TYPE_CHECKING:
    from .allocation import TransportAllocator
    from .consumer import BaseConsumer, Consumer
    from .producer import Producer, RecvStream
    from .worker import Worker

log = logging.getLogger(__name__)

START_RATE = 300_000  # bit/s a subscriber's estimate starts at
MAX_EARLY_DTLS = 8  # DTLS records kept while the peer's SDP answer is still on its way
MAX_EARLY_DTLS_BYTES = 16 * 1024  # a ClientHello flight is a few hundred bytes to a few KiB
# Remote addresses one transport answers from at once. A browser checks from each of its
# candidates that reaches us (host addresses of each interface, server reflexive, relayed):
# a handful. Past this the least recently checked address (never the nominated one) is
# forgotten, so a peer that passes checks from thousands of source addresses grows nothing.
MAX_ADDRS = 16


class WebRtcTransport:
    def __init__(self, worker: Worker, transport_id: str, router_id: str) -> None:
        self.worker = worker
        self.id = transport_id
        self.router_id = router_id
        self.local_ufrag, self.local_pwd = ice.new_credentials()
        self.remote: RemoteParams | None = None
        self.addrs: set[tuple] = set()
        self._addr_checked: dict[tuple, float] = {}  # addrs -> time of its last valid check
        self.addr: tuple | None = None
        self.state = "new"  # new -> connected (DTLS done) -> closed
        # When the last authenticated check arrived; None until the first one. Consent
        # freshness (RFC 7675) is about a connection that was up: one that never saw a check
        # (its peer has nothing to send or receive yet) has no consent to lose.
        self.last_stun: float | None = None
        self.dtls: DtlsEndpoint | None = None
        self.srtp: SrtpPair | None = None
        # its end of the fan-out in C: SRTP session and buffer, UDP address, transport-cc
        # numbering and history, counters (sendbatch.py); sends once keyed and addressed
        self.out = Outbound()
        self._early_dtls: list[bytes] = []
        self._early_dtls_bytes = 0
        self.rtcp_ssrc = random.getrandbits(32) or 1
        self.rtcp_cname = f"ms-{transport_id}"
        self.producers: dict[str, Producer] = {}
        # each encoding's receive stream by SSRC (a Producer is the stream of its first)
        self.producers_by_ssrc: dict[int, RecvStream] = {}
        self.rtx_by_ssrc: dict[int, RecvStream] = {}
        self.producers_by_mid: dict[str, Producer] = {}
        self.mid_ext_id = 0
        self.rid_ext_id = self.rrid_ext_id = 0  # simulcast: rid and repaired rid (RFC 8852)
        self.consumers: dict[str, Consumer] = {}
        self.consumers_by_ssrc: dict[int, Consumer] = {}
        # Send-side bandwidth estimation: what went out under each transport-wide seq
        # (each copy's send records it), read back when the peer's transport-cc feedback comes.
        self.tcc_history = SendHistory()
        # Until the first feedback it starts low (what libwebrtc starts at) and probes up.
        self.bwe = SendSideEstimator(initial=START_RATE)
        self.sends_tcc = False  # a consumer negotiated transport-cc: an estimate will come
        # the bandwidth allocator of its consumers (allocation.py), made at its first round
        self.allocator: TransportAllocator | None = None
        # Bytes of resends the link has room for until the next allocation round (no limit
        # before one) and those sent so far (Consumer._resend_allowed).
        self.resend_allowance: float = float("inf")
        self.resent_bytes = 0
        self.resends_over_budget = 0
        self.twcc_errors = 0
        # A publisher that numbers its packets (transport-cc negotiated): their arrival times,
        # sent back as feedback by a worker timer so its encoder follows its uplink.
        self.twcc: TwccRecorder | None = None
        self.tcc_ext_id = 0
        self.max_bitrate = worker.config.max_incoming_bitrate
        # counters (read at scrape time, never pushed from the packet path)
        self.packets_in = self.bytes_in = 0
        self.rtcp_in = self.rtcp_out = 0
        self.srtp_errors = 0
        self.path_changes = 0  # nominations that moved a connected transport's media
        self.unknown_ssrc = 0
        self.nacks_sent = 0
        self.plis_sent = 0
        self.close_reason = ""

    # ---- control ------------------------------------------------------------------------

    def connect(self, remote: RemoteParams) -> None:
        """Apply the peer's ICE credentials and DTLS fingerprints from its SDP."""
        restart = self.remote is not None and remote.ice_ufrag != self.remote.ice_ufrag
        self.remote = remote
        if restart:
            # ICE restart (RFC 8445 9): the peer may move; DTLS and SRTP continue.
            for addr in list(self.addrs):
                self.forget_addr(addr)
            return
        if self.dtls is not None:
            return
        self.dtls = DtlsEndpoint(
            self.worker.certificate,
            remote.dtls_role,
            remote.fingerprints,
            send=self._send_raw,
            on_connected=self._on_dtls_connected,
            on_failed=self._on_dtls_failed,
        )
        if remote.dtls_role == "server" or self.addr is not None:
            self.dtls.start()
        early, self._early_dtls, self._early_dtls_bytes = self._early_dtls, [], 0
        for data in early:
            self.dtls.receive(data)

    def restart_ice(self) -> tuple[str, str]:
        """New local credentials for an ICE restart; the old ufrag stops being accepted."""
        self.worker.unregister_ufrag(self.local_ufrag)
        self.local_ufrag, self.local_pwd = ice.new_credentials()
        self.worker.register_ufrag(self)
        return self.local_ufrag, self.local_pwd

    def add_producer(self, producer: Producer) -> None:
        self.producers[producer.id] = producer
        self.producers_by_mid[producer.params.mid] = producer
        for stream in producer.streams:
            if stream.ssrc is not None:
                self.producers_by_ssrc[stream.ssrc] = stream
            if stream.rtx_ssrc is not None:
                self.rtx_by_ssrc[stream.rtx_ssrc] = stream
        exts = producer.params.extensions
        self.mid_ext_id = exts.get(EXT_MID, self.mid_ext_id)
        self.rid_ext_id = exts.get(EXT_RID, self.rid_ext_id)
        self.rrid_ext_id = exts.get(EXT_REPAIRED_RID, self.rrid_ext_id)
        if exts.get(EXT_TRANSPORT_CC) and self.twcc is None:
            self.tcc_ext_id, self.twcc = exts[EXT_TRANSPORT_CC], TwccRecorder()

    def remove_producer(self, producer: Producer) -> None:
        self.producers.pop(producer.id, None)
        if self.producers_by_mid.get(producer.params.mid) is producer:
            del self.producers_by_mid[producer.params.mid]
        for table in (self.producers_by_ssrc, self.rtx_by_ssrc):
            for ssrc in [s for s, p in table.items() if p.producer is producer]:
                del table[ssrc]

    def add_consumer(self, consumer: Consumer) -> None:
        self.consumers[consumer.id] = consumer
        self.consumers_by_ssrc[consumer.ssrc] = consumer
        self.sends_tcc = self.sends_tcc or consumer._tcc
        if consumer.rtx_ssrc is not None:
            self.consumers_by_ssrc[consumer.rtx_ssrc] = consumer

    def remove_consumer(self, consumer: BaseConsumer) -> None:
        self.consumers.pop(consumer.id, None)
        self.consumers_by_ssrc.pop(consumer.ssrc, None)
        if consumer.rtx_ssrc is not None:
            self.consumers_by_ssrc.pop(consumer.rtx_ssrc, None)

    def close(self, reason: str = "closed") -> None:
        if self.state == "closed":
            return
        self.state = "closed"
        self.close_reason = reason
        if self.allocator is not None:
            self.allocator.prober.stop(success=False)
        for consumer in list(self.consumers.values()):
            consumer.close()
        for producer in list(self.producers.values()):
            producer.close()
        if self.dtls is not None:
            self.dtls.close()
        self.worker.on_transport_closed(self, reason)

    # ---- datagrams from the Worker --------------------------------------------------------

    def on_stun(self, request: stun.Message, addr: tuple) -> None:
        remote_ufrag = self.remote.ice_ufrag if self.remote else None
        if not ice.check_request(request, self.local_ufrag, remote_ufrag, self.local_pwd):
            self.worker.sendto(ice.error_response(request, 401, "Unauthorized"), addr)
            return
        now = self.last_stun = time.monotonic()
        self._learn_addr(addr, now)
        self.worker.sendto(ice.success_response(request, addr, self.local_pwd), addr)
        # RFC 8445 7.3.1.5: the controlling agent nominates with USE-CANDIDATE; until it does,
        # the first address that passed a check is the best we know.
        if "USE-CANDIDATE" in request.attributes or self.addr is None:
            first, moved = self.addr is None, self.addr != addr
            self.addr = addr
            self._update_destination()
            if first and self.dtls is not None and self.dtls.role == "client":
                self.dtls.start()
            elif moved and self.srtp is not None:
                self._on_path_changed()

    def _on_path_changed(self) -> None:
        """Media of a connected transport moved to a new address (a network change, an ICE
        restart): what was sent meanwhile went to the old one and is lost. Each video goes on
        from a keyframe now rather than after the peer's own NACKs and PLIs time out, and the
        bandwidth estimate does not read that loss as congestion of the new path (libwebrtc
        resets its own on a route change): what was sent before is forgotten."""
        log.info("transport %s: media moved to %s", self.id, self.addr)
        self.path_changes += 1
        self.tcc_history = SendHistory()
        for consumer in self.consumers.values():
            consumer.ask_keyframe()
        for producer in self.producers.values():
            producer.request_keyframes()

    def _learn_addr(self, addr: tuple, now: float) -> None:
        checked = self._addr_checked
        checked.pop(addr, None)
        checked[addr] = now  # most recently checked last
        if addr in self.addrs:
            return
        if len(self.addrs) >= MAX_ADDRS:
            oldest = next((a for a in checked if a != self.addr and a != addr and
                           a in self.addrs), None)
            if oldest is None:  # only reached if addrs was filled by hand (tests, benchmarks)
                oldest = next(a for a in self.addrs if a != self.addr)
            self.forget_addr(oldest)
        self.addrs.add(addr)
        self.worker.register_addr(addr, self)

    def forget_addr(self, addr: tuple) -> None:
        self.addrs.discard(addr)
        self._addr_checked.pop(addr, None)
        self.worker.unregister_addr(addr, self)

    def lost_addr(self, addr: tuple) -> None:
        """An address that cannot be sent to any more (its ICE-TCP connection closed):
        forgotten, and if media went there, it goes to the most recently checked address
        left until the peer nominates one (none left: nothing is sent)."""
        self.forget_addr(addr)
        if self.addr == addr:
            self.addr = next(reversed(self._addr_checked), None)
            self._update_destination()

    def on_dtls(self, data: bytes) -> None:
        if self.dtls is None:
            size = self._early_dtls_bytes + len(data)
            if len(self._early_dtls) < MAX_EARLY_DTLS and size <= MAX_EARLY_DTLS_BYTES:
                self._early_dtls.append(data)
                self._early_dtls_bytes = size
            return
        self.dtls.receive(data)

    def on_srtp(self, data: bytes) -> None:
        srtp = self.srtp
        if srtp is None or len(data) < 12:  # 12: the smallest RTP header, above any SRTCP
            return
        if 191 < data[1] < 224:
            self._on_rtcp(data)
            return
        try:
            plain = srtp.unprotect(data)
        except SrtpError:
            self.srtp_errors += 1
            return
        self.packets_in += 1
        self.bytes_in += len(data)
        if self.twcc is not None:  # RTX and not yet bound SSRCs too: all of the uplink
            tcc = tcc_seq_of(plain, self.tcc_ext_id)
            if tcc >= 0:
                self.twcc.record(tcc, int(time.monotonic() * 1_000_000))
        ssrc = int.from_bytes(plain[8:12], "big")
        producer = self.producers_by_ssrc.get(ssrc)
        if producer is not None:
            producer.receive(plain, time.monotonic())
            return
        producer = self.rtx_by_ssrc.get(ssrc)
        if producer is not None:
            producer.receive_rtx(plain, time.monotonic())
            return
        self._on_unknown_ssrc(plain, ssrc)

    def _on_unknown_ssrc(self, plain: bytes, ssrc: int) -> None:
        """Bind an SSRC that the SDP did not list, through the mid header extension, and for
        simulcast the rid or repaired rid one (RFC 8852 section 3: Chromium lists no SSRCs)."""
        self.unknown_ssrc += 1
        if not self.mid_ext_id:
            return
        mid = find_extension(plain, self.mid_ext_id)
        producer = self.producers_by_mid.get(mid.decode(errors="replace")) if mid else None
        if producer is None:
            return
        if len(producer.streams) > 1:
            self._learn_rid(producer, plain, ssrc)
            return
        if producer.ssrc is None:
            producer.ssrc = ssrc
            self.producers_by_ssrc[ssrc] = producer
            producer.receive(plain, time.monotonic())
        elif (plain[1] & 0x7F) == producer.codec.rtx_payload_type and producer.rtx_ssrc is None:
            producer.rtx_ssrc = ssrc
            self.rtx_by_ssrc[ssrc] = producer
            producer.receive_rtx(plain, time.monotonic())

    def _learn_rid(self, producer: Producer, plain: bytes, ssrc: int) -> None:
        for ext_id, rtx in ((self.rid_ext_id, False), (self.rrid_ext_id, True)):
            rid = find_extension(plain, ext_id) if ext_id else None
            if not rid:
                continue
            name = rid.decode(errors="replace")
            stream = next((s for s in producer.streams if s.rid == name), None)
            if stream is None:
                return
            if not rtx and stream.ssrc is None:
                stream.ssrc = ssrc
                self.producers_by_ssrc[ssrc] = stream
                stream.receive(plain, time.monotonic())
            elif rtx and stream.rtx_ssrc is None:
                stream.rtx_ssrc = ssrc
                self.rtx_by_ssrc[ssrc] = stream
                stream.receive_rtx(plain, time.monotonic())
            return

    def _on_rtcp(self, data: bytes) -> None:
        try:
            plain = self.srtp.unprotect_rtcp(data)  # type: ignore[union-attr]
            items = parse_compound(plain)
        except (SrtpError, ValueError):
            self.srtp_errors += 1
            return
        self.rtcp_in += 1
        now = time.monotonic()
        for item in items:
            if isinstance(item, SenderReport):
                producer = self.producers_by_ssrc.get(item.ssrc)
                if producer is not None:
                    producer.on_sender_report(item, now)
                self._on_report_blocks(item.reports)
            elif isinstance(item, ReceiverReport):
                self._on_report_blocks(item.reports)
            elif isinstance(item, Nack):
                consumer = self.consumers_by_ssrc.get(item.media_ssrc)
                if consumer is not None:
                    consumer.on_nack(item.seqs)
            elif isinstance(item, Pli):
                consumer = self.consumers_by_ssrc.get(item.media_ssrc)
                if consumer is not None:
                    consumer.request_keyframe()
            elif isinstance(item, Fir):
                for media_ssrc, _seq in item.entries:
                    consumer = self.consumers_by_ssrc.get(media_ssrc)
                    if consumer is not None:
                        consumer.request_keyframe()
            elif isinstance(item, TransportCc):
                self._on_transport_cc(item, now)
            elif isinstance(item, (Remb, Bye)):
                pass  # we estimate from transport-cc ourselves; BYE is followed by SDP changes

    def _on_report_blocks(self, blocks: list) -> None:
        if not blocks:
            return
        middle = ntp_to_middle32(ntp_now())
        for block in blocks:
            consumer = self.consumers_by_ssrc.get(block.ssrc)
            if consumer is not None:
                consumer.on_receiver_report(block.fraction_lost, block.packets_lost,
                                            block.lsr, block.dlsr, middle)

    # ---- sending ------------------------------------------------------------------------

    def _on_transport_cc(self, item: TransportCc, now: float) -> None:
        """A subscriber's transport-cc feedback about what we sent: parsed and taken into the
        estimator in one C call (bwe/native.py)."""
        try:
            self.bwe.on_fci(self.tcc_history, item.fci, now)
        except ValueError:
            self.twcc_errors += 1

    def send_transport_feedback(self) -> None:
        """What arrived from the publisher since the last call, as transport-cc feedback
        (Worker timer, every MediaConfig.twcc_interval)."""
        if self.twcc is None or self.srtp is None:
            return
        media = next((s.ssrc for p in self.producers.values() for s in p.streams if s.ssrc), 0)
        for fb in self.twcc.build(self.rtcp_ssrc, media):
            self.send_rtcp(build_rr(self.rtcp_ssrc) + fb)

    # What the fan-out's C keeps for the transport (sendbatch.Outbound), as Python reads it.
    @property
    def tcc_seq(self) -> int:
        """The transport-wide sequence number last given."""
        return self.out.c.tcc_seq

    def next_tcc_seq(self) -> int:
        c = self.out.c
        c.tcc_seq = (c.tcc_seq + 1) & 0xFFFF
        return c.tcc_seq

    @property
    def tcc_history(self) -> SendHistory:
        return self._tcc_history

    @tcc_history.setter
    def tcc_history(self, history: SendHistory) -> None:
        self._tcc_history = history
        self.out.set_history(history)

    @property
    def packets_out(self) -> int:
        return self.out.c.packets

    @property
    def bytes_out(self) -> int:
        return self.out.c.bytes

    def send_rtcp(self, packet: bytes) -> None:
        srtp, addr = self.srtp, self.addr
        if srtp is None or addr is None:
            return
        try:
            data = srtp.protect_rtcp(packet)
        except (SrtpError, ValueError):
            return
        self.rtcp_out += 1
        self.worker.sendto(data, addr)

    def _send_raw(self, data: bytes) -> None:
        if self.addr is not None:
            self.worker.sendto(data, self.addr)

    def send_keyframe_request(self, producer: RecvStream) -> None:
        if producer.ssrc is None:
            return
        self.plis_sent += 1
        if producer.codec.pli or not producer.codec.fir:
            fb = build_pli(self.rtcp_ssrc, producer.ssrc)
        else:
            producer.keyframe_requests &= 0xFF
            fb = build_fir(self.rtcp_ssrc, [(producer.ssrc, producer.keyframe_requests)])
        self.send_rtcp(build_rr(self.rtcp_ssrc) + fb)

    def send_nacks(self, producer: RecvStream, seqs: list[int]) -> None:
        if producer.ssrc is None:
            return
        self.nacks_sent += 1
        producer.nacks_sent += len(seqs)
        self.send_rtcp(build_rr(self.rtcp_ssrc) + build_nack(self.rtcp_ssrc, producer.ssrc, seqs))

    def send_reports(self, now: float, ntp: int) -> None:
        """Periodic RTCP (RFC 3550 6.2): RR (+REMB) towards publishers, SR towards subscribers.

        Each producer's block and each consumer's SR is built on its own: one that raises is
        counted by the worker and left out, the others still go. (Packing a block cannot fail:
        its fields saturate, and SSRCs are checked where they enter, params.py.)"""
        if self.srtp is None:
            return
        fault = self.worker.fault
        if self.producers:
            blocks = []
            for stream in [s for p in self.producers.values() for s in p.streams]:
                try:
                    block = stream.report_block(now)
                except Exception:
                    fault("receiver report block", stream.id)
                    continue
                if block is not None:
                    blocks.append(block)
            packet = build_rr(self.rtcp_ssrc, blocks)
            remb_ssrcs = [s.ssrc for p in self.producers.values() if p.codec.remb
                          for s in p.streams if s.ssrc]
            # A publisher sending transport-cc numbers gets feedback instead: its own estimate
            # then sets its rate, which a fixed REMB would cap.
            if remb_ssrcs and (self.twcc is None or not self.twcc.recorded):
                packet += build_remb(self.rtcp_ssrc, self.max_bitrate, remb_ssrcs)
            self.send_rtcp(packet + build_sdes_cname(self.rtcp_ssrc, self.rtcp_cname))
        for consumer in list(self.consumers.values()):
            try:
                sr = consumer.sender_report(now, ntp)
                if sr is not None:
                    self.send_rtcp(sr + build_sdes_cname(consumer.ssrc, consumer.cname))
            except Exception:
                fault("sender report", consumer.id)

    # ---- DTLS results ---------------------------------------------------------------------

    def set_connected(self, addr: tuple, srtp: SrtpPair) -> None:
        """Connected without the handshakes: `addr` as a nominating ICE check would give it and
        the SRTP contexts DTLS would key (benchmarks, and tests that read what is sent)."""
        self._learn_addr(addr, time.monotonic())
        self.addr = addr
        self._on_dtls_connected(srtp)

    def _on_dtls_connected(self, srtp: SrtpPair) -> None:
        self.srtp = srtp
        self.state = "connected"
        self._update_destination()
        log.info("transport %s connected (%s)", self.id, srtp.profile.openssl_name.decode())
        for consumer in self.consumers.values():
            if consumer.waiting_keyframe:
                consumer.ask_keyframe()

    def _update_destination(self) -> None:
        addr = self.addr
        # no sendmmsg batch for a TCP connection: each copy is left in the SRTP buffer for its
        # consumer to send (the worker's send: TcpConnection.send)
        self.out.set_path(self.srtp if addr is not None else None,
                          addr if addr.__class__ is not TcpAddr else None)

    def _on_dtls_failed(self, reason: str) -> None:
        log.warning("transport %s DTLS failed: %s", self.id, reason)
        self.close(f"dtls failed: {reason}")
