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

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable

NORMAL, OVERUSE, UNDERUSE = "normal", "overuse", "underuse"

GROUP_SPAN = 0.005  # s: packets sent within 5 ms of a group's first are one burst
WINDOW = 20  # groups in the linear fit
SMOOTHING = 0.9  # of the accumulated delay
_NEW_SHARE = 1 - SMOOTHING
THRESHOLD_GAIN = 4.0
MAX_DELTAS = 60  # the trend is scaled by min(groups seen, 60)
INITIAL_THRESHOLD = 12.5  # ms
MIN_THRESHOLD, MAX_THRESHOLD = 6.0, 600.0  # ms
MAX_ADAPT_OFFSET = 15.0  # ms: a trend this far past the threshold does not move it
K_UP, K_DOWN = 0.0087, 0.039  # per ms, threshold adaptation rates (gcc-02 section 5.4)
OVERUSE_TIME = 0.010  # s of overuse before it is signalled
MAX_ADAPT_STEP = 0.1  # s: the threshold adapts at most this much time per sample
EXACT_EVERY = 64  # updates between exact recomputations of the fit's running sums

Group = tuple[float, float, float]  # (send delta, arrival delta, arrival) in s


class ArrivalGroups:
    """Packets (send time, arrival time) in send order -> completed groups' deltas."""

    __slots__ = ("_first_send", "_last_send", "_last_arrival", "_prev")

    def __init__(self) -> None:
        self._first_send = -1.0  # of the group being filled; -1 before the first packet
        self._last_send = self._last_arrival = 0.0
        self._prev: tuple[float, float] | None = None  # (last send, last arrival) of the last

    def add(self, send: float, arrival: float) -> Group | None:
        """One packet; returns (send delta, arrival delta, arrival) in s when it closes a
        group that has a predecessor."""
        done = self.add_each((send,), (arrival,))
        return done[0] if done else None

    def add_many(self, sends: list[float], arrivals: list[int], origin_us: int,
                 tick_us: int) -> list[Group]:
        """The packets of one feedback, in sequence order: their send times (s) and arrivals
        as whole ticks of `tick_us` after `origin_us` (an arrival in s is that exact integer
        of us / 1e6). The groups they close that have a predecessor.

        Send times in order (as a sender records them) are cut into groups by bisection and
        each group's latest arrival taken by max(): work per group, not per packet, and the
        same groups, times and deltas as `add_each` (each cut checked with its exact test;
        the max of converted times is the converted max). Others go packet by packet."""
        n = len(sends)
        if not n or sends[0] < 0 or sends != sorted(sends):
            return self.add_each(sends, [(origin_us + tick_us * a) / 1e6 for a in arrivals])
        out: list[Group] = []
        first, last_send, last_arrival = self._first_send, self._last_send, self._last_arrival
        prev = self._prev
        i = 0
        if first < 0:  # the very first packet opens the first group
            first = last_send = sends[0]
            last_arrival = (origin_us + tick_us * arrivals[0]) / 1e6
            i = 1
        i = bisect_left(sends, first, i)  # sent before the current group began: skipped
        while i < n:
            j = bisect_right(sends, first + GROUP_SPAN, i)  # then the exact test at the cut
            while j > i and sends[j - 1] - first > GROUP_SPAN:
                j -= 1
            while j < n and sends[j] - first <= GROUP_SPAN:
                j += 1
            if j > i:  # these extend the current group
                if sends[j - 1] > last_send:
                    last_send = sends[j - 1]
                latest = (origin_us + tick_us * max(arrivals[i:j])) / 1e6
                if latest > last_arrival:
                    last_arrival = latest
            if j == n:
                break
            if prev is not None:
                out.append((last_send - prev[0], last_arrival - prev[1], last_arrival))
            prev = (last_send, last_arrival)
            first = last_send = sends[j]
            last_arrival = (origin_us + tick_us * arrivals[j]) / 1e6
            i = j + 1
        self._first_send, self._last_send, self._last_arrival = first, last_send, last_arrival
        self._prev = prev
        return out

    def add_each(self, sends: Iterable[float], arrivals: Iterable[float]) -> list[Group]:
        """Packets (send, arrival in s) one by one, in the order given: the groups they
        close that have a predecessor."""
        out: list[Group] = []
        first, last_send, last_arrival = self._first_send, self._last_send, self._last_arrival
        prev = self._prev
        for send, arrival in zip(sends, arrivals, strict=True):
            if first < 0:
                first = last_send = send
                last_arrival = arrival
                continue
            if send < first:
                continue  # sent before the current group began: reordered, no information
            if send - first <= GROUP_SPAN:
                if send > last_send:
                    last_send = send
                if arrival > last_arrival:
                    last_arrival = arrival
                continue
            if prev is not None:
                out.append((last_send - prev[0], last_arrival - prev[1], last_arrival))
            prev = (last_send, last_arrival)
            first = last_send = send
            last_arrival = arrival
        self._first_send, self._last_send, self._last_arrival = first, last_send, last_arrival
        self._prev = prev
        return out


