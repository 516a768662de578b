"""RTP fixed-header parsing, header extensions and rewriting (RFC 3550, RFC 8285).

Pure functions and small precompiled structs: the forwarding path unpacks only the fixed header
and, when a feature needs it, looks up single extension ids. Every parser raises ValueError on
malformed input.
"""

from __future__ import annotations

import struct

RTP_HEADER = struct.Struct("!BBHII")
SEQ_TS_SSRC = struct.Struct("!HII")
U16 = struct.Struct("!H")

RTP_VERSION_BITS = 0x80
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE_MASK = 0xFFF0
TWO_BYTE_PROFILE = 0x1000

# Well-known header extension URIs we understand or forward.
EXT_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
EXT_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
EXT_TRANSPORT_CC = (
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)
EXT_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
EXT_RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
EXT_REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 section 4: RTCP packet types 192-223 collide with no dynamic RTP type."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def payload_offset(data: bytes) -> int:
    """Offset of the payload: after the fixed header, CSRCs and the extension block."""
    n = len(data)
    if n < 12 or data[0] & 0xC0 != RTP_VERSION_BITS:
        raise ValueError("not an RTP packet")
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if offset + 4 > n:
            raise ValueError("truncated RTP extension header")
        length = U16.unpack_from(data, offset + 2)[0]
        offset += 4 + 4 * length
    if offset > n:
        raise ValueError("truncated RTP header")
    return offset


def payload_end(data: bytes) -> int:
    """End of the payload, excluding padding (RFC 3550 section 5.1, P bit)."""
    start = payload_offset(data)  # also validates the header
    n = len(data)
    if data[0] & 0x20:
        pad = data[n - 1]
        if pad == 0 or pad > n - start:
            raise ValueError("bad RTP padding")
        return n - pad
    return n


def extension_block(data: bytes) -> tuple[int, int, int]:
    """(profile, start, end) of the extension elements, or (0, 0, 0) without X bit."""
    if len(data) < 12:
        raise ValueError("not an RTP packet")
    if not data[0] & 0x10:
        return 0, 0, 0
    offset = 12 + 4 * (data[0] & 0x0F)
    if offset + 4 > len(data):
        raise ValueError("truncated RTP extension header")
    profile, length = struct.unpack_from("!HH", data, offset)
    start = offset + 4
    end = start + 4 * length
    if end > len(data):
        raise ValueError("truncated RTP extension")
    return profile, start, end


def parse_extensions(data: bytes) -> dict[int, bytes]:
    """All header extension elements by id, one-byte or two-byte form (RFC 8285 section 4)."""
    profile, pos, end = extension_block(data)
    out: dict[int, bytes] = {}
    if profile == ONE_BYTE_PROFILE:
        while pos < end:
            b = data[pos]
            if b == 0:  # padding
                pos += 1
                continue
            ext_id = b >> 4
            length = (b & 0x0F) + 1
            if ext_id == 15:  # reserved: stop parsing (section 4.2)
                break
            if pos + 1 + length > end:
                raise ValueError("truncated one-byte extension")
            out[ext_id] = bytes(data[pos + 1 : pos + 1 + length])
            pos += 1 + length
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        while pos < end:
            ext_id = data[pos]
            if ext_id == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise ValueError("truncated two-byte extension")
            length = data[pos + 1]
            if pos + 2 + length > end:
                raise ValueError("truncated two-byte extension")
            out[ext_id] = bytes(data[pos + 2 : pos + 2 + length])
            pos += 2 + length
    return out


def find_extension(data: bytes, wanted: int) -> bytes | None:
    """One element by id (one-byte form only: what browsers send), or None."""
    if not data[0] & 0x10 or wanted <= 0:
        return None
    offset = 12 + 4 * (data[0] & 0x0F)
    if offset + 4 > len(data) or U16.unpack_from(data, offset)[0] != ONE_BYTE_PROFILE:
        return None
    pos = offset + 4
    end = min(len(data), pos + 4 * U16.unpack_from(data, offset + 2)[0])
    while pos < end:
        b = data[pos]
        if b == 0:
            pos += 1
            continue
        ext_id = b >> 4
        if ext_id == 15:
            return None
        length = (b & 0x0F) + 1
        if ext_id == wanted:
            # an element cut short by the end of the block or packet is no element
            return bytes(data[pos + 1 : pos + 1 + length]) if pos + 1 + length <= end else None
        pos += 1 + length
    return None


def build_extensions(elements: list[tuple[int, bytes]]) -> bytes:
    """Serialize an extension block (profile, length, padded elements).

    Uses the one-byte form when every id is 1..14 and every value 1..16 bytes, else two-byte.
    """
    if not elements:
        return b""
    one_byte = all(0 < i < 15 and 0 < len(v) <= 16 for i, v in elements)
    if one_byte:
        body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in elements)
        profile = ONE_BYTE_PROFILE
    else:
        body = b"".join(bytes([i, len(v)]) + v for i, v in elements)
        profile = TWO_BYTE_PROFILE
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", profile, len(body) // 4) + body


def build_packet(
    payload_type: int,
    seq: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
    extensions: bytes = b"",
) -> bytes:
    """A whole RTP packet; `extensions` is an already serialized extension block."""
    b0 = RTP_VERSION_BITS | (0x10 if extensions else 0)
    b1 = (0x80 if marker else 0) | (payload_type & 0x7F)
    header = RTP_HEADER.pack(b0, b1, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return header + extensions + payload


class ExtensionWriter:
    """Per-Consumer template for the outgoing extension block.

    The subscriber negotiated its own extension ids; the block is laid out once (mid value,
    abs-send-time, transport-cc sequence, audio level) and per packet only the variable bytes
    are patched in, so the packet path does no parsing or layout work here.
    """

    __slots__ = ("template", "abs_pos", "tcc_pos", "level_pos")

    def __init__(
        self,
        mid_id: int = 0,
        mid: str = "",
        abs_send_time_id: int = 0,
        transport_cc_id: int = 0,
        audio_level_id: int = 0,
    ) -> None:
        elements: list[tuple[int, bytes]] = []
        if mid_id and mid:
            elements.append((mid_id, mid.encode()))
        if abs_send_time_id:
            elements.append((abs_send_time_id, b"\x00\x00\x00"))
        if transport_cc_id:
            elements.append((transport_cc_id, b"\x00\x00"))
        if audio_level_id:
            elements.append((audio_level_id, b"\x7f"))  # -127 dBov: silence until known
        block = build_extensions(elements)
        self.template = bytearray(block)
        self.abs_pos = self.tcc_pos = self.level_pos = -1
        pos = 4
        for ext_id, value in elements:
            start = pos + 1 if block[:2] == b"\xbe\xde" else pos + 2
            if ext_id == abs_send_time_id:
                self.abs_pos = start
            elif ext_id == transport_cc_id:
                self.tcc_pos = start
            elif ext_id == audio_level_id:
                self.level_pos = start
            pos = start + len(value)

    def render(self, abs_send_time: bytes | None, tcc_seq: int,
               audio_level: bytes | None) -> bytes:
        t = self.template
        # Values come from the publisher's packets: one of the wrong size is left out rather
        # than allowed to change the block's layout.
        if self.abs_pos >= 0 and abs_send_time is not None and len(abs_send_time) == 3:
            t[self.abs_pos : self.abs_pos + 3] = abs_send_time
        if self.tcc_pos >= 0:
            U16.pack_into(t, self.tcc_pos, tcc_seq & 0xFFFF)
        if self.level_pos >= 0 and audio_level:
            t[self.level_pos] = audio_level[0]
        return bytes(t)
