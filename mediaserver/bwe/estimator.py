"""SendSideEstimator: what one subscriber's path carries, from its transport-cc feedback."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from itertools import compress

from ..rtp.twcc import (
    DELTA_TICK_US,
    NOT_RECEIVED,
    REFERENCE_MASK,
    REFERENCE_TICK_US,
    Buffer,
    TwccFeedback,
    parse_feedback,
)
from .delay import NORMAL, ArrivalGroups, TrendlineDetector
from .history import SendHistory
from .native import USAGES, NativeEstimator
from .rate import INCREASE_PER_SECOND, AimdRateControl, LossBasedControl

INITIAL_RATE = 1_000_000  # bit/s until feedback says otherwise
MIN_RATE = 50_000  # audio and a thumbnail still fit
MAX_RATE = 20_000_000
RECEIVED_WINDOW = 0.5  # s of arrivals the received rate is measured over
RTT_SMOOTHING = 0.9
APP_LIMITED = 0.5  # sending below this share of the estimate: it is not the path that limits


class SendSideEstimator:
    """`on_fci` or `on_transport_cc` for every transport-cc packet; `estimate` (bit/s) is the
    lesser of the delay-based and the loss-based rate. Times: `send_time` and `now` on the
    sender's clock (s), arrivals on the receiver's (the feedback's), only ever compared with
    each other.

    A feedback's work runs in C (native.py, one call per feedback, the figures below copied
    from it after); `native=False` runs the Python reference instead (the tests compare the
    two)."""

    def __init__(self, initial: int = INITIAL_RATE, min_rate: int = MIN_RATE,
                 max_rate: int = MAX_RATE,
                 increase_per_second: float = INCREASE_PER_SECOND, native: bool = True) -> None:
        self.estimate = initial
        self.received_rate = 0  # bit/s the receiver got over the last half second
        self.rtt = 0.1  # s, from send to feedback (includes the receiver's feedback delay)
        self.usage = NORMAL
        self.feedbacks = self.packets_lost = self.packets_acked = 0
        self.sent_rate = 0  # bit/s we sent over the last half second (of what feedback covers)
        self._native: NativeEstimator | None = None
        # the detector's state, threshold and trend (the C's where it runs)
        self._detector: TrendlineDetector | NativeEstimator
        if native:  # the C keeps the state below in its own struct
            self._native = self._detector = NativeEstimator(initial, min_rate, max_rate,
                                                            increase_per_second)
            return
        self._groups = ArrivalGroups()
        self._detector = TrendlineDetector()
        self._aimd = AimdRateControl(initial, min_rate, max_rate, increase_per_second)
        self._loss = LossBasedControl(initial, min_rate, max_rate)
        # bytes received per feedback: (first arrival, last arrival, bytes), last 0.5 s
        self._received = RateWindow()  # by arrival time (the receiver's clock)
        self._sent = RateWindow()  # by send time (ours)
        self._reference: int | None = None  # last reference time, unwrapped (64 ms units)
        self._last_acked = -1  # highest seq reported (extended), so repeats count once

    @property
    def loss(self) -> float:
        """Share of packets lost in the last window the loss-based control judged."""
        return self._loss.loss if self._native is None else self._native.s.rate.loss

    def on_fci(self, history: SendHistory, fci: Buffer, now: float) -> None:
        """A transport-cc FCI (after the two SSRCs) about what `history` recorded: parsed and
        taken in one C call. ValueError, with parse_feedback's message, if it is malformed
        (the estimator then unchanged)."""
        if self._native is None:
            self.on_transport_cc(history, parse_feedback(0, 0, fci), now)
            return
        if self._native.feedback(history, fci if type(fci) is bytes else bytes(fci), now):
            self._apply()

    def on_transport_cc(self, history: SendHistory, feedback: TwccFeedback, now: float) -> None:
        """A transport-cc feedback about what `history` recorded (the media worker's path:
        the send records of the feedback's numbers are one run of the history's ring)."""
        if self._native is not None:
            if self._native.feedback(history, feedback.fci, now):
                self._apply()
            return
        first, times, sizes = history.window(feedback.base_seq, len(feedback.symbols))
        self._update(feedback, first, times, sizes, now)

    def on_feedback(self, sent: Iterable[tuple[int, float, int]], feedback: TwccFeedback,
                    now: float) -> None:
        """`sent`: (transport-wide seq, send time, size) of the packets the feedback covers, in
        sequence order, as the sender recorded them (SendHistory.lookup); others are ignored."""
        count, base = len(feedback.symbols), feedback.base_seq
        if self._native is not None:
            if self._native.feedback_from(sent, base, count, feedback.fci, now):
                self._apply()
            return
        times, sizes = [-1.0] * count, [0] * count
        for seq, send, size in sent:
            i = (seq - base) & 0xFFFF
            if i < count:
                times[i], sizes[i] = send, size
        self._update(feedback, 0, times, sizes, now)

    def _update(self, feedback: TwccFeedback, first: int, times: Sequence[float],
                sizes: Sequence[int], now: float) -> None:
        """`times[k]`, `sizes[k]`: the send record of number `base_seq + first + k`, time -1
        if none. C-level builtins over slices (min, max, sum, count, compress, map) where a
        loop per packet was: the same values, so the same decisions."""
        offset = self._unwrap(feedback.reference_time) * REFERENCE_TICK_US
        base = feedback.base_seq
        # Receivers may report a number again: only those past the last one reported count.
        last = self._last_acked
        # (extended numbers start one wrap up, so that ones just below the first stay >= 0)
        ext_base = base + 0x10000 if last < 0 else \
            last + ((base - last + 0x8000) & 0xFFFF) - 0x8000
        start = first if last < 0 else max(first, last - ext_base + 1)
        stop = first + len(times)
        if start >= stop:
            return
        symbols = feedback.symbols
        received = symbols[start:stop]  # nonzero: received
        skipped = start - symbols.count(NOT_RECEIVED, 0, start)  # received before start
        ticks = feedback.ticks[skipped:skipped + stop - start - received.count(NOT_RECEIVED)]
        sends = times[start - first:]
        sizes = sizes[start - first:]
        if min(sends) < 0:  # numbers without a send record (a history started anew)
            known = bytes([t >= 0 for t in sends])
            if not any(known):
                return
            highest = stop - 1 - known[::-1].index(1)
            ticks = list(compress(ticks, compress(known, received)))
            received = bytes(compress(received, known))
            sends = list(compress(sends, known))
            sizes = list(compress(sizes, known))
        else:
            highest = stop - 1
        total = len(sends)
        lost = received.count(NOT_RECEIVED)
        if lost:
            got_sends = list(compress(sends, received))
            got_sizes = list(compress(sizes, received))
        else:
            got_sends, got_sizes = sends, sizes
        # arrivals: ticks after the reference time, on the receiver's clock unwrapped
        at_us = feedback.reference_time * REFERENCE_TICK_US + offset
        self._last_acked = ext_base + highest
        self.feedbacks += 1  # that told us about packets we know
        got_bytes = sum(got_sizes)
        if got_bytes:
            j = 0 if got_sizes[0] else next(k for k, n in enumerate(got_sizes) if n)
            self.received_rate = self._received.add(
                (at_us + DELTA_TICK_US * ticks[j]) / 1e6,
                (at_us + DELTA_TICK_US * max(ticks[j:])) / 1e6, got_bytes) or self.received_rate
        self.sent_rate = self._sent.add(min(sends), max(sends), sum(sizes)) or self.sent_rate
        self.packets_lost += lost
        self.packets_acked += total - lost
        usage = self._detector.state
        if got_sends:
            groups = self._groups.add_many(got_sends, ticks, at_us, DELTA_TICK_US)
            if groups:
                usage = self._detector.update_many(groups)
            newest_send = max(got_sends)
            if now >= newest_send:
                self.rtt = RTT_SMOOTHING * self.rtt + (1 - RTT_SMOOTHING) * (now - newest_send)
        received_rate = self.received_rate or None
        self.usage = usage
        # Sending far below the estimate (videos held, only sound going), what arrives says
        # little about the path: an overuse then lowers the estimate by BETA, not to BETA x
        # the little that arrived (which fell again at each overuse, down to the minimum)
        limited = self.sent_rate < APP_LIMITED * self._aimd.rate
        delay_rate = self._aimd.update(usage, received_rate, self.rtt, now, app_limited=limited)
        rate = self._loss.update(lost, total, delay_rate, self.rtt, now, received_rate)
        self.estimate = int(min(delay_rate, rate))

    def _apply(self) -> None:
        """The figures the C computed for a feedback that told of packets we know."""
        s = self._native.s  # type: ignore[union-attr]
        self.estimate, self.received_rate, self.sent_rate = s.estimate, s.received_rate, \
            s.sent_rate
        self.rtt, self.usage, self.feedbacks = s.rtt, USAGES[s.state], s.feedbacks
        self.packets_lost, self.packets_acked = s.packets_lost, s.packets_acked

    def raise_to(self, rate: float) -> None:
        """A probe showed the path carrying `rate` without overuse (allocation.Prober, as
        libwebrtc's probe results do): both controls start from there."""
        if rate <= self.estimate or self.usage != NORMAL:
            return
        if self._native is not None:
            self.estimate = self._native.raise_to(rate)
            return
        self._aimd.rate = min(max(self._aimd.rate, rate), self._aimd.max_rate)
        self._loss.rate = min(max(self._loss.rate, rate), self._loss.max_rate)
        self.estimate = int(min(self._aimd.rate, self._loss.rate))

    def _unwrap(self, reference: int) -> int:
        """Reference time without its 24-bit wrap, as a difference from the last one."""
        if self._reference is None:
            self._reference = reference
        else:
            last = self._reference
            d = ((reference - last + 0x800000) & REFERENCE_MASK) - 0x800000
            self._reference = last + d
        return self._reference - reference


class RateWindow:
    """bit/s of what happened in the last RECEIVED_WINDOW seconds, from spans of (first,
    last, bytes): what arrived (receiver's clock) or what was sent (ours)."""

    __slots__ = ("_spans", "_bytes", "_newest")

    def __init__(self) -> None:
        self._spans: deque[tuple[float, float, int]] = deque()
        self._bytes = 0
        self._newest = float("-inf")

    def add(self, first: float, last: float, size: int) -> int:
        """Add a span; the rate over the window, 0 while it spans under 0.1 s."""
        if not size:
            return 0
        spans = self._spans
        spans.append((first, last, size))
        self._bytes += size
        newest = self._newest = max(last, self._newest)
        while len(spans) > 1 and spans[0][1] < newest - RECEIVED_WINDOW:
            self._bytes -= spans.popleft()[2]
        span = newest - spans[0][0]
        return int(self._bytes * 8 / span) if span >= 0.1 else 0
