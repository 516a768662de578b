"""Consumer: one outgoing copy of a Producer towards one subscriber transport.

Rewrites SSRC, payload type, sequence number and timestamp so the subscriber sees one
continuous stream across pauses and restarts, lays out the subscriber's own header extension
ids, answers NACKs from the Producer's cache (RTX when negotiated, RFC 4588) and writes
sender reports whose NTP/RTP mapping follows the publisher's, so lip sync survives the hop.
"""

from __future__ import annotations

import random
import time
from array import array
from typing import TYPE_CHECKING

from .params import ConsumerParams
from .rtp.codecs import is_keyframe
from .rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_TRANSPORT_CC,
    U16,
    ExtensionWriter,
    payload_offset,
)
from .rtp.rtcp import build_sr
from .sendbatch import EXT_MAX, NULL, UNQUEUED, ffi, send_copy

# Sequence numbers one NACK may ask for: what a subscriber lists after a burst of loss is far
# fewer; the cap keeps one small RTCP packet from turning into the whole cache resent.
MAX_NACK_SEQS = 256
# A packet is resent at most once per round trip (mediasoup does the same): a subscriber whose
# link is full NACKs again before the first resend could arrive, and answering every NACK
# multiplied what its link had to carry (33,000 resends in 18 s measured on 400 kbit/s).
# RESEND_FLOOR when the round trip is unknown or tiny; a ring of RESEND_SLOTS outgoing seqs.
RESEND_FLOOR = 0.05
RESEND_SLOTS = 1024

# The first two header bytes of a padding packet: version 2 with the P bit.
PADDING_HEADER = b"\xa0\x00"
_PADDINGS: dict[int, tuple[bytes, memoryview]] = {}


def _padding(size: int) -> tuple[bytes, memoryview]:
    """A padding packet's first two header bytes and its `size` (1-255) bytes of padding,
    zeros then their count (RFC 3550 5.1), as (packet, view of the padding)."""
    block = _PADDINGS.get(size)
    if block is None:
        data = PADDING_HEADER + bytes(size - 1) + bytes((size,))
        block = _PADDINGS[size] = (data, memoryview(data)[2:])
    return block


if TYPE_CHECKING:
    from .links import ConsumerTransport, WorkerLink
    from .producer import Producer, RecvStream
    from .rtp.vp8 import TemporalFilter
    from .transport import WebRtcTransport


