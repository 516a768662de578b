"""What a transport sent, by transport-wide sequence number, until its feedback comes."""

from __future__ import annotations

from array import array


class SendHistory:
    """(send time, size) of the last `size` packets sent, in preallocated arrays indexed by
    `seq & mask`: recording a packet stores two numbers and allocates nothing.

    2048 slots hold 1.4 s of a 1500 packet/s subscriber (a grid of nine videos); transport-cc
    feedback comes every 50-100 ms plus a round trip, so what it asks about is still there."""

    __slots__ = ("_times", "_sizes", "_mask", "_head")

    def __init__(self, size: int = 2048) -> None:
        if size <= 0 or size & (size - 1) or size > 0x8000:
            raise ValueError("history size must be a power of two up to 32768")
        self._times = array("d", [-1.0]) * size  # -1: never sent in this slot
        self._sizes = array("H", [0]) * size
        self._mask = size - 1
        # the last sequence number sent (-1: none), in an array so that the fan-out's C
        # (mediaserver/native/fanout.c) records packets here too, as `sent` does
        self._head = array("q", [-1])

    def sent(self, seq: int, size: int, now: float) -> None:
        i = seq & self._mask
        self._times[i] = now
        self._sizes[i] = size if size < 0xFFFF else 0xFFFF
        self._head[0] = seq

    def window(self, base_seq: int, count: int) -> tuple[int, list[float], list[int]]:
        """(k, times, sizes) for the numbers `base_seq + k ...` (mod 2^16) among the `count`
        from `base_seq` that are among the last `size` sent: one run, found by arithmetic
        and copied out of the ring in one or two slices, as lists. A time is -1 where nothing was
        recorded (a history started anew); empty arrays if none of the numbers is there."""
        last, mask = self._head[0], self._mask
        behind = (last - base_seq) & 0xFFFF  # how far base_seq is behind the last sent
        first = behind - mask if behind > mask else 0
        stop = min(count, mask + 1, behind + 1)  # past the last sent: not sent yet
        if last < 0 or first >= stop:
            return 0, [], []
        lo, hi = (base_seq + first) & mask, (base_seq + stop) & mask
        if lo < hi:
            return first, self._times[lo:hi].tolist(), self._sizes[lo:hi].tolist()
        return (first, self._times[lo:].tolist() + self._times[:hi].tolist(),  # across the
                self._sizes[lo:].tolist() + self._sizes[:hi].tolist())  # ring's end

    def lookup(self, base_seq: int, count: int) -> list[tuple[int, float, int]]:
        """(seq, send time, size) of those of `count` numbers from `base_seq` (mod 2^16) that
        are among the last `size` sent; numbers not sent yet or too old are left out."""
        first, times, sizes = self.window(base_seq, count)
        return [((base_seq + first + k) & 0xFFFF, t, sizes[k])
                for k, t in enumerate(times) if t >= 0]
