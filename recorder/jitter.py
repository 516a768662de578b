"""Per-SSRC jitter buffer: reorder, wait a bounded time for retransmissions, never pass damage.

Packets are ordered by extended sequence number (RFC 3550 appendix A.1, 16-bit wrap). A frame is
the run of consecutive packets sharing an RTP timestamp; it is complete when its last packet has
the marker bit (RFC 7741 section 4.1, RFC 6184 section 5.1) or the next packet carries another
timestamp, and its first packet follows a known frame end. A hole is NACKed at once (RFC 4585
section 6.2.1) and once more half way; after `max_delay` it is given up: the damaged frame is
dropped and video waits for the next key frame, asking for one with a PLI (RFC 4585 section
6.3.1) at the start and after loss (at most every `pli_min_interval`), and again every
`pli_interval` while still waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mediaserver.rtp.seq import SeqExtender

from .depacketize import Depacketizer, Frame

log = logging.getLogger(__name__)
MAX_GAP = 1000  # a jump this large is a new stream (sender restart), not loss
MAX_PACKETS = 4000  # hard bound on what one buffer holds
MAX_MISSING = 2000  # holes waiting for a retransmission; past this the oldest are given up
# One frame's packets: a 4K key frame at a high bitrate is a few hundred. A longer run of one
# timestamp with no marker (a broken or hostile sender) is dropped, not held for ever.
MAX_FRAME_PACKETS = 1024


@dataclass(slots=True)
class _Packet:
    ts: int
    marker: bool
    payload: bytes
    arrival: float


@dataclass(slots=True)
class JitterStats:
    packets: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0
    frames: int = 0
    dropped_frames: int = 0
    nacks: int = 0
    plis: int = 0


class JitterBuffer:
    def __init__(
        self,
        depacketizer: Depacketizer,
        on_frame: Callable[[Frame], None],
        send_nack: Callable[[list[int]], None] | None = None,
        request_keyframe: Callable[[], None] | None = None,
        max_delay: float = 0.15,
        pli_interval: float = 1.0,
        pli_min_interval: float = 0.2,
    ) -> None:
        self.depacketizer = depacketizer
        self.video = depacketizer.kind == "video"
        self.on_frame = on_frame
        self.send_nack = send_nack
        self.request_keyframe = request_keyframe
        self.max_delay = max_delay
        self.pli_interval = pli_interval  # repeat while still waiting for a key frame
        self.pli_min_interval = pli_min_interval  # at most this often on new damage
        self.stats = JitterStats()
        self._ext = SeqExtender()
        self._packets: dict[int, _Packet] = {}
        self._missing: dict[int, tuple[float, int]] = {}  # ext seq -> (noticed, nacks sent)
        self._head: int | None = None  # next extended sequence number to consume
        self._highest = 0
        self._synced = False  # whether _head is known to start a frame
        self._prev: tuple[int, bool] | None = None  # (ts, marker) of the packet before _head
        self.waiting_keyframe = self.video
        self._last_pli = -1e9
        self._far_behind = 0

    # ---- input ----------------------------------------------------------------------------

    def push(self, seq: int, ts: int, marker: bool, payload: bytes, now: float) -> None:
        ext = self._ext.extend(seq)
        self.stats.packets += 1
        if self._head is not None and ext < self._highest - MAX_GAP:
            # Far behind: a stray old packet, or the sender restarted its sequence lower;
            # only a run of them means the latter.
            self._far_behind += 1
            if self._far_behind < 8:
                self.stats.late += 1
                return
        else:
            self._far_behind = 0
        if self._head is None or ext - self._highest > MAX_GAP or self._far_behind:
            self._far_behind = 0
            self._restart(ext, now)
        if ext < self._head or ext in self._packets:
            if ext in self._packets:
                self.stats.duplicates += 1
            else:
                log.debug("late packet %d (head %d)", seq, self._head & 0xFFFF)
                self.stats.late += 1
            return
        self._missing.pop(ext, None)
        if ext > self._highest + 1:
            lost = range(self._highest + 1, ext)
            for s in lost:
                self._missing[s] = (now, 1)
            self._nack(list(lost))
        self._highest = max(self._highest, ext)
        self._packets[ext] = _Packet(ts, marker, payload, now)
        self._drain(now)

    def poll(self, now: float) -> None:
        """Timer tick: re-NACK, give up on expired holes, re-request key frames."""
        half = self.max_delay / 2
        again = [s for s, (t, n) in self._missing.items() if n == 1 and now - t >= half]
        for s in again:
            self._missing[s] = (self._missing[s][0], 2)
        if again:
            self._nack(again)
        self._drain(now)
        started = self._head is not None  # before any packet there is no one to ask
        if started and self.waiting_keyframe and now - self._last_pli >= self.pli_interval:
            self._pli(now)

    def flush(self) -> None:
        """End of stream: emit whatever is complete, drop the rest."""
        self.request_keyframe = None
        self._drain(float("inf"), final=True)
        self._packets.clear()
        self._missing.clear()

    # ---- internals ------------------------------------------------------------------------

    def _restart(self, ext: int, now: float) -> None:
        if self._head is not None:
            self.stats.lost += len(self._missing)
            self._packets.clear()
            self._missing.clear()
        self._head = ext
        self._highest = ext - 1
        self._synced = False
        self._prev = None
        if self.video:
            self._want_keyframe(now)

    def _nack(self, seqs: list[int]) -> None:
        if self.send_nack is not None and seqs:
            self.stats.nacks += 1
            self.send_nack([s & 0xFFFF for s in seqs[-256:]])

    def _pli(self, now: float) -> None:
        log.debug("asking for a key frame")
        self._last_pli = now
        if self.request_keyframe is not None:
            self.stats.plis += 1
            self.request_keyframe()

    def _want_keyframe(self, now: float) -> None:
        if not self.waiting_keyframe or now - self._last_pli >= self.pli_min_interval:
            self.waiting_keyframe = True
            self._pli(now)

    def _expired(self, ext: int, now: float) -> bool:
        noticed = self._missing.get(ext, (now, 0))[0]
        return now - noticed >= self.max_delay or len(self._packets) > MAX_PACKETS or \
            len(self._missing) > MAX_MISSING

    def _drain(self, now: float, final: bool = False) -> None:
        assert self._head is not None or not self._packets
        while self._packets:
            head = self._head
            assert head is not None
            first = self._packets.get(head)
            if first is None:
                if not (final or self._expired(head, now)):
                    return
                self._skip_to(min(self._packets), now)
                continue
            if not self._synced:
                prev = self._prev
                boundary = prev is not None and (prev[1] or prev[0] != first.ts)
                if boundary or self.depacketizer.starts_frame(first.payload):
                    self._synced = True
                else:
                    self._consume(head, head)  # tail of a frame whose start was lost
                    continue
            end = self._frame_end(head)
            if end == -1:  # no frame end in MAX_FRAME_PACKETS: drop them, resynchronise
                self.stats.dropped_frames += 1
                self._consume(head, head + MAX_FRAME_PACKETS - 1)
                self._synced = False
                if self.video:
                    self._want_keyframe(now)
                continue
            if end is None:
                hole = self._first_hole(head)
                if not (final or (hole is not None and self._expired(hole, now))):
                    return
                # The frame lost a packet: drop it and resynchronise on the next frame.
                log.debug("dropping frame ts=%d: hole at %s", first.ts, hole)
                last = hole - 1 if hole is not None else max(self._packets)
                self.stats.dropped_frames += 1
                self._consume(head, last)
                self._synced = False
                if self.video:
                    self._want_keyframe(now)
                continue
            payloads = [self._packets[s].payload for s in range(head, end + 1)]
            arrival = first.arrival
            self._consume(head, end)
            frame = self.depacketizer.depacketize(payloads, first.ts)
            if frame is None:
                self.stats.dropped_frames += 1
                if self.video:
                    self._want_keyframe(now)
                continue
            if self.video and self.waiting_keyframe:
                if not frame.keyframe:
                    self.stats.dropped_frames += 1
                    continue
                self.waiting_keyframe = False
                log.debug("key frame ts=%d", frame.timestamp)
            frame.arrival = arrival
            self.stats.frames += 1
            self.on_frame(frame)

    def _frame_end(self, head: int) -> int | None:
        """Last sequence number of the frame starting at head, if every packet is here; -1 when
        MAX_FRAME_PACKETS are here and none ends the frame."""
        s = head
        ts = self._packets[head].ts
        while True:
            p = self._packets[s]
            if p.marker or not self.video:
                return s
            nxt = self._packets.get(s + 1)
            if nxt is None:
                return None
            if nxt.ts != ts:
                return s
            s += 1
            if s - head >= MAX_FRAME_PACKETS:
                return -1

    def _first_hole(self, head: int) -> int | None:
        s = head
        while s in self._packets:
            s += 1
        return s if s <= self._highest else None

    def _consume(self, start: int, end: int) -> None:
        last = self._packets.get(end)
        for s in range(start, end + 1):
            self._packets.pop(s, None)
            self._missing.pop(s, None)
        self._prev = (last.ts, last.marker) if last is not None else None
        self._head = end + 1

    def _skip_to(self, ext: int, now: float) -> None:
        head = self._head
        assert head is not None
        log.debug("gave up on %d packet(s) from %d", ext - head, head & 0xFFFF)
        self.stats.lost += ext - head
        for s in range(head, ext):
            self._missing.pop(s, None)
        self._head = ext
        self._prev = None
        self._synced = not self.video  # audio: every packet is a frame
        if self.video:
            self.stats.dropped_frames += 1
            self._want_keyframe(now)
