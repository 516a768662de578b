"""The worker's periodic rounds of work over many items (transports, producers): spread over
several timer ticks so that one round (RTCP reports or bandwidth allocation for 300
subscribers: 7-30 ms of Python) never stalls the packet path in one piece, and each item's step
isolated so that one that raises costs only itself."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("mediaserver.worker")

# A timer step that raises is logged at most this often (with the count of those not logged).
FAULT_LOG_INTERVAL = 10.0


class Slices(Generic[T]):
    """Each `take()` returns the next slice of the current round; the round is `source()`
    read afresh (in random order with `shuffle`, so that no item is always served last) once
    the previous round was taken in `count` slices."""

    def __init__(self, source: Callable[[], Iterable[T]], count: int,
                 shuffle: bool = False) -> None:
        self.source = source
        self.count = count
        self.shuffle = shuffle
        self.queue: list[T] = []  # what this round has still to do
        self._share = 0

    def take(self) -> list[T]:
        queue = self.queue
        if not queue:
            queue.extend(self.source())
            if self.shuffle:
                random.shuffle(queue)
            self._share = -(-len(queue) // self.count)
        batch = queue[:self._share]
        del queue[:self._share]
        return batch


class TimerFaults:
    """Called from the `except` of one isolated step of a round (one transport's reports, one
    producer's NACKs): counts it and logs it, at most every FAULT_LOG_INTERVAL. That owner
    lost this round; every other one still runs."""

    def __init__(self) -> None:
        self.count = 0
        self._logged = -FAULT_LOG_INTERVAL
        self._unlogged = 0

    def __call__(self, step: str, owner: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._logged < FAULT_LOG_INTERVAL:
            self._unlogged += 1
            return
        log.exception("%s of %s failed (%d timer errors so far, %d not logged)", step, owner,
                      self.count, self._unlogged)
        self._logged = now
        self._unlogged = 0
