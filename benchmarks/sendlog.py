"""Latency through a server that keeps none of our stamps: a publisher's log of send times.

Our server passes the publisher's abs-send-time extension through, so a subscriber reads the
send time from every packet (rtpstats.ReceiveStream). Janus 1.1.2 does not: checked on real
traffic, it drops abs-send-time on the publisher leg and writes its own send time on the
subscriber leg, zeroes playout-delay, keeps one byte of video-orientation, and rewrites SSRC,
sequence numbers (from 1) and RTP timestamps (from 0) with an offset that is constant per
subscriber and stream while the publisher's stream is continuous. The payload is forwarded
untouched.

So the publisher logs the send time of every packet by its own sequence number (`SendLog`, a
memory-mapped file that the subscribers of every bot process of the run can read), and a
subscriber learns its stream's sequence offset once, by decrypting one packet and finding the
same payload among the publisher's last packets (`SendLog.find`); from then on the latency is
one lookup per packet (`LoggedStream`). An offset that stops fitting (a run of impossible
delays) is learned again.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import tempfile
from pathlib import Path

from .rtpstats import BUCKET_US, BUCKETS, ReceiveStream

KEY_BYTES = 32  # payload bytes compared when matching a subscriber's packet to a sent one
RECENT = 64  # sent packets per kind searched for a match (~0.4 s of video, 1.3 s of audio)
ANCHOR_MAX_NS = 500_000_000  # a match sent longer ago than this is not the same packet
MAX_DELAY_NS = 2_000_000_000  # a longer "delay" means the offset no longer fits
REANCHOR_AFTER = 20  # impossible delays in a row before the offset is learned again

# a simulcast publisher logs each encoding under its own kind, lowest first ("video" alone
# without simulcast); a subscriber through Janus finds which one it receives when it anchors
VIDEO_KINDS = ("video", "video1", "video2")
KINDS = ("audio", *VIDEO_KINDS)
# Payload bytes left out of the match: the VP8 payload descriptor (4 bytes as the bots write
# it, benchmarks.media.vp8_descriptor), whose picture id Janus rewrites for a simulcast
# subscriber (it keeps the ids continuous across layer switches); the VP8 data is untouched.
SKIP = dict.fromkeys(VIDEO_KINDS, 4)
TIMES_BYTES = 65536 * 8  # one int64 send time (Unix ns) per sequence number
ENTRY = struct.Struct(f"<IHH{KEY_BYTES}s")  # write count, sequence number, size, payload key
COUNT = struct.Struct("<I")
RING_BYTES = COUNT.size + RECENT * ENTRY.size
SIZE = len(KINDS) * (TIMES_BYTES + RING_BYTES)
SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())


def log_path(run_id: str, publisher: str) -> Path:
    """The file of one publisher's log in one run (benchmarks.runner gives the run id)."""
    return SHM / f"bench-sendlog-{run_id}-{re.sub(r'[^A-Za-z0-9_.-]', '_', publisher)}"


class SendLog:
    """One publisher's send times (Unix ns) by kind and sequence number, and its last payloads.

    Kept in a memory-mapped file, written by the publisher's bot process and read by the
    subscribers of every bot process (a publisher may have a bot process of its own, so that
    hundreds of subscribers never delay its sending). The sequence numbers index 65,536 entries
    per kind: an entry is overwritten after one wrap (about 7 minutes of video), long after
    the packet arrived. A reader may see an entry half written: the match then fails and the
    next packet is tried.
    """

    def __init__(self, path: Path, create: bool = False) -> None:
        self.path = path
        self.owner = create
        flags = os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if create:
                os.ftruncate(fd, SIZE)
            self._map = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        view = memoryview(self._map)
        self.times: dict[str, memoryview] = {}
        self._rings: dict[str, memoryview] = {}
        self._written = dict.fromkeys(KINDS, 0)
        for i, kind in enumerate(KINDS):
            base = i * (TIMES_BYTES + RING_BYTES)
            self.times[kind] = view[base:base + TIMES_BYTES].cast("q")
            self._rings[kind] = view[base + TIMES_BYTES:base + TIMES_BYTES + RING_BYTES]

    @classmethod
    def open(cls, path: Path) -> SendLog | None:
        """A reader of an existing log, or None when there is none (yet)."""
        try:
            return cls(path)
        except (FileNotFoundError, ValueError):
            return None

    def sent(self, kind: str, seq: int, payload: bytes, unix_time: float) -> None:
        self.times[kind][seq] = int(unix_time * 1e9)
        n = self._written[kind] = self._written[kind] + 1
        ring = self._rings[kind]
        skip = SKIP.get(kind, 0)
        ENTRY.pack_into(ring, COUNT.size + (n % RECENT) * ENTRY.size, n, seq, len(payload),
                        payload[skip:skip + KEY_BYTES])
        COUNT.pack_into(ring, 0, n)

    def find(self, kind: str, payload: bytes) -> int | None:
        """The sequence number of the most recent packet sent with this payload (the media
        loop repeats every few seconds: an older match is an earlier lap)."""
        skip = SKIP.get(kind, 0)
        key = payload[skip:skip + KEY_BYTES].ljust(KEY_BYTES, b"\0")
        size = len(payload)
        ring = self._rings[kind]
        best, best_seq = 0, None
        for i in range(RECENT):
            n, seq, length, k = ENTRY.unpack_from(ring, COUNT.size + i * ENTRY.size)
            if n > best and length == size and k == key:
                best, best_seq = n, seq
        return best_seq

    def close(self) -> None:
        """The owner removes the file; the mapping itself lives as long as the process (the
        subscribers' streams keep views of it)."""
        if self.owner:
            self.path.unlink(missing_ok=True)


class LoggedStream(ReceiveStream):
    """A ReceiveStream whose latency comes from the publisher's SendLog, not a header stamp."""

    __slots__ = ("log_times", "log", "offset", "misses", "anchors", "log_kind")

    def __init__(self, log: SendLog | None, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.log = log
        self.log_kind = self.kind
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
        for kind in (VIDEO_KINDS if self.kind == "video" else (self.kind,)):
            sent_seq = self.log.find(kind, payload)
            if sent_seq is not None and \
                    0 <= arrival_ns - self.log.times[kind][sent_seq] < ANCHOR_MAX_NS:
                self.offset = (seq - sent_seq) & 0xFFFF
                self.log_kind = kind
                self.log_times = self.log.times[kind]
                self.misses = 0
                self.anchors += 1
                return

    def receive(self, data: bytes, arrival_ns: int) -> int:
        ext = ReceiveStream.receive(self, data, arrival_ns)
        offset = self.offset
        if offset >= 0:
            sent = self.log_times[((data[2] << 8 | data[3]) - offset) & 0xFFFF]  # type: ignore[index]
            if not sent:
                return ext  # never logged
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
