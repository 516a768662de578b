"""Rate controllers: the delay-based AIMD and the loss-based one.

AIMD as libwebrtc's AimdRateControl (draft-ietf-rmcat-gcc-02 section 5.5): overuse ->
decrease to 0.85 x the rate the receiver actually got; normal -> increase, multiplicatively
while far from the link capacity seen at past decreases, additively (about a packet per
response time) near it; underuse -> hold while the queues drain. Loss-based as libwebrtc's
classic SendSideBandwidthEstimation (gcc-02 section 6): more than 10% lost -> rate x
(1 - loss / 2); less than 2% -> increase; in between hold.
"""

from __future__ import annotations

import math

from .delay import OVERUSE, UNDERUSE

HOLD, INCREASE, DECREASE = "hold", "increase", "decrease"

BETA = 0.85  # decrease to this share of the received rate
# Multiplicative increase per second, far from the known link capacity. libwebrtc uses 1.08
# and climbs back with probes (padding at a higher rate, read from the feedback); without a
# prober a climb from 300 kbit/s to 2 Mbit/s at 1.08 takes 25 s, at 1.3 about 7.5 s. Each
# step is still checked by the delay detector within a round trip.
INCREASE_PER_SECOND = 1.3
MIN_INCREASE = 1000  # bit/s per update at the least
PACKET_BITS = 1200 * 8  # the packet size the additive increase is counted in
FRAME_RATE = 30.0
MAX_RATE_OVER_RECEIVED = 1.5  # never raise above 1.5 x the received rate + 10 kbit/s
RATE_MARGIN = 10_000
LOSS_DECREASE = 0.10
LOSS_INCREASE = 0.02
LOSS_WINDOW = 1.0  # s: loss is judged over at least this long (RTCP RR's usual interval)
LOSS_MIN_PACKETS = 20
LOSS_DECREASE_INTERVAL = 0.3  # s, plus a round trip, between loss-based decreases


class LinkCapacity:
    """Mean and deviation of the received rate at each overuse (libwebrtc
    LinkCapacityEstimator), in kbit/s: where the link's limit was last seen."""

    __slots__ = ("estimate", "_var")

    def __init__(self) -> None:
        self.estimate: float | None = None
        self._var = 0.4

    def _deviation(self) -> float:
        return math.sqrt(self._var * (self.estimate or 0.0))

    def upper(self) -> float:
        return ((self.estimate or 0.0) + 3 * self._deviation()) * 1000

    def lower(self) -> float:
        return max(0.0, (self.estimate or 0.0) - 3 * self._deviation()) * 1000

    def on_overuse(self, received: float) -> None:
        sample = received / 1000
        if self.estimate is None:
            self.estimate = sample
        else:
            self.estimate = 0.95 * self.estimate + 0.05 * sample
        error = self.estimate - sample
        self._var = 0.95 * self._var + 0.05 * error * error / max(self.estimate, 1.0)
        self._var = min(max(self._var, 0.4), 2.5)

    def reset(self) -> None:
        self.estimate = None