class BaseConsumer:
    """One outgoing copy of a Producer: what `Producer.consumers` holds and fans out to.

    Its kinds: `Consumer` (to a WebRTC subscriber) and `pipe.PipeConsumer` (plain RTP to
    another worker)."""

    ssrc: int
    # its state as the fan-out's C lane reads it (an `ms_copy *`, Consumer); NULL: the
    # Producer calls `forward` for every packet
    lane = NULL
    # simulcast (simulcast.py): the encoding forwarded now and the one wanted; -1: no layers
    spatial_layer = -1
    target_spatial_layer = -1
    # VP8 temporal layers (simulcast.SimulcastConsumer): which frames go out, how they are
    # numbered, and their PictureID/TL0PICIDX; None: every packet, one sequence offset
    temporal: TemporalFilter | None = None

    def __init__(self, consumer_id: str, producer: Producer, transport: ConsumerTransport,
                 link: WorkerLink) -> None:
        self.id = consumer_id
        self.producer = producer
        # the encoding it forwards: the top one, unless it switches layers (simulcast.py)
        self.stream: RecvStream = producer.streams[-1]
        self.transport = transport
        self._link = link
        self.kind = producer.kind
        # Forwarding stops while anything holds it (`hold`): "app" (pause_consumer), "view"
        # (the subscriber's tile is hidden), "budget" (its link has no room: allocation.py).
        self.holds: set[str] = set()
        self.paused = False  # = bool(holds): the one flag the packet path reads
        # the subscriber's tile: shown or not, its size in device pixels (0: unknown)
        self.visible = True
        self.tile: tuple[int, int] | None = None
        self.closed = False
        self.started = False
        self.waiting_keyframe = False
        self.rtx_ssrc: int | None = None  # retransmissions go under their own SSRC (RFC 4588)
        # counters read by stats and metrics
        self.packets = 0
        self.bytes = 0
        self.retransmitted = 0
        self.nacks_received = 0
        self.plis_received = 0

    def forward(self, data: bytes, payload: memoryview, seq: int, ts: int,
                abs_time: bytes | None, level: bytes | None, now: float) -> None:
        """One packet of the producer on the packet path; `payload` is a view into `data`."""
        raise NotImplementedError

    def on_nack(self, seqs: list[int]) -> None:
        raise NotImplementedError

    def request_keyframe(self) -> None:
        """The subscriber asked for one (PLI or FIR)."""
        self.plis_received += 1
        self.ask_keyframe()

    def ask_keyframe(self) -> None:
        """Have the publisher send the keyframe this consumer needs, on the encoding it needs
        it from (merged with other consumers' requests per encoding: RecvStream)."""
        self.stream.request_keyframe()

    def set_preferred_layers(self, spatial: int, temporal: int) -> None:
        """Only a consumer of several encodings has layers to choose from (simulcast.py)."""

    def aim(self, spatial: int) -> None:
        """The allocator's choice of encoding (simulcast.py)."""

    def aim_temporal(self, temporal: int) -> None:
        """The allocator's choice of VP8 temporal layers (simulcast.py)."""

    max_spatial_layer = 0

    def _resend_allowed(self, size: int) -> bool:
        """Whether the subscriber's link has room for a resend of `size` bytes (Consumer)."""
        return True

    def listens(self, layer: int) -> bool:
        """Whether packets of encoding `layer` can concern it (simulcast.py narrows it)."""
        return True

    def awaits_keyframe(self, stream: RecvStream) -> bool:
        """Whether nothing goes out until a keyframe of `stream` comes (one asked for and
        not come is asked for again, RecvStream)."""
        return self.waiting_keyframe and not self.started and not self.paused

    def layers_changed(self) -> None:
        """An encoding of the producer started or stopped arriving (simulcast.py)."""

    def restart(self) -> None:
        """The producer resumed: start again, on a keyframe for video."""
        self.started = False
        self.waiting_keyframe = self.kind == "video"

    def hold(self, reason: str, on: bool) -> None:
        """Pause for `reason`, or lift it; forwarding resumes when nothing holds it."""
        if on:
            self.holds.add(reason)
        else:
            self.holds.discard(reason)
        if self.holds and not self.paused:
            self.pause()
        elif not self.holds and self.paused:
            self.resume()

    def set_view(self, visible: bool, width: int, height: int) -> None:
        """The subscriber's tile: a hidden one is held ("view"); its size caps the layer the
        allocator gives it."""
        self.visible = visible
        self.tile = (width, height) if visible and width and height else None
        self.hold("view", not visible and self.kind == "video")

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def sender_report(self, now: float, ntp_now: int) -> bytes | None:
        return None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.producer.remove_consumer(self)
        self.transport.remove_consumer(self)
        self._link.consumer_closed(self)


def _c_field(name: str, kind: type = int) -> property:
    """An attribute kept in the C struct `_c`, for code off the packet path (which reads
    `self._c` itself: a property call per access would slow it)."""
    return property(lambda self: kind(getattr(self._c, name)),
                    lambda self, value: setattr(self._c, name, value))


