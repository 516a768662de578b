"""Consumers of a Producer of several encodings (simulcast, RFC 8853).

They forward one encoding (spatial layer) at a time under one SSRC, as mediasoup's
SimulcastConsumer does. A switch happens only at a keyframe of the target encoding (requested
from that encoding's SSRC, merged per encoding by RecvStream's throttle), so the receiver's
decoder never gets a frame that references pictures it did not see. Across a switch the output
stays one stream (`consumer.Renumbering`): the sequence continues with no gap (nothing for the
receiver to NACK) and the timestamp advances by the wall-clock time since the last forwarded
packet.

The preferred layer is chosen by the bandwidth allocator (allocation.py: what the subscriber's
link carries and its tile needs, `aim`), under the ceiling of the control call
`set_preferred_layers` (the highest encoding unless it was called; a subscriber with
transport-cc starts on the lowest until the allocator's first round). The target is the
highest encoding at or below the preferred one that is arriving (RecvStream.active): a browser
stops sending its top encodings when its uplink or its camera's resolution falls short, and
the consumer moves down to what there is, and back up when it returns.

A VP8 `SimulcastConsumer` also chooses temporal layers within the encoding (rtp/vp8.py
`TemporalFilter`, the `temporal` of set_preferred_layers): whole frames above the layer are
dropped, the output's sequence and PictureID staying without gaps.

Two kinds: `SimulcastConsumer` to a WebRTC subscriber, `SimulcastPipeConsumer` into a pipe (to
the recorder or another worker, whose mirror Producer then has one encoding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .consumer import Consumer, Renumbering, _c_field
from .pipe import PipeConsumer
from .rtp.codecs import is_keyframe
from .rtp.packet import SEQ_TS_SSRC
from .rtp.rtcp import SenderReport, build_sr
from .rtp.vp8 import MAX_TID, TemporalFilter

if TYPE_CHECKING:
    from .links import WorkerLink
    from .params import ConsumerParams
    from .pipe import PipeTransport
    from .producer import Producer, RecvStream
    from .transport import WebRtcTransport


class LayerSwitch(Renumbering):
    """The layer choice both kinds share, in front of `Renumbering.forward`. The encoding
    forwarded now is in the C struct, where the fan-out's C lane compares it with the arriving
    one (consumer.Renumbering); a packet of any other encoding comes to `forward` here."""

    spatial_layer = _c_field("spatial_layer")  # type: ignore[assignment]

    def _init_layers(self, start_low: bool = False) -> None:
        self._c.layered = 1
        self.spatial_layer = -1  # the encoding forwarded now; -1 until the first keyframe
        self.max_spatial_layer = len(self.producer.streams) - 1  # set_preferred_layers
        # aim(), under the max. A subscriber whose link is estimated (`start_low`) starts on
        # the lowest encoding and the allocator's first round (within a second) gives it what
        # fits: starting on the top one sent 1-1.5 Mbit/s into 400 kbit/s links meanwhile.
        self.preferred_spatial_layer = 0 if start_low else self.max_spatial_layer
        self.preferred_temporal = -1  # set_preferred_layers' (-1: not called)
        self.temporal_aim = MAX_TID  # the allocator's; VP8's temporal.target: the lower one
        self.target_spatial_layer = self._target()
        self.layer_switches = 0

    def forward(self, data: bytes, payload: memoryview, seq: int, ts: int,
                abs_time: bytes | None, level: bytes | None, now: float) -> None:
        stream = self.producer.arriving
        if stream.layer != self._c.spatial_layer:
            if not self._switches_here(stream, payload):
                return
            self.started = False  # Renumbering.forward starts on this keyframe, numbering on
            self.waiting_keyframe = False
        Renumbering.forward(self, data, payload, seq, ts, abs_time, level, now)

    def _start(self, seq: int, ts: int, now: float) -> None:
        super()._start(seq, ts, now)  # type: ignore[misc]
        if self.temporal is not None:
            self.temporal.start(seq, self.seq_offset)

    def _switches_here(self, stream: RecvStream, payload: memoryview) -> bool:
        """Whether this packet of `stream`, not the encoding forwarded now, is where we switch
        to it (then we have)."""
        layer = stream.layer
        target = self.target_spatial_layer
        # The target's keyframe; or, before anything was sent, a lower one's, so the
        # picture starts at once and moves up at the target's keyframe.
        if self.paused or not (layer == target or self.spatial_layer < 0 and layer < target):
            return False
        if not is_keyframe(self.codec_name, payload[:64]):
            return False
        if self.spatial_layer >= 0:
            self.layer_switches += 1
        self.spatial_layer = layer
        self.stream = stream
        self.producer.relisten()
        if layer != target:
            self.ask_keyframe()
        return True

    def listens(self, layer: int) -> bool:
        """The encodings whose packets forward() may act on: the one forwarded, the
        target, and before anything was sent those below the target."""
        spatial, target = self.spatial_layer, self.target_spatial_layer
        return layer in (spatial, target) or (spatial < 0 and layer < target)

    def awaits_keyframe(self, stream: RecvStream) -> bool:
        """A switch to `stream` waits for its keyframe (before anything was sent, a lower
        encoding's would do too)."""
        layer, spatial, target = stream.layer, self.spatial_layer, self.target_spatial_layer
        return not self.paused and (layer == target != spatial or spatial < 0 and layer < target)

    # ---- control ------------------------------------------------------------------------

    def set_preferred_layers(self, spatial: int, temporal: int) -> None:
        """Never above encoding `spatial` (the highest there is, if fewer), and aim at it
        until the allocator's next round; the switch waits for its keyframe, asked for now."""
        self.preferred_temporal = temporal
        self.aim_temporal(self.temporal_aim)
        self.max_spatial_layer = min(spatial, len(self.producer.streams) - 1)
        self.aim(self.max_spatial_layer)

    def aim(self, spatial: int) -> None:
        self.preferred_spatial_layer = min(spatial, self.max_spatial_layer)
        self.layers_changed()

    def aim_temporal(self, temporal: int) -> None:
        """The allocator's temporal layer, under set_preferred_layers'; VP8 takes it at the
        next frame (up: at a frame with Y)."""
        self.temporal_aim = temporal
        if self.temporal is not None:
            ceiling = MAX_TID if self.preferred_temporal < 0 else self.preferred_temporal
            self.temporal.target = min(ceiling, temporal)

    def layers_changed(self) -> None:
        target = self._target()
        if target == self.target_spatial_layer:
            return
        self.target_spatial_layer = target
        self.producer.relisten()
        if target != self.spatial_layer and not self.paused:
            self.ask_keyframe()

    def _target(self) -> int:
        """The highest arriving encoding at or below the preferred one; else the lowest
        arriving one above it; with none arriving, the preferred one."""
        streams = self.producer.streams
        preferred = self.preferred_spatial_layer
        for stream in reversed(streams[:preferred + 1]):
            if stream.active:
                return stream.layer
        for stream in streams[preferred + 1:]:
            if stream.active:
                return stream.layer
        return preferred

    def ask_keyframe(self) -> None:
        """The target's keyframe; before anything was sent, the lower encodings' too (the
        first to come starts the picture)."""
        streams = self.producer.streams
        first = 0 if self.spatial_layer < 0 else self.target_spatial_layer
        for stream in streams[first:self.target_spatial_layer + 1]:
            stream.request_keyframe()

    def request_keyframe(self) -> None:
        """The receiver lost the picture: the layer it is on repairs it, unless a switch is
        pending, whose keyframe does."""
        self.plis_received += 1
        if 0 <= self.spatial_layer != self.target_spatial_layer:
            self.stream.request_keyframe()  # the target may stop before its keyframe comes
        self.ask_keyframe()

    def restart(self) -> None:
        super().restart()
        self.spatial_layer = -1  # start again at the target (or below) on a keyframe
        self.producer.relisten()


class SimulcastConsumer(LayerSwitch, Consumer):
    """To a WebRTC subscriber: a `Consumer` of the encoding LayerSwitch chose."""

    def __init__(self, consumer_id: str, producer: Producer, transport: WebRtcTransport,
                 link: WorkerLink, params: ConsumerParams) -> None:
        super().__init__(consumer_id, producer, transport, link, params)
        self._init_layers(start_low=self._tcc)  # transport-cc: the allocator has a budget
        if self.codec_name.upper().rpartition("/")[2] == "VP8":
            self.temporal = temporal = TemporalFilter()
            self._c.temporal = temporal._c  # for the C lane; `temporal` keeps it


class SimulcastPipeConsumer(LayerSwitch, PipeConsumer):
    """Into a pipe: one encoding at a time, renumbered so the far side's mirror Producer (and
    the recorder) sees one continuous stream."""

    def __init__(self, consumer_id: str, producer: Producer, pipe: PipeTransport,
                 link: WorkerLink) -> None:
        super().__init__(consumer_id, producer, pipe, link)
        self.codec_name = producer.codec.name
        self.payload_type = producer.codec.payload_type
        self.rtx_payload_type = None  # the far side NACKs the stream itself
        self.rtx_seq = 0
        self._init_numbering(producer.clock_rate)
        self.started = False
        self._init_layers()

    def _send(self, data: bytes, payload: memoryview, seq: int, ts: int,
              abs_time: bytes | None, level: bytes | None, ssrc: int, pt: int,
              prefix: bytes, now: float) -> None:
        packet = data[:2] + SEQ_TS_SSRC.pack(seq, ts, ssrc) + data[12:]
        self.packets += 1
        self.bytes += len(packet)
        self.transport.send_rtp(packet)

    def on_sender_report(self, report: SenderReport) -> None:
        """Relay the forwarded encoding's sender reports, on our timestamps."""
        if report.ssrc != self.stream.ssrc or self.spatial_layer < 0:
            return
        self.transport.send_rtcp(build_sr(
            self.ssrc, report.ntp_timestamp, (report.rtp_timestamp + self.ts_offset) &
            0xFFFFFFFF, self.packets, self.bytes))
