"""VP8 temporal layers on the forwarding path: the payload descriptor read, PictureID and
TL0PICIDX rewritten, and a consumer's choice of temporal layers (RFC 7741 section 4.2).

A VP8 encoder with temporal layers (libwebrtc: three per simulcast encoding, TIDs 0 2 1 2)
tags each frame with its temporal id (TID), a layer-sync bit (Y: the frame references only
base-layer frames) and the index of the last base-layer frame (TL0PICIDX). Frames of a layer
reference only frames of the same or lower layers, so a consumer may drop every frame above a
layer and the rest still decodes. `TemporalFilter` does that for one consumer while its output
stays one stream: no sequence gaps where frames were dropped (the receiver would NACK them),
PictureIDs without gaps (libwebrtc's RtpVp8RefFinder waits for a missing PictureID), both
PictureID and TL0PICIDX continuing across simulcast switches, and NACKs mapped back to the
source packets through the drops (mediasoup's SeqManager and LiveKit's munger do the same).
"""

from __future__ import annotations

from mediaserver.native._fanout import ffi  # (C, a leaf too: rtp imports nothing else)

MAX_TID = 3  # the TID field has two bits
DROP = -1
SEGMENTS = 64  # sequence-offset changes remembered for NACKs and late packets (~8 s at 7.5 fps)
FRAMES = 256  # PictureIDs remembered: kept (and their output id) or dropped
_DROPPED = 0xFFFF  # in the frames ring: a PictureID whose frame was dropped
_NO_FRAMES = [-1] * FRAMES

Payload = bytes | bytearray | memoryview


class Descriptor:
    """One packet's VP8 payload descriptor; fields -1 where the packet has none, `size` -1 for a
    payload too short for its own descriptor."""

    __slots__ = ("data", "size", "key", "picture_id", "wide", "pid_pos", "tl0", "tl0_pos",
                 "tid", "sync", "head", "rest")

    def __init__(self) -> None:
        self.data: object = None
        self.read(b"")

    def read(self, payload: Payload) -> None:
        self.picture_id = self.tl0 = self.tid = -1
        self.pid_pos = self.tl0_pos = 0
        self.wide = self.sync = self.key = False
        self.size = -1
        n = len(payload)
        if n < 1:
            return
        b0 = payload[0]
        pos = 1
        if b0 & 0x80:  # X: the extension byte I L T K
            if n < 2:
                return
            ext = payload[1]
            pos = 2
            if ext & 0x80:  # I: PictureID, 15 bits when its first bit (M) is set, else 7
                if pos >= n:
                    return
                self.pid_pos = pos
                if payload[pos] & 0x80:
                    if pos + 1 >= n:
                        return
                    self.picture_id = (payload[pos] & 0x7F) << 8 | payload[pos + 1]
                    self.wide = True
                    pos += 2
                else:
                    self.picture_id = payload[pos]
                    pos += 1
            if ext & 0x40:  # L: TL0PICIDX
                if pos >= n:
                    return
                self.tl0, self.tl0_pos = payload[pos], pos
                pos += 1
            if ext & 0x30:  # T or K: one byte TID(2) Y(1) KEYIDX(5); TID only counts with T
                if pos >= n:
                    return
                if ext & 0x20:
                    self.tid = payload[pos] >> 6
                    self.sync = payload[pos] & 0x20 != 0
                pos += 1
        # S=1 and PID=0 start a frame; its payload header's P bit is 0 in a key frame
        self.key = b0 & 0x17 == 0x10 and pos < n and payload[pos] & 0x01 == 0
        self.size = pos
        self.head = bytes(payload[:pos])
        self.rest = payload[pos:]


# The descriptor of the packet read last (TemporalFilter.admit), read once per incoming packet
# however many consumers ask: every copy of a fan-out gets the same `data` object, and holding
# it keeps its identity from being reused.
_SHARED = Descriptor()


class Rewriter:
    """A descriptor with PictureID and TL0PICIDX replaced, written into a buffer of its own (the
    packet is built from it and the rest of the payload: no packet copy)."""

    __slots__ = ("buf", "views")

    def __init__(self) -> None:
        self.buf = bytearray(8)
        view = memoryview(self.buf)
        self.views = [view[:n] for n in range(7)]  # a descriptor is 1 to 6 bytes

    def write(self, d: Descriptor, picture_id: int, tl0: int) -> memoryview:
        """The rewritten descriptor; valid until the next call."""
        buf = self.buf
        buf[:d.size] = d.head
        pos = d.pid_pos
        if pos:
            if d.wide:
                buf[pos] = 0x80 | picture_id >> 8
                buf[pos + 1] = picture_id & 0xFF
            else:
                buf[pos] = picture_id & 0x7F
        if d.tl0_pos:
            buf[d.tl0_pos] = tl0 & 0xFF
        return self.views[d.size]


