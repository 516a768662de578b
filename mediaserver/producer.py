"""Producer: one incoming track. Receives RTP on the packet path and fans it out.

A track is one or more encodings (simulcast, RFC 8853), each its own RTP stream with its own
SSRC (or rid) and RTX SSRC: a `RecvStream`, which owns what is per incoming stream: receive
statistics for receiver reports (RFC 3550 A.3, A.8), the retransmission cache, gap tracking
for upstream NACKs and the keyframe-request throttle. The Producer is the RecvStream of its
first (lowest) encoding, so a track of one encoding, the common case, costs no more than one
object; simulcast adds a RecvStream per further encoding, all fanning out to one consumer set.

The fan-out of a packet is one C call (native/fanout.c `ms_fan`, the "lane") over the
consumers' C structs: it forwards each copy in its steady case and returns to Python only for
a consumer whose case it leaves to `forward` (starts, switches, pipes...), then goes on; the
same copies in the same order as calling every consumer's `forward` (`LANE = False`, tests).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .params import Encoding, ProducerParams
from .rtp.codecs import is_keyframe, vp8_keyframe_size
from .rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    SEQ_TS_SSRC,
    U16,
    find_extension,
    payload_end,
    payload_offset,
)
from .rtp.retransmit import RetransmitBuffer
from .rtp.rtcp import ReportBlock, SenderReport, ntp_to_middle32
from .sendbatch import NULL, fan_out, ffi, flush

if TYPE_CHECKING:
    from .consumer import BaseConsumer
    from .links import ProducerTransport, WorkerLink

# A gap larger than this is a stream restart (new encoder, reset sequence), not loss worth NACKing.
MAX_NACK_GAP = 256
# Sequence numbers waiting for a NACK at once: gaps add up (each ages out after NACK_MAX_AGE),
# and past this many the publisher is asked for a keyframe instead, as for one huge gap.
MAX_MISSING = 512
# Keyframe requests closer together than this are merged (a browser answers each PLI with a
# full keyframe, several times the size of a delta frame).
KEYFRAME_INTERVAL = 0.5
# A keyframe asked for and not come after this long is asked for again while a consumer still
# waits on it: Chromium drops a PLI that comes within 300 ms of its last one, whichever
# encoding either was for (a layer switch asked for just after a subscriber's PLI would wait
# for ever).
KEYFRAME_RETRY = 1.0
# Give up NACKing a packet after this many requests or this age.
NACK_MAX_TRIES = 8
NACK_MAX_AGE = 1.0
NACK_RETRY = 0.05
# The fan-out's C lane (native/fanout.c ms_fan) forwards each copy's steady case; off, every
# copy goes through its consumer's `forward`, the Python reference (tests compare the two).
LANE = True


class RecvStream:
    """One incoming RTP stream: an encoding of `producer` (layer 0 is the lowest)."""

    def __init__(self, producer: Producer, layer: int, rid: str, ssrc: int | None,
                 rtx_ssrc: int | None) -> None:
        self.producer = producer
        self.layer = layer
        self.rid = rid
        self.id = producer.id  # what timer faults are logged under
        self.transport = producer.transport
        self._link = producer._link
        self.kind = producer.kind
        self.codec = producer.codec
        self.clock_rate = producer.clock_rate
        self.ssrc: int | None = ssrc
        self.rtx_ssrc: int | None = rtx_ssrc
        self.closed = False
        # Sending now: since its first packet, and while each receiver report interval saw
        # packets (a browser stops its top encodings when its uplink or camera falls short).
        # Retransmissions and packets of padding only do not count: a browser probes its uplink
        # with them on an encoding it no longer encodes, and a consumer aiming at it would wait
        # for a keyframe that never comes.
        self.active = False
        self.media_packets = 0
        self._media_prior = 0
        # bit/s over the last receiver-report intervals (halved towards each new one): what
        # forwarding it costs (allocator)
        self.bitrate = 0
        self._bytes_prior = 0
        self._report_time = 0.0
        # Its resolution, from the VP8 key frames (0: not known; other codecs: never). The
        # packets are looked at only while `watch_keyframe` (until the next key frame after
        # the first packet or a keyframe request: a browser changes resolution only at a key
        # frame, and a request not answered is repeated).
        self.width = self.height = 0
        self._vp8 = self.kind == "video" and self.codec.name.upper() == "VP8"
        self._keyframes_known = self.kind == "video" and \
            self.codec.name.upper() in ("VP8", "H264")
        self.watch_keyframe = self._keyframes_known
        self.buffer = RetransmitBuffer() if self.kind == "video" else None
        self.nack_enabled = self.codec.nack and self.kind == "video"
        # receive statistics (RFC 3550 appendix A.3)
        self.packets = 0
        self.bytes = 0
        self.retransmitted_in = 0
        self.base_seq = -1
        self.highest = -1  # extended highest sequence number
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self.jitter = 0.0
        self._transit: float | None = None
        self.fraction_lost = 0
        # last sender report, for LSR/DLSR and for consumers' SR timestamp mapping
        self.sr_ntp: int | None = None
        self.sr_rtp = 0
        self.sr_time = 0.0
        # upstream NACK state: seq -> [first missing time, last nack time, tries]
        self.missing: dict[int, list[float]] = {}
        self.nacks_sent = 0
        self.keyframe_requests = 0
        self._last_keyframe_request = -1e9
        self._keyframe_timer = None
        self._retry_timer = None
        self.keyframe_retries = 0  # requests repeated: the first was not answered in time
        # the consumers a packet of this stream fanned out to last, and their `lane`s as a C
        # array: made again only when the Producer makes a new tuple of them
        self._fan_for: tuple = ()
        self._lanes = ffi.new("ms_copy *[]", 0)
        self._unqueued = ffi.new("int *")

    # ---- packet path ------------------------------------------------------------------

    def receive(self, data: bytes, now: float, retransmitted: bool = False) -> None:
        seq, ts, _ssrc = SEQ_TS_SSRC.unpack_from(data, 2)
        self.packets += 1
        self.bytes += len(data)
        highest = self.highest
        if highest < 0:
            self.base_seq = self.highest = ext = seq
        else:
            diff = ((seq - highest + 0x8000) & 0xFFFF) - 0x8000
            ext = highest + diff
            if diff > 0:
                self.highest = ext
                if diff > 1 and self.nack_enabled:
                    self._note_gap(highest + 1, ext, now)
            elif diff == 0 or ext <= self.base_seq - 1:
                return  # duplicate, or older than the stream start
            elif self.missing:
                self.missing.pop(seq, None)
        if retransmitted:
            self.retransmitted_in += 1
        else:
            self.received += 1
            # media sent now (a retransmission, or a probe of padding only, is not)
            if not data[0] & 0x20 or payload_end(data) > payload_offset(data):
                self.media_packets += 1
                if not self.active:
                    self._set_active(True)
            # interarrival jitter in RTP units (RFC 3550 A.8)
            transit = now * self.clock_rate - ts
            if self._transit is not None:
                d = transit - self._transit
                self.jitter += ((d if d > 0 else -d) - self.jitter) / 16.0
            self._transit = transit
        if self.buffer is not None:
            self.buffer.store(seq, data, now)
        if self.watch_keyframe:
            self._watch_keyframe(data)
        producer = self.producer
        level = find_extension(data, producer._level_id) if producer._level_id else None
        if level:  # speaker.loudness, inline
            producer.loudness_sum += 127 - (level[0] & 0x7F)
            producer.level_packets += 1
        listeners = producer.listeners  # simulcast: only who may take this encoding
        if listeners is None:
            consumers = producer.consumers
        else:
            if producer.relisten_due:
                listeners = producer.build_listeners()
            consumers = listeners[self.layer]
        if producer.paused or not consumers:
            return
        producer.arriving = self  # which encoding this is, for simulcast consumers
        # the payload as a view: each consumer's SRTP buffer copies it from here, with no
        # copy of its own per subscriber
        payload = memoryview(data)[payload_offset(data):]
        abs_time = find_extension(data, producer._abs_id) if producer._abs_id else None
        if abs_time is not None and len(abs_time) != 3:
            abs_time = None  # malformed: left out rather than allowed to change the layout
        batch = producer._batch
        batch.active = 1
        try:
            if not LANE:
                for consumer in consumers:
                    consumer.forward(data, payload, seq, ts, abs_time, level, now)
                return
            # The C lane forwards every copy it can, in order, and stops at one it leaves to
            # its consumer's `forward` (or one built for the link to send); then on from the
            # next: the same copies in the same order as the loop above.
            if consumers is not self._fan_for:
                self._fan_for = consumers
                self._lanes = ffi.new("ms_copy *[]", [c.lane for c in consumers])
            lanes, unqueued, n, i = self._lanes, self._unqueued, len(consumers), 0
            size, off = len(data), len(data) - len(payload)
            c_abs, c_level = abs_time or NULL, level[0] if level else -1
            while True:
                i = fan_out(batch, lanes, n, i, data, size, off, seq, ts, self.layer, c_abs,
                            c_level, now, unqueued)
                if i == n:
                    break
                if unqueued[0]:
                    consumers[i].send_built(unqueued[0])  # type: ignore[attr-defined]
                else:
                    consumers[i].forward(data, payload, seq, ts, abs_time, level, now)
                i += 1
        finally:
            batch.active = 0
            flush(batch)  # the whole fan-out in one sendmmsg (sendbatch.py)

    def receive_rtx(self, data: bytes, now: float) -> None:
        """Unwrap an RTX packet (RFC 4588 section 4) and receive it as the original."""
        offset = payload_offset(data)
        if payload_end(data) < offset + 2 or self.ssrc is None:
            return  # padding only (a bandwidth probe): no original to receive
        osn = U16.unpack_from(data, offset)[0]
        # Rebuild the original: primary payload type and SSRC, original sequence number.
        b1 = (data[1] & 0x80) | self.codec.payload_type
        original = (
            bytes((data[0], b1))
            + U16.pack(osn)
            + data[4:8]
            + self.ssrc.to_bytes(4, "big")
            + data[12:offset]
            + data[offset + 2 :]
        )
        self.receive(original, now, retransmitted=True)

    def _note_gap(self, first: int, last_exclusive: int, now: float) -> None:
        if last_exclusive - first > MAX_NACK_GAP or \
                len(self.missing) + last_exclusive - first > MAX_MISSING:
            self.missing.clear()
            self.request_keyframe()
            return
        for ext in range(first, last_exclusive):
            self.missing[ext & 0xFFFF] = [now, 0.0, 0.0]
        self._link.nack_pending.add(self)

    # ---- timers and control -------------------------------------------------------------

    def _watch_keyframe(self, data: bytes) -> None:
        payload = memoryview(data)[payload_offset(data):]
        if not is_keyframe(self.codec.name, payload[:64]):
            return
        self.watch_keyframe = False
        if self._vp8:
            size = vp8_keyframe_size(payload)
            if size is not None:
                self.width, self.height = size

    def due_nacks(self, now: float) -> list[int]:
        """Sequence numbers to NACK now; forgets those too old or asked too often."""
        out = []
        for seq, entry in list(self.missing.items()):
            first, last, tries = entry
            if tries >= NACK_MAX_TRIES or now - first > NACK_MAX_AGE:
                del self.missing[seq]
            elif now - last >= NACK_RETRY:
                entry[1] = now
                entry[2] = tries + 1
                out.append(seq)
        return out

    def request_keyframe(self) -> None:
        """PLI to the publisher, merged with requests of the last KEYFRAME_INTERVAL."""
        if self.kind != "video" or self.closed:
            return
        now = time.monotonic()
        wait = self._last_keyframe_request + KEYFRAME_INTERVAL - now
        if wait <= 0:
            self._last_keyframe_request = now
            self.keyframe_requests += 1
            self.transport.send_keyframe_request(self)
            if self._keyframes_known:
                self.watch_keyframe = True
                if self._retry_timer is None:
                    self._retry_timer = self._link.loop.call_later(KEYFRAME_RETRY,
                                                                   self._retry_keyframe)
        elif self._keyframe_timer is None:
            self._keyframe_timer = self._link.loop.call_later(wait,
                                                              self._delayed_keyframe_request)

    def _delayed_keyframe_request(self) -> None:
        self._keyframe_timer = None
        self.request_keyframe()

    def _retry_keyframe(self) -> None:
        self._retry_timer = None
        if self.watch_keyframe and not self.closed and \
                any(c.awaits_keyframe(self) for c in self.producer.consumers):
            self.keyframe_retries += 1
            self.request_keyframe()

    def on_sender_report(self, report: SenderReport, now: float) -> None:
        self.sr_ntp = report.ntp_timestamp
        self.sr_rtp = report.rtp_timestamp
        self.sr_time = now
        for listener in self.producer.report_listeners:  # pipes (a simulcast one: by SSRC)
            listener.on_sender_report(report)

    def report_block(self, now: float) -> ReportBlock | None:
        if self._report_time and now > self._report_time:
            rate = int((self.bytes - self._bytes_prior) * 8 / (now - self._report_time))
            # smoothed over a few intervals: one with a keyframe is not what the stream costs
            self.bitrate = rate if not self.bitrate or not rate else \
                (self.bitrate + rate) // 2
        self._bytes_prior, self._report_time = self.bytes, now
        if self.highest < 0 or self.ssrc is None:
            return None
        expected = self.highest - self.base_seq + 1
        lost = expected - self.received - self.retransmitted_in
        expected_interval = expected - self._expected_prior
        received_now = self.received + self.retransmitted_in
        received_interval = received_now - self._received_prior
        self._set_active(self.media_packets != self._media_prior)
        self._media_prior = self.media_packets
        self._expected_prior = expected
        self._received_prior = received_now
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        self.fraction_lost = fraction
        lsr = dlsr = 0
        if self.sr_ntp is not None:
            lsr = ntp_to_middle32(self.sr_ntp)
            dlsr = int((now - self.sr_time) * 65536)
        lost = max(-0x800000, min(0x7FFFFF, lost))
        return ReportBlock(self.ssrc, fraction, lost, self.highest & 0xFFFFFFFF,
                           int(self.jitter), lsr, dlsr)

    def _set_active(self, active: bool) -> None:
        if active != self.active:
            self.active = active
            producer = self.producer
            if len(producer.streams) > 1:
                for consumer in producer.consumers:
                    consumer.layers_changed()

    @property
    def packets_lost(self) -> int:
        if self.highest < 0:
            return 0
        return max(0, self.highest - self.base_seq + 1 - self.received - self.retransmitted_in)

    def stop(self) -> None:
        self.closed = True
        for timer in (self._keyframe_timer, self._retry_timer):
            if timer is not None:
                timer.cancel()
        self._keyframe_timer = self._retry_timer = None
        self.missing.clear()


class Producer(RecvStream):
    """One incoming track; itself the RecvStream of its first encoding (see the module doc)."""

    def __init__(self, producer_id: str, transport: ProducerTransport, link: WorkerLink,
                 params: ProducerParams, router_id: str) -> None:
        self.id = producer_id
        self.transport = transport
        self._link = link
        self._batch = link.batch.c  # the fan-out's sendmmsg (sendbatch.py)
        self.router_id = router_id
        self.params = params
        self.kind = params.kind
        self.codec = params.codec
        self.clock_rate = params.codec.clock_rate
        self.consumers: tuple[BaseConsumer, ...] = ()
        self.report_listeners: tuple = ()  # pipes that relay our publisher's sender reports
        self.paused = False
        self._abs_id = params.extensions.get(EXT_ABS_SEND_TIME, 0)
        self._level_id = params.extensions.get(EXT_AUDIO_LEVEL, 0)
        # active speaker (speaker.py): the interval's loudness, read and cleared by its timer
        self.loudness_sum = 0
        self.level_packets = 0
        encodings = params.encodings or [Encoding("", params.ssrc, params.rtx_ssrc)]
        first = encodings[0]
        super().__init__(self, 0, first.rid, first.ssrc, first.rtx_ssrc)
        self.streams: tuple[RecvStream, ...] = (self, *(
            RecvStream(self, layer, e.rid, e.ssrc, e.rtx_ssrc)
            for layer, e in enumerate(encodings[1:], 1)))
        self.arriving: RecvStream = self  # the stream whose packet is being fanned out
        # Simulcast: per encoding, the consumers a packet of it can concern, so that a packet
        # of layer 2 is not offered to every consumer of layers 0 and 1 just to be dropped
        self.listeners: tuple[tuple[BaseConsumer, ...], ...] | None = (
            None if len(self.streams) < 2 else ((),) * len(self.streams))
        self.relisten_due = False

    def relisten(self) -> None:
        """A consumer came, went or changed its layers: the lists are rebuilt at the next
        packet, once for all the changes before it (an encoding that stops arriving moves
        every consumer's target at once; rebuilding for each would be quadratic)."""
        self.relisten_due = self.listeners is not None

    def build_listeners(self) -> tuple[tuple[BaseConsumer, ...], ...]:
        self.relisten_due = False
        self.listeners = tuple(tuple(c for c in self.consumers if c.listens(layer))
                               for layer in range(len(self.streams)))
        return self.listeners

    def request_keyframes(self) -> None:
        """A keyframe on every encoding (a resumed producer, the control call)."""
        for stream in self.streams:
            stream.request_keyframe()

    @property
    def packets_received(self) -> int:
        return sum(s.packets for s in self.streams)

    @property
    def packets_lost_total(self) -> int:
        return sum(s.packets_lost for s in self.streams)

    @property
    def retransmitted_in_total(self) -> int:
        return sum(s.retransmitted_in for s in self.streams)

    def add_consumer(self, consumer: BaseConsumer) -> None:
        # Build a new tuple rather than mutating: the packet path may be iterating the old one.
        self.consumers = (*self.consumers, consumer)
        self.relisten()

    def remove_consumer(self, consumer: BaseConsumer) -> None:
        self.consumers = tuple(c for c in self.consumers if c is not consumer)
        self.report_listeners = tuple(c for c in self.report_listeners if c is not consumer)
        self.relisten()

    def close(self) -> None:
        if self.closed:
            return
        for stream in self.streams:
            stream.stop()
        for consumer in self.consumers:
            consumer.close()
        self.consumers = ()
        self.transport.remove_producer(self)
        self._link.producer_closed(self)
