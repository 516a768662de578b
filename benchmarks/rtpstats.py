"""What a subscriber bot measures per incoming stream, without decoding: counts, sequence
continuity with a grace period for retransmissions, NACK scheduling, and the latency histogram.

Everything here runs per packet or per 10 ms tick for hundreds of streams in one process, so it
is integer arithmetic on `__slots__` objects; the histogram is one list shared by the process.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from mediaserver.rtp.rtcp import ReportBlock

# abs-send-time (webrtc.org/experiments/rtp-hdrext/abs-send-time): 24 bits, 6.18 fixed-point
# seconds, wrapping every 64 s.
ABS_UNITS = 1 << 18
ABS_MASK = 0xFFFFFF
BUCKET_US = 100  # histogram resolution: 0.1 ms
BUCKETS = 10000  # up to 1 s (weak links queue); one more bucket collects everything beyond
LOSS_GRACE_NS = 200_000_000  # a gap still open after this is lost (time for RTX to arrive)
NACK_DELAY_NS = 10_000_000  # like a browser: NACK 10 ms after noticing the gap
NACK_RETRY_NS = 30_000_000
NACK_TRIES = 3
MAX_GAP = 1000  # a jump larger than this is a stream restart, not loss
WEAK_LOSS_GRACE_NS = 1_000_000_000
BROWSER_NACK_RETRY_NS = 100_000_000
BROWSER_NACK_TRIES = 10


def abs_send_time(t: float) -> bytes:
    """The 3-byte abs-send-time value for Unix time t."""
    v = int(t * ABS_UNITS) & ABS_MASK
    return bytes((v >> 16, (v >> 8) & 0xFF, v & 0xFF))


def find_ext(data: bytes, ext_id: int) -> int:
    """Position of a one-byte-form header extension's value in an RTP packet, or -1."""
    if not data[0] & 0x10 or len(data) < 16:
        return -1
    pos = 12 + 4 * (data[0] & 0x0F)
    if data[pos] != 0xBE or data[pos + 1] != 0xDE:
        return -1
    end = min(len(data), pos + 4 + 4 * (data[pos + 2] << 8 | data[pos + 3]))
    pos += 4
    while pos < end:
        b = data[pos]
        if b == 0:
            pos += 1
            continue
        if b >> 4 == ext_id:
            return pos + 1
        if b >> 4 == 15:
            return -1
        pos += 2 + (b & 0x0F)
    return -1


class LatencyHistogram:
    """Counts per 0.1 ms bucket; percentiles are read from cumulative counts."""

    def __init__(self) -> None:
        self.counts = [0] * (BUCKETS + 1)

    def sparse(self) -> dict[int, int]:
        return {i: c for i, c in enumerate(self.counts) if c}

    @staticmethod
    def percentile(sparse: dict[int, int], p: float) -> float | None:
        """The p-th percentile in ms of a sparse histogram, None when empty."""
        total = sum(sparse.values())
        if not total:
            return None
        rank = p / 100 * total
        seen = 0
        for bucket in sorted(sparse):
            seen += sparse[bucket]
            if seen >= rank:
                return (bucket + 0.5) * BUCKET_US / 1000
        return BUCKETS * BUCKET_US / 1000

    @staticmethod
    def diff(after: dict[int, int], before: dict[int, int]) -> dict[int, int]:
        out = {b: c - before.get(b, 0) for b, c in after.items()}
        return {b: c for b, c in out.items() if c > 0}

    @staticmethod
    def merge(parts: list[dict[int, int]]) -> dict[int, int]:
        out: dict[int, int] = {}
        for part in parts:
            for b, c in part.items():
                out[int(b)] = out.get(int(b), 0) + c
        return out


