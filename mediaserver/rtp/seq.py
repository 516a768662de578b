"""RTP sequence-number arithmetic modulo 2**16 (RFC 3550 appendix A.1)."""

from __future__ import annotations

SEQ_MOD = 1 << 16
HALF = 1 << 15


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in the 16-bit sequence space, in [-32768, 32767]."""
    return ((a - b + HALF) & 0xFFFF) - HALF


def seq_newer(a: int, b: int) -> bool:
    """True when a comes after b (a wrap-around of 65535 -> 0 counts as newer)."""
    return a != b and ((a - b) & 0xFFFF) < HALF


def seq_add(a: int, n: int) -> int:
    return (a + n) & 0xFFFF


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
