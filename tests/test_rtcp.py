"""RTCP parse/build: round-trips, hand-built RFC vectors, malformed input, aiortc interop."""

from __future__ import annotations

import struct
import time

import pytest
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mediaserver.rtp import rtcp
from mediaserver.rtp.rtcp import (
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    Sdes,
    SenderReport,
    TransportCc,
    build_bye,
    build_fir,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes_cname,
    build_sr,
    parse_compound,
)
from tests.support.fuzz import fuzz_examples

BLOCK = ReportBlock(0x11223344, 25, -3, 0x0001FFFF, 1234, 0xAABBCCDD, 65536)
BLOCK2 = ReportBlock(0x55667788, 0, 0x7FFFFF, 70000, 0, 0, 0)


def one(data: bytes) -> rtcp.RtcpItem:
    items = parse_compound(data)
    assert len(items) == 1
    return items[0]


# --- round-trips -----------------------------------------------------------------------------


def test_sr_round_trip() -> None:
    data = build_sr(1, 0x0123456789ABCDEF, 0xFFFFFFFF, 10, 20000, [BLOCK, BLOCK2])
    assert len(data) == 28 + 2 * 24
    assert one(data) == SenderReport(1, 0x0123456789ABCDEF, 0xFFFFFFFF, 10, 20000, [BLOCK, BLOCK2])


def test_sr_without_reports() -> None:
    assert one(build_sr(7, 1, 2, 3, 4)) == SenderReport(7, 1, 2, 3, 4, [])


def test_rr_round_trip() -> None:
    assert one(build_rr(9, [BLOCK])) == ReceiverReport(9, [BLOCK])
    assert one(build_rr(9)) == ReceiverReport(9, [])


def test_more_than_31_blocks_split_into_extra_rr() -> None:
    blocks = [ReportBlock(i, 0, 0, i, 0, 0, 0) for i in range(70)]
    items = parse_compound(build_rr(5, blocks))
    assert [len(i.reports) for i in items] == [31, 31, 8]
    assert [b for i in items for b in i.reports] == blocks
    items = parse_compound(build_sr(5, 0, 0, 0, 0, blocks))
    assert isinstance(items[0], SenderReport) and isinstance(items[1], ReceiverReport)
    assert [b for i in items for b in i.reports] == blocks


def test_packets_lost_is_signed_24_bit_and_clamped() -> None:
    for lost in (-1, -0x800000, 0x7FFFFF, 0):
        block = ReportBlock(1, 0, lost, 0, 0, 0, 0)
        assert one(build_rr(1, [block])).reports[0].packets_lost == lost
    big = ReportBlock(1, 0, 10**9, 0, 0, 0, 0)
    assert one(build_rr(1, [big])).reports[0].packets_lost == 0x7FFFFF


def test_sdes_cname_round_trip_and_padding() -> None:
    for cname in ("", "a", "ab", "abc", "user@host", "x" * 255):
        data = build_sdes_cname(0xCAFEBABE, cname)
        assert len(data) % 4 == 0
        assert one(data) == Sdes([0xCAFEBABE])
    with pytest.raises(ValueError):
        build_sdes_cname(1, "x" * 256)


def test_bye_round_trip() -> None:
    assert one(build_bye([1, 2, 0xFFFFFFFF])) == Bye([1, 2, 0xFFFFFFFF])
    assert one(build_bye([])) == Bye([])


def test_feedback_round_trips() -> None:
    assert one(build_pli(1, 2)) == Pli(1, 2)
    assert one(build_fir(1, [(2, 3), (4, 255)])) == Fir(1, [(2, 3), (4, 255)])
    assert one(build_nack(1, 2, [10, 11, 40])) == Nack(1, 2, [10, 11, 40])
    assert one(build_remb(1, 300_000, [5, 6])) == Remb(1, 300_000, [5, 6])


def test_compound_is_concatenation() -> None:
    data = build_rr(1, [BLOCK]) + build_sdes_cname(1, "cn") + build_pli(1, 2) + build_bye([1])
    assert parse_compound(data) == [ReceiverReport(1, [BLOCK]), Sdes([1]), Pli(1, 2), Bye([1])]


def test_memoryview_input() -> None:
    data = build_sr(1, 2, 3, 4, 5, [BLOCK]) + build_nack(1, 2, [65535, 0])
    assert parse_compound(memoryview(data)) == parse_compound(data)


