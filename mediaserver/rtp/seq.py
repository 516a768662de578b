"""RTP sequence numbers extended across 16-bit wraps (RFC 3550 appendix A.1).

The packet path does this arithmetic inline (Producer.receive); the recorder's jitter buffer
uses SeqExtender."""

from __future__ import annotations

HALF = 1 << 15


class SeqExtender:
    """Turns 16-bit sequence numbers into a monotonic extended counter (cycles << 16 | seq).

    Keeps the highest extended number seen; packets older than it are extended relative to
    it so that a late packet just before a wrap does not count as a new cycle. The first packet
    anchors the count: one sent before it (arriving late) gets a smaller, possibly negative,
    number.
    """

    __slots__ = ("highest", "started")

    def __init__(self) -> None:
        self.highest = 0
        self.started = False

    def extend(self, seq: int) -> int:
        if not self.started:
            self.started = True
            self.highest = seq
            return seq
        diff = ((seq - self.highest + HALF) & 0xFFFF) - HALF
        ext = self.highest + diff
        if ext > self.highest:
            self.highest = ext
        return ext
