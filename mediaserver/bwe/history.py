"""What a transport sent, by transport-wide sequence number, until its feedback comes."""

from __future__ import annotations

from array import array


class SendHistory:
    """(send time, size) of the last `size` packets sent, in preallocated arrays indexed by
    `seq & mask`: recording a packet stores two numbers and allocates nothing.

    2048 slots hold 1.4 s of a 1500 packet/s subscriber (a grid of nine videos); transport-cc
    feedback comes every 50-100 ms plus a round trip, so what it asks about is still there."""

    __slots__ = ("_times", "_sizes", "_mask", "_last")

    def __init__(self, size: int = 2048) -> None:
        if size <= 0 or size & (size - 1) or size > 0x8000:
            raise ValueError("history size must be a power of two up to 32768")
        self._times = array("d", [-1.0]) * size  # -1: never sent in this slot
        self._sizes = array("H", [0]) * size
        self._mask = size - 1
        self._last = -1  # the last sequence number sent

    def sent(self, seq: int, size: int, now: float) -> None:
        i = seq & self._mask
        self._times[i] = now
        self._sizes[i] = size if size < 0xFFFF else 0xFFFF
        self._last = seq

    def lookup(self, base_seq: int, count: int) -> list[tuple[int, float, int]]:
        """(seq, send time, size) of those of `count` numbers from `base_seq` (mod 2^16) that
        are among the last `size` sent; numbers not sent yet or too old are left out."""
        out: list[tuple[int, float, int]] = []
        last, mask, times, sizes = self._last, self._mask, self._times, self._sizes
        if last < 0:
            return out
        for k in range(min(count, mask + 1)):
            seq = (base_seq + k) & 0xFFFF
            if (last - seq) & 0xFFFF > mask:
                continue
            t = times[seq & mask]
            if t >= 0:
                out.append((seq, t, sizes[seq & mask]))
        return out