class TrendlineDetector:
    """Inter-group delay variations -> NORMAL, OVERUSE or UNDERUSE.

    The window's least-squares slope of smoothed delay over arrival time is kept as running
    sums (a point in, maybe one out) relative to a base point: O(1) per group. The sums are
    recomputed exactly every EXACT_EVERY updates so rounding never accumulates (the same slope
    as a full pass to 2e-12 relative over 100,000 random updates)."""

    __slots__ = ("state", "threshold", "trend", "_num", "_first_arrival", "_accumulated",
                 "_smoothed", "_points", "_prev_trend", "_overusing", "_time_overusing",
                 "_overuse_count", "_last_adapt", "_fit")

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
        # the fit's running sums: updates, n, sum x, y, xx, xy, and the base point (x, y)
        self._fit = [0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]

    def update(self, send_delta: float, arrival_delta: float, arrival: float) -> str:
        return self.update_many(((send_delta, arrival_delta, arrival),))

    def update_many(self, groups: Iterable[Group]) -> str:
        """Each group's delay variation in turn (the state in locals for the whole batch:
        one attribute load and store per feedback, not per group); the state after them."""
        num, first_arrival = self._num, self._first_arrival
        accumulated, smoothed, points = self._accumulated, self._smoothed, self._points
        prev_trend, threshold, state = self._prev_trend, self.threshold, self.state
        overusing, time_overusing = self._overusing, self._time_overusing
        overuse_count, last_adapt, modified = self._overuse_count, self._last_adapt, self.trend
        count, n, sx, sy, sxx, sxy, bx, by = self._fit
        for send_delta, arrival_delta, arrival in groups:
            if arrival_delta < 0:
                continue  # groups reordered on the way: no measurement
            num = num + 1 if num < 1000 else 1000
            if first_arrival is None:
                first_arrival = arrival
            accumulated += (arrival_delta - send_delta) * 1000.0
            smoothed = SMOOTHING * smoothed + _NEW_SHARE * accumulated
            px = (arrival - first_arrival) * 1000.0
            if len(points) == WINDOW:
                ex, ey = points[0]
                points.append((px, smoothed))
            else:
                ex = None
                points.append((px, smoothed))
            # the slope of the window, from the running sums
            count += 1
            if count % EXACT_EVERY == 0 or n == 0:  # the sums anew, relative to the first
                bx, by = points[0]
                n, sx, sy, sxx, sxy = _sums(points, bx, by)
            else:  # the new point in, then the evicted one out
                x, y = px - bx, smoothed - by
                n += 1
                sx += x
                sy += y
                sxx += x * x
                sxy += x * y
                if ex is not None:
                    x, y = ex - bx, ey - by
                    n -= 1
                    sx -= x
                    sy -= y
                    sxx -= x * x
                    sxy -= x * y
            trend = prev_trend
            if len(points) == WINDOW:
                den = n * sxx - sx * sx
                if den > 1e-9:
                    trend = (n * sxy - sx * sy) / den
            if num < 2:
                continue
            # detection against the threshold
            modified = (num if num < MAX_DELTAS else MAX_DELTAS) * trend * THRESHOLD_GAIN
            if modified > threshold:
                if overusing:
                    time_overusing += send_delta
                else:
                    time_overusing = send_delta / 2  # it began somewhere within this delta
                    overusing = True
                overuse_count += 1
                if time_overusing > OVERUSE_TIME and overuse_count > 1 and trend >= prev_trend:
                    time_overusing = 0.0
                    overuse_count = 0
                    state = OVERUSE
            else:
                overusing = False
                overuse_count = 0
                state = UNDERUSE if modified < -threshold else NORMAL
            prev_trend = trend
            # the threshold follows the trend slowly; a sudden spike (a capacity drop) must
            # not raise the bar
            last, last_adapt = last_adapt, arrival
            size = abs(modified)
            if last is None or size > threshold + MAX_ADAPT_OFFSET:
                continue
            dt = arrival - last
            if dt > MAX_ADAPT_STEP:
                dt = MAX_ADAPT_STEP
            threshold += (K_DOWN if size < threshold else K_UP) * (size - threshold) * (
                dt * 1000.0)
            if threshold < MIN_THRESHOLD:
                threshold = MIN_THRESHOLD
            elif threshold > MAX_THRESHOLD:
                threshold = MAX_THRESHOLD
        self._num, self._first_arrival = num, first_arrival
        self._accumulated, self._smoothed = accumulated, smoothed
        self._prev_trend, self.threshold, self.state = prev_trend, threshold, state
        self._overusing, self._time_overusing = overusing, time_overusing
        self._overuse_count, self._last_adapt, self.trend = overuse_count, last_adapt, modified
        self._fit = [count, n, sx, sy, sxx, sxy, bx, by]
        return state


def _sums(points: Iterable[tuple[float, float]], bx: float,
          by: float) -> tuple[int, float, float, float, float]:
    """The fit's sums over the window from scratch, relative to (bx, by), in window order
    (n, x, y, xx, xy): what the running sums are brought back to every EXACT_EVERY updates."""
    n, sx, sy, sxx, sxy = 0, 0.0, 0.0, 0.0, 0.0
    for qx, qy in points:
        x = qx - bx
        y = qy - by
        n, sx, sy, sxx, sxy = n + 1, sx + x, sy + y, sxx + x * x, sxy + x * y
    return n, sx, sy, sxx, sxy