class AimdRateControl:
    __slots__ = ("rate", "state", "min_rate", "max_rate", "increase_per_second",
                 "capacity", "_last_change", "_last_decrease")

    def __init__(self, initial: int, min_rate: int, max_rate: int,
                 increase_per_second: float = INCREASE_PER_SECOND) -> None:
        self.rate = float(initial)
        self.state = HOLD
        self.min_rate, self.max_rate = min_rate, max_rate
        self.increase_per_second = increase_per_second
        self.capacity = LinkCapacity()
        self._last_change: float | None = None
        self._last_decrease: float | None = None

    def update(self, usage: str, received: float | None, rtt: float, now: float,
               app_limited: bool = False) -> float:
        if usage == OVERUSE:
            self.state = DECREASE
        elif usage == UNDERUSE:
            self.state = HOLD
        elif self.state == HOLD:
            self.state = INCREASE
            self._last_change = now
        if self.state == INCREASE:
            self._increase(received, rtt, now)
        elif self.state == DECREASE and received is not None and self._may_reduce(
                received, rtt, now):
            self._decrease(self.rate if app_limited else received, now)
        self.rate = min(max(self.rate, self.min_rate), self.max_rate)
        return self.rate

    def _increase(self, received: float | None, rtt: float, now: float) -> None:
        if received is not None and self.capacity.estimate is not None and \
                received > self.capacity.upper():
            self.capacity.reset()  # the link carries more now than when it last filled up
        dt = min(now - self._last_change, 1.0) if self._last_change is not None else 0.0
        if self.capacity.estimate is not None:
            # about one packet per response time (libwebrtc AdditiveRateIncrease)
            frame_bits = self.rate / FRAME_RATE
            packet_bits = frame_bits / math.ceil(frame_bits / PACKET_BITS)
            step = max(MIN_INCREASE, packet_bits / (rtt + 0.1) * dt)
        else:
            step = max(MIN_INCREASE, self.rate * (self.increase_per_second ** dt - 1.0))
        new = self.rate + step
        if received is not None:
            limit = MAX_RATE_OVER_RECEIVED * received + RATE_MARGIN
            if new > limit:
                new = max(self.rate, limit)
        self.rate = new
        self._last_change = now

    def _may_reduce(self, received: float, rtt: float, now: float) -> bool:
        """At most once per round trip (10-200 ms), sooner if the rate got far too high."""
        if self._last_decrease is None:
            return True
        if now - self._last_decrease >= min(max(rtt, 0.01), 0.2):
            return True
        return received < 0.5 * self.rate

    def _decrease(self, received: float, now: float) -> None:
        new = BETA * received
        if new > self.rate and self.capacity.estimate is not None:
            new = BETA * self.capacity.estimate * 1000
        if new < self.rate:
            self.rate = new
        if self.capacity.estimate is not None and received < self.capacity.lower():
            self.capacity.reset()  # far below the old capacity: the path changed
        self.capacity.on_overuse(received)
        self.state = HOLD
        self._last_change = self._last_decrease = now


class LossBasedControl:
    """The rate that loss allows, judged over windows of at least a second: below 2% lost it
    follows the delay-based rate up, from 2 to 10% it holds, above 10% it decreases."""

    __slots__ = ("rate", "loss", "min_rate", "max_rate", "_follow", "_lost", "_total",
                 "_window_start", "_last_decrease")

    def __init__(self, initial: int, min_rate: int, max_rate: int) -> None:
        self.rate = float(initial)
        self.loss = 0.0  # of the last window judged
        self.min_rate, self.max_rate = min_rate, max_rate
        self._follow = True  # the last window was clean: no limit beyond the delay-based
        self._lost = self._total = 0
        self._window_start: float | None = None
        self._last_decrease: float | None = None

    def update(self, lost: int, total: int, delay_rate: float, rtt: float,
               now: float, received: float | None = None) -> float:
        if self._window_start is None:
            self._window_start = now
        self._lost += lost
        self._total += total
        if self._total >= LOSS_MIN_PACKETS and now - self._window_start >= LOSS_WINDOW:
            self.loss = self._lost / self._total
            self._lost = self._total = 0
            self._window_start = now
            self._follow = self.loss < LOSS_INCREASE
            if self.loss > LOSS_DECREASE and (
                    self._last_decrease is None
                    or now - self._last_decrease >= LOSS_DECREASE_INTERVAL + rtt):
                # what got through in the window is carried: a window that judged the
                # sending before the last decrease took effect does not push below it
                self.rate = max(self.rate * (1.0 - 0.5 * self.loss), BETA * (received or 0))
                self._last_decrease = now
        # never ahead of the delay-based rate (libwebrtc caps it so); up with it while clean
        self.rate = delay_rate if self._follow else min(self.rate, delay_rate)
        self.rate = min(max(self.rate, self.min_rate), self.max_rate)
        return self.rate
