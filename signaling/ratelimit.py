"""Rate limits: a token bucket checked per message, and the flood guard behind it.

Both read the module's `monotonic` clock, so a test can move time instead of sleeping.
"""

from __future__ import annotations

import time

monotonic = time.monotonic


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = monotonic()

    def take(self, now: float | None = None) -> bool:
        now = monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class FloodGuard:
    """Refused messages counted per window: a burst now and then over a two-hour meeting is
    refused message by message; only more than `limit` refusals within one `window` seconds
    is a flood."""

    __slots__ = ("limit", "window", "count", "start")

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.count = 0
        self.start = float("-inf")  # the first refusal opens the first window

    def flooding(self, now: float | None = None) -> bool:
        """Note one refused message; True once the window holds more than `limit`."""
        now = monotonic() if now is None else now
        if now - self.start > self.window:
            self.count, self.start = 0, now
        self.count += 1
        return self.count > self.limit