class TemporalFilter:
    """One consumer's temporal layers of the VP8 encoding it forwards.

    `admit` decides each packet: whole frames are kept or dropped (decided at the first packet
    of a new timestamp: every packet of a frame carries its TID). The layer forwarded (`current`)
    moves down to `target` at any frame, up one layer at a time at a frame of the next layer
    with Y set, and to the target at a keyframe. Dropped packets shift the sequence offset;
    each shift starts a segment (input seq where it starts, offset), kept in a ring, through
    which late packets and NACKs are mapped. Packets without a TID pass unchanged.

    Its state is a C struct, `_c` (an `ms_temporal`), so that the fan-out's C lane
    (native/fanout.c `ms_fan`) decides, keeps and drops frames and rewrites their descriptors
    as `admit` does; a start, packets of an earlier frame and packets from before the last drop
    come late to `admit` (which also serves the Python path, the lane's reference)."""

    __slots__ = ("prefix", "rest", "_c", "_writer", "_resend")

    def __init__(self) -> None:
        self.prefix: memoryview | bytes = b""  # admit's output: descriptor, then the rest
        self.rest: memoryview = memoryview(b"")
        # zeros: offset, frame_ts, out_pid/out_tl0, the offsets of PictureID and TL0PICIDX,
        # top_in/high_fwd, the segment ring, the counters
        self._c = c = ffi.new("ms_temporal *")
        c.kept = 1
        c.target = MAX_TID  # the lower of set_preferred_layers' and the allocator's aim
        c.current = -1  # the highest TID forwarded now; -1 before a frame with a TID
        c.last_pid = c.last_tl0 = -1  # the last output PictureID / TL0PICIDX
        c.frames = _NO_FRAMES
        self._writer = Rewriter()
        self._resend = Descriptor()

    target = property(lambda self: self._c.target,
                      lambda self, tid: setattr(self._c, "target", tid))
    current = property(lambda self: self._c.current)
    offset = property(lambda self: self._c.offset)  # of the newest segment
    frames_dropped = property(lambda self: self._c.frames_dropped)
    # frames seen, per TID
    frames_by_tid = property(lambda self: list(self._c.frames_by_tid))

    def layered(self) -> bool:
        """Whether frames above the base layer were seen: dropping them lowers the rate."""
        return any(self.frames_by_tid[1:])

    def start(self, seq: int, offset: int) -> None:
        """The consumer (re)starts at `seq`, a keyframe, numbered with `offset`: the history
        before it no longer maps (its encoding may be another)."""
        c = self._c
        c.starting = 1
        c.offset = offset
        c.top = 0
        c.segments = 1
        c.seg_in[0], c.seg_off[0] = seq, offset
        c.top_in = seq  # = seg_in[top], read on every packet
        c.high_fwd = seq
        c.frames = _NO_FRAMES

    # ---- packet path ------------------------------------------------------------------

    def admit(self, seq: int, ts: int, data: bytes, payload: memoryview) -> int:
        """The sequence offset for this packet, or DROP; `prefix` and `rest` are then the
        payload to send."""
        d = _SHARED
        if d.data is not data:
            d.read(payload)
            d.data = data
        c = self._c
        if d.tid < 0:  # no temporal layers: as it came
            self.prefix, self.rest = b"", payload
            return c.offset
        if ts != c.frame_ts or c.starting:
            if c.starting:
                c.starting = 0
                self._first(ts, d)
            elif (ts - c.frame_ts) & 0xFFFFFFFF >= 0x80000000:
                return self._late(seq, d)
            else:
                self._decide(ts, d)
        if not c.kept:
            self._dropped(seq)
            return DROP
        offset = c.offset
        if (seq - c.top_in) & 0xFFFF >= 0x8000:
            offset = self._offset_of(seq)  # from before the last drop, come late
            if offset == DROP:
                return DROP
        elif (seq - c.high_fwd) & 0xFFFF < 0x8000:
            c.high_fwd = seq
        if c.out_pid == d.picture_id and c.out_tl0 == d.tl0:
            self.prefix, self.rest = b"", payload  # numbered as the publisher did
        else:
            self.prefix = self._writer.write(d, c.out_pid, c.out_tl0)
            self.rest = d.rest
        return offset

    def _first(self, ts: int, d: Descriptor) -> None:
        """A keyframe starts the output: PictureID and TL0PICIDX go on from the last sent."""
        c = self._c
        c.frame_ts = ts
        c.kept = 1
        c.current = c.target
        if c.last_pid >= 0 and d.picture_id >= 0:
            c.pid_offset = (c.last_pid + 1 - d.picture_id) & 0x7FFF
        if c.last_tl0 >= 0 and d.tl0 >= 0:
            c.tl0_offset = (c.last_tl0 + 1 - d.tl0) & 0xFF
        self._keep(d)

    def _decide(self, ts: int, d: Descriptor) -> None:
        c = self._c
        c.frame_ts = ts
        tid, current, target = d.tid, c.current, c.target
        c.frames_by_tid[tid] += 1
        if d.key or current > target:
            current = target
        kept = tid <= current
        if not kept and tid == current + 1 and tid <= target and d.sync:
            current, kept = tid, True  # up one layer at its sync frame
        c.current = current
        c.kept = kept
        if kept:
            self._keep(d)
        else:
            c.frames_dropped += 1
            if d.picture_id >= 0:
                # the next kept frame takes this one's PictureID
                c.pid_offset = (c.pid_offset - 1) & 0x7FFF
                c.frames[d.picture_id & (FRAMES - 1)] = d.picture_id << 16 | _DROPPED

    def _keep(self, d: Descriptor) -> None:
        c = self._c
        pid = d.picture_id
        if pid >= 0:
            out = (pid + c.pid_offset) & (0x7FFF if d.wide else 0x7F)
            c.out_pid = c.last_pid = out
            c.frames[pid & (FRAMES - 1)] = pid << 16 | out
        if d.tl0 >= 0:
            c.out_tl0 = c.last_tl0 = (d.tl0 + c.tl0_offset) & 0xFF

    def _dropped(self, seq: int) -> None:
        """A dropped packet newer than every forwarded one: the output numbering after it moves
        down by one (a new segment, unless nothing was forwarded since the last one). An older
        one leaves its gap: a NACK of it finds a dropped frame and is not answered."""
        c = self._c
        if (seq - c.high_fwd) & 0xFFFF >= 0x8000:
            return
        top = c.top
        c.offset = (c.offset - 1) & 0xFFFF
        after = (seq + 1) & 0xFFFF
        if (c.high_fwd - c.top_in) & 0xFFFF < 0x8000:  # forwarded since
            top = c.top = (top + 1) % SEGMENTS
            c.segments = min(c.segments + 1, SEGMENTS)
            c.seg_in[top] = c.top_in = after
        elif (after - c.top_in) & 0xFFFF < 0x8000:  # (not one come late)
            c.seg_in[top] = c.top_in = after
        c.seg_off[top] = c.offset

    def _late(self, seq: int, d: Descriptor) -> int:
        """A packet of an earlier frame: forwarded where that frame was, and numbered as it
        would have been."""
        out_pid = self._sent_as(d)
        offset = DROP if out_pid < 0 else self._offset_of(seq)
        if offset != DROP:
            self.prefix = self._writer.write(d, out_pid, d.tl0 + self._c.tl0_offset)
            self.rest = d.rest
        return offset

    def _sent_as(self, d: Descriptor) -> int:
        """The output PictureID of a frame kept since the start, else -1."""
        pid = d.picture_id
        entry = self._c.frames[pid & (FRAMES - 1)] if pid >= 0 else -1
        if entry < 0 or entry >> 16 != pid or entry & 0xFFFF == _DROPPED:
            return -1
        return entry & 0xFFFF

    def _offset_of(self, seq: int) -> int:
        """The offset of the newest segment starting at or before input `seq`."""
        c = self._c
        top, seg_in = c.top, c.seg_in
        for i in range(c.segments):
            k = (top - i) % SEGMENTS
            if (seq - seg_in[k]) & 0xFFFF < 0x8000:
                return c.seg_off[k]
        return DROP

    # ---- NACKs ------------------------------------------------------------------------

    def source(self, out_seq: int) -> int:
        """The input seq that output `out_seq` was (or would have been), or -1."""
        c = self._c
        top, seg_in, seg_off = c.top, c.seg_in, c.seg_off
        for i in range(c.segments):
            k = (top - i) % SEGMENTS
            off = seg_off[k]
            if (out_seq - seg_in[k] - off) & 0xFFFF < 0x8000:
                return (out_seq - off) & 0xFFFF
        return -1

    def resend_payload(self, payload: memoryview) -> tuple[bytes, memoryview] | None:
        """A cached packet's descriptor as it went out, and the rest; None for a packet of a
        dropped (or forgotten) frame."""
        d = self._resend
        d.read(payload)
        if d.tid < 0:
            return (b"", payload) if d.size >= 0 else None
        out_pid = self._sent_as(d)
        if out_pid < 0:
            return None
        return bytes(self._writer.write(d, out_pid, d.tl0 + self._c.tl0_offset)), d.rest