# --- hand-built vectors from the RFC layouts -------------------------------------------------


def test_known_sr_vector() -> None:
    # RFC 3550 6.4.1: V=2 P=0 RC=1 PT=200 length=12 words minus one.
    data = bytes.fromhex(
        "81c8000c 00000001"  # header, SSRC of sender
        "e1b2c3d4 80000000 00015f90 00000064 00002710"  # NTP, RTP ts, packets, octets
        "00000002 ff800000 0000ffff 00000010 c3d48000 00008000"  # report block
    )
    sr = one(data)
    assert sr == SenderReport(
        ssrc=1,
        ntp_timestamp=0xE1B2C3D480000000,
        rtp_timestamp=90000,
        packet_count=100,
        octet_count=10000,
        reports=[ReportBlock(2, 255, -0x800000, 0xFFFF, 16, 0xC3D48000, 0x8000)],
    )
    assert build_sr(1, 0xE1B2C3D480000000, 90000, 100, 10000, sr.reports) == data
    assert rtcp.ntp_to_middle32(sr.ntp_timestamp) == 0xC3D48000


def test_known_feedback_vectors() -> None:
    pli = bytes.fromhex("81ce0002 0000000a 0000000b")  # RFC 4585 6.3.1
    assert one(pli) == Pli(10, 11)
    assert build_pli(10, 11) == pli
    # RFC 4585 6.2.1: PID=1000, BLP=0b1000000000000101 -> 1000, 1001, 1003, 1016.
    nack = bytes.fromhex("81cd0003 0000000a 0000000b 03e88005")
    assert one(nack) == Nack(10, 11, [1000, 1001, 1003, 1016])
    assert build_nack(10, 11, [1000, 1001, 1003, 1016]) == nack
    # RFC 5104 4.3.1: media SSRC field 0, FCI = SSRC, seq nr, 3 reserved octets.
    fir = bytes.fromhex("84ce0004 0000000a 00000000 0000000b 07000000")
    assert one(fir) == Fir(10, [(11, 7)])
    assert build_fir(10, [(11, 7)]) == fir
    # REMB: 1_000_000 = 250000 << 2; exp=2, mantissa=0x3d090 -> 0x0b, 0xd090.
    remb = bytes.fromhex("8fce0005 0000000a 00000000 52454d42 010bd090 0000000b")
    assert one(remb) == Remb(10, 1_000_000, [11])
    assert build_remb(10, 1_000_000, [11]) == remb


def test_transport_cc_is_opaque() -> None:
    data = bytes.fromhex("8fcd0005 0000000a 0000000b 00010002 00000100 20020000")
    assert one(data) == TransportCc(10, 11)


def test_unknown_types_are_skipped() -> None:
    app = bytes.fromhex("80cc0002 00000001 41424344")  # APP, PT 204
    xr = bytes.fromhex("80cf0001 00000001")  # XR, PT 207
    other_psfb = bytes.fromhex("82ce0002 00000001 00000002")  # SLI, FMT 2
    other_afb = bytes.fromhex("8fce0004 00000001 00000000 41424344 00000000")
    other_rtpfb = bytes.fromhex("83cd0002 00000001 00000002")  # TMMBR, FMT 3
    data = app + build_pli(1, 2) + xr + other_psfb + other_afb + other_rtpfb
    assert parse_compound(data) == [Pli(1, 2)]


def test_padding_is_removed() -> None:
    # BYE for one SSRC plus 4 padding octets, the last one holding the count.
    data = bytes.fromhex("a1cb0002 00000009 00000004")
    assert one(data) == Bye([9])
    rr = bytearray(build_rr(3, [BLOCK]) + b"\x00\x00\x00\x04")
    rr[0] |= 0x20
    rr[2:4] = struct.pack("!H", len(rr) // 4 - 1)
    assert one(bytes(rr)) == ReceiverReport(3, [BLOCK])


def test_sdes_with_several_items() -> None:
    # Two chunks; the first has CNAME and NAME, ends exactly at a word boundary with its null.
    chunk1 = struct.pack("!I", 1) + b"\x01\x02ab" + b"\x02\x03xyz" + b"\x00"
    chunk1 += b"\x00" * (-len(chunk1) % 4)
    chunk2 = struct.pack("!I", 2) + b"\x01\x01z" + b"\x00"
    body = chunk1 + chunk2
    data = struct.pack("!BBH", 0x82, 202, len(body) // 4) + body
    assert one(data) == Sdes([1, 2])


# --- NACK packing ----------------------------------------------------------------------------


def test_nack_long_run_packs_into_minimum_pairs() -> None:
    seqs = list(range(100, 140))  # 40 consecutive: 17 + 17 + 6
    pairs = rtcp.nack_pairs(seqs)
    assert pairs == [(100, 0xFFFF), (117, 0xFFFF), (134, 0x1F)]
    assert one(build_nack(1, 2, seqs)).seqs == seqs


def test_nack_across_wrap() -> None:
    seqs = [65530 + i for i in range(6)] + list(range(14))  # 20 numbers over 65535 -> 0
    assert rtcp.nack_pairs(seqs) == [(65530, 0xFFFF), (11, 0b11)]
    assert one(build_nack(1, 2, seqs)).seqs == seqs
    # Numerically sorted input still shares a pair across the wrap.
    assert rtcp.nack_pairs([0, 1, 65534, 65535]) == [(65534, 0b111)]
    assert one(build_nack(1, 2, [0, 1, 65534, 65535])).seqs == [65534, 65535, 0, 1]


def test_nack_sparse_and_duplicates() -> None:
    seqs = [5, 5, 22, 23, 1000, 3000]  # 22 is 17 after 5: beyond one BLP
    assert rtcp.nack_pairs(seqs) == [(5, 0), (22, 1), (1000, 0), (3000, 0)]
    assert one(build_nack(1, 2, seqs)).seqs == [5, 22, 23, 1000, 3000]
    with pytest.raises(ValueError):
        build_nack(1, 2, [])


def test_nack_decode_wraps() -> None:
    data = bytes.fromhex("81cd0003 00000001 00000002 ffff0003")
    assert one(data).seqs == [65535, 0, 1]


# --- REMB ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bitrate", [0, 1, 262_143, 262_144, 2_500_000, 50_000_000, 10**12])
def test_remb_round_trip_within_mantissa_precision(bitrate: int) -> None:
    got = one(build_remb(3, bitrate, [1, 2, 3])).bitrate
    assert got <= bitrate
    assert bitrate - got < max(1, bitrate / 2**17)


def test_remb_limits() -> None:
    with pytest.raises(ValueError):
        build_remb(1, -1, [])
    with pytest.raises(ValueError):
        build_remb(1, 1 << 90, [])
    with pytest.raises(ValueError):
        build_remb(1, 1000, list(range(256)))
    assert one(build_remb(1, 1000, [])) == Remb(1, 1000, [])


# --- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"\x80",  # truncated header
        b"\x80\xc9\x00",  # truncated header
        build_pli(1, 2) + b"\x81\xce",  # trailing garbage
        bytes.fromhex("81ce0003 00000001 00000002"),  # length beyond buffer
        bytes.fromhex("41ce0002 00000001 00000002"),  # version 1
        bytes.fromhex("01ce0002 00000001 00000002"),  # version 0
        bytes.fromhex("81c80001 00000001"),  # SR shorter than sender info
        bytes.fromhex("81c90001 00000001"),  # RR claims a block it lacks
        bytes.fromhex("82cb0001 00000001"),  # BYE claims two SSRCs
        bytes.fromhex("81ce0000"),  # PLI without SSRCs
        bytes.fromhex("81cd0003 00000001 00000002 0001"),  # NACK FCI truncated
        bytes.fromhex("84ce0003 00000001 00000000 00000002"),  # FIR FCI truncated
        bytes.fromhex("8fce0004 00000001 00000000 52454d42 02010000"),  # REMB SSRCs
        bytes.fromhex("a1cb0001 00000000"),  # padding count 0
        bytes.fromhex("a1cb0001 00000009"),  # padding count beyond packet
        bytes.fromhex("a0cb0000"),  # padding bit on an empty packet
        bytes.fromhex("81ca0001 00000001"),  # SDES chunk without terminating null
        bytes.fromhex("81ca0002 00000001 0105abcd"),  # SDES item overruns
    ],
)
def test_malformed_raises_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_compound(data)


def test_empty_is_empty() -> None:
    assert parse_compound(b"") == []


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(500), deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_value_error(data: bytes) -> None:
    try:
        assert isinstance(parse_compound(data), list)
    except ValueError:
        pass


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300), deadline=None)
@given(st.binary(max_size=120), st.sampled_from([200, 201, 202, 203, 205, 206]), st.integers(0, 31))
def test_random_bodies_with_valid_headers(body: bytes, pt: int, count: int) -> None:
    body = body[: len(body) - len(body) % 4]
    data = struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body
    try:
        assert isinstance(parse_compound(data), list)
    except ValueError:
        pass


@given(st.lists(st.integers(0, 65535), min_size=1, max_size=80))
def test_nack_property_round_trip(seqs: list[int]) -> None:
    assert sorted(one(build_nack(1, 2, seqs)).seqs) == sorted(set(seqs))


# --- interop with aiortc's parser and serializer ---------------------------------------------


def aiortc_info(b: ReportBlock) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        b.ssrc, b.fraction_lost, b.packets_lost, b.highest_seq, b.jitter, b.lsr, b.dlsr
    )


def test_aiortc_parses_ours() -> None:
    (sr,) = RtcpPacket.parse(build_sr(1, 0x0123456789ABCDEF, 3000, 4, 5, [BLOCK]))
    assert isinstance(sr, RtcpSrPacket) and sr.ssrc == 1
    assert sr.sender_info == RtcpSenderInfo(0x0123456789ABCDEF, 3000, 4, 5)
    assert sr.reports == [aiortc_info(BLOCK)]

    (rr,) = RtcpPacket.parse(build_rr(2, [BLOCK, BLOCK2]))
    assert isinstance(rr, RtcpRrPacket)
    assert rr.ssrc == 2 and rr.reports == [aiortc_info(BLOCK), aiortc_info(BLOCK2)]

    (pli,) = RtcpPacket.parse(build_pli(1, 2))
    assert pli == RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2, fci=b"")

    seqs = [10, 11, 15, 26, 27, 28, 100, 200, 201]  # aiortc does not wrap at 65536
    (nack,) = RtcpPacket.parse(build_nack(1, 2, seqs))
    assert isinstance(nack, RtcpRtpfbPacket) and nack.fmt == 1 and nack.lost == seqs

    (fir,) = RtcpPacket.parse(build_fir(1, [(2, 3)]))
    assert isinstance(fir, RtcpPsfbPacket) and fir.fmt == 4 and fir.media_ssrc == 0
    assert fir.fci == struct.pack("!IB3x", 2, 3)

    sdes, bye = RtcpPacket.parse(build_sdes_cname(7, "cname") + build_bye([7]))
    assert sdes.chunks == [RtcpSourceInfo(7, [(1, b"cname")])]
    assert bye.sources == [7]


def test_we_parse_aiortc() -> None:
    info = aiortc_info(BLOCK)
    sr = RtcpSrPacket(1, RtcpSenderInfo(0x0123456789ABCDEF, 3000, 4, 5), [info])
    rr = RtcpRrPacket(2, [info])
    sdes = RtcpSdesPacket([RtcpSourceInfo(1, [(1, b"host"), (2, b"name")])])
    nack = RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[5, 6, 21, 22, 40])
    pli = RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2)
    fir = RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=0, fci=struct.pack("!IB3x", 9, 4))
    bye = RtcpByePacket([1, 2])
    data = b"".join(bytes(p) for p in (sr, rr, sdes, nack, pli, fir, bye))
    assert parse_compound(data) == [
        SenderReport(1, 0x0123456789ABCDEF, 3000, 4, 5, [BLOCK]),
        ReceiverReport(2, [BLOCK]),
        Sdes([1]),
        Nack(1, 2, [5, 6, 21, 22, 40]),
        Pli(1, 2),
        Fir(1, [(9, 4)]),
        Bye([1, 2]),
    ]


# --- NTP helpers -----------------------------------------------------------------------------


def test_ntp_helpers() -> None:
    assert rtcp.seconds_to_ntp(0.0) == rtcp.NTP_EPOCH_OFFSET << 32
    assert rtcp.seconds_to_ntp(1.5) == (rtcp.NTP_EPOCH_OFFSET + 1) << 32 | 0x80000000
    assert rtcp.ntp_to_middle32(0x0123456789ABCDEF) == 0x456789AB
    now = time.time()
    ntp = rtcp.ntp_now()
    assert abs(rtcp.ntp_to_seconds(ntp) - now) < 1.0
    assert abs(rtcp.ntp_to_seconds(rtcp.seconds_to_ntp(now)) - now) < 1e-6
