"""Delay-based overuse detection: arrival groups, trendline filter, adaptive threshold.

As libwebrtc's InterArrivalDelta, TrendlineEstimator and its threshold (draft-ietf-rmcat-gcc-02
sections 5.2-5.4; pion `pkg/gcc` trendline_estimator.go): packets sent within 5 ms of each
other form a group (an encoder's burst); for two consecutive groups the delay variation is
(arrival delta - send delta). Its running sum, smoothed, against arrival time over the last 20
groups gives a slope: a positive slope means a queue is growing somewhere on the path. The
slope, scaled, is compared with a threshold that itself follows the slope slowly, so that the
detector neither starves against a concurrent TCP flow nor fires on ordinary jitter.
"""

from __future__ import annotations

from collections import deque

NORMAL, OVERUSE, UNDERUSE = "normal", "overuse", "underuse"

GROUP_SPAN = 0.005  # s: packets sent within 5 ms of a group's first are one burst
WINDOW = 20  # groups in the linear fit
SMOOTHING = 0.9  # of the accumulated delay
THRESHOLD_GAIN = 4.0
MAX_DELTAS = 60  # the trend is scaled by min(groups seen, 60)
INITIAL_THRESHOLD = 12.5  # ms
MIN_THRESHOLD, MAX_THRESHOLD = 6.0, 600.0  # ms
MAX_ADAPT_OFFSET = 15.0  # ms: a trend this far past the threshold does not move it
K_UP, K_DOWN = 0.0087, 0.039  # per ms, threshold adaptation rates (gcc-02 section 5.4)
OVERUSE_TIME = 0.010  # s of overuse before it is signalled
MAX_ADAPT_STEP = 0.1  # s: the threshold adapts at most this much time per sample


class ArrivalGroups:
    """Packets (send time, arrival time) in send order -> completed groups' deltas."""

    __slots__ = ("_first_send", "_last_send", "_last_arrival", "_prev")

    def __init__(self) -> None:
        self._first_send = -1.0  # of the group being filled; -1 before the first packet
        self._last_send = self._last_arrival = 0.0
        self._prev: tuple[float, float] | None = None  # (last send, last arrival) of the last

    def add(self, send: float, arrival: float) -> tuple[float, float, float] | None:
        """One packet; returns (send delta, arrival delta, arrival) in s when it closes a
        group that has a predecessor."""
        if self._first_send < 0:
            self._first_send, self._last_send, self._last_arrival = send, send, arrival
            return None
        if send < self._first_send:
            return None  # sent before the current group began: reordered, no information
        if send - self._first_send <= GROUP_SPAN:
            if send > self._last_send:
                self._last_send = send
            if arrival > self._last_arrival:
                self._last_arrival = arrival
            return None
        done = (self._last_send, self._last_arrival)
        prev, self._prev = self._prev, done
        self._first_send, self._last_send, self._last_arrival = send, send, arrival
        if prev is None:
            return None
        return done[0] - prev[0], done[1] - prev[1], done[1]


class TrendlineDetector:
    """Inter-group delay variations -> NORMAL, OVERUSE or UNDERUSE."""

    __slots__ = ("state", "threshold", "trend", "_num", "_first_arrival", "_accumulated",
                 "_smoothed", "_points", "_prev_trend", "_overusing", "_time_overusing",
                 "_overuse_count", "_last_adapt")

    def __init__(self) -> None:
        self.state = NORMAL
        self.threshold = INITIAL_THRESHOLD
        self.trend = 0.0  # the last modified trend (ms), for stats
        self._num = 0
        self._first_arrival: float | None = None
        self._accumulated = self._smoothed = 0.0
        self._points: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self._prev_trend = 0.0
        self._overusing = False
        self._time_overusing = 0.0
        self._overuse_count = 0
        self._last_adapt: float | None = None

    def update(self, send_delta: float, arrival_delta: float, arrival: float) -> str:
        if arrival_delta < 0:
            return self.state  # groups reordered on the way: no measurement
        self._num = min(self._num + 1, 1000)
        if self._first_arrival is None:
            self._first_arrival = arrival
        self._accumulated += (arrival_delta - send_delta) * 1000.0
        self._smoothed = SMOOTHING * self._smoothed + (1 - SMOOTHING) * self._accumulated
        self._points.append(((arrival - self._first_arrival) * 1000.0, self._smoothed))
        trend = self._prev_trend
        if len(self._points) == WINDOW:
            slope = _slope(self._points)
            if slope is not None:
                trend = slope
        self._detect(trend, send_delta, arrival)
        return self.state

    def _detect(self, trend: float, send_delta: float, arrival: float) -> None:
        if self._num < 2:
            return
        modified = min(self._num, MAX_DELTAS) * trend * THRESHOLD_GAIN
        self.trend = modified
        if modified > self.threshold:
            if self._overusing:
                self._time_overusing += send_delta
            else:
                self._time_overusing = send_delta / 2  # it began somewhere within this delta
                self._overusing = True
            self._overuse_count += 1
            if (self._time_overusing > OVERUSE_TIME and self._overuse_count > 1
                    and trend >= self._prev_trend):
                self._time_overusing = 0.0
                self._overuse_count = 0
                self.state = OVERUSE
        elif modified < -self.threshold:
            self._overusing = False
            self._overuse_count = 0
            self.state = UNDERUSE
        else:
            self._overusing = False
            self._overuse_count = 0
            self.state = NORMAL
        self._prev_trend = trend
        self._adapt(modified, arrival)

    def _adapt(self, modified: float, arrival: float) -> None:
        last, self._last_adapt = self._last_adapt, arrival
        if last is None or abs(modified) > self.threshold + MAX_ADAPT_OFFSET:
            return  # a sudden spike (a capacity drop) must not raise the bar
        k = K_DOWN if abs(modified) < self.threshold else K_UP
        dt_ms = min(arrival - last, MAX_ADAPT_STEP) * 1000.0
        self.threshold += k * (abs(modified) - self.threshold) * dt_ms
        self.threshold = min(max(self.threshold, MIN_THRESHOLD), MAX_THRESHOLD)


def _slope(points: deque[tuple[float, float]]) -> float | None:
    """Least-squares slope of smoothed delay over arrival time; None if no time passed."""
    # one pass, from the first point (the window spans a second or so: no cancellation)
    x0, y0 = points[0]
    sx = sy = sxx = sxy = 0.0
    for x, y in points:
        x -= x0
        y -= y0
        sx += x
        sy += y
        sxx += x * x
        sxy += x * y
    n = len(points)
    den = n * sxx - sx * sx
    return (n * sxy - sx * sy) / den if den > 1e-9 else None
