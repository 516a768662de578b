"""RTP fixed header and payload bounds, build_packet and aiortc interop.

Hand-built RFC 3550 vectors, round trips, malformed input and aiortc interop.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from mediaserver.rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_TRANSPORT_CC,
    ONE_BYTE_PROFILE,
    RTP_HEADER,
    SEQ_TS_SSRC,
    ExtensionWriter,
    build_extensions,
    build_packet,
    extension_block,
    find_extension,
    is_rtcp,
    parse_extensions,
    payload_end,
    payload_offset,
)
from tests.support.rtp_samples import ONE_BYTE_ELEMENT, one_byte_block, raw_packet, unique_ids

# --- fixed header ----------------------------------------------------------------------------


def test_fixed_header_fields_unpack_from_built_packet() -> None:
    data = build_packet(111, 0xABCD, 0xDEADBEEF, 0x01020304, b"opus", marker=True)
    b0, b1, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    assert b0 >> 6 == 2
    assert b0 & 0x3F == 0  # no padding, no extension, no CSRC
    assert b1 >> 7 == 1
    assert b1 & 0x7F == 111
    assert (seq, ts, ssrc) == (0xABCD, 0xDEADBEEF, 0x01020304)
    assert SEQ_TS_SSRC.unpack_from(data, 2) == (0xABCD, 0xDEADBEEF, 0x01020304)
    assert data[payload_offset(data) : payload_end(data)] == b"opus"


def test_payload_offset_without_csrc_or_extension_is_12() -> None:
    assert payload_offset(raw_packet(payload=b"abc")) == 12


def test_payload_offset_skips_csrcs() -> None:
    data = raw_packet(csrcs=[1, 2, 3], payload=b"media")
    assert payload_offset(data) == 12 + 3 * 4
    assert data[payload_offset(data) :] == b"media"


def test_payload_offset_skips_csrcs_and_extension_block() -> None:
    ext = one_byte_block(bytes([0x10]) + b"\x01\x02")  # id 1, 2 bytes, then padding
    data = raw_packet(csrcs=[7, 8], extension=ext, payload=b"media")
    assert payload_offset(data) == 12 + 8 + 4 + 4
    assert data[payload_offset(data) :] == b"media"


def test_payload_offset_with_empty_extension_block() -> None:
    data = raw_packet(extension=(ONE_BYTE_PROFILE, b""), payload=b"x")
    assert payload_offset(data) == 16


def test_payload_end_without_padding_is_length() -> None:
    data = raw_packet(payload=b"abcdef")
    assert payload_end(data) == len(data)


@pytest.mark.parametrize("padding", [1, 2, 4, 255])
def test_payload_end_excludes_padding(padding: int) -> None:
    data = raw_packet(payload=b"payload", padding=padding)
    assert payload_end(data) == len(data) - padding
    assert data[payload_offset(data) : payload_end(data)] == b"payload"


def test_payload_end_with_extension_and_padding() -> None:
    ext = one_byte_block(bytes([0x20]) + b"\x05")
    data = raw_packet(csrcs=[9], extension=ext, payload=b"vp8", padding=3)
    assert data[payload_offset(data) : payload_end(data)] == b"vp8"


def test_padding_only_packet_has_empty_payload() -> None:
    data = raw_packet(payload=b"", padding=8)
    assert payload_offset(data) == payload_end(data) == 12


# --- malformed fixed header ------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 11])
def test_payload_offset_rejects_too_short(length: int) -> None:
    with pytest.raises(ValueError):
        payload_offset(raw_packet(payload=b"xxxx")[:length])


@pytest.mark.parametrize("version", [0, 1, 3])
def test_payload_offset_rejects_wrong_version(version: int) -> None:
    with pytest.raises(ValueError):
        payload_offset(raw_packet(version=version, payload=b"abcd"))


def test_payload_offset_rejects_truncated_csrc_list() -> None:
    data = raw_packet(csrcs=[1, 2, 3], payload=b"")[:20]
    with pytest.raises(ValueError):
        payload_offset(data)


def test_payload_offset_rejects_truncated_extension_header() -> None:
    data = raw_packet(extension=(ONE_BYTE_PROFILE, b""))[:14]
    with pytest.raises(ValueError):
        payload_offset(data)


def test_payload_offset_rejects_extension_length_past_end() -> None:
    # Claims 3 words of extension, carries only one.
    data = raw_packet() + struct.pack("!HH", ONE_BYTE_PROFILE, 3) + b"\x10\x01\x00\x00"
    data = bytes([data[0] | 0x10]) + data[1:]
    with pytest.raises(ValueError):
        payload_offset(data)


def test_payload_end_rejects_zero_padding_count() -> None:
    data = bytearray(raw_packet(payload=b"abcd", padding=2))
    data[-1] = 0
    with pytest.raises(ValueError):
        payload_end(bytes(data))


def test_payload_end_rejects_padding_longer_than_packet() -> None:
    data = bytearray(raw_packet(payload=b"abcd", padding=2))
    data[-1] = 200
    with pytest.raises(ValueError):
        payload_end(bytes(data))


def test_payload_end_rejects_padding_reaching_into_the_header_extension() -> None:
    # 12 header + 8 extension + 2 payload; a padding count of 10 fits in "n - 12" but would end
    # the payload inside the extension block (RFC 3550 5.1: padding is after the payload).
    ext = one_byte_block(bytes([0x12]) + b"abc")
    data = bytearray(raw_packet(extension=ext, payload=b"x", padding=1))
    data[-1] = 10
    data = bytes(data)
    assert payload_offset(data) == 20
    with pytest.raises(ValueError):
        payload_end(data)


@pytest.mark.parametrize("parser", [payload_offset, payload_end, parse_extensions, extension_block])
def test_parsers_raise_value_error_on_empty_input(parser: Callable[[bytes], object]) -> None:
    with pytest.raises(ValueError):
        parser(b"")


def test_is_rtcp_by_packet_type() -> None:
    assert is_rtcp(bytes([0x80, 200]) + b"\x00" * 6)  # SR
    assert is_rtcp(bytes([0x81, 205]) + b"\x00" * 10)  # RTPFB
    assert not is_rtcp(build_packet(96, 1, 1, 1, b""))
    assert not is_rtcp(build_packet(111, 1, 1, 1, b"", marker=True))  # 0x80|111 = 239
    assert not is_rtcp(b"\x80")


# --- build_packet ----------------------------------------------------------------------------


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    payload=st.binary(max_size=200),
    elements=st.lists(ONE_BYTE_ELEMENT, max_size=5).map(unique_ids),
)
def test_build_packet_round_trip(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    marker: bool,
    payload: bytes,
    elements: list[tuple[int, bytes]],
) -> None:
    data = build_packet(pt, seq, ts, ssrc, payload, marker=marker,
                        extensions=build_extensions(elements))
    b0, b1, seq2, ts2, ssrc2 = RTP_HEADER.unpack_from(data)
    assert b0 >> 6 == 2
    assert bool(b0 & 0x10) == bool(elements)
    assert b0 & 0x2F == 0
    assert (bool(b1 & 0x80), b1 & 0x7F, seq2, ts2, ssrc2) == (marker, pt, seq, ts, ssrc)
    assert data[payload_offset(data) : payload_end(data)] == payload
    assert parse_extensions(data) == dict(elements)


def test_build_packet_masks_sequence_and_timestamp() -> None:
    data = build_packet(96, 0x10005, 0x100000002, 1, b"")
    assert SEQ_TS_SSRC.unpack_from(data, 2) == (5, 2, 1)


# --- interop with aiortc ---------------------------------------------------------------------


def aiortc_map(ids: dict[str, int]) -> HeaderExtensionsMap:
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uri) for uri, i in ids.items()
            ]
        )
    )
    return extensions_map


def test_build_packet_parsed_by_aiortc() -> None:
    data = build_packet(96, 4242, 90000, 0xCAFEBABE, b"\x10\x02\x00frame", marker=True)
    packet = RtpPacket.parse(data)
    assert packet.version == 2
    assert packet.payload_type == 96
    assert packet.sequence_number == 4242
    assert packet.timestamp == 90000
    assert packet.ssrc == 0xCAFEBABE
    assert packet.marker == 1
    assert packet.csrc == []
    assert packet.payload == b"\x10\x02\x00frame"


def test_build_packet_with_extension_writer_parsed_by_aiortc() -> None:
    ids = {EXT_MID: 4, EXT_ABS_SEND_TIME: 2, EXT_TRANSPORT_CC: 3, EXT_AUDIO_LEVEL: 1}
    writer = ExtensionWriter(mid_id=4, mid="a1", abs_send_time_id=2, transport_cc_id=3,
                             audio_level_id=1)
    block = writer.render(b"\x12\x34\x56", 777, bytes([0x80 | 42]))
    data = build_packet(111, 1, 960, 0x1234, b"opus-frame", extensions=block)
    packet = RtpPacket.parse(data, aiortc_map(ids))
    assert packet.extensions.mid == "a1"
    assert packet.extensions.abs_send_time == 0x123456
    assert packet.extensions.transport_sequence_number == 777
    assert packet.extensions.audio_level == (True, 42)
    assert packet.payload == b"opus-frame"


def test_build_extensions_two_byte_parsed_by_aiortc() -> None:
    ids = {EXT_MID: 20, EXT_ABS_SEND_TIME: 2}
    block = build_extensions([(20, b"video"), (2, b"\x00\x00\x09")])
    assert block[:2] == b"\x10\x00"
    packet = RtpPacket.parse(build_packet(96, 1, 1, 1, b"x", extensions=block), aiortc_map(ids))
    assert packet.extensions.mid == "video"
    assert packet.extensions.abs_send_time == 9
    assert packet.payload == b"x"


def test_aiortc_packet_with_csrcs_extensions_and_padding_parsed_by_us() -> None:
    ids = {EXT_MID: 1, EXT_TRANSPORT_CC: 5}
    packet = RtpPacket(payload_type=100, marker=1, sequence_number=65535, timestamp=7,
                       ssrc=99, payload=b"some payload")
    packet.padding_size = 5
    packet.csrc = [10, 20]
    packet.extensions.mid = "3"
    packet.extensions.transport_sequence_number = 513
    data = packet.serialize(aiortc_map(ids))
    assert data[payload_offset(data) : payload_end(data)] == b"some payload"
    assert parse_extensions(data) == {1: b"3", 5: b"\x02\x01"}
    assert find_extension(data, 5) == b"\x02\x01"
