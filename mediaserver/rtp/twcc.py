"""Transport-wide congestion control feedback (RTCP RTPFB FMT=15).

draft-holmer-rmcat-transport-wide-cc-extensions-01, section 3.1: after the common feedback
header (sender and media SSRC) the FCI holds the base sequence number, the packet status
count, a 24-bit reference time in multiples of 64 ms, an 8-bit feedback packet count, then
packet status chunks (run-length, or a status vector of 14 one-bit or 7 two-bit symbols) and
one receive delta per received packet: one octet (small, 0..63.75 ms) or a signed 16-bit
(large) in multiples of 250 us, each relative to the previous received packet (the first to
the reference time).

`parse_feedback` reads an FCI, `build_feedback` writes a whole RTCP packet choosing chunks as
libwebrtc does (so the bytes match a browser's), and `TwccRecorder` keeps the arrival times of
one transport's incoming packets in a fixed ring and turns them into feedback packets. Pure
functions and plain arrays: no I/O, time passed in (microseconds). Parsers raise ValueError.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

DELTA_TICK_US = 250  # section 3.1.5: receive deltas in multiples of 250 us
REFERENCE_TICK_US = 64_000  # section 3.1: reference time in multiples of 64 ms
REFERENCE_MASK = 0xFFFFFF  # 24 bits: wraps after 2^24 * 64 ms (about 12.4 days)

# Packet status symbols (section 3.1.1).
NOT_RECEIVED = 0
SMALL_DELTA = 1
LARGE_DELTA = 2

PT_RTPFB = 205
FMT_TRANSPORT_CC = 15

RTCP_HEAD = struct.Struct("!BBHII")  # V/P/FMT, PT, length, sender SSRC, media SSRC
FCI_HEAD = struct.Struct("!HHI")  # base seq, status count, reference time (24) | fb count (8)
U16 = struct.Struct("!H")
I16 = struct.Struct("!h")

MAX_RUN = 0x1FFF  # 13-bit run length
ONE_BIT_CAPACITY = 14
TWO_BIT_CAPACITY = 7
# Statuses per feedback packet the recorder writes: at worst 2 octets of delta and 2/7 of a
# chunk each, about 1.2 kB: one packet stays under a path MTU with SRTCP's overhead.
MAX_STATUSES = 450
# A receive delta is a signed 16-bit count of 250 us: about +-8.19 s. The recorder starts a
# new feedback packet (its own reference time) before a gap that long.
MAX_DELTA_US = 8_000_000

Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class TwccFeedback:
    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    reference_time: int  # 24 bits, in 64 ms units
    fb_count: int  # 8 bits, counts the sender's feedback packets (loss of feedback shows)
    # One status per sequence number from base_seq (mod 2^16): NOT_RECEIVED, SMALL_DELTA or
    # LARGE_DELTA; and per received one, in order, its arrival in 250 us ticks after the
    # reference time (the deltas summed). As parsed: what the estimator reads in C loops.
    symbols: bytes
    ticks: list[int]
    # the FCI as received: what the estimator's C reads (mediaserver/native/bwe.c) instead
    # of the two above
    fci: bytes = field(compare=False, repr=False)

    @property
    def arrivals(self) -> list[int | None]:
        """One entry per sequence number from base_seq (mod 2^16): the arrival time in us on
        the receiver's clock (reference_time * 64 ms plus the deltas so far), None if not
        received."""
        t = self.reference_time * REFERENCE_TICK_US
        times = [t + DELTA_TICK_US * ticks for ticks in self.ticks]
        if len(times) == len(self.symbols):
            return times  # type: ignore[return-value]
        got = iter(times)
        return [next(got) if symbol else None for symbol in self.symbols]


# --- parsing ---------------------------------------------------------------------------------


# A status vector's symbols by table, in two pieces per chunk (14 one-bit symbols as 7 + 7,
# seven two-bit ones as 4 + 3), instead of a generator per chunk; a two-bit piece holding the
# reserved symbol 3 is None.
_ONE_BIT = [bytes((v >> s) & 1 for s in range(6, -1, -1)) for v in range(1 << 7)]
_TWO_BIT_4 = [None if any((v >> s) & 3 == 3 for s in range(0, 8, 2))
              else bytes((v >> s) & 3 for s in range(6, -1, -2)) for v in range(1 << 8)]
_TWO_BIT_3 = [None if any((v >> s) & 3 == 3 for s in range(0, 6, 2))
              else bytes((v >> s) & 3 for s in range(4, -1, -2)) for v in range(1 << 6)]
_RUN = (b"\x00", b"\x01", b"\x02")


def parse_feedback(sender_ssrc: int, media_ssrc: int, data: Buffer, pos: int = 0,
                   end: int | None = None) -> TwccFeedback:
    """The FCI of one transport-cc packet, `data[pos:end]` (after the two SSRCs).

    Bytes after the last delta are ignored: old senders zero-padded without the P bit."""
    if end is None:
        end = len(data)
    if end > len(data) or end - pos < FCI_HEAD.size:
        raise ValueError("transport-cc FCI too short")
    base, count, ref_fb = FCI_HEAD.unpack_from(data, pos)
    start, pos = pos, pos + FCI_HEAD.size
    symbols = bytearray()
    while len(symbols) < count:
        if pos + 2 > end:
            raise ValueError("transport-cc status chunks truncated")
        chunk = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if not chunk & 0x8000:  # run-length chunk (3.1.3)
            symbol = (chunk >> 13) & 0x3
            if symbol == 3:
                raise ValueError("transport-cc reserved status symbol")
            symbols += _RUN[symbol] * min(chunk & MAX_RUN, count - len(symbols))
        elif not chunk & 0x4000:  # status vector, 14 one-bit symbols (3.1.4)
            symbols += _ONE_BIT[(chunk >> 7) & 0x7F]
            symbols += _ONE_BIT[chunk & 0x7F]
        else:  # status vector, 7 two-bit symbols
            first, rest = _TWO_BIT_4[(chunk >> 6) & 0xFF], _TWO_BIT_3[chunk & 0x3F]
            if first is None or rest is None:
                raise ValueError("transport-cc reserved status symbol")
            symbols += first
            symbols += rest
    del symbols[count:]  # a vector's symbols past the count are padding
    if LARGE_DELTA not in symbols:  # one octet per received packet: summed in one C pass
        received = count - symbols.count(NOT_RECEIVED)
        if pos + received > end:
            raise ValueError("transport-cc receive deltas truncated")
        ticks = list(accumulate(data[pos:pos + received]))
    else:
        ticks = []
        t = 0
        for symbol in symbols:
            if symbol == SMALL_DELTA:
                if pos >= end:
                    raise ValueError("transport-cc receive deltas truncated")
                t += data[pos]
                pos += 1
            elif symbol == LARGE_DELTA:
                if pos + 2 > end:
                    raise ValueError("transport-cc receive deltas truncated")
                t += I16.unpack_from(data, pos)[0]
                pos += 2
            else:
                continue
            ticks.append(t)
    fci = data if type(data) is bytes and len(data) == end and not start else \
        bytes(data[start:end])
    return TwccFeedback(sender_ssrc, media_ssrc, base, ref_fb >> 8, ref_fb & 0xFF,
                        bytes(symbols), ticks, fci)


def parse_packet(data: Buffer) -> TwccFeedback:
    """A whole RTCP transport-cc packet (padding per RFC 3550 6.4.1)."""
    if len(data) < RTCP_HEAD.size:
        raise ValueError("transport-cc packet too short")
    first, pt, length, sender, media = RTCP_HEAD.unpack_from(data, 0)
    if first >> 6 != 2 or pt != PT_RTPFB or first & 0x1F != FMT_TRANSPORT_CC:
        raise ValueError("not a transport-cc packet")
    end = 4 + 4 * length
    if end > len(data):
        raise ValueError("transport-cc length beyond buffer")
    if first & 0x20:
        pad = data[end - 1]
        if pad == 0 or pad > end - RTCP_HEAD.size:
            raise ValueError("transport-cc padding invalid")
        end -= pad
    return parse_feedback(sender, media, data, RTCP_HEAD.size, end)


# --- building --------------------------------------------------------------------------------


def _encode_chunks(symbols: Sequence[int]) -> bytes:
    """Status chunks as libwebrtc chooses them (rtcp_packet/transport_feedback.cc LastChunk):
    symbols gather while a run, a 14-symbol one-bit vector (no large delta) or a 7-symbol
    two-bit vector can still hold them; then the gathered ones are written out."""
    out = bytearray()
    pending: list[int] = []
    all_same = True
    has_large = False
    for symbol in symbols:
        n = len(pending)
        fits = (n < TWO_BIT_CAPACITY
                or (n < ONE_BIT_CAPACITY and not has_large and symbol != LARGE_DELTA)
                or (n < MAX_RUN and all_same and pending[0] == symbol))
        if not fits:
            if all_same:
                out += U16.pack(pending[0] << 13 | n)
                pending = []
            elif n == ONE_BIT_CAPACITY:
                out += U16.pack(_one_bit(pending))
                pending = []
            else:  # a large delta among 7..13 symbols: the first 7 as a two-bit vector
                out += U16.pack(_two_bit(pending[:TWO_BIT_CAPACITY]))
                pending = pending[TWO_BIT_CAPACITY:]
            all_same = all(s == pending[0] for s in pending) if pending else True
            has_large = LARGE_DELTA in pending
        all_same = all_same and (not pending or pending[0] == symbol)
        has_large = has_large or symbol == LARGE_DELTA
        pending.append(symbol)
    if pending:
        if all_same:
            out += U16.pack(pending[0] << 13 | len(pending))
        elif len(pending) <= TWO_BIT_CAPACITY:
            out += U16.pack(_two_bit(pending))
        else:
            out += U16.pack(_one_bit(pending))
    return bytes(out)


def _one_bit(symbols: Sequence[int]) -> int:
    chunk = 0x8000
    for i, s in enumerate(symbols):
        chunk |= s << (13 - i)
    return chunk


def _two_bit(symbols: Sequence[int]) -> int:
    chunk = 0xC000
    for i, s in enumerate(symbols):
        chunk |= s << (12 - 2 * i)
    return chunk


def build_feedback(sender_ssrc: int, media_ssrc: int, base_seq: int, fb_count: int,
                   reference_time: int, arrivals: Sequence[int | None]) -> bytes:
    """One RTCP transport-cc packet, padded to 32 bits with the P bit as libwebrtc does.

    `arrivals` as in TwccFeedback: us on a clock where the reference time is
    `reference_time * 64 ms` (the field keeps its low 24 bits). Deltas are rounded to 250 us
    against the previous rounded time, so rounding errors never add up."""
    count = len(arrivals)
    if not 0 < count <= 0xFFFF:
        raise ValueError("transport-cc needs 1..65535 packet statuses")
    t = reference_time * REFERENCE_TICK_US
    symbols = bytearray(count)
    deltas = bytearray()
    for i, arrival in enumerate(arrivals):
        if arrival is None:
            continue
        ticks = (arrival - t + DELTA_TICK_US // 2) // DELTA_TICK_US
        if 0 <= ticks <= 0xFF:
            symbols[i] = SMALL_DELTA
            deltas.append(ticks)
        elif -0x8000 <= ticks <= 0x7FFF:
            symbols[i] = LARGE_DELTA
            deltas += I16.pack(ticks)
        else:
            raise ValueError("transport-cc receive delta out of range")
        t += ticks * DELTA_TICK_US
    body = (FCI_HEAD.pack(base_seq & 0xFFFF, count,
                          (reference_time & REFERENCE_MASK) << 8 | (fb_count & 0xFF))
            + _encode_chunks(symbols) + deltas)
    size = RTCP_HEAD.size + len(body)
    pad = -size % 4
    if pad:
        body += bytes(pad - 1) + bytes((pad,))
        size += pad
    return RTCP_HEAD.pack(0x80 | (0x20 if pad else 0) | FMT_TRANSPORT_CC, PT_RTPFB,
                          size // 4 - 1, sender_ssrc, media_ssrc) + body


# --- the packet path: the sequence number of an incoming packet ----------------------------


def tcc_seq_of(data: Buffer, ext_id: int) -> int:
    """The transport-wide sequence number in a packet's one-byte header extension `ext_id`
    (RFC 8285 4.2), or -1. Allocates nothing: it runs for every incoming packet."""
    if not data[0] & 0x10 or ext_id <= 0:
        return -1
    offset = 12 + 4 * (data[0] & 0x0F)
    n = len(data)
    if offset + 4 > n or data[offset] != 0xBE or data[offset + 1] != 0xDE:
        return -1
    pos = offset + 4
    end = min(n, pos + 4 * ((data[offset + 2] << 8) | data[offset + 3]))
    while pos < end:
        b = data[pos]
        if b == 0:  # padding
            pos += 1
            continue
        if b >> 4 == 15:  # reserved: stop (RFC 8285 4.2)
            return -1
        length = (b & 0x0F) + 1
        if b >> 4 == ext_id:
            if length != 2 or pos + 3 > end:
                return -1
            return (data[pos + 1] << 8) | data[pos + 2]
        pos += 1 + length
    return -1


# --- the receiving side ----------------------------------------------------------------------


class TwccRecorder:
    """Arrival times of one transport's incoming packets, by transport-wide sequence number,
    until they are reported.

    A fixed ring of `size` slots (a power of two) indexed by the extended sequence number:
    `record` is two comparisons and a store, memory never grows. `build` reports every
    sequence number from the first unreported one to the highest received (the ones in
    between not received), as libwebrtc's receiver does, then forgets them. A packet that
    arrives after its number was reported is left out (the sender counted it lost); a jump of
    more than `size` numbers forgets the unreported ones before it."""

    __slots__ = ("_times", "_mask", "_start", "_highest", "fb_count", "recorded")

    def __init__(self, size: int = 4096) -> None:
        if size <= 0 or size & (size - 1) or size > 0x8000:
            raise ValueError("ring size must be a power of two up to 32768")
        self._times = array("q", [-1]) * size  # arrival in us, -1: not received
        self._mask = size - 1
        self._start = -1  # extended seq of the first unreported number; -1 before any packet
        self._highest = -1  # extended highest seq received
        self.fb_count = 0
        self.recorded = 0

    def record(self, seq: int, arrival_us: int) -> None:
        highest = self._highest
        if highest < 0:
            ext = self._start = self._highest = seq + 0x10000  # room for reordered ones below
        else:
            ext = highest + ((seq - highest + 0x8000) & 0xFFFF) - 0x8000
            if ext < self._start:
                return  # already reported
            if ext - self._start > self._mask:
                self._forget_until(ext - self._mask)
            if ext > highest:
                self._highest = ext
        self._times[ext & self._mask] = arrival_us
        self.recorded += 1

    def _forget_until(self, new_start: int) -> None:
        times, mask = self._times, self._mask
        for ext in range(self._start, min(new_start, self._highest + 1)):
            times[ext & mask] = -1
        self._start = new_start

    def build(self, sender_ssrc: int, media_ssrc: int = 0) -> list[bytes]:
        """Feedback packets for everything unreported (none if nothing arrived since)."""
        out: list[bytes] = []
        times, mask = self._times, self._mask
        start, end = self._start, self._highest + 1
        while start < end:
            arrivals: list[int | None] = []
            first = prev = -1
            ext = start
            while ext < end and len(arrivals) < MAX_STATUSES:
                t = times[ext & mask]
                if t >= 0:
                    if first < 0:
                        first = t
                    elif abs(t - prev) > MAX_DELTA_US:
                        break  # the next packet starts with a reference time of its own
                    prev = t
                    arrivals.append(t)
                else:
                    arrivals.append(None)
                times[ext & mask] = -1
                ext += 1
            reference = max(first, 0) // REFERENCE_TICK_US
            out.append(build_feedback(sender_ssrc, media_ssrc, start & 0xFFFF, self.fb_count,
                                      reference, arrivals))
            self.fb_count = (self.fb_count + 1) & 0xFF
            start = ext
        self._start = start
        return out
