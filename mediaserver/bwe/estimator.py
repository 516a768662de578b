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
        self._received: deque[tuple[float, int]] = deque()  # (arrival s, bytes)
        self._received_bytes = 0
        self._newest_arrival = float("-inf")
        self._reference: int | None = None  # last reference time, unwrapped (64 ms units)
        self._last_acked = -1  # highest seq reported (extended), so repeats count once

    @property
    def loss(self) -> float:
        """Share of packets lost in the last window the loss-based control judged."""
        return self._loss.loss

    def on_feedback(self, sent: Iterable[tuple[int, float, int]], feedback: TwccFeedback,
                    now: float) -> None:
        """`sent`: (transport-wide seq, send time, size) of the packets the feedback covers,
        as the sender recorded them (SendHistory.lookup); others in it are ignored."""
        self.feedbacks += 1
        offset = self._unwrap(feedback.reference_time) * REFERENCE_TICK_US
        by_seq = {seq: (t, size) for seq, t, size in sent}
        base = feedback.base_seq
        lost = total = 0
        newest_send = None
        usage = self._detector.state
        for i, arrival in enumerate(feedback.arrivals):
            seq = (base + i) & 0xFFFF
            info = by_seq.get(seq)
            if info is None or not self._first_report(seq):
                continue
            total += 1
            if arrival is None:
                lost += 1
                continue
            send, size = info
            at = (arrival + offset) / 1e6
            self._add_received(at, size)
            done = self._groups.add(send, at)
            if done is not None:
                usage = self._detector.update(*done)
            if newest_send is None or send > newest_send:
                newest_send = send
        if total == 0:
            return
        self.packets_lost += lost
        self.packets_acked += total - lost
        if newest_send is not None and now >= newest_send:
            self.rtt = RTT_SMOOTHING * self.rtt + (1 - RTT_SMOOTHING) * (now - newest_send)
        received = self.received_rate or None
        self.usage = usage
        delay_rate = self._aimd.update(usage, received, self.rtt, now)
        rate = self._loss.update(lost, total, delay_rate, self.rtt, now)
        self.estimate = int(min(delay_rate, rate))

    def _first_report(self, seq: int) -> bool:
        """False for a number an earlier feedback already reported (receivers repeat)."""
        last = self._last_acked
        if last < 0:
            self._last_acked = seq
            return True
        ext = last + ((seq - last + 0x8000) & 0xFFFF) - 0x8000
        if ext <= last:
            return False
        self._last_acked = ext
        return True

    def _unwrap(self, reference: int) -> int:
        """Reference time without its 24-bit wrap, as a difference from the last one."""
        if self._reference is None:
            self._reference = reference
        else:
            last = self._reference
            d = ((reference - last + 0x800000) & REFERENCE_MASK) - 0x800000
            self._reference = last + d
        return self._reference - reference

    def _add_received(self, arrival: float, size: int) -> None:
        window = self._received
        window.append((arrival, size))
        self._received_bytes += size
        newest = self._newest_arrival = max(arrival, self._newest_arrival)
        while window and window[0][0] < newest - RECEIVED_WINDOW:
            self._received_bytes -= window.popleft()[1]
        span = newest - window[0][0]
        if span >= 0.1 and len(window) > 1:
            # the first packet's bytes arrived before the span began
            self.received_rate = int((self._received_bytes - window[0][1]) * 8 / span)
