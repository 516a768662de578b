"""RTP header parsing, header extensions, sequence arithmetic and the retransmission buffer.

Hand-built RFC 3550 / RFC 8285 vectors, round trips, malformed input and aiortc interop.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence

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
    TWO_BYTE_PROFILE,
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
from mediaserver.rtp.retransmit import RetransmitBuffer
from mediaserver.rtp.seq import SeqExtender, seq_add, seq_diff, seq_newer


def raw_packet(
    *,
    csrcs: Sequence[int] = (),
    extension: tuple[int, bytes] | None = None,
    payload: bytes = b"",
    padding: int = 0,
    version: int = 2,
    marker: bool = False,
    pt: int = 96,
    seq: int = 1000,
    ts: int = 123456,
    ssrc: int = 0x11223344,
) -> bytes:
    """An RTP packet assembled field by field, independently of build_packet."""
    b0 = (version << 6) | (0x20 if padding else 0) | (0x10 if extension else 0) | len(csrcs)
    b1 = (0x80 if marker else 0) | pt
    out = struct.pack("!BBHII", b0, b1, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        profile, body = extension
        assert len(body) % 4 == 0
        out += struct.pack("!HH", profile, len(body) // 4) + body
    out += payload
    if padding:
        out += b"\x00" * (padding - 1) + bytes([padding])
    return out


def one_byte_block(*elements: bytes) -> tuple[int, bytes]:
    body = b"".join(elements)
    return ONE_BYTE_PROFILE, body + b"\x00" * (-len(body) % 4)


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


# --- header extensions: parse ----------------------------------------------------------------


def test_parse_extensions_one_byte_form() -> None:
    ext = one_byte_block(
        bytes([0x10]) + b"0",  # id 1 (mid), 1 byte
        bytes([0x22]) + b"\x12\x34\x56",  # id 2, 3 bytes
        bytes([0x31]) + b"\x00\x2a",  # id 3, 2 bytes
    )
    data = raw_packet(extension=ext, payload=b"p")
    assert parse_extensions(data) == {1: b"0", 2: b"\x12\x34\x56", 3: b"\x00\x2a"}


def test_parse_extensions_one_byte_skips_padding_between_elements() -> None:
    ext = one_byte_block(bytes([0x10]) + b"a", b"\x00\x00", bytes([0x20]) + b"b")
    data = raw_packet(extension=ext)
    assert parse_extensions(data) == {1: b"a", 2: b"b"}


def test_parse_extensions_one_byte_sixteen_byte_value() -> None:
    value = bytes(range(16))
    data = raw_packet(extension=one_byte_block(bytes([0x5F]) + value))
    assert parse_extensions(data) == {5: value}


def test_parse_extensions_one_byte_id_15_stops_parsing() -> None:
    ext = one_byte_block(bytes([0x10]) + b"a", bytes([0xF0]) + b"z", bytes([0x20]) + b"b")
    data = raw_packet(extension=ext)
    assert parse_extensions(data) == {1: b"a"}


def test_parse_extensions_two_byte_form() -> None:
    body = bytes([1, 0]) + bytes([20, 3]) + b"xyz" + bytes([2, 1]) + b"q"
    body += b"\x00" * (-len(body) % 4)
    data = raw_packet(extension=(TWO_BYTE_PROFILE, body), payload=b"payload")
    assert parse_extensions(data) == {1: b"", 20: b"xyz", 2: b"q"}


def test_parse_extensions_two_byte_skips_padding_and_accepts_appbits() -> None:
    body = b"\x00" + bytes([7, 2]) + b"hi" + b"\x00\x00\x00"
    data = raw_packet(extension=(TWO_BYTE_PROFILE | 0x5, body))
    assert parse_extensions(data) == {7: b"hi"}


def test_parse_extensions_unknown_profile_yields_nothing() -> None:
    data = raw_packet(extension=(0x1234, b"\x10abc"))
    assert parse_extensions(data) == {}


def test_parse_extensions_without_x_bit_is_empty() -> None:
    assert parse_extensions(raw_packet(payload=b"\xbe\xde\x00\x01\x10a\x00\x00")) == {}


def test_parse_extensions_rejects_one_byte_element_past_block_end() -> None:
    # id 1 says 4 bytes follow, the block has room for 3.
    data = raw_packet(extension=(ONE_BYTE_PROFILE, bytes([0x13]) + b"abc"), payload=b"zzzz")
    with pytest.raises(ValueError):
        parse_extensions(data)


def test_parse_extensions_rejects_two_byte_element_past_block_end() -> None:
    data = raw_packet(extension=(TWO_BYTE_PROFILE, bytes([1, 9]) + b"ab"), payload=b"zzzzzzzz")
    with pytest.raises(ValueError):
        parse_extensions(data)


def test_parse_extensions_rejects_extension_length_past_packet_end() -> None:
    data = raw_packet() + struct.pack("!HH", ONE_BYTE_PROFILE, 2) + b"\x10a\x00\x00"
    data = bytes([data[0] | 0x10]) + data[1:]
    with pytest.raises(ValueError):
        parse_extensions(data)


def test_parse_extensions_after_csrcs() -> None:
    data = raw_packet(csrcs=[1, 2], extension=one_byte_block(bytes([0x40]) + b"m"))
    assert parse_extensions(data) == {4: b"m"}


# --- find_extension --------------------------------------------------------------------------


def test_find_extension_returns_each_element() -> None:
    ext = one_byte_block(bytes([0x10]) + b"0", b"\x00", bytes([0x22]) + b"\x01\x02\x03")
    data = raw_packet(csrcs=[5], extension=ext, payload=b"p")
    assert find_extension(data, 1) == b"0"
    assert find_extension(data, 2) == b"\x01\x02\x03"
    assert find_extension(data, 3) is None


def test_find_extension_none_without_extension_or_for_id_zero() -> None:
    assert find_extension(raw_packet(payload=b"abc"), 1) is None
    data = raw_packet(extension=one_byte_block(bytes([0x10]) + b"a"))
    assert find_extension(data, 0) is None


def test_find_extension_ignores_two_byte_form() -> None:
    data = raw_packet(extension=(TWO_BYTE_PROFILE, bytes([1, 1]) + b"a\x00"))
    assert find_extension(data, 1) is None


def test_find_extension_stops_at_id_15() -> None:
    ext = one_byte_block(bytes([0xF0]) + b"z", bytes([0x20]) + b"b")
    assert find_extension(raw_packet(extension=ext), 2) is None


def test_find_extension_does_not_read_past_the_packet() -> None:
    data = raw_packet() + struct.pack("!HH", ONE_BYTE_PROFILE, 5) + bytes([0x10]) + b"a"
    data = bytes([data[0] | 0x10]) + data[1:]
    assert find_extension(data, 1) == b"a"
    assert find_extension(data, 2) is None


# --- build_extensions ------------------------------------------------------------------------


def test_build_extensions_empty_is_empty() -> None:
    assert build_extensions([]) == b""


def test_build_extensions_one_byte_layout() -> None:
    block = build_extensions([(1, b"0"), (3, b"\x01\x02\x03")])
    assert block == b"\xbe\xde\x00\x02" + b"\x100" + b"\x32\x01\x02\x03" + b"\x00\x00"


@pytest.mark.parametrize(
    "elements",
    [
        [(15, b"a")],  # id out of one-byte range
        [(1, b"x" * 17)],  # value too long for one-byte form
        [(2, b"")],  # empty value needs the two-byte form
        [(1, b"a"), (200, b"bb")],
    ],
)
def test_build_extensions_switches_to_two_byte_form(elements: list[tuple[int, bytes]]) -> None:
    block = build_extensions(elements)
    profile = struct.unpack_from("!H", block)[0]
    assert profile == TWO_BYTE_PROFILE
    data = build_packet(96, 1, 2, 3, b"pl", extensions=block)
    assert parse_extensions(data) == dict(elements)
    assert data[payload_offset(data) :] == b"pl"


ONE_BYTE_ELEMENT = st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16))
TWO_BYTE_ELEMENT = st.tuples(st.integers(1, 255), st.binary(min_size=0, max_size=255))


def unique_ids(elements: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    seen: dict[int, bytes] = {}
    for ext_id, value in elements:
        seen.setdefault(ext_id, value)
    return list(seen.items())


@given(st.lists(ONE_BYTE_ELEMENT, min_size=1, max_size=14).map(unique_ids), st.binary())
def test_build_extensions_one_byte_round_trip(
    elements: list[tuple[int, bytes]], payload: bytes
) -> None:
    block = build_extensions(elements)
    assert block[:2] == b"\xbe\xde"
    assert len(block) % 4 == 0
    data = build_packet(100, 5, 6, 7, payload, extensions=block)
    assert parse_extensions(data) == dict(elements)
    assert data[payload_offset(data) :] == payload
    for ext_id, value in elements:
        assert find_extension(data, ext_id) == value


@given(st.lists(TWO_BYTE_ELEMENT, min_size=1, max_size=20).map(unique_ids))
def test_build_extensions_two_byte_round_trip(elements: list[tuple[int, bytes]]) -> None:
    block = build_extensions(elements)
    one_byte_ok = all(0 < i < 15 and 0 < len(v) <= 16 for i, v in elements)
    assert block[:2] == (b"\xbe\xde" if one_byte_ok else b"\x10\x00")
    assert len(block) % 4 == 0
    data = build_packet(100, 5, 6, 7, b"", extensions=block)
    assert parse_extensions(data) == dict(elements)


# --- ExtensionWriter -------------------------------------------------------------------------


def parsed(block: bytes) -> dict[int, bytes]:
    return parse_extensions(build_packet(96, 1, 2, 3, b"payload", extensions=block))


def test_extension_writer_places_each_extension_at_its_id() -> None:
    writer = ExtensionWriter(
        mid_id=4, mid="1", abs_send_time_id=2, transport_cc_id=3, audio_level_id=1
    )
    block = writer.render(b"\x0a\x0b\x0c", 0x1234, b"\x9e")
    assert block[:2] == b"\xbe\xde"
    assert parsed(block) == {4: b"1", 2: b"\x0a\x0b\x0c", 3: b"\x12\x34", 1: b"\x9e"}


def test_extension_writer_patches_values_per_call() -> None:
    writer = ExtensionWriter(
        mid_id=9, mid="audio", abs_send_time_id=5, transport_cc_id=7, audio_level_id=11
    )
    first = writer.render(b"\x00\x00\x01", 1, b"\x80")
    second = writer.render(b"\xff\xee\xdd", 0x10002, b"\x05")
    assert parsed(first) == {9: b"audio", 5: b"\x00\x00\x01", 7: b"\x00\x01", 11: b"\x80"}
    assert parsed(second) == {9: b"audio", 5: b"\xff\xee\xdd", 7: b"\x00\x02", 11: b"\x05"}
    assert len(first) == len(second)


def test_extension_writer_keeps_last_values_when_none_given() -> None:
    writer = ExtensionWriter(abs_send_time_id=2, transport_cc_id=3, audio_level_id=1)
    writer.render(b"\x01\x02\x03", 5, b"\x10")
    block = writer.render(None, 6, None)
    assert parsed(block) == {2: b"\x01\x02\x03", 3: b"\x00\x06", 1: b"\x10"}


def test_extension_writer_initial_audio_level_is_silence() -> None:
    writer = ExtensionWriter(audio_level_id=1)
    assert parsed(writer.render(None, 0, None)) == {1: b"\x7f"}


def test_extension_writer_only_transport_cc() -> None:
    writer = ExtensionWriter(transport_cc_id=3)
    assert parsed(writer.render(b"\x01\x02\x03", 65535, b"\x01")) == {3: b"\xff\xff"}


def test_extension_writer_without_extensions_renders_nothing() -> None:
    writer = ExtensionWriter()
    assert writer.render(b"\x01\x02\x03", 1, b"\x01") == b""


def test_extension_writer_long_mid_uses_two_byte_form() -> None:
    mid = "m" * 20
    writer = ExtensionWriter(mid_id=1, mid=mid, abs_send_time_id=2, transport_cc_id=3)
    block = writer.render(b"\x01\x02\x03", 0xBEEF, None)
    assert block[:2] == b"\x10\x00"
    assert parsed(block) == {1: mid.encode(), 2: b"\x01\x02\x03", 3: b"\xbe\xef"}


def test_extension_writer_ignores_wrong_length_abs_send_time() -> None:
    # find_extension hands over whatever length the publisher sent: a 1-byte abs-send-time
    # element must not change the layout of the subscriber's extension block.
    writer = ExtensionWriter(mid_id=1, mid="0", abs_send_time_id=3, transport_cc_id=5,
                             audio_level_id=2)
    good = writer.render(b"\x01\x02\x03", 7, b"\x85")
    bad = writer.render(b"\x01", 8, b"\x85")
    assert len(bad) == len(good)
    assert set(parsed(bad)) == {1, 2, 3, 5}
    after = writer.render(b"\x04\x05\x06", 9, b"\x86")
    assert parsed(after) == {1: b"0", 3: b"\x04\x05\x06", 5: b"\x00\x09", 2: b"\x86"}


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


# --- sequence arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "diff"),
    [
        (5, 3, 2),
        (3, 5, -2),
        (0, 65535, 1),
        (65535, 0, -1),
        (2, 65530, 8),
        (65530, 2, -8),
        (32767, 0, 32767),
        (32768, 0, -32768),
        (7, 7, 0),
    ],
)
def test_seq_diff(a: int, b: int, diff: int) -> None:
    assert seq_diff(a, b) == diff


def test_seq_newer_across_wrap() -> None:
    assert seq_newer(0, 65535)
    assert not seq_newer(65535, 0)
    assert seq_newer(10, 65500)
    assert not seq_newer(65500, 10)
    assert seq_newer(101, 100)
    assert not seq_newer(100, 100)


def test_seq_newer_half_range_is_not_newer_either_way() -> None:
    assert not seq_newer(32768, 0)
    assert not seq_newer(0, 32768)


def test_seq_add_wraps() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(65530, 10) == 4
    assert seq_add(3, -5) == 65534
    assert seq_add(100, 0) == 100


@given(st.integers(0, 0xFFFF), st.integers(-32768, 32767))
def test_seq_add_and_diff_are_inverse(a: int, n: int) -> None:
    assert seq_diff(seq_add(a, n), a) == n
    assert seq_newer(seq_add(a, n), a) == (n > 0)


def test_seq_extender_first_packet_is_its_sequence_number() -> None:
    assert SeqExtender().extend(65000) == 65000


def test_seq_extender_through_several_wraps() -> None:
    extender = SeqExtender()
    start = 65000
    expected = list(range(start, start + 4 * 65536 + 10))
    assert [extender.extend(e & 0xFFFF) for e in expected] == expected
    assert extender.highest == expected[-1]


def test_seq_extender_late_packets_just_before_wrap() -> None:
    extender = SeqExtender()
    arrivals = [65533, 65534, 0, 65535, 1, 65532, 2]
    assert [extender.extend(s) for s in arrivals] == [65533, 65534, 65536, 65535, 65537, 65532,
                                                      65538]
    assert extender.highest == 65538


def test_seq_extender_late_packet_before_second_wrap() -> None:
    extender = SeqExtender()
    for s in range(65530, 65536):
        extender.extend(s)
    for s in range(0, 65536):
        extender.extend(s)
    assert extender.extend(0) == 2 * 65536
    assert extender.extend(65534) == 2 * 65536 - 2
    assert extender.extend(1) == 2 * 65536 + 1


def test_seq_extender_duplicate_does_not_advance() -> None:
    extender = SeqExtender()
    assert extender.extend(10) == 10
    assert extender.extend(11) == 11
    assert extender.extend(11) == 11
    assert extender.highest == 11


@st.composite
def reordered_stream(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """An increasing extended sequence and its arrival order with small reorderings.

    The first packet arrives first: the extender can only anchor on what it sees first.
    """
    start = draw(st.integers(0, 0xFFFF))
    count = draw(st.integers(1, 400))
    step = draw(st.integers(1, 500))  # gaps (losses) keep the stream moving through wraps
    original = [start + i * step for i in range(count)]
    keys = [i + draw(st.floats(0, 8)) if i else -1.0 for i in range(count)]
    arrival = [e for _, e in sorted(zip(keys, original, strict=True))]
    return original, arrival


@given(reordered_stream())
def test_seq_extender_recovers_extended_numbers_under_reordering(
    stream: tuple[list[int], list[int]],
) -> None:
    _, arrival = stream
    extender = SeqExtender()
    assert [extender.extend(e & 0xFFFF) for e in arrival] == arrival
    assert extender.highest == max(arrival)


# --- RetransmitBuffer ------------------------------------------------------------------------


def test_retransmit_buffer_store_and_get() -> None:
    buffer = RetransmitBuffer(size=16)
    buffer.store(100, b"packet-100", now=10.0)
    buffer.store(101, b"packet-101", now=10.0)
    assert buffer.get(100, now=10.5) == b"packet-100"
    assert buffer.get(101, now=10.5) == b"packet-101"
    assert buffer.get(102, now=10.5) is None


def test_retransmit_buffer_overwrite_by_seq_plus_size() -> None:
    buffer = RetransmitBuffer(size=16)
    buffer.store(5, b"old", now=1.0)
    buffer.store(5 + 16, b"new", now=1.1)
    assert buffer.get(5 + 16, now=1.2) == b"new"
    assert buffer.get(5, now=1.2) is None


def test_retransmit_buffer_wrong_seq_in_same_slot_is_none() -> None:
    buffer = RetransmitBuffer(size=8)
    buffer.store(3, b"three", now=0.0)
    assert buffer.get(3 + 8, now=0.1) is None
    assert buffer.get(3 + 8 * 100, now=0.1) is None
    assert buffer.get(3, now=0.1) == b"three"


def test_retransmit_buffer_wraps_with_sequence_numbers() -> None:
    buffer = RetransmitBuffer(size=1024)
    for seq in range(65000, 65536):
        buffer.store(seq, seq.to_bytes(2, "big"), now=0.0)
    for seq in range(0, 100):
        buffer.store(seq, seq.to_bytes(2, "big"), now=0.0)
    assert buffer.get(65535, now=0.0) == b"\xff\xff"
    assert buffer.get(0, now=0.0) == b"\x00\x00"
    assert buffer.get(99, now=0.0) == b"\x00\x63"


def test_retransmit_buffer_max_age_expiry() -> None:
    buffer = RetransmitBuffer(size=64, max_age=2.0)
    buffer.store(1, b"one", now=100.0)
    assert buffer.get(1, now=101.9) == b"one"
    assert buffer.get(1, now=102.0) == b"one"
    assert buffer.get(1, now=102.01) is None


def test_retransmit_buffer_get_defaults_to_monotonic_clock() -> None:
    buffer = RetransmitBuffer(size=4, max_age=60.0)
    buffer.store(2, b"fresh", now=time.monotonic())
    buffer.store(3, b"stale", now=time.monotonic() - 120.0)
    assert buffer.get(2) == b"fresh"
    assert buffer.get(3) is None


def test_retransmit_buffer_clear() -> None:
    buffer = RetransmitBuffer(size=4)
    buffer.store(1, b"x", now=0.0)
    buffer.clear()
    assert buffer.get(1, now=0.0) is None


@pytest.mark.parametrize("size", [3, 6, 100, 1000, 1023])
def test_retransmit_buffer_rejects_non_power_of_two_size(size: int) -> None:
    with pytest.raises(ValueError):
        RetransmitBuffer(size=size)


@pytest.mark.parametrize("size", [1, 2, 64, 1024, 4096])
def test_retransmit_buffer_accepts_power_of_two_size(size: int) -> None:
    buffer = RetransmitBuffer(size=size)
    buffer.store(size + 1, b"p", now=0.0)
    assert buffer.get(size + 1, now=0.0) == b"p"
