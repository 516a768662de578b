"""Keyframe detection: hand-built payloads, garbage, real encoder output packetized by aiortc."""

from __future__ import annotations

import fractions
import struct
from collections.abc import Callable, Iterator

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from mediaserver.rtp.codecs import is_h264_keyframe, is_keyframe, is_vp8_keyframe
from tests.support.fuzz import fuzz_examples

# VP8 payload header byte 0 (RFC 7741 4.3): Size0=0, H=1 (show frame), VER=0, P as given.
VP8_KEY = b"\x10\x02\x00\x9d\x01\x2a"  # P=0, then the rest of the key frame header
VP8_INTER = b"\x11\x02\x00"  # P=1


# --- VP8 (RFC 7741 section 4.2) --------------------------------------------------------------


@pytest.mark.parametrize(
    "descriptor",
    [
        b"\x10",  # X=0 S=1 PID=0
        b"\x30",  # N=1 (non-reference) does not matter
        b"\x90\x00",  # X=1, no extension fields
        b"\x90\x80\x05",  # I: 7-bit PictureID
        b"\x90\x80\x80\x05",  # I: 15-bit PictureID (M=1)
        b"\x90\xc0\xff\xff\x07",  # I (M=1) + L
        b"\x90\xe0\x12\x07\x40",  # I (7-bit) + L + T
        b"\x90\x10\x01",  # K only
        b"\x90\xf0\x80\x01\x07\x40",  # I (M=1) + L + T + K
    ],
)
def test_vp8_descriptor_variants(descriptor: bytes) -> None:
    assert is_vp8_keyframe(descriptor + VP8_KEY)
    assert not is_vp8_keyframe(descriptor + VP8_INTER)


def test_vp8_needs_partition_start_and_pid_zero() -> None:
    assert not is_vp8_keyframe(b"\x00" + VP8_KEY)  # S=0: continuation packet
    assert not is_vp8_keyframe(b"\x11" + VP8_KEY)  # PID=1
    assert not is_vp8_keyframe(b"\x80\x80\x05" + VP8_KEY)  # X with S=0


def test_vp8_extension_bytes_are_not_mistaken_for_the_header() -> None:
    # With 15-bit PictureID 0x8001, a parser that ignored M would read 0x01 (P=1) as the header.
    assert is_vp8_keyframe(b"\x90\x80\x80\x01" + VP8_KEY)
    # 7-bit PictureID 0x02 (even) followed by an inter-frame header.
    assert not is_vp8_keyframe(b"\x90\x80\x02" + VP8_INTER)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x10", b"\x90", b"\x90\x80", b"\x90\x80\x80", b"\x90\x80\x80\x05", b"\x90\xf0\x80\x01"],
)
def test_vp8_short_payloads(payload: bytes) -> None:
    assert not is_vp8_keyframe(payload)


# --- H.264 (RFC 6184 section 5) --------------------------------------------------------------


def nal(nal_type: int, nri: int = 3, body: bytes = b"\x88\x84\x00") -> bytes:
    return bytes([nri << 5 | nal_type]) + body


def stap_a(*units: bytes) -> bytes:
    return b"\x78" + b"".join(struct.pack("!H", len(u)) + u for u in units)


def fu_a(nal_type: int, start: bool, end: bool = False) -> bytes:
    return bytes([0x7C, (0x80 if start else 0) | (0x40 if end else 0) | nal_type]) + b"\x00" * 8


SPS, PPS, IDR, NON_IDR, SEI = nal(7), nal(8), nal(5), nal(1, nri=2), nal(6, nri=0)


def test_h264_single_nal() -> None:
    assert is_h264_keyframe(IDR)
    assert is_h264_keyframe(SPS)
    assert not is_h264_keyframe(NON_IDR)
    assert not is_h264_keyframe(PPS)
    assert not is_h264_keyframe(SEI)


def test_h264_stap_a() -> None:
    assert is_h264_keyframe(stap_a(SPS, PPS, IDR))
    assert is_h264_keyframe(stap_a(SEI, PPS, IDR))  # the IDR is the third unit
    assert not is_h264_keyframe(stap_a(SEI, PPS))
    assert not is_h264_keyframe(stap_a(NON_IDR, NON_IDR))


