"""An emulated bottleneck in front of one bot's socket: `tc tbf` done in the bot process.

A subscriber bot "on a 400 kbit/s link" gets every SRTP and SRTCP datagram the server sends it
through an `EmulatedLink`, which behaves as the tbf qdisc that tests/support/netlab.py puts on a
real interface (`tbf rate R burst B limit L`): a token bucket of `burst` bytes filled at `rate`,
in front of a FIFO of at most `limit` bytes. A datagram leaves when the packets before it have
left and the bucket holds its size; one that would make the FIFO exceed `limit` is dropped
(tail drop). Sizes count the IPv4 and UDP headers (28 bytes) as tbf does.

What is emulated and what is not, exactly:
- the downlink only (server -> subscriber); what the subscriber sends (NACK, PLI, receiver
  reports, transport-cc feedback) goes out unshaped, as on an asymmetric access link;
- STUN and DTLS pass unshaped (a handful of small packets, before media starts);
- a delayed datagram is handed to the subscriber's code at its departure time, and that time
  (on the kernel's receive clock, CLOCK_REALTIME) is its arrival for everything measured after
  it: latency, sequence gaps and so NACK timing, transport-cc feedback (so the server's
  estimator sees the queue grow as a browser's feedback would show it). The bot's own timer
  granularity adds well under a millisecond (one `call_later` per head of the queue);
- no random loss, no reordering, no jitter beyond what the queue itself makes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

OVERHEAD = 28  # IPv4 + UDP header bytes, counted against the rate as tbf does
DEFAULT_QUEUE = 20_000  # bytes: NetLab.rate's default limit


class EmulatedLink:
    __slots__ = ("rate", "burst", "limit", "deliver", "loop", "_tokens", "_t_tokens",
                 "_last_dep", "_queue", "_queue_bytes", "_timer", "offered", "offered_bytes",
                 "delivered", "delivered_bytes", "dropped", "dropped_bytes", "max_delay_ns",
                 "delay_sum_ns")

    def __init__(self, loop: asyncio.AbstractEventLoop, kbps: int,
                 deliver: Callable[[bytes, int], None], limit: int = DEFAULT_QUEUE,
                 burst: int | None = None) -> None:
        if kbps <= 0:
            raise ValueError("an emulated link needs a positive rate")
        self.rate = kbps * 1000 / 8 / 1e9  # bytes per ns
        self.burst = burst or max(1600, kbps * 1000 // 8 // 100)  # ~10 ms of the rate
        self.limit = limit
        self.deliver = deliver
        self.loop = loop
        self._tokens = float(self.burst)
        self._t_tokens = 0
        self._last_dep = 0
        self._queue: deque[tuple[int, int, bytes]] = deque()  # (departure ns, size, datagram)
        self._queue_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self.offered = self.offered_bytes = 0
        self.delivered = self.delivered_bytes = 0
        self.dropped = self.dropped_bytes = 0
        self.max_delay_ns = self.delay_sum_ns = 0

    def offer(self, data: bytes, arrival_ns: int) -> None:
        """A datagram the server sent, as the kernel received it at `arrival_ns`."""
        size = len(data) + OVERHEAD
        self.offered += 1
        self.offered_bytes += size
        # bytes still waiting at this instant: those queued whose departure is later
        waiting = self._queue_bytes
        for dep, qsize, _ in self._queue:
            if dep > arrival_ns:
                break
            waiting -= qsize
        if waiting + size > self.limit:
            self.dropped += 1
            self.dropped_bytes += size
            return
        start = max(arrival_ns, self._last_dep)
        tokens = min(float(self.burst), self._tokens + (start - self._t_tokens) * self.rate)
        if tokens >= size:
            dep = start
            tokens -= size
        else:
            dep = start + int((size - tokens) / self.rate)
            tokens = 0.0
        self._tokens, self._t_tokens, self._last_dep = tokens, dep, dep
        delay = dep - arrival_ns
        self.delay_sum_ns += delay
        if delay > self.max_delay_ns:
            self.max_delay_ns = delay
        if not self._queue and delay <= 0:
            self._hand_over(data, dep, size)
            return
        self._queue.append((dep, size, data))
        self._queue_bytes += size
        if self._timer is None:
            self._schedule()

    def _hand_over(self, data: bytes, dep: int, size: int) -> None:
        self.delivered += 1
        self.delivered_bytes += size
        self.deliver(data, dep)

    def _schedule(self) -> None:
        head = self._queue[0][0]
        self._timer = self.loop.call_later(max(0.0, (head - time.time_ns()) / 1e9), self._flush)

    def _flush(self) -> None:
        self._timer = None
        now = time.time_ns()
        queue = self._queue
        while queue and queue[0][0] <= now:
            dep, size, data = queue.popleft()
            self._queue_bytes -= size
            self._hand_over(data, dep, size)
        if queue:
            self._schedule()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self._queue_bytes = 0
