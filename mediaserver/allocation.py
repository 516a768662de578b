"""The bandwidth allocator at work on one subscriber's WebRTC transport.

Every ALLOCATE_INTERVAL a worker timer calls `TransportAllocator.tick`: it describes each of
the transport's consumers as a `allocator.Demand` (audio at its measured rate; a video as its
arriving encodings, lowest first, with their measured bitrates and the resolutions read from
their key frames; the producer's source; whether it is the room's active speaker; the
subscriber's tile), fits them into the subscriber's estimate with `allocator.allocate` (pure)
and applies the result: each simulcast consumer aims at the chosen encoding
(`SimulcastConsumer.aim`), a video that does not fit is held ("budget", Consumer.hold), unless
it is VP8 with temporal layers and its lowest encoding's lower temporal layers fit
(TEMPORAL_SHARES): then it gets those (`aim_temporal`): TL0 and TL1 at half the frame rate, or
TL0 alone at a quarter.

The budget is the send-side estimate from the subscriber's transport-cc feedback (bwe/), less
what resends took in the last round; resends themselves get an allowance of RESEND_SHARE of
the estimate per round (Consumer._resend_allowed), so that repair never floods a weak link. A
subscriber that negotiated transport-cc has an estimate from the start (the estimator's start
rate, transport.START_RATE, until its first feedback); one that did not (aiortc) has none:
nothing is held for budget, the tile still caps the layer.

An estimate can only climb as far as what the subscriber receives lets it (the rate control
never exceeds 1.5 x the received rate): a subscriber moved down to a low layer would stay
there. So while something shown gets less than it could use, a `Prober` sends padding (RTP
packets of padding only, on a video consumer's RTX stream: the browser counts them in its
transport-cc feedback and drops them) to fill the link up to FILL x the estimate, which lets
the estimate climb while the link carries it; after PROBE_RESULT_AFTER the rate the subscriber
received raises the estimate at once (`SendSideEstimator.raise_to`, as libwebrtc's probe
results do). A probe stops at the first sign of overuse (the estimate falling), to try again
after a back-off, and when a layer is raised (SETTLE: let the new layer show its cost).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .allocator import Allocation, Demand, Layer, allocate, useful_layers
from .rounds import Slices
from .rtp.vp8 import MAX_TID

if TYPE_CHECKING:
    from .consumer import Consumer
    from .producer import RecvStream
    from .speaker import ActiveSpeakers
    from .transport import WebRtcTransport

ALLOCATE_INTERVAL = 0.5  # s between two rounds
ALLOCATE_SLICES = 10  # a round is spread over this many ticks of the worker's timer
RESEND_SHARE = 0.25  # of the estimate that resends may take
# A layer moves after two rounds that want it; down at once when the budget is below this
# share of what the videos are being sent at.
SEVERE = 0.6
# A video on its lowest layer is held only when less than this share of it fits: a picture
# that overloads a weak link a little is better than none (and every resume costs a keyframe
# on every encoding of a Chromium publisher).
KEEP_LOWEST = 0.5
# A VP8 video with temporal layers whose lowest encoding does not fit is given that encoding's
# lower temporal layers instead of being held, when their share of its bitrate fits: libwebrtc
# gives a three-layer encoding's TL0 40% of its rate (a quarter of the frame rate) and TL0+TL1
# 60% (half the frame rate; its kLayerRateAllocation).
TEMPORAL_SHARES = (0.4, 0.6)
AUDIO_BITRATE = 40_000  # bit/s of an audio stream not measured yet (Opus voice is 30-50k)
# bit/s of a video encoding not measured yet, by its place from the top (the top one, the one
# below...): what Chromium's simulcast sends at 720p
UNMEASURED = (1_500_000, 500_000, 150_000, 100_000)

# Probing: padding packets of PADDING bytes (the most one packet can say it has, RFC 3550
# 5.1), paced every PACE_INTERVAL, filling up to FILL x the estimate; a probe ends when the
# estimate reaches its target, after PROBE_MAX seconds, or when the estimate falls below
# BACK_OFF x its peak (overuse: the link is full), after which the next one waits
# RETRY_MIN, doubling up to RETRY_MAX.
PADDING = 255
PACE_INTERVAL = 0.02
FILL = 1.15
# Until a probe has failed in the last CALM seconds (a new subscriber, a link that recovered),
# probes fill to FILL_FAST (libwebrtc's first probes go to 3x and 6x its start rate; past
# 1.3x a weak link's first seconds got more than it carries).
FILL_FAST = 1.3
CALM = 15.0
PROBE_MAX = 8.0
PROBE_RESULT_AFTER = 0.3  # s of probing before its received rate may raise the estimate
SETTLE = 1.0  # s without probing after an upgrade
BACK_OFF = 0.9
RETRY_MIN = 2.0
RETRY_MAX = 6.0
# A worker whose timers run this late (s, Worker.lag) is behind its packets: probing would
# only add padding to the overload (at 300 attendees it fed a collapse through socket overflow
# and NACKs), so none starts and a running one stops.
BUSY_LAG = 0.05


class AllocationRounds:
    """The worker's side: every subscriber transport once per ALLOCATE_INTERVAL, a slice of
    them per tick, so that a round (7 ms for 300 subscribers here) never stalls the packet
    path in one piece. `fault(step, owner)` records a transport whose round raised."""

    def __init__(self, transports: dict[str, WebRtcTransport], speakers: ActiveSpeakers,
                 fault: Callable[[str, str], None], lag: Callable[[], float]) -> None:
        self.transports = transports
        self.speakers = speakers
        self.fault = fault
        self.lag = lag
        self.slices = Slices(lambda: [t for t in transports.values() if t.consumers],
                             ALLOCATE_SLICES)
        self.probing: set[Prober] = set()  # probes under way, paced together by pace()

    def busy(self) -> bool:
        return self.lag() > BUSY_LAG

    def pace(self) -> None:
        """Every PACE_INTERVAL, the padding of every probe under way: one timer for all of
        them (a timer each was 50 calls a second per probing subscriber)."""
        if not self.probing:
            return
        now = time.monotonic()
        for prober in list(self.probing):
            try:
                prober.pace(now)
            except Exception:
                self.probing.discard(prober)
                prober.target = 0
                self.fault("probing", prober.transport.id)

    def tick(self) -> None:
        now = time.monotonic()
        for transport in self.slices.take():
            if transport.state == "closed" or transport.srtp is None:
                continue
            try:
                allocator = transport.allocator
                if allocator is None:
                    allocator = transport.allocator = TransportAllocator(
                        transport, self.speakers, self)
                allocator.tick(now)
            except Exception:
                self.fault("bandwidth allocation", transport.id)


class TransportAllocator:
    def __init__(self, transport: WebRtcTransport, speakers: ActiveSpeakers,
                 rounds: AllocationRounds) -> None:
        self.transport = transport
        self.speakers = speakers
        self.layers: dict[str, int | None] = {}  # consumer id -> index chosen last round
        # of those on index 0: the highest temporal layer they get (a lower one than all)
        self.temporal_only: dict[str, int] = {}
        self._pending: dict[str, bool] = {}  # consumer id -> a move up (True) or down waits
        self.allocated = 0  # bit/s given last round (0: no budget known)
        self.prober = Prober(transport, rounds)
        self._resent_prior = 0
        self._last_tick: float | None = None

    def budget(self) -> int | None:
        """bit/s the subscriber's path carries, if it sends feedback (bwe/): from the start
        (the estimator's start rate until its first feedback) when it negotiated it."""
        transport = self.transport
        return transport.bwe.estimate if transport.sends_tcc or transport.bwe.feedbacks \
            else None

    def tick(self, now: float) -> None:
        transport = self.transport
        dt = now - self._last_tick if self._last_tick is not None else ALLOCATE_INTERVAL
        self._last_tick = now
        resent = transport.resent_bytes - self._resent_prior
        self._resent_prior = transport.resent_bytes
        estimate = self.budget()
        if estimate is None and not self._anything_to_choose():
            return
        demands, streams = self._demands()
        if estimate is None:
            transport.resend_allowance = float("inf")
            budget = 1 << 40  # no estimate: everything fits, tiles still cap
        else:
            transport.resend_allowance = estimate * RESEND_SHARE * ALLOCATE_INTERVAL / 8
            budget = max(0, estimate - int(resent * 8 / max(dt, 0.1)))
        # a video on lower temporal layers is not sending its lowest layer in full: to
        # allocate() it is not sent yet (its full rate needs the headroom of a raise)
        result = allocate(budget, demands, keep_lowest=KEEP_LOWEST, current={
            cid: None if cid in self.temporal_only else layer
            for cid, layer in self.layers.items()})
        temporal_only = self._temporal_layers(result, demands, budget)
        before = self.layers
        videos = [d for d in demands if d.kind == "video"]
        severe = budget < SEVERE * sum(
            d.layers[min(before[d.consumer_id], len(d.layers) - 1)].bitrate
            for d in videos if before.get(d.consumer_id) is not None)
        self.layers = {d.consumer_id: self._settled(d.consumer_id, result.layer(d.consumer_id),
                                                    before, severe) for d in videos}
        raised = any(layer is not None and (before.get(cid) is None or layer > before[cid])
                     for cid, layer in self.layers.items() if cid in before)
        self.allocated = result.used if estimate is not None else 0
        self.temporal_only = {cid: tid for cid, tid in temporal_only.items()
                              if self.layers.get(cid) == 0}
        for demand in videos:
            cid = demand.consumer_id
            self._apply(demand, self.layers[cid], streams[cid],
                        self.temporal_only.get(cid, MAX_TID))
        if estimate is not None:
            want = self._wanted(demands, result)
            if raised:
                self.prober.settle(now)  # let the new layer show what it costs first
            elif want > budget:
                self.prober.want(want, now)
            else:
                self.prober.stop(success=True)

    def _settled(self, consumer_id: str, layer: int | None,
                 before: dict[str, int | None], severe: bool) -> int | None:
        """`layer` if it is new, the same as before, or wanted two rounds in a row (a second
        of estimate, not one feedback's swing); a move down also at once when the budget
        fell far below what is being sent (`severe`: a capacity step)."""
        if consumer_id not in before:
            return layer
        old = before[consumer_id]
        if layer == old:
            self._pending.pop(consumer_id, None)
            return layer
        up = old is None or (layer is not None and layer > old)
        if self._pending.get(consumer_id) == up or (severe and not up):
            self._pending.pop(consumer_id, None)
            return layer
        self._pending[consumer_id] = up
        return old

    def _anything_to_choose(self) -> bool:
        """Without an estimate, only layers (for tiles) are to choose, and budget holds left
        from when there was one to lift."""
        for consumer in self.transport.consumers.values():
            if len(consumer.producer.streams) > 1 or "budget" in consumer.holds:
                return True
        self.allocated = 0
        return False

    def _demands(self) -> tuple[list[Demand], dict[str, list[RecvStream]]]:
        """What each consumer could send; for videos, also the streams behind the layers."""
        demands, streams = [], {}
        for consumer in self.transport.consumers.values():
            if consumer.holds - {"budget"}:
                continue  # paused by the app or hidden: nothing to send, nothing to fit
            producer = consumer.producer
            if consumer.kind == "audio":
                demands.append(Demand(consumer.id, "audio",
                                      bitrate=producer.bitrate or AUDIO_BITRATE))
                continue
            arriving = [s for s in producer.streams[:consumer.max_spatial_layer + 1]
                        if s.active] or [producer.streams[0]]
            streams[consumer.id] = arriving
            top = len(producer.streams) - 1
            layers = tuple(Layer(s.width, s.height, s.bitrate or UNMEASURED[
                min(top - s.layer, len(UNMEASURED) - 1)]) for s in arriving)
            temporal = consumer.temporal
            demands.append(Demand(consumer.id, "video", layers,
                                  source=producer.params.source or "camera",
                                  speaker=self.speakers.speaks(producer),
                                  tile=consumer.tile,
                                  thinnable=temporal is not None and temporal.layered()))
        return demands, streams

    @staticmethod
    def _wanted(demands: list[Demand], result: Allocation) -> int:
        """bit/s of everything at the layer its tile could use (what probing aims for)."""
        total = 0
        for demand in demands:
            if demand.kind == "audio":
                total += demand.bitrate
            else:
                total += demand.layers[useful_layers(demand) - 1].bitrate
        return total

    def _temporal_layers(self, result: Allocation, demands: list[Demand],
                         budget: int) -> dict[str, int]:
        """The videos `result` holds that get their lowest layer's lower temporal layers instead
        (VP8 with temporal layers seen), and the highest layer each gets: first TL0 to each in
        order of priority while its TEMPORAL_SHARES fits, then TL1 to each in the same order
        where the encoding has a layer above it (else TL1 would be all of it) and the rest fits;
        `result` updated to match."""
        given: dict[str, int] = {}
        left = budget - result.used
        rates = {d.consumer_id: d.layers[0].bitrate for d in demands if d.kind == "video"}
        consumers = self.transport.consumers
        for cid in list(result.paused):
            temporal = consumers[cid].temporal
            need = int(rates[cid] * TEMPORAL_SHARES[0])
            if temporal is None or not temporal.layered() or need > left:
                continue
            left -= need
            result.layers[cid] = 0
            result.paused.remove(cid)
            given[cid] = 0
        for cid in given:
            more = int(rates[cid] * TEMPORAL_SHARES[1]) - int(rates[cid] * TEMPORAL_SHARES[0])
            # as for layers: kept while most of it fits, raised with some to spare
            factor = 0.8 if self.temporal_only.get(cid) == 1 else 1.1
            above = consumers[cid].temporal.frames_by_tid[2:]  # type: ignore[union-attr]
            if any(above) and more * factor <= left:
                left -= more
                given[cid] = 1
        result.used = budget - left
        return given

    def _apply(self, demand: Demand, index: int | None, arriving: list[RecvStream],
               temporal: int) -> None:
        consumer = self.transport.consumers[demand.consumer_id]
        consumer.hold("budget", index is None)
        if index is not None:
            consumer.aim(arriving[min(index, len(arriving) - 1)].layer)
            consumer.aim_temporal(temporal)


class Prober:
    """Padding towards one subscriber, to see whether its link carries more (module doc)."""

    def __init__(self, transport: WebRtcTransport, rounds: AllocationRounds) -> None:
        self.transport = transport
        self.rounds = rounds  # its pacing, and whether the worker is behind (BUSY_LAG)
        self.target = 0  # bit/s the probe aims the estimate at; 0: not probing
        self.paused_busy = 0  # probes not started or stopped because of it
        self.probes = self.failures = 0
        self.padding_packets = 0
        self._peak = 0
        self._until = 0.0
        self._next = 0.0  # no probe before this time
        self._started = 0.0
        self._failed_at = float("-inf")
        self._retry = RETRY_MIN
        self._last_pace = 0.0
        self._bytes_prior = 0
        self._media_rate = 0.0

    @property
    def probing(self) -> bool:
        return self.target > 0

    def want(self, target: int, now: float) -> None:
        """The allocator could use `target` bit/s: probe for it, unless backing off."""
        if self.probing:
            self.target = target
            return
        if now < self._next or self._carrier() is None:
            return
        if self.rounds.busy():
            self.paused_busy += 1
            return
        self.target = target
        self.probes += 1
        self._peak = self.transport.bwe.estimate
        self._until = now + PROBE_MAX
        self._started = now
        self._last_pace = now
        self._bytes_prior = self.transport.bytes_out
        self._media_rate = 0.0
        self.rounds.probing.add(self)

    def settle(self, now: float) -> None:
        """A layer was raised: stop, and probe again only after SETTLE."""
        self.stop(success=True)
        self._next = max(self._next, now + SETTLE)

    def stop(self, success: bool) -> None:
        self.rounds.probing.discard(self)
        if not self.probing:
            return
        self.target = 0
        now = time.monotonic()
        if success:
            self._retry = RETRY_MIN
            self._next = now
        else:
            self.failures += 1
            self._failed_at = now
            self._next = now + self._retry
            self._retry = min(RETRY_MAX, self._retry * 2)

    def _carrier(self) -> Consumer | None:
        """A video consumer with an RTX stream the subscriber knows (padding goes there), one
        that is forwarding if there is one."""
        found = None
        for consumer in self.transport.consumers.values():
            if consumer.kind == "video" and consumer.rtx_ssrc is not None and \
                    consumer.rtx_payload_type is not None:
                if consumer.started and not consumer.paused:
                    return consumer
                found = found or consumer
        return found

    def pace(self, now: float) -> None:
        transport = self.transport
        if transport.state == "closed":
            self.stop(success=True)
            return
        if now - self._last_pace < PACE_INTERVAL / 2:
            return  # begun just now, between two ticks: the media rate needs an interval
        estimate = transport.bwe.estimate
        if estimate >= self.target:
            self.stop(success=True)
            return
        if estimate < BACK_OFF * self._peak:
            self.stop(success=False)
            return
        if now > self._until:
            self.stop(success=True)
            return
        if self.rounds.busy():  # not the link's fault: the next probe may come as usual
            self.paused_busy += 1
            self.stop(success=True)
            self._next = now + RETRY_MIN
            return
        bwe = transport.bwe
        if now - self._started >= PROBE_RESULT_AFTER and bwe.received_rate > estimate:
            bwe.raise_to(bwe.received_rate)  # it carried what was sent: start from there
            estimate = bwe.estimate
        self._peak = max(self._peak, estimate)
        dt = max(now - self._last_pace, 0.001)
        # what the media itself took since the last pace (its padding was counted before),
        # smoothed over a few paces
        media = (transport.bytes_out - self._bytes_prior) * 8 / dt
        self._media_rate = media if not self._media_rate else \
            0.8 * self._media_rate + 0.2 * media
        self._last_pace = now
        factor = FILL if now - self._failed_at < CALM else FILL_FAST
        fill = min(self.target, estimate * factor) - self._media_rate
        carrier = self._carrier()
        if carrier is not None and fill > 0:
            packets = int(fill * PACE_INTERVAL / 8 / PADDING) + 1
            for _ in range(packets):
                carrier.send_padding(PADDING, now)
            self.padding_packets += packets
        self._bytes_prior = transport.bytes_out