class ReceiveStream:
    """One SSRC received by a subscriber bot."""

    __slots__ = ("ssrc", "rtx_ssrc", "kind", "clock_rate", "mid", "abs_id", "abs_pos", "packets",
                 "bytes", "highest", "base", "missing", "lost", "recovered", "duplicates",
                 "rtx_packets", "rtx_recovered", "nacks", "hist", "tracker", "on_nack",
                 "sr_middle", "sr_time", "expected_prior", "received_prior", "sender_id",
                 "latency_samples", "on_loss", "grace_ns", "retry_ns", "tries", "padding")

    def __init__(self, ssrc: int, rtx_ssrc: int | None, kind: str, clock_rate: int, mid: str,
                 abs_id: int, hist: list[int], tracker: GapTracker,
                 on_nack: Callable[[ReceiveStream, list[int]], None]) -> None:
        self.ssrc = ssrc
        self.rtx_ssrc = rtx_ssrc
        self.kind = kind
        self.clock_rate = clock_rate
        self.mid = mid
        self.abs_id = abs_id
        self.abs_pos = -1
        self.packets = self.bytes = 0
        self.highest = -1  # extended highest sequence number
        self.base = 0
        self.missing: dict[int, list[int]] = {}  # extended seq -> [noticed ns, last NACK ns, tries]
        self.lost = self.recovered = self.duplicates = self.rtx_packets = self.nacks = 0
        self.rtx_recovered = 0
        self.hist = hist
        self.tracker = tracker
        self.on_nack = on_nack
        self.sr_middle = 0
        self.sr_time = 0.0
        self.expected_prior = self.received_prior = 0
        self.sender_id = -1
        self.latency_samples = 0
        # called when a gap of this stream is given up as lost (a browser then asks for a
        # keyframe: the picture cannot be decoded on without the missing packet)
        self.on_loss: Callable[[ReceiveStream], None] | None = None
        # NACK timing and when a gap counts as lost (set_browser_timing for weak links)
        self.grace_ns = LOSS_GRACE_NS
        self.retry_ns = NACK_RETRY_NS
        self.tries = NACK_TRIES
        self.padding = 0  # padding-only packets on the RTX stream (a server's probe)

    def set_browser_timing(self) -> None:
        """NACK as libwebrtc's NackRequester does without an RTT estimate (a receive-only
        peer has none: 100 ms by default), up to 10 times, and a gap counts as lost after
        1 s: on a link whose queue holds hundreds of ms, a repair cannot come sooner."""
        self.grace_ns = WEAK_LOSS_GRACE_NS
        self.retry_ns = BROWSER_NACK_RETRY_NS
        self.tries = BROWSER_NACK_TRIES

    def receive(self, data: bytes, arrival_ns: int) -> int:
        """Account one packet of this SSRC; returns its extended sequence number."""
        self.packets += 1
        self.bytes += len(data)
        seq = data[2] << 8 | data[3]
        highest = self.highest
        if highest < 0:
            self.highest = self.base = ext = seq
        else:
            diff = ((seq - highest + 0x8000) & 0xFFFF) - 0x8000
            ext = highest + diff
            if diff == 1:
                self.highest = ext
            elif diff > 1:
                self.highest = ext
                if diff > MAX_GAP:  # restart: start counting afresh
                    self.base = ext - (self.packets - 1) - self.lost
                    self.missing.clear()
                else:
                    for e in range(highest + 1, ext):
                        self.missing[e] = [arrival_ns, 0, 0]
                    self.tracker.pending.add(self)
            elif self.missing.pop(ext, None) is not None:
                self.recovered += 1
            else:
                self.duplicates += 1
        # latency from the publisher's abs-send-time stamp, which the server passes through
        pos = self.abs_pos
        if pos < 0 or data[pos - 1] >> 4 != self.abs_id:
            pos = self.abs_pos = find_ext(data, self.abs_id) if self.abs_id else -1
        if pos > 0:
            sent = data[pos] << 16 | data[pos + 1] << 8 | data[pos + 2]
            d = (((arrival_ns << 18) // 1_000_000_000) - sent) & ABS_MASK
            if d < 0x800000:  # not "negative" (a stamp from the future means clock trouble)
                b = (d * 10000) >> 18
                self.hist[b if b < BUCKETS else BUCKETS] += 1
                self.latency_samples += 1
        return ext

    def receive_rtx(self, osn: int) -> None:
        """A retransmission (RTX, RFC 4588) of original sequence number osn."""
        self.rtx_packets += 1
        if self.highest < 0:
            return
        diff = ((osn - self.highest + 0x8000) & 0xFFFF) - 0x8000
        if self.missing.pop(self.highest + diff, None) is not None:
            self.recovered += 1
            self.rtx_recovered += 1

    @property
    def expected(self) -> int:
        return 0 if self.highest < 0 else self.highest - self.base + 1

    def scan(self, now_ns: int) -> list[int]:
        """Sequence numbers to NACK now; gaps older than the grace period become loss."""
        out = []
        grace, retry, max_tries = self.grace_ns, self.retry_ns, self.tries
        for ext, entry in list(self.missing.items()):
            noticed, last, tries = entry
            if now_ns - noticed > grace:
                del self.missing[ext]
                self.lost += 1
            elif tries < max_tries and now_ns - noticed >= NACK_DELAY_NS and \
                    now_ns - last >= retry:
                entry[1] = now_ns
                entry[2] = tries + 1
                out.append(ext & 0xFFFF)
        return out

    def report_block(self, now: float) -> ReportBlock | None:
        if self.highest < 0:
            return None
        expected = self.expected
        # RTX repairs count as received; late originals are in `packets` already
        received = self.packets - self.duplicates + self.rtx_recovered
        lost_total = max(0, expected - received)
        exp_int = expected - self.expected_prior
        rec_int = received - self.received_prior
        self.expected_prior, self.received_prior = expected, received
        fraction = min(255, ((exp_int - rec_int) << 8) // exp_int) if exp_int > rec_int else 0
        dlsr = int((now - self.sr_time) * 65536) if self.sr_middle else 0
        return ReportBlock(self.ssrc, fraction, min(lost_total, 0x7FFFFF),
                           self.highest & 0xFFFFFFFF, 0, self.sr_middle, dlsr)


class GapTracker:
    """The process's one 10 ms timer for every stream with open gaps."""

    def __init__(self, loop_call_later: Callable[..., object]) -> None:
        self.pending: set[ReceiveStream] = set()
        self._call_later = loop_call_later
        self._running = True
        self._call_later(0.01, self._tick)

    def _tick(self) -> None:
        if not self._running:
            return
        if self.pending:
            now = time.time_ns()
            for stream in list(self.pending):
                lost = stream.lost
                seqs = stream.scan(now)
                if seqs:
                    stream.nacks += 1
                    stream.on_nack(stream, seqs)
                if stream.lost > lost and stream.on_loss is not None:
                    stream.on_loss(stream)
                if not stream.missing:
                    self.pending.discard(stream)
        self._call_later(0.01, self._tick)

    def stop(self) -> None:
        self._running = False


class FeedbackClock:
    """The process's one 10 ms timer that has every subscriber send its transport-cc feedback
    once per interval, each at its own random phase (browsers are not synchronized; one timer
    for all of them at once would hit the server with a burst of hundreds of feedback
    packets every interval). Members are anything with a `send_feedback()` method."""

    TICK = 0.01

    def __init__(self, loop: Any, interval: float = 0.1) -> None:
        self._loop = loop
        self._slots: list[set[Any]] = [set() for _ in range(max(1, round(interval / self.TICK)))]
        self._index = 0
        self._timer = None
        self._running = True

    def add(self, member: Any) -> None:
        random.choice(self._slots).add(member)
        if self._timer is None and self._running:
            self._timer = self._loop.call_later(self.TICK, self._tick)

    def discard(self, member: Any) -> None:
        for slot in self._slots:
            slot.discard(member)

    def _tick(self) -> None:
        self._timer = None
        if not self._running:
            return
        slot = self._slots[self._index]
        self._index = (self._index + 1) % len(self._slots)
        for member in list(slot):
            member.send_feedback()
        self._timer = self._loop.call_later(self.TICK, self._tick)

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
