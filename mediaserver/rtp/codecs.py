"""Keyframe detection from RTP payloads, without decoding anything.

The forwarding path needs to know where a decodable picture starts (to switch simulcast layers or
to unblock a new consumer). These functions read only the payload descriptor / NAL headers and
never raise: short or garbage payloads simply are not keyframes.
"""

from __future__ import annotations

Payload = bytes | bytearray | memoryview

# H.264 NAL unit types (RFC 6184 section 5.2; ITU-T H.264 table 7-1).
NAL_IDR = 5
NAL_SPS = 7
NAL_STAP_A = 24
NAL_FU_A = 28
_KEY_NALS = (NAL_IDR, NAL_SPS)


def _vp8_header(payload: Payload) -> int:
    """Where the VP8 payload header starts in a packet that begins partition 0 of a frame
    (RFC 7741 section 4.2: descriptor byte 0 is X R N S R PID(3), S=1 and PID=0); -1 in any
    other packet."""
    n = len(payload)
    if n < 2:
        return -1
    b0 = payload[0]
    if b0 & 0x17 != 0x10:
        return -1
    pos = 1
    if b0 & 0x80:  # X: extension byte I L T K RSV(4)
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 15 bits when its M bit is set, otherwise 7
            if pos >= n:
                return -1
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID | Y | KEYIDX share one byte
            pos += 1
    return pos if pos < n else -1


def is_vp8_keyframe(payload: Payload) -> bool:
    """True for the first packet of a VP8 key frame (RFC 7741 sections 4.2 and 4.3)."""
    pos = _vp8_header(payload)
    # VP8 payload header byte 0: Size0(3) H(1) VER(3) P(1); P=0 means a key frame.
    return pos >= 0 and payload[pos] & 0x01 == 0


def vp8_keyframe_size(payload: Payload) -> tuple[int, int] | None:
    """(width, height) from the first packet of a VP8 key frame, else None: the frame tag (3
    bytes), the start code 9d 01 2a, then two 14-bit sizes, little-endian (RFC 6386 9.1)."""
    pos = _vp8_header(payload)
    if pos < 0 or payload[pos] & 0x01 or len(payload) < pos + 10:
        return None
    if bytes(payload[pos + 3:pos + 6]) != b"\x9d\x01\x2a":
        return None
    width = (payload[pos + 6] | payload[pos + 7] << 8) & 0x3FFF
    height = (payload[pos + 8] | payload[pos + 9] << 8) & 0x3FFF
    return (width, height) if width and height else None


def is_h264_keyframe(payload: Payload) -> bool:
    """True if the packet carries (the start of) an IDR slice or an SPS (RFC 6184 section 5)."""
    n = len(payload)
    if n < 1:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == NAL_STAP_A:
        # Section 5.7.1: after the STAP-A header, repeated (16-bit size, NAL unit).
        pos = 1
        while pos + 2 < n:
            size = payload[pos] << 8 | payload[pos + 1]
            if size == 0:
                return False
            if payload[pos + 2] & 0x1F in _KEY_NALS:
                return True
            pos += 2 + size
        return False
    if nal_type == NAL_FU_A:
        # Section 5.8: FU header S E R Type(5); only the fragment with S=1 starts the NAL unit.
        return n >= 2 and payload[1] & 0x80 != 0 and payload[1] & 0x1F in _KEY_NALS
    return nal_type in _KEY_NALS


def is_keyframe(codec_name: str, payload: Payload) -> bool:
    """Dispatch on the codec name ('VP8', 'h264', 'video/H264'...); other codecs -> False."""
    name = codec_name.upper().rpartition("/")[2]
    if name == "VP8":
        return is_vp8_keyframe(payload)
    if name == "H264":
        return is_h264_keyframe(payload)
    return False
