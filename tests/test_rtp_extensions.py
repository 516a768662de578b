"""RTP header extensions (RFC 8285): parsing, find_extension, build_extensions, ExtensionWriter."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediaserver.rtp.packet import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    ExtensionWriter,
    build_extensions,
    build_packet,
    find_extension,
    parse_extensions,
    payload_offset,
)
from tests.support.rtp_samples import (
    ONE_BYTE_ELEMENT,
    TWO_BYTE_ELEMENT,
    one_byte_block,
    raw_packet,
    unique_ids,
)

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


def test_find_extension_refuses_an_element_cut_short() -> None:
    # the block says one word, the packet ends after the element's header: no empty value
    data = raw_packet() + struct.pack("!HH", ONE_BYTE_PROFILE, 1) + bytes([0x10])
    data = bytes([data[0] | 0x10]) + data[1:]
    assert find_extension(data, 1) is None
    # the element claims 4 bytes, the block ends after 3 (the payload follows)
    data = raw_packet(extension=(ONE_BYTE_PROFILE, bytes([0x23]) + b"abc"), payload=b"pl")
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