def test_h264_fu_a() -> None:
    assert is_h264_keyframe(fu_a(5, start=True))
    assert is_h264_keyframe(fu_a(7, start=True))
    assert not is_h264_keyframe(fu_a(5, start=False))  # middle fragment
    assert not is_h264_keyframe(fu_a(5, start=False, end=True))
    assert not is_h264_keyframe(fu_a(1, start=True))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x7c",  # FU-A without FU header
        b"\x78",  # STAP-A without units
        b"\x78\x00",  # STAP-A truncated size
        b"\x78\x00\x05",  # STAP-A size without NAL header
        b"\x78\x00\x00\x65",  # zero-size unit
        b"\x78\x00\x02\x06\x00\x00\x08",  # second unit truncated before its header
        b"\x78\x00\x40\x06",  # size overruns the buffer
    ],
)
def test_h264_short_payloads(payload: bytes) -> None:
    assert not is_h264_keyframe(payload)


# --- dispatch and robustness -----------------------------------------------------------------


def test_dispatch() -> None:
    vp8 = b"\x10" + VP8_KEY
    assert is_keyframe("VP8", vp8) and is_keyframe("vp8", vp8) and is_keyframe("video/VP8", vp8)
    assert is_keyframe("H264", IDR) and is_keyframe("h264", memoryview(IDR))
    assert not is_keyframe("H264", vp8)
    assert not is_keyframe("VP9", vp8)
    assert not is_keyframe("opus", IDR)
    assert is_vp8_keyframe(memoryview(b"\x90\x80\x80\x05" + VP8_KEY))
    assert is_vp8_keyframe(bytearray(b"\x10" + VP8_KEY))


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(st.binary(max_size=64), st.sampled_from(["VP8", "H264", "vp9", "AV1", ""]))
def test_garbage_never_raises(payload: bytes, codec: str) -> None:
    assert isinstance(is_keyframe(codec, payload), bool)
    assert isinstance(is_keyframe(codec, memoryview(payload)), bool)


# --- real encoder output, packetized the way aiortc sends it ---------------------------------


def frames(count: int) -> Iterator[av.VideoFrame]:
    """A gradient that moves every frame, so inter frames carry real changes."""
    y, x = np.mgrid[0:240, 0:320]
    for i in range(count):
        rgb = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, (x + y) % 256], axis=-1)
        frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        frame.time_base = fractions.Fraction(1, 30)
        yield frame


def encode(codec_name: str, count: int = 6) -> list[av.Packet]:
    codec = av.CodecContext.create(codec_name, "w")
    codec.width, codec.height = 320, 240
    codec.pix_fmt = "yuv420p"
    codec.time_base = fractions.Fraction(1, 30)
    codec.framerate = fractions.Fraction(30, 1)
    codec.gop_size = 1000  # only the first frame is a key frame
    codec.bit_rate = 500_000
    if codec_name == "libx264":
        codec.profile = "Baseline"
        codec.options = {"tune": "zerolatency"}
    packets = []
    for frame in frames(count):
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    return packets


def check_packets(
    codec: str, packets: list[av.Packet], packetize: Callable[[bytes], list[bytes]]
) -> None:
    assert packets[0].is_keyframe
    assert any(not p.is_keyframe for p in packets)
    for packet in packets:
        payloads = packetize(bytes(packet))
        assert payloads
        assert is_keyframe(codec, payloads[0]) == packet.is_keyframe
        if not packet.is_keyframe:
            assert not any(is_keyframe(codec, p) for p in payloads)


def test_vp8_encoded_by_libvpx() -> None:
    packets = encode("libvpx")

    def packetize(data: bytes) -> list[bytes]:
        return Vp8Encoder._packetize(data, picture_id=0x1234)

    check_packets("VP8", packets, packetize)
    # A key frame spans several packets; only the first one starts the partition.
    key = packetize(bytes(packets[0]))
    assert len(key) > 1
    assert [is_vp8_keyframe(p) for p in key] == [True] + [False] * (len(key) - 1)


def test_h264_encoded_by_libx264() -> None:
    packets = encode("libx264")

    def packetize(data: bytes) -> list[bytes]:
        return H264Encoder._packetize(H264Encoder._split_bitstream(data))

    check_packets("H264", packets, packetize)
    # The IDR is split into FU-A fragments; those after the first never look like a start.
    key = packetize(bytes(packets[0]))
    later = [p for p in key if p[0] & 0x1F == 28 and not p[1] & 0x80]
    assert later and not any(is_h264_keyframe(p) for p in later)
    assert sum(is_h264_keyframe(p) for p in key) >= 1