class Renumbering(BaseConsumer):
    """An output stream with its own SSRC, sequence numbers and timestamps, continuous across
    restarts and simulcast switches: `forward` rewrites, `on_nack` maps back to the cache;
    each kind writes and sends the packet in its `_send` (`Consumer`: SRTP to a subscriber,
    `simulcast.SimulcastPipeConsumer`: plain RTP into a pipe).

    The numbering lives in a C struct (`_c`, an `ms_copy`): for a `Consumer` the fan-out's C
    lane (native/fanout.c `ms_fan`) forwards the steady case from it with no Python, and
    `forward` here is the rest (starts, switches, windows moved, temporal decisions) and the
    reference the lane is tested against (tests/test_fanout_lane.py)."""

    codec_name: str
    payload_type: int
    rtx_payload_type: int | None
    rtx_seq: int

    started = _c_field("started", bool)
    paused = _c_field("paused", bool)
    seq_offset = _c_field("seq_offset")
    ts_offset = _c_field("ts_offset")
    start_seq = _c_field("start_seq")
    next_seq = _c_field("next_seq")
    last_ts = _c_field("last_ts")
    last_in_ts = _c_field("last_in_ts")
    last_time = _c_field("last_time", float)

    def __init__(self, *args: object) -> None:
        self._c = ffi.new("ms_copy *")  # before BaseConsumer sets `started` and `paused`
        super().__init__(*args)  # type: ignore[arg-type]

    def _send(self, data: bytes, payload: memoryview, seq: int, ts: int,
              abs_time: bytes | None, level: bytes | None, ssrc: int, pt: int,
              prefix: bytes, now: float) -> None:
        raise NotImplementedError

    def _init_numbering(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.resends_skipped = 0  # NACKed again within a round trip of the last resend
        self.rtt: float | None = None  # from receiver reports, where there are any
        # out seq -> when it was last resent; made at the first NACK (most links never NACK)
        self._resent_seq: array[int] | None = None
        self._resent_at: array[float] | None = None
        c = self._c
        c.seq_offset = c.ts_offset = c.start_seq = c.last_in_ts = 0
        c.next_seq = random.getrandbits(15)  # RFC 3550: random initial values
        c.last_ts = random.getrandbits(31)
        c.last_time = 0.0

    def _start(self, seq: int, ts: int, now: float) -> None:
        """Map the producer's numbering onto ours so our output stays continuous: the next
        sequence number, and a timestamp advanced by the wall-clock time since the last packet
        (a new encoding's RTP clock has a random base of its own, RFC 3550 section 5.1)."""
        c = self._c
        c.seq_offset = (c.next_seq - seq) & 0xFFFF
        if c.last_time:
            elapsed = int((now - c.last_time) * self.clock_rate)
            out_ts = (c.last_ts + max(1, elapsed)) & 0xFFFFFFFF
        else:
            out_ts = c.last_ts
        c.ts_offset = (out_ts - ts) & 0xFFFFFFFF
        c.start_seq = seq
        c.started = 1

    # ---- packet path ------------------------------------------------------------------

    def forward(self, data: bytes, payload: memoryview, seq: int, ts: int,
                abs_time: bytes | None, level: bytes | None, now: float) -> None:
        c = self._c
        if c.paused:
            return
        if not c.started:
            if self.waiting_keyframe and not is_keyframe(self.codec_name, payload[:64]):
                return
            self._start(seq, ts, now)
        elif ((seq - c.start_seq) & 0xFFFF) >= 0x8000:
            # From before this consumer (re)started (its output seq would collide), or half
            # the sequence space on: a packet newer than the last forwarded one moves the
            # window on (once every 16384 packets), any other is dropped.
            if ((seq + c.seq_offset - c.next_seq) & 0xFFFF) >= 0x8000:
                return
            c.start_seq = (seq - 0x4000) & 0xFFFF
        temporal = self.temporal
        if temporal is None:
            out_seq = (seq + c.seq_offset) & 0xFFFF
            prefix: bytes | memoryview = b""
        else:
            offset = temporal.admit(seq, ts, data, payload)
            c.seq_offset = temporal._c.offset  # dropped packets move it down
            if offset < 0:
                return
            out_seq = (seq + offset) & 0xFFFF
            prefix, payload = temporal.prefix, temporal.rest  # the rewritten descriptor
        out_ts = (ts + c.ts_offset) & 0xFFFFFFFF
        if ((out_seq - c.next_seq) & 0xFFFF) < 0x8000:
            c.next_seq = (out_seq + 1) & 0xFFFF
            c.last_ts = out_ts
            c.last_in_ts = ts
            c.last_time = now
        self._send(data, payload, out_seq, out_ts, abs_time, level, self.ssrc,
                   self.payload_type, prefix, now)  # type: ignore[arg-type]

    def on_nack(self, seqs: list[int]) -> None:
        """Resend from the Producer's cache (RFC 4585 6.2.1), wrapped in RTX when negotiated."""
        self.nacks_received += 1
        buffer, c = self.stream.buffer, self._c
        if buffer is None or not c.started:
            return
        now = time.monotonic()
        if self._resent_seq is None:
            self._resent_seq = array("i", [-1]) * RESEND_SLOTS
            self._resent_at = array("d", [0.0]) * RESEND_SLOTS
        resent_seq, resent_at = self._resent_seq, self._resent_at
        assert resent_at is not None
        wait = max(RESEND_FLOOR, self.rtt or 0.0)
        temporal = self.temporal
        for out_seq in seqs[:MAX_NACK_SEQS]:
            in_seq = ((out_seq - c.seq_offset) & 0xFFFF if temporal is None
                      else temporal.source(out_seq))
            if in_seq < 0 or ((in_seq - c.start_seq) & 0xFFFF) >= 0x8000:
                continue
            slot = out_seq & (RESEND_SLOTS - 1)
            if resent_seq[slot] == out_seq and now - resent_at[slot] < wait:
                self.resends_skipped += 1
                continue
            data = buffer.get(in_seq, now)
            if data is None:
                continue
            payload = memoryview(data)[payload_offset(data):]
            descriptor = b""
            if temporal is not None:  # as it went out, unless its frame was dropped
                parts = temporal.resend_payload(payload)
                if parts is None:
                    continue
                descriptor, payload = parts
            if not self._resend_allowed(len(data)):
                self.resends_skipped += 1
                break
            resent_seq[slot], resent_at[slot] = out_seq, now
            ts = (int.from_bytes(data[4:8], "big") + c.ts_offset) & 0xFFFFFFFF
            self.retransmitted += 1
            if self.rtx_ssrc is not None and self.rtx_payload_type is not None:
                self._send(data, payload, self.rtx_seq, ts, None, None, self.rtx_ssrc,
                           self.rtx_payload_type, U16.pack(out_seq) + descriptor, now)
                self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
            else:
                self._send(data, payload, out_seq, ts, None, None, self.ssrc,
                           self.payload_type, descriptor, now)


class Consumer(Renumbering):
    """To a WebRTC subscriber: its own SSRC, numbering and extension ids, protected by SRTP."""

    transport: WebRtcTransport

    def __init__(self, consumer_id: str, producer: Producer, transport: WebRtcTransport,
                 link: WorkerLink, params: ConsumerParams) -> None:
        super().__init__(consumer_id, producer, transport, link)
        self._batch = link.batch.c  # the worker's, for the whole life of both
        self._out = transport.out.c  # the transport's end of the fan-out (sendbatch.py)
        self.params = params
        self.mid = params.mid
        self.codec_name = producer.codec.name
        self.payload_type = params.codec.payload_type
        self.rtx_payload_type = params.codec.rtx_payload_type
        self.ssrc = params.ssrc or random.getrandbits(32) or 1
        self.rtx_ssrc = params.rtx_ssrc if self.rtx_payload_type else None
        if self.rtx_payload_type and self.rtx_ssrc is None:
            self.rtx_ssrc = random.getrandbits(32) or 1
        self.cname = producer.params.cname or f"ms-{producer.id}"
        ext = params.extensions
        self.writer = ExtensionWriter(
            mid_id=ext.get(EXT_MID, 0),
            mid=params.mid,
            abs_send_time_id=ext.get(EXT_ABS_SEND_TIME, 0),
            transport_cc_id=ext.get(EXT_TRANSPORT_CC, 0),
            audio_level_id=ext.get(EXT_AUDIO_LEVEL, 0) if self.kind == "audio" else 0,
        )
        self._set_extensions(self.writer, bool(ext.get(EXT_TRANSPORT_CC)))
        if params.paused:
            self.holds.add("app")
        self.set_view(params.visible, params.width, params.height)
        self.paused = bool(self.holds)
        # Video restarts only on a keyframe, so the subscriber's decoder never gets a frame
        # that references pictures it did not see.
        self.waiting_keyframe = self.kind == "video"
        self._init_numbering(producer.clock_rate)
        self.rtx_seq = random.getrandbits(15)
        self.remote_fraction_lost = 0
        self.remote_packets_lost = 0
        # in the fan-out's C lane (`_c` also holds its per-copy constants and counters)
        c = self._c
        c.out, c.ssrc, c.pt = self._out, self.ssrc, self.payload_type
        self.lane = c

    # ---- packet path ------------------------------------------------------------------

    def _send(self, data: bytes, payload: memoryview, seq: int, ts: int,
              abs_time: bytes | None, level: bytes | None, ssrc: int, pt: int,
              prefix: bytes, now: float) -> None:
        # Header, extension block and payload (`payload` is the end of `data`) are built in
        # the transport's SRTP buffer, protected there, counted, recorded for transport-cc and
        # queued for the fan-out's sendmmsg, all in C (sendbatch.py; the fan-out's lane does
        # the same for the copies it forwards); what the batch cannot send (a TCP
        # connection, no socket) is left there for the link's send.
        if prefix.__class__ is not bytes:
            prefix = bytes(prefix)
        n = len(data)
        size = send_copy(self._batch, self._out, self._c, data, n, n - len(payload), prefix,
                         len(prefix), seq, ts, ssrc, pt, abs_time or NULL,
                         level[0] if level else -1, now)
        if size <= UNQUEUED:
            self.send_built(UNQUEUED - size)

    def send_built(self, size: int) -> None:
        """Send the copy of `size` octets left built and protected in the transport's SRTP
        buffer (the batch cannot send it: a TCP connection, no socket), as the link sends."""
        transport = self.transport
        self._link.sendto(transport.srtp.tx_view[:size], transport.addr)

    def _set_extensions(self, writer: ExtensionWriter, tcc: bool) -> None:
        """The subscriber's extension block as the C patches it per copy."""
        c, block = self._c, bytes(writer.template)
        if len(block) > EXT_MAX:
            raise ValueError("extension block too long")
        ffi.memmove(c.ext, block, len(block))
        c.ext_len = len(block)
        c.abs_pos, c.tcc_pos, c.level_pos = writer.abs_pos, writer.tcc_pos, writer.level_pos
        c.x_bit = 0x10 if block else 0
        c.tcc = int(tcc)
        self._tcc = tcc

    # the copy's counters, kept by the C
    packets = property(lambda self: self._c.packets,
                       lambda self, n: setattr(self._c, "packets", n))
    bytes = property(lambda self: self._c.bytes, lambda self, n: setattr(self._c, "bytes", n))

    def send_padding(self, size: int, now: float) -> None:
        """A packet of `size` bytes of padding only (RFC 3550 5.1) on the RTX stream: the
        subscriber counts it in its transport-cc feedback and drops it (allocation.Prober)."""
        if self.rtx_ssrc is None or self.rtx_payload_type is None:
            return
        media = self.packets, self.bytes  # the media's counters (SR, stats) leave it out
        data, padding = _padding(size)
        self._send(data, padding, self.rtx_seq, self.last_ts, None, None,
                   self.rtx_ssrc, self.rtx_payload_type, b"", now)
        self.packets, self.bytes = media
        self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF

    def _resend_allowed(self, size: int) -> bool:
        """Resends count against the subscriber's estimate: each allocation round gives the
        transport an allowance (allocation.py); past it, NACKs wait for the next round."""
        transport = self.transport
        if transport.resend_allowance < size:
            transport.resends_over_budget += 1
            return False
        transport.resend_allowance -= size
        transport.resent_bytes += size
        return True

    # ---- control ------------------------------------------------------------------------

    def resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        self.restart()
        if self.waiting_keyframe:
            self.ask_keyframe()

    def on_receiver_report(self, fraction_lost: int, packets_lost: int, lsr: int, dlsr: int,
                           ntp_middle_now: int) -> None:
        self.remote_fraction_lost = fraction_lost
        self.remote_packets_lost = packets_lost
        if lsr:
            # RFC 3550 6.4.1: RTT = now - LSR - DLSR, all in 1/65536 s
            rtt = ((ntp_middle_now - lsr - dlsr) & 0xFFFFFFFF) / 65536.0
            if rtt < 60:
                self.rtt = rtt

    def sender_report(self, now: float, ntp_now: int) -> bytes | None:
        """An SR whose RTP time maps to the same instant the publisher's SR maps it to."""
        if not self.started or self.packets == 0:
            return None
        p = self.stream
        if p.sr_ntp is not None:
            elapsed = now - p.sr_time
            ntp = p.sr_ntp + int(elapsed * (1 << 32))
            rtp = p.sr_rtp + int(elapsed * self.clock_rate) + self.ts_offset
        else:
            # No SR from the publisher yet: extrapolate from the last packet we forwarded.
            ntp = ntp_now
            rtp = self.last_ts + int((now - self.last_time) * self.clock_rate)
        return build_sr(self.ssrc, ntp, rtp, self.packets, self.bytes)
