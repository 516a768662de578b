"""Sample decoding for a subscriber bot: reassemble VP8 frames from RTP, decode a few per second.

Decoding every frame of hundreds of subscriptions would make the bots the bottleneck; instead a
sampled stream collects, about once per `interval`, a keyframe and the frames that follow it
(consecutive picture ids, nothing missing), decodes them with a fresh PyAV decoder and reads the
pattern of the last one: it must carry the publisher's sender id and a counter that advanced by
exactly the number of frames decoded after the keyframe.
"""

from __future__ import annotations

import time

import av
import numpy as np

from mediaserver.rtp.packet import payload_end, payload_offset
from tests.support.patterns import MAX_COUNTER, read_video_frame

MAX_PENDING_FRAMES = 32


def parse_descriptor(payload: bytes) -> tuple[bool, int, int]:
    """(start of partition 0, picture id or -1, descriptor length) per RFC 7741 4.2."""
    b0 = payload[0]
    pos = 1
    pid = -1
    if b0 & 0x80:
        ext = payload[1]
        pos = 2
        if ext & 0x80:
            if payload[pos] & 0x80:
                pid = (payload[pos] & 0x7F) << 8 | payload[pos + 1]
                pos += 2
            else:
                pid = payload[pos]
                pos += 1
        if ext & 0x40:
            pos += 1
        if ext & 0x30:
            pos += 1
    return bool(b0 & 0x10) and (b0 & 0x07) == 0, pid, pos


def _read_luma(frame: av.VideoFrame) -> tuple[int, int] | None:
    """The pattern read from the Y plane alone, seen as a grey RGB image without a copy:
    black and white cells are told apart by brightness, and no colour conversion is paid."""
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, : frame.width]
    return read_video_frame(np.broadcast_to(y[:, :, None], (*y.shape, 3)))


class _Frame:
    __slots__ = ("parts", "start", "end", "pid", "key")

    def __init__(self) -> None:
        self.parts: dict[int, bytes] = {}  # extended seq -> VP8 data without the descriptor
        self.start = -1  # seq of the packet with S=1
        self.end = -1  # seq of the packet with the marker bit
        self.pid = -1
        self.key = False

    def complete(self) -> bool:
        return self.start >= 0 and self.end >= self.start and \
            len(self.parts) == self.end - self.start + 1


class Vp8Sampler:
    def __init__(self, sender_id: int, frames: int = 2, interval: float = 1.0) -> None:
        """sender_id: the publisher's pattern id (-1: unknown, any readable sender passes);
        frames: decoded per sample, at most the keyframe interval (the loop's counter wraps)."""
        self.sender_id = sender_id
        self.frames = max(1, frames)
        self.interval = interval
        self._pending: dict[int, _Frame] = {}  # RTP timestamp -> frame being assembled
        self._gop: list[tuple[int, bytes]] = []  # (picture id, frame) from a keyframe on
        self._next_sample = 0.0
        self.verified = self.failed = self.skipped = 0
        self.last_error = ""

    def add(self, plain: bytes, ext_seq: int) -> None:
        """One decrypted RTP packet of the stream, with its extended sequence number."""
        try:
            start = payload_offset(plain)
            end = payload_end(plain)
        except ValueError:
            return
        if end - start < 2:
            return
        ts = int.from_bytes(plain[4:8], "big")
        frame = self._pending.get(ts)
        if frame is None:
            if len(self._pending) >= MAX_PENDING_FRAMES:
                self._pending.pop(next(iter(self._pending)))
            frame = self._pending[ts] = _Frame()
        payload = plain[start:end]
        first, pid, dlen = parse_descriptor(payload)
        frame.parts[ext_seq] = payload[dlen:]
        if first:
            frame.start = ext_seq
            frame.pid = pid
            frame.key = len(payload) > dlen and payload[dlen] & 0x01 == 0
        if plain[1] & 0x80:
            frame.end = ext_seq
        if frame.complete():
            del self._pending[ts]
            data = b"".join(frame.parts[s] for s in sorted(frame.parts))
            self._on_frame(frame.key, frame.pid, data)

    def _on_frame(self, key: bool, pid: int, data: bytes) -> None:
        if key:
            now = time.monotonic()
            if now >= self._next_sample:
                self._next_sample = now + self.interval
                self._gop = [(pid, data)]
            else:
                self._gop = []
        elif self._gop:
            if pid != (self._gop[-1][0] + 1) & 0x7FFF:
                self.skipped += 1  # a frame is missing (or late): wait for the next keyframe
                self._gop = []
                return
            self._gop.append((pid, data))
        if self._gop and len(self._gop) >= self.frames:
            gop, self._gop = self._gop, []
            self._decode([d for _, d in gop])

    def _decode(self, frames: list[bytes]) -> None:
        try:
            decoder = av.CodecContext.create("vp8", "r")
            decoded = []
            for data in frames:
                decoded += decoder.decode(av.Packet(data))
        except av.FFmpegError as exc:
            self.failed += 1
            self.last_error = f"decode error: {exc}"
            return
        if len(decoded) != len(frames):
            self.failed += 1
            self.last_error = f"{len(frames)} frames in, {len(decoded)} decoded"
            return
        first, last = _read_luma(decoded[0]), _read_luma(decoded[-1])
        if first is None or last is None:
            self.failed += 1
            self.last_error = "pattern not readable"
            return
        advance = (last[1] - first[1]) & MAX_COUNTER
        if self.sender_id >= 0 and (first[0] != self.sender_id or last[0] != self.sender_id):
            self.failed += 1
            self.last_error = f"sender {first[0]}/{last[0]}, expected {self.sender_id}"
        elif advance != len(frames) - 1:
            self.failed += 1
            self.last_error = f"counter advanced {advance} over {len(frames)} frames"
        else:
            self.verified += 1
