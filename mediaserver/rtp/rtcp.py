"""RTCP parsing and building (RFC 3550, RFC 4585, RFC 5104, draft-alvestrand-rmcat-remb).

Pure functions, no I/O. `parse_compound` walks a compound packet by each header's length field
and returns one dataclass per packet we understand; unknown packet types and feedback formats
are skipped. Every parser raises ValueError on malformed input. A compound packet is built by
concatenating the outputs of the `build_*` functions.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Packet types (RFC 3550 section 12.1, RFC 4585 section 6.1).
PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_RTPFB = 205
PT_PSFB = 206

# Feedback message types (FMT).
FMT_NACK = 1  # RFC 4585 section 6.2.1
FMT_TRANSPORT_CC = 15  # draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1
FMT_PLI = 1  # RFC 4585 section 6.3.1
FMT_FIR = 4  # RFC 5104 section 4.3.1
FMT_REMB = 15  # draft-alvestrand-rmcat-remb section 2.2 (application layer FB)

SDES_CNAME = 1
REMB_ID = b"REMB"
MAX_COUNT = 31  # the 5-bit RC / SC field
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01

HEADER = struct.Struct("!BBH")
U32 = struct.Struct("!I")
SSRC_PAIR = struct.Struct("!II")
SENDER_INFO = struct.Struct("!IQIII")  # SSRC of sender + RFC 3550 section 6.4.1 sender info
REPORT_BLOCK = struct.Struct("!IIIIII")  # RFC 3550 section 6.4.1 report block
NACK_FCI = struct.Struct("!HH")  # PID, BLP
FIR_FCI = struct.Struct("!IB3x")  # SSRC, Seq nr., reserved
REMB_FCI = struct.Struct("!4sBBH")  # 'REMB', Num SSRC, BR Exp (6) | BR Mantissa (18)

Buffer = bytes | bytearray | memoryview


@dataclass(slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int  # 8-bit fixed point, lost / expected * 256
    packets_lost: int  # cumulative, signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in timestamp units
    lsr: int  # middle 32 bits of the last SR's NTP timestamp
    dlsr: int  # delay since that SR, in 1/65536 s


@dataclass(slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)


@dataclass(slots=True)
class Sdes:
    ssrcs: list[int]  # the SSRC/CSRC of each chunk; items are skipped


@dataclass(slots=True)
class Bye:
    ssrcs: list[int]


@dataclass(slots=True)
class Nack:
    sender_ssrc: int
    media_ssrc: int
    seqs: list[int]


@dataclass(slots=True)
class Pli:
    sender_ssrc: int
    media_ssrc: int


@dataclass(slots=True)
class Fir:
    sender_ssrc: int
    entries: list[tuple[int, int]]  # (media SSRC, command sequence number)


@dataclass(slots=True)
class Remb:
    sender_ssrc: int
    bitrate: int  # bits per second
    ssrcs: list[int]


@dataclass(slots=True)
class TransportCc:
    """Transport-wide congestion control feedback; its FCI is decoded by `twcc.parse_feedback`
    only where it is used (a subscriber's transport)."""

    sender_ssrc: int
    media_ssrc: int
    fci: bytes = field(default=b"", compare=False, repr=False)


RtcpItem = SenderReport | ReceiverReport | Sdes | Bye | Nack | Pli | Fir | Remb | TransportCc


# --- parsing ---------------------------------------------------------------------------------


def parse_compound(data: Buffer) -> list[RtcpItem]:
    """Parse a (possibly reduced-size, RFC 5506) compound RTCP packet."""
    items: list[RtcpItem] = []
    pos = 0
    end_all = len(data)
    while pos < end_all:
        if end_all - pos < 4:
            raise ValueError("RTCP header truncated")
        first, pt, length = HEADER.unpack_from(data, pos)
        if first >> 6 != 2:
            raise ValueError("RTCP version is not 2")
        start = pos + 4
        end = start + length * 4  # RFC 3550 section 6.4.1: length in 32-bit words minus one
        if end > end_all:
            raise ValueError("RTCP length beyond buffer")
        pos = end
        if first & 0x20:
            # RFC 3550 section 6.4.1: the last octet counts the padding octets, itself included.
            pad = data[end - 1] if end > start else 0
            if pad == 0 or pad > end - start:
                raise ValueError("RTCP padding invalid")
            end -= pad
        item = _parse_one(data, pt, first & 0x1F, start, end)
        if item is not None:
            items.append(item)
    return items


def _parse_one(data: Buffer, pt: int, count: int, start: int, end: int) -> RtcpItem | None:
    size = end - start
    if pt == PT_SR:
        if size < 24 + 24 * count:  # profile-specific extensions may follow: ignored
            raise ValueError("RTCP SR too short")
        ssrc, ntp, rtp_ts, packets, octets = SENDER_INFO.unpack_from(data, start)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _blocks(data, start + 24, count))
    if pt == PT_RR:
        if size < 4 + 24 * count:
            raise ValueError("RTCP RR too short")
        ssrc = U32.unpack_from(data, start)[0]
        return ReceiverReport(ssrc, _blocks(data, start + 4, count))
    if pt == PT_SDES:
        return Sdes(_sdes_ssrcs(data, start, end, count))
    if pt == PT_BYE:
        if size < 4 * count:  # an optional reason may follow the SSRCs
            raise ValueError("RTCP BYE too short")
        return Bye([U32.unpack_from(data, start + 4 * i)[0] for i in range(count)])
    if pt in (PT_RTPFB, PT_PSFB):
        if size < 8:  # RFC 4585 section 6.1: common feedback header
            raise ValueError("RTCP feedback too short")
        sender, media = SSRC_PAIR.unpack_from(data, start)
        if pt == PT_RTPFB:
            if count == FMT_NACK:
                return Nack(sender, media, _nack_seqs(data, start + 8, end))
            if count == FMT_TRANSPORT_CC:
                return TransportCc(sender, media, bytes(data[start + 8:end]))
        elif count == FMT_PLI:
            return Pli(sender, media)
        elif count == FMT_FIR:
            return Fir(sender, _fir_entries(data, start + 8, end))
        elif count == FMT_REMB:
            return _remb(data, sender, start + 8, end)
    return None


