"""Latency through a server that keeps none of our stamps: a publisher's log of send times.

Our server passes the publisher's abs-send-time extension through, so a subscriber reads the
send time from every packet (rtpstats.ReceiveStream). Janus 1.1.2 does not: checked on real
traffic, it drops abs-send-time on the publisher leg and writes its own send time on the
subscriber leg, zeroes playout-delay, keeps one byte of video-orientation, and rewrites SSRC,
sequence numbers (from 1) and RTP timestamps (from 0) with an offset that is constant per
subscriber and stream while the publisher's stream is continuous. The payload is forwarded
untouched.

So the publisher logs the send time of every packet by its own sequence number (`SendLog`), and
a subscriber in the same bot process learns its stream's sequence offset once, by decrypting one
packet and finding the same payload among the publisher's last packets (`SendLog.find`); from
then on the latency is one list lookup per packet (`LoggedStream`). An offset that stops fitting
(a run of impossible delays) is learned again.
"""

from __future__ import annotations

from collections import deque

from .rtpstats import BUCKET_US, BUCKETS, ReceiveStream

KEY_BYTES = 32  # payload bytes compared when matching a subscriber's packet to a sent one
RECENT = 64  # sent packets per kind searched for a match (~0.4 s of video, 1.3 s of audio)
ANCHOR_MAX_NS = 500_000_000  # a match sent longer ago than this is not the same packet
MAX_DELAY_NS = 2_000_000_000  # a longer "delay" means the offset no longer fits
REANCHOR_AFTER = 20  # impossible delays in a row before the offset is learned again


class SendLog:
    """One publisher's send times (Unix ns) by kind and sequence number, and its last payloads.

    The publisher's sequence numbers index a 65,536-entry list per kind: an entry is
    overwritten after one wrap (about 7 minutes of video), long after every packet arrived.
    """

    def __init__(self) -> None:
        self.times: dict[str, list[int]] = {"audio": [0] * 65536, "video": [0] * 65536}
        self.recent: dict[str, deque[tuple[bytes, int, int]]] = {
            "audio": deque(maxlen=RECENT), "video": deque(maxlen=RECENT)}

    def sent(self, kind: str, seq: int, payload: bytes, unix_time: float) -> None:
        self.times[kind][seq] = int(unix_time * 1e9)
        self.recent[kind].append((payload[:KEY_BYTES], len(payload), seq))

    def find(self, kind: str, payload: bytes) -> int | None:
        """The sequence number of the most recent packet sent with this payload (the media
        loop repeats every few seconds: an older match is an earlier lap)."""
        key, size = payload[:KEY_BYTES], len(payload)
        for k, n, seq in reversed(self.recent[kind]):
            if n == size and k == key:
                return seq
        return None


class LoggedStream(ReceiveStream):
    """A ReceiveStream whose latency comes from the publisher's SendLog, not a header stamp."""

    __slots__ = ("log_times", "log", "offset", "misses", "anchors")

    def __init__(self, log: SendLog | None, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.log = log
        self.log_times = log.times[self.kind] if log is not None else None
        self.offset = -1  # our sequence number minus the publisher's; -1: not known yet
        self.misses = 0
        self.anchors = 0  # how often the offset was learned (1 while the stream is steady)

    @property
    def needs_anchor(self) -> bool:
        return self.offset < 0 and self.log is not None

    def anchor(self, seq: int, payload: bytes, arrival_ns: int) -> None:
        """Learn the offset from one decrypted packet (its sequence number and payload)."""
        assert self.log is not None
        sent_seq = self.log.find(self.kind, payload)
        if sent_seq is not None and \
                0 <= arrival_ns - self.log.times[self.kind][sent_seq] < ANCHOR_MAX_NS:
            self.offset = (seq - sent_seq) & 0xFFFF
            self.misses = 0
            self.anchors += 1

    def receive(self, data: bytes, arrival_ns: int) -> int:
        ext = ReceiveStream.receive(self, data, arrival_ns)
        offset = self.offset
        if offset >= 0:
            sent = self.log_times[((data[2] << 8 | data[3]) - offset) & 0xFFFF]  # type: ignore[index]
            d = arrival_ns - sent
            if 0 <= d < MAX_DELAY_NS:
                b = d // (BUCKET_US * 1000)
                self.hist[b if b < BUCKETS else BUCKETS] += 1
                self.latency_samples += 1
                self.misses = 0
            else:
                self.misses += 1
                if self.misses >= REANCHOR_AFTER:
                    self.offset = -1
        return ext
