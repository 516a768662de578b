"""Per-Producer retransmission cache: the last N packets by sequence number.

A fixed ring indexed by `seq % size`, so storing a packet is one list assignment on the packet
path. Galene's packetcache and mediasoup's RtpRetransmissionBuffer keep about one second of
video; 1024 slots hold well over a second of a 2.5 Mbps stream.
"""

from __future__ import annotations

import time


class RetransmitBuffer:
    __slots__ = ("_seqs", "_packets", "_times", "_mask", "max_age")

    def __init__(self, size: int = 1024, max_age: float = 2.0) -> None:
        if size & (size - 1):
            raise ValueError("size must be a power of two")
        self._mask = size - 1
        self._seqs = [-1] * size
        self._packets: list[bytes | None] = [None] * size
        self._times = [0.0] * size
        self.max_age = max_age

    def store(self, seq: int, packet: bytes, now: float) -> None:
        i = seq & self._mask
        self._seqs[i] = seq
        self._packets[i] = packet
        self._times[i] = now

    def get(self, seq: int, now: float | None = None) -> bytes | None:
        """The stored packet with this exact sequence number, if it is not too old."""
        i = seq & self._mask
        if self._seqs[i] != seq:
            return None
        if now is None:
            now = time.monotonic()
        if now - self._times[i] > self.max_age:
            return None
        return self._packets[i]

    def clear(self) -> None:
        n = self._mask + 1
        self._seqs = [-1] * n
        self._packets = [None] * n