def _blocks(data: Buffer, pos: int, count: int) -> list[ReportBlock]:
    blocks = []
    for _ in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = REPORT_BLOCK.unpack_from(data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:  # sign-extend the 24-bit cumulative loss
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
        pos += 24
    return blocks


def _sdes_ssrcs(data: Buffer, pos: int, end: int, count: int) -> list[int]:
    # RFC 3550 section 6.5: chunk = SSRC, items (type, length, text), a null item, then
    # padding to the next 32-bit boundary.
    ssrcs = []
    for _ in range(count):
        if pos + 4 > end:
            raise ValueError("RTCP SDES chunk truncated")
        ssrcs.append(U32.unpack_from(data, pos)[0])
        pos += 4
        while True:
            if pos >= end:
                raise ValueError("RTCP SDES item truncated")
            if data[pos] == 0:
                break
            if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                raise ValueError("RTCP SDES item truncated")
            pos += 2 + data[pos + 1]
        pos = (pos + 4) & ~3  # skip the terminating null and the padding
    return ssrcs


def _nack_seqs(data: Buffer, pos: int, end: int) -> list[int]:
    # RFC 4585 section 6.2.1: bit i of BLP reports the loss of PID + i + 1 (mod 2^16).
    if (end - pos) % 4:
        raise ValueError("RTCP NACK FCI not a multiple of 4")
    seqs: dict[int, None] = {}
    for pid, blp in NACK_FCI.iter_unpack(data[pos:end]):
        seqs[pid] = None
        bit = 0
        while blp:
            if blp & 1:
                seqs[(pid + bit + 1) & 0xFFFF] = None
            blp >>= 1
            bit += 1
    return list(seqs)


def _fir_entries(data: Buffer, pos: int, end: int) -> list[tuple[int, int]]:
    if (end - pos) % 8:
        raise ValueError("RTCP FIR FCI not a multiple of 8")
    return list(FIR_FCI.iter_unpack(data[pos:end]))


def _remb(data: Buffer, sender: int, pos: int, end: int) -> Remb | None:
    if end - pos < 8:
        return None  # some other application-layer feedback, not REMB
    ident, num, exp_hi, mantissa_lo = REMB_FCI.unpack_from(data, pos)
    if ident != REMB_ID:
        return None
    if end - pos < 8 + 4 * num:
        raise ValueError("RTCP REMB SSRC list truncated")
    mantissa = ((exp_hi & 0x03) << 16) | mantissa_lo
    ssrcs = [U32.unpack_from(data, pos + 8 + 4 * i)[0] for i in range(num)]
    return Remb(sender, mantissa << (exp_hi >> 2), ssrcs)


# --- building --------------------------------------------------------------------------------


def _header(count: int, pt: int, payload_len: int) -> bytes:
    return HEADER.pack(0x80 | count, pt, payload_len // 4)


def _pack_block(b: ReportBlock) -> bytes:
    lost = max(-0x800000, min(0x7FFFFF, b.packets_lost)) & 0xFFFFFF  # RFC 3550 A.3 clamps
    # Measurements saturate rather than wrap or raise: a jitter past 2^32 clock units (a
    # fast clock and a long silence) or a DLSR past 2^32/65536 s (no SR for 18 hours).
    return REPORT_BLOCK.pack(
        b.ssrc, (b.fraction_lost & 0xFF) << 24 | lost, b.highest_seq & 0xFFFFFFFF,
        max(0, min(0xFFFFFFFF, b.jitter)), b.lsr & 0xFFFFFFFF, max(0, min(0xFFFFFFFF, b.dlsr)),
    )


def build_rr(ssrc: int, reports: Sequence[ReportBlock] = ()) -> bytes:
    """Receiver report; more than 31 blocks are split over several RR packets (RFC 3550 6.4)."""
    out = []
    i = 0
    while True:
        chunk = reports[i : i + MAX_COUNT]
        body = U32.pack(ssrc) + b"".join(_pack_block(b) for b in chunk)
        out.append(_header(len(chunk), PT_RR, len(body)) + body)
        i += MAX_COUNT
        if i >= len(reports):
            return b"".join(out)


def build_sr(
    ssrc: int,
    ntp_timestamp: int,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    reports: Sequence[ReportBlock] = (),
) -> bytes:
    """Sender report; blocks beyond the 31st go into RR packets that follow it (RFC 3550 6.4)."""
    chunk = reports[:MAX_COUNT]
    body = SENDER_INFO.pack(
        ssrc,
        ntp_timestamp & 0xFFFF_FFFF_FFFF_FFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,  # RFC 3550 6.4.1: the counters wrap
        octet_count & 0xFFFFFFFF,
    ) + b"".join(_pack_block(b) for b in chunk)
    sr = _header(len(chunk), PT_SR, len(body)) + body
    if len(reports) > MAX_COUNT:
        sr += build_rr(ssrc, reports[MAX_COUNT:])
    return sr


def build_sdes_cname(ssrc: int, cname: str) -> bytes:
    """SDES packet with one chunk carrying the CNAME item (RFC 3550 section 6.5.1)."""
    text = cname.encode()
    if len(text) > 255:
        raise ValueError("CNAME longer than 255 octets")
    chunk = U32.pack(ssrc) + bytes((SDES_CNAME, len(text))) + text
    chunk += b"\x00" * (4 - len(chunk) % 4)  # null item plus padding to 32 bits
    return _header(1, PT_SDES, len(chunk)) + chunk


def build_bye(ssrcs: Sequence[int]) -> bytes:
    if len(ssrcs) > MAX_COUNT:
        raise ValueError("BYE carries at most 31 SSRCs")
    body = b"".join(U32.pack(s) for s in ssrcs)
    return _header(len(ssrcs), PT_BYE, len(body)) + body


def nack_pairs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Pack sequence numbers into as few (PID, BLP) pairs as possible (RFC 4585 6.2.1).

    Sequence numbers are taken modulo 2^16. The walk starts just after the largest circular gap,
    so a run such as 65534, 65535, 0, 1 shares one pair however the input was ordered; from
    there, greedily opening a pair at the first uncovered number is optimal.
    """
    uniq = sorted({s & 0xFFFF for s in seqs})
    if not uniq:
        return []
    n = len(uniq)
    start = 0
    widest = (uniq[0] - uniq[-1]) & 0xFFFF  # the gap across the wrap
    for i in range(1, n):
        gap = uniq[i] - uniq[i - 1]
        if gap > widest:
            widest, start = gap, i
    pairs: list[tuple[int, int]] = []
    pid = uniq[start]
    blp = 0
    for k in range(1, n):
        seq = uniq[(start + k) % n]
        d = (seq - pid) & 0xFFFF
        if d <= 16:
            blp |= 1 << (d - 1)
        else:
            pairs.append((pid, blp))
            pid, blp = seq, 0
    pairs.append((pid, blp))
    return pairs


def build_nack(sender_ssrc: int, media_ssrc: int, seqs: Iterable[int]) -> bytes:
    pairs = nack_pairs(seqs)
    if not pairs:
        raise ValueError("NACK needs at least one sequence number")
    body = SSRC_PAIR.pack(sender_ssrc, media_ssrc) + b"".join(NACK_FCI.pack(*p) for p in pairs)
    return _header(FMT_NACK, PT_RTPFB, len(body)) + body


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return _header(FMT_PLI, PT_PSFB, 8) + SSRC_PAIR.pack(sender_ssrc, media_ssrc)


def build_fir(sender_ssrc: int, entries: Sequence[tuple[int, int]]) -> bytes:
    """FIR (RFC 5104 section 4.3.1); the media source SSRC field SHALL be 0."""
    if not entries:
        raise ValueError("FIR needs at least one entry")
    body = SSRC_PAIR.pack(sender_ssrc, 0) + b"".join(
        FIR_FCI.pack(ssrc, seqnr & 0xFF) for ssrc, seqnr in entries
    )
    return _header(FMT_FIR, PT_PSFB, len(body)) + body


def remb_encode(bitrate: int) -> tuple[int, int]:
    """(exponent, mantissa) with mantissa < 2^18 and mantissa << exponent <= bitrate."""
    if bitrate < 0:
        raise ValueError("negative REMB bitrate")
    exp = max(0, bitrate.bit_length() - 18)
    if exp > 63:
        raise ValueError("REMB bitrate too large")
    return exp, bitrate >> exp


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: Sequence[int]) -> bytes:
    """REMB (draft-alvestrand-rmcat-remb section 2.2); the media source SSRC is 0."""
    if len(ssrcs) > 255:
        raise ValueError("REMB carries at most 255 SSRCs")
    exp, mantissa = remb_encode(bitrate)
    body = (
        SSRC_PAIR.pack(sender_ssrc, 0)
        + REMB_FCI.pack(REMB_ID, len(ssrcs), exp << 2 | mantissa >> 16, mantissa & 0xFFFF)
        + b"".join(U32.pack(s) for s in ssrcs)
    )
    return _header(FMT_REMB, PT_PSFB, len(body)) + body


# --- NTP time (RFC 3550 section 4) -----------------------------------------------------------


def seconds_to_ntp(t: float) -> int:
    """Unix time in seconds -> 64-bit NTP timestamp (32.32 fixed point since 1900)."""
    secs = int(t // 1)
    frac = int((t - secs) * 4294967296.0)
    return ((secs + NTP_EPOCH_OFFSET) << 32 | frac) & 0xFFFF_FFFF_FFFF_FFFF


def ntp_to_seconds(ntp: int) -> float:
    """64-bit NTP timestamp -> Unix time in seconds (NTP era 0)."""
    return (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / 4294967296.0


def ntp_now() -> int:
    return seconds_to_ntp(time.time())


def ntp_to_middle32(ntp: int) -> int:
    """The middle 32 bits (16.16 fixed point), as carried in LSR (RFC 3550 section 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF
