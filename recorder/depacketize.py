"""RTP payloads -> whole coded frames: VP8 (RFC 7741), H.264 (RFC 6184), Opus (RFC 7587).

A depacketizer gets the payloads of one frame (same RTP timestamp, consecutive sequence numbers,
checked complete by the jitter buffer) and returns the frame, or None when the payloads do not
form a whole frame (first packet not a frame start, fragment missing its start or end...): a
damaged frame is dropped here rather than handed to a decoder or a muxer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ANNEX_B = b"\x00\x00\x00\x01"


@dataclass(slots=True)
class Frame:
    data: bytes
    timestamp: int  # RTP timestamp (32 bits)
    keyframe: bool
    arrival: float = 0.0  # local time the first packet arrived
    duration: int = 0  # in RTP clock units when the payload says (Opus), else 0


class Depacketizer:
    kind = "video"

    def starts_frame(self, payload: bytes) -> bool:
        """True when the payload certainly begins a frame (used to resynchronise after loss)."""
        raise NotImplementedError

    def depacketize(self, payloads: Sequence[bytes], timestamp: int) -> Frame | None:
        raise NotImplementedError


# ---- VP8 ----------------------------------------------------------------------------------


def vp8_descriptor(payload: bytes) -> tuple[int, bool, int] | None:
    """(descriptor length, S bit, partition index) per RFC 7741 section 4.2, or None."""
    n = len(payload)
    if n < 1:
        return None
    b0 = payload[0]
    pos = 1
    if b0 & 0x80:  # X: extension byte I L T K
        if n < 2:
            return None
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: PictureID, 15 bits when M is set
            if pos >= n:
                return None
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            pos += 1
    if pos > n:
        return None
    return pos, bool(b0 & 0x10), b0 & 0x07


def vp8_dimensions(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a VP8 key frame header (RFC 6386 section 9.1), else None."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height


class Vp8Depacketizer(Depacketizer):
    def starts_frame(self, payload: bytes) -> bool:
        d = vp8_descriptor(payload)
        return d is not None and d[1] and d[2] == 0  # S=1 in partition 0 (section 4.2)

    def depacketize(self, payloads: Sequence[bytes], timestamp: int) -> Frame | None:
        parts = []
        for i, payload in enumerate(payloads):
            d = vp8_descriptor(payload)
            if d is None:
                return None
            if i == 0 and not (d[1] and d[2] == 0):
                return None  # the first packet of the frame is missing
            parts.append(payload[d[0] :])
        data = b"".join(parts)
        if not data:
            return None
        # Payload header (section 4.3): P bit 0 = key frame.
        return Frame(data, timestamp, keyframe=data[0] & 0x01 == 0)


# ---- H.264 --------------------------------------------------------------------------------

NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
STAP_A = 24
FU_A = 28


class H264Depacketizer(Depacketizer):
    """Annex-B access units; SPS/PPS are kept and re-sent in front of IDRs that lack them."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None

    def starts_frame(self, payload: bytes) -> bool:
        # No start-of-AU bit exists in RFC 6184: only an AUD or an SPS first proves one.
        if not payload:
            return False
        nal_type = payload[0] & 0x1F
        if nal_type == STAP_A:
            return len(payload) > 3 and payload[3] & 0x1F in (NAL_AUD, NAL_SPS)
        return nal_type in (NAL_AUD, NAL_SPS)

    def depacketize(self, payloads: Sequence[bytes], timestamp: int) -> Frame | None:
        nals: list[bytes] = []
        fu: bytearray | None = None
        for payload in payloads:
            if not payload:
                return None
            nal_type = payload[0] & 0x1F
            if nal_type == FU_A:  # section 5.8
                if len(payload) < 2:
                    return None
                start, end = payload[1] & 0x80, payload[1] & 0x40
                if start:
                    if fu is not None:
                        return None  # previous fragment unit never ended
                    fu = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)])
                elif fu is None:
                    return None  # a fragment without its start
                fu += payload[2:]
                if end:
                    nals.append(bytes(fu))
                    fu = None
                continue
            if fu is not None:
                return None  # fragments interrupted
            if nal_type == STAP_A:  # section 5.7.1: (16-bit size, NAL unit)*
                pos = 1
                while pos < len(payload):
                    if pos + 2 > len(payload):
                        return None
                    size = int.from_bytes(payload[pos : pos + 2], "big")
                    if size == 0 or pos + 2 + size > len(payload):
                        return None
                    nals.append(payload[pos + 2 : pos + 2 + size])
                    pos += 2 + size
            elif 1 <= nal_type <= 23:  # single NAL unit packet (section 5.6)
                nals.append(payload)
            else:
                return None  # STAP-B, MTAP, FU-B: not used by WebRTC, not supported
        if fu is not None or not nals:
            return None
        types = [n[0] & 0x1F for n in nals]
        for nal, t in zip(nals, types, strict=True):
            if t == NAL_SPS:
                self.sps = nal
            elif t == NAL_PPS:
                self.pps = nal
        keyframe = NAL_IDR in types
        if keyframe and NAL_SPS not in types and self.sps and self.pps:
            nals = [self.sps, self.pps, *nals]
        if keyframe and (self.sps is None or self.pps is None):
            keyframe = False  # an IDR we cannot decode without parameter sets
        return Frame(b"".join(ANNEX_B + n for n in nals), timestamp, keyframe=keyframe)


# ---- Opus ---------------------------------------------------------------------------------

# RFC 6716 section 3.1: frame size by TOC config, in 1/400 s units (2.5 ms).
_OPUS_FRAME_UNITS = [4, 8, 16, 24] * 3 + [4, 8] * 2 + [1, 2, 4, 8] * 4


def opus_samples(payload: bytes, rate: int = 48000) -> int:
    """Samples (at `rate`) in one Opus packet from its TOC byte, or 0 if malformed."""
    if not payload:
        return 0
    toc = payload[0]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        if len(payload) < 2:
            return 0
        count = payload[1] & 0x3F
    return _OPUS_FRAME_UNITS[toc >> 3] * count * rate // 400


class OpusDepacketizer(Depacketizer):
    kind = "audio"

    def starts_frame(self, payload: bytes) -> bool:
        return True  # RFC 7587 section 4.2: one Opus packet per RTP packet

    def depacketize(self, payloads: Sequence[bytes], timestamp: int) -> Frame | None:
        if len(payloads) != 1 or not payloads[0]:
            return None
        data = payloads[0]
        return Frame(data, timestamp, keyframe=True, duration=opus_samples(data))


def make_depacketizer(codec_name: str) -> Depacketizer:
    name = codec_name.upper().rpartition("/")[2]
    if name == "VP8":
        return Vp8Depacketizer()
    if name == "H264":
        return H264Depacketizer()
    if name == "OPUS":
        return OpusDepacketizer()
    raise ValueError(f"unsupported codec {codec_name!r}")
