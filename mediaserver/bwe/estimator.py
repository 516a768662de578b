"""SendSideEstimator: what one subscriber's path carries, from its transport-cc feedback."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ..rtp.twcc import REFERENCE_MASK, REFERENCE_TICK_US, TwccFeedback
from .delay import NORMAL, ArrivalGroups, TrendlineDetector
from .rate import INCREASE_PER_SECOND, AimdRateControl, LossBasedControl

INITIAL_RATE = 1_000_000  # bit/s until feedback says otherwise
MIN_RATE = 50_000  # audio and a thumbnail still fit
MAX_RATE = 20_000_000
RECEIVED_WINDOW = 0.5  # s of arrivals the received rate is measured over
RTT_SMOOTHING = 0.9
APP_LIMITED = 0.5  # sending below this share of the estimate: it is not the path that limits


class SendSideEstimator:
    """`on_feedback` for every transport-cc packet; `estimate` (bit/s) is the lesser of the
    delay-based and the loss-based rate. Times: `send_time` and `now` on the sender's clock
    (s), arrivals on the receiver's (the feedback's), only ever compared with each other."""

    def __init__(self, initial: int = INITIAL_RATE, min_rate: int = MIN_RATE,
                 max_rate: int = MAX_RATE,
                 increase_per_second: float = INCREASE_PER_SECOND) -> None:
        self.estimate = initial
        self.received_rate = 0  # bit/s the receiver got over the last half second
        self.rtt = 0.1  # s, from send to feedback (includes the receiver's feedback delay)
        self.usage = NORMAL
        self.feedbacks = self.packets_lost = self.packets_acked = 0
        self._groups = ArrivalGroups()
        self._detector = TrendlineDetector()
        self._aimd = AimdRateControl(initial, min_rate, max_rate, increase_per_second)
        self._loss = LossBasedControl(initial, min_rate, max_rate)
        # bytes received per feedback: (first arrival, last arrival, bytes), last 0.5 s
        self._received = RateWindow()  # by arrival time (the receiver's clock)
        self.sent_rate = 0  # bit/s we sent over the last half second (of what feedback covers)
        self._sent = RateWindow()  # by send time (ours)
        self._reference: int | None = None  # last reference time, unwrapped (64 ms units)
        self._last_acked = -1  # highest seq reported (extended), so repeats count once

    @property
    def loss(self) -> float:
        """Share of packets lost in the last window the loss-based control judged."""
        return self._loss.loss

    def on_feedback(self, sent: Iterable[tuple[int, float, int]], feedback: TwccFeedback,
                    now: float) -> None:
        """`sent`: (transport-wide seq, send time, size) of the packets the feedback covers, in
        the order sent, as the sender recorded them (SendHistory.lookup); others are ignored."""
        offset = self._unwrap(feedback.reference_time) * REFERENCE_TICK_US
        arrivals = feedback.arrivals
        count = len(arrivals)
        base = feedback.base_seq
        # Receivers may report a number again: only those past the last one reported count.
        last = self._last_acked
        # (extended numbers start one wrap up, so that ones just below the first stay >= 0)
        ext_base = base + 0x10000 if last < 0 else \
            last + ((base - last + 0x8000) & 0xFFFF) - 0x8000
        first_new = 0 if last < 0 else max(0, last - ext_base + 1)
        lost = total = got_bytes = 0
        highest = -1
        first_at = last_at = 0.0
        newest_send = None
        first_send, last_send, sent_bytes = float("inf"), float("-inf"), 0
        usage = self._detector.state
        for seq, send, size in sent:
            i = (seq - base) & 0xFFFF
            if i < first_new or i >= count:
                continue
            if i > highest:
                highest = i
            total += 1
            sent_bytes += size
            first_send = min(first_send, send)
            last_send = max(last_send, send)
            arrival = arrivals[i]
            if arrival is None:
                lost += 1
                continue
            at = (arrival + offset) / 1e6
            if not got_bytes:
                first_at = last_at = at
            elif at > last_at:
                last_at = at
            got_bytes += size
            done = self._groups.add(send, at)
            if done is not None:
                usage = self._detector.update(*done)
            if newest_send is None or send > newest_send:
                newest_send = send
        if total == 0:
            return
        self._last_acked = ext_base + highest
        self.feedbacks += 1  # that told us about packets we know
        if got_bytes:
            self.received_rate = self._received.add(first_at, last_at, got_bytes) or \
                self.received_rate
        self.sent_rate = self._sent.add(first_send, last_send, sent_bytes) or self.sent_rate
        self.packets_lost += lost
        self.packets_acked += total - lost
        if newest_send is not None and now >= newest_send:
            self.rtt = RTT_SMOOTHING * self.rtt + (1 - RTT_SMOOTHING) * (now - newest_send)
        received = self.received_rate or None
        self.usage = usage
        # Sending far below the estimate (videos held, only sound going), what arrives says
        # little about the path: an overuse then lowers the estimate by BETA, not to BETA x
        # the little that arrived (which fell again at each overuse, down to the minimum)
        limited = self.sent_rate < APP_LIMITED * self._aimd.rate
        delay_rate = self._aimd.update(usage, received, self.rtt, now, app_limited=limited)
        rate = self._loss.update(lost, total, delay_rate, self.rtt, now, received)
        self.estimate = int(min(delay_rate, rate))

    def raise_to(self, rate: float) -> None:
        """A probe showed the path carrying `rate` without overuse (allocation.Prober, as
        libwebrtc's probe results do): both controls start from there."""
        if rate <= self.estimate or self.usage != NORMAL:
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
