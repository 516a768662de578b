"""Transport-cc feedback: byte vectors from pion/rtcp's transport_layer_cc_test.go, sizes and
chunk choices from libwebrtc's transport_feedback_unittest.cc, round trips, bad input, and the
receiving side's recorder."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mediaserver.rtp.packet import build_extensions, build_packet
from mediaserver.rtp.rtcp import TransportCc, parse_compound
from mediaserver.rtp.twcc import (
    DELTA_TICK_US,
    REFERENCE_TICK_US,
    TwccRecorder,
    build_feedback,
    parse_feedback,
    parse_packet,
    tcc_seq_of,
)

HEADER_SIZE = 20  # RTCP header, two SSRCs, base seq, count, reference time, fb count


def at(reference: int, *deltas_us: int | None) -> list[int | None]:
    """Arrival times from a reference time and the receive deltas between received packets."""
    t = reference * REFERENCE_TICK_US
    out: list[int | None] = []
    for d in deltas_us:
        if d is None:
            out.append(None)
        else:
            t += d
            out.append(t)
    return out


# (bytes, sender, media, base, count, reference, fb count, arrivals) from pion/rtcp.
PION_VECTORS = [
    (  # example1: one run-length chunk, one small delta, one octet of padding
        bytes([0xaf, 0xcd, 0x0, 0x5, 0xfa, 0x17, 0xfa, 0x17, 0x43, 0x3, 0x2f, 0xa0,
               0x0, 0x99, 0x0, 0x1, 0x3d, 0xe8, 0x2, 0x17, 0x20, 0x1, 0x94, 0x1]),
        4195875351, 1124282272, 153, 4057090, 23, at(4057090, 37000)),
    (  # example4: a run of 7 small deltas, three octets of padding
        bytes([0xaf, 0xcd, 0x0, 0x7, 0xfa, 0x17, 0xfa, 0x17, 0x19, 0x3d, 0xd8, 0xbb,
               0x0, 0x4, 0x0, 0x7, 0x10, 0x63, 0x6e, 0x1, 0x20, 0x7, 0x4c, 0x24,
               0x24, 0x10, 0xc, 0xc, 0x10, 0x0, 0x0, 0x3]),
        4195875351, 423483579, 4, 1074030, 1,
        at(1074030, 19000, 9000, 9000, 4000, 3000, 3000, 4000)),
    (  # example6: a two-bit vector with a large delta, then a run of 48 not received
        bytes([0xaf, 0xcd, 0x0, 0x7, 0x9b, 0x74, 0xf6, 0x1f, 0x93, 0x71, 0xdc, 0xbc,
               0x85, 0x3c, 0x0, 0x9, 0x63, 0xf9, 0x16, 0xb3, 0xd5, 0x52, 0x0, 0x30,
               0x9b, 0xaa, 0x6a, 0xaa, 0x7b, 0x1, 0x9, 0x1]),
        2608133663, 2473712828, 34108, 6551830, 179,
        at(6551830, 38750, 42500, 26500, 42500, 30750, None, 66250, None, None)),
]

# Packets pion writes whose chunks are libwebrtc's choice too: our writer must match them.
PION_MARSHAL = [
    PION_VECTORS[0][:1] + PION_VECTORS[0][1:],
    PION_VECTORS[1][:1] + PION_VECTORS[1][1:],
    (  # example5: a one-bit vector of 14, two octets of padding
        bytes([0xaf, 0xcd, 0x0, 0x6, 0xfa, 0x17, 0xfa, 0x17, 0x19, 0x3d, 0xd8, 0xbb,
               0x0, 0x1, 0x0, 0xe, 0x10, 0x63, 0x6d, 0x0, 0xba, 0x0, 0x10, 0xc,
               0xc, 0x10, 0x0, 0x2]),
        4195875351, 423483579, 1, 1074029, 0,
        at(1074029, 4000, 3000, 3000, None, 4000) + [None] * 9),
    (  # example6 of Marshal: a one-bit vector of 12 symbols
        bytes([0xaf, 0xcd, 0x0, 0x7, 0xfa, 0x17, 0xfa, 0x17, 0x43, 0x3, 0x2f, 0xa0,
               0x9c, 0x14, 0x0, 0xc, 0x75, 0x84, 0x20, 0x0, 0xbe, 0xc0, 0xc1, 0x3f,
               0x3b, 0x3f, 0x53, 0x90, 0x3b, 0x0, 0x0, 0x3]),
        4195875351, 1124282272, 39956, 7701536, 0,
        at(7701536, 48250, 15750, 14750, 15750, 20750, None, 36000, 14750,
           None, None, None, None)),
]


@pytest.mark.parametrize("vector", PION_VECTORS)
def test_parse_pion_vectors(vector) -> None:
    data, sender, media, base, reference, fb_count, arrivals = vector
    fb = parse_packet(data)
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_seq) == (sender, media, base)
    assert (fb.reference_time, fb.fb_count) == (reference, fb_count)
    assert fb.arrivals == arrivals
    # the same through the compound parser and the FCI alone
    (item,) = parse_compound(data)
    assert isinstance(item, TransportCc) and item.sender_ssrc == sender
    assert parse_feedback(sender, media, data, 12, len(data) - data[-1]) == fb


def test_parse_pion_fci_without_padding() -> None:
    # pion's example3 sets the P bit with no padding; its FCI: two run-length chunks
    # (2 large, 4 small) and 6 deltas.
    fci = bytes([0x1, 0x74, 0x0, 0x6, 0x45, 0xb1, 0x5a, 0x40, 0x40, 0x2, 0x20, 0x04,
                 0x1f, 0xfe, 0x1f, 0x9a, 0xd0, 0x0, 0xd0, 0x0])
    fb = parse_feedback(1, 2, fci)
    assert fb.base_seq == 372 and fb.fb_count == 64
    assert fb.arrivals == at(4567386, 2047500, 2022500, 52000, 0, 52000, 0)


@pytest.mark.parametrize("vector", PION_MARSHAL)
def test_build_matches_pion(vector) -> None:
    data, sender, media, base, reference, fb_count, arrivals = vector
    assert build_feedback(sender, media, base, fb_count, reference, arrivals) == data
    assert parse_packet(data).arrivals == arrivals


def received_at(seqs: list[int], times: list[int]) -> list[int | None]:
    """Statuses from the first to the last sequence number (mod 2^16), as libwebrtc's
    AddReceivedPacket builds them."""
    arrivals: list[int | None] = [None] * (((seqs[-1] - seqs[0]) & 0xFFFF) + 1)
    for seq, t in zip(seqs, times, strict=True):
        arrivals[(seq - seqs[0]) & 0xFFFF] = t
    return arrivals


def size_of(seqs: list[int], times: list[int]) -> int:
    arrivals = received_at(seqs, times)
    reference = min(t for t in times) // REFERENCE_TICK_US
    data = build_feedback(1, 2, seqs[0], 0, reference, arrivals)
    fb = parse_packet(data)
    assert fb.base_seq == seqs[0] & 0xFFFF
    got = [t for t in fb.arrivals if t is not None]
    assert all(abs(g - t) <= DELTA_TICK_US // 2 for g, t in zip(got, times, strict=True))
    return len(data)


def words(n: int) -> int:
    return (n + 3) // 4 * 4


TICK = DELTA_TICK_US
LIMIT = 0xFF * TICK  # the largest small delta


@pytest.mark.parametrize("seqs,delta,expected", [
    # libwebrtc TransportFeedbackOneBitVector / FullOneBitVector / wraps: deltas of 4 ticks
    ([1, 2, 7, 8, 9, 10, 13], 4 * TICK, HEADER_SIZE + 2 + 7),
    ([1, 2, 7, 8, 9, 10, 13, 14], 4 * TICK, HEADER_SIZE + 2 + 8),
    ([0xFFFD, 0xFFFE, 0xFFFF, 0, 1, 2], 4 * TICK, HEADER_SIZE + 2 + 6),
    ([0xFFFD, 0xFFFE, 1, 2], 4 * TICK, HEADER_SIZE + 2 + 4),
    # TwoBitVector / TwoBitVectorFull: every delta large
    ([1, 2, 6, 7], LIMIT + TICK, HEADER_SIZE + 2 + 4 * 2),
    ([1, 2, 6, 7, 8], LIMIT + TICK, HEADER_SIZE + 2 * 2 + 5 * 2),
])
def test_sizes_as_libwebrtc(seqs: list[int], delta: int, expected: int) -> None:
    # receive times as libwebrtc's GenerateReceiveTimestamps: seq * delta, unwrapped
    ext = [s if s >= seqs[0] else s + 0x10000 for s in seqs]
    times = [1_000_000_000 + s * delta for s in ext]
    assert size_of(seqs, times) == words(expected)


def test_large_and_negative_deltas() -> None:
    times = [2000, 1000, 4000, 3000, 3000 + TICK * 256]
    assert size_of([1, 2, 6, 7, 8], times) == words(HEADER_SIZE + 2 + 3 * 2 + 1)


@pytest.mark.parametrize("last,chunks", [
    ((1 << 13) - 1 + 14, 3),  # MaxRle: one-bit vector, a run of 8191 lost, one-bit vector
    (14 * 2 + 1, 3),  # MinRle: one-bit vector, a run of 15 lost, one-bit vector
    (6, 1),  # OneToTwoBitVector: a small and a large delta in one two-bit vector
    (7, 2),  # OneToTwoBitVectorSimpleSplit
])
def test_chunk_choice_as_libwebrtc(last: int, chunks: int) -> None:
    small = last > 7
    times = [1000, 2000] if small else [0, LIMIT + TICK]
    deltas = 2 if small else 3
    assert size_of([0, last], times) == words(HEADER_SIZE + 2 * chunks + deltas)


def test_one_to_two_bit_vector_split() -> None:
    # SSSSSSSSLSSSSSSSSSSSSS: a split at the large delta, three chunks
    times = [1000]
    for i in range(1, 22):
        times.append(times[-1] + (TICK * 256 if i == 8 else 1000))
    assert size_of(list(range(22)), times) == words(HEADER_SIZE + 2 * 3 + 21 + 2)


def test_rounding_never_drifts() -> None:
    # libwebrtc TransportFeedbackAliasing: deltas of a third of a tick add up right
    times = [i * TICK // 3 for i in range(100)]
    fb = parse_packet(build_feedback(1, 2, 0, 0, 0, times))
    assert all(abs(a - t) <= TICK // 2 for a, t in zip(fb.arrivals, times, strict=True))


@given(st.lists(st.one_of(st.none(), st.integers(-8_000_000, 8_000_000)), min_size=1,
                max_size=300), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFF))
def test_round_trip(steps: list[int | None], base: int, reference: int) -> None:
    arrivals = at(reference, *(None if s is None else s // TICK * TICK for s in steps))
    fb = parse_packet(build_feedback(7, 8, base, 200, reference, arrivals))
    assert (fb.base_seq, fb.reference_time, fb.fb_count) == (base, reference, 200)
    assert fb.arrivals == arrivals


def test_build_refuses_what_cannot_be_written() -> None:
    with pytest.raises(ValueError):
        build_feedback(1, 2, 0, 0, 0, [])
    with pytest.raises(ValueError):
        build_feedback(1, 2, 0, 0, 0, [0, 0x8000 * TICK])  # past the largest delta


@pytest.mark.parametrize("fci", [
    b"",
    bytes(7),  # shorter than the fixed part
    bytes([0, 1, 0, 2, 0, 0, 0, 0]),  # two statuses, no chunk
    bytes([0, 1, 0, 2, 0, 0, 0, 0, 0x20, 0x02]),  # two small deltas promised, none there
    bytes([0, 1, 0, 1, 0, 0, 0, 0, 0x40, 0x01, 0x12]),  # a large delta cut short
    bytes([0, 1, 0, 1, 0, 0, 0, 0, 0x60, 0x01]),  # run of the reserved symbol
    bytes([0, 1, 0, 1, 0, 0, 0, 0, 0xF0, 0x00]),  # two-bit vector with the reserved symbol
])
def test_bad_fci_raises_value_error(fci: bytes) -> None:
    with pytest.raises(ValueError):
        parse_feedback(1, 2, fci)


@given(st.binary(max_size=200))
def test_garbage_raises_only_value_error(data: bytes) -> None:
    try:
        parse_feedback(1, 2, data)
    except ValueError:
        pass
    try:
        parse_packet(data)
    except ValueError:
        pass


def test_empty_feedback_parses() -> None:
    # pion's example7: a status count of 0
    data = bytes([0x8f, 0xcd, 0x0, 0x4, 0x9a, 0xcb, 0x4, 0x42] + [0] * 12)
    fb = parse_packet(data)
    assert fb.sender_ssrc == 2596996162 and fb.arrivals == []


# --- the receiving side ----------------------------------------------------------------------


def reported(packets: list[bytes]) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    for data in packets:
        fb = parse_packet(data)
        for i, t in enumerate(fb.arrivals):
            out[(fb.base_seq + i) & 0xFFFF] = t
    return out


def test_recorder_reports_arrivals_and_losses_across_the_wrap() -> None:
    rec = TwccRecorder()
    start = 0xFFF0
    times = {}
    for i in range(40):
        seq = (start + i) & 0xFFFF
        if i in (3, 17):  # lost
            continue
        times[seq] = 5_000_000_000 + i * 5000
    order = list(times)
    order[5], order[6] = order[6], order[5]  # reordered within one interval
    for seq in order:
        rec.record(seq, times[seq])
    packets = rec.build(0x1234, 0x5678)
    got = reported(packets)
    assert len(got) == 40
    assert got[(start + 3) & 0xFFFF] is None and got[(start + 17) & 0xFFFF] is None
    for seq, t in times.items():
        assert abs(got[seq] - t) <= TICK // 2  # type: ignore[operator]
    assert rec.build(0x1234) == []  # nothing new
    rec.record((start + 41) & 0xFFFF, 5_000_300_000)
    (more,) = rec.build(0x1234)
    fb = parse_packet(more)
    assert fb.base_seq == (start + 40) & 0xFFFF and fb.arrivals[0] is None
    assert fb.fb_count == 1  # counts feedback packets


def test_recorder_ignores_what_it_already_reported() -> None:
    rec = TwccRecorder()
    for seq in (10, 12):
        rec.record(seq, 1_000_000 + seq)
    rec.build(1)
    rec.record(11, 1_000_100)  # too late: reported lost already
    assert rec.build(1) == []


def test_recorder_splits_long_intervals_and_long_gaps() -> None:
    rec = TwccRecorder()
    for i in range(1000):
        rec.record(i, 10_000_000 + i * 1000)
    rec.record(1000, 10_000_000 + 1000 * 1000 + 9_000_000)  # 9 s later: a delta too large
    packets = rec.build(1)
    assert len(packets) >= 3 and all(len(p) <= 1200 for p in packets)
    got = reported(packets)
    assert len(got) == 1001 and None not in got.values()


def test_recorder_memory_is_bounded() -> None:
    rec = TwccRecorder(size=256)
    for i in range(5000):  # never built: only the last 256 numbers are kept
        rec.record(i & 0xFFFF, i * 100)
    got = reported(rec.build(1))
    assert len(got) == 256 and min(got) == 5000 - 256


def test_tcc_seq_of_reads_the_extension() -> None:
    ext = build_extensions([(1, b"a"), (3, b"\x12\x34")])
    packet = build_packet(96, 1, 2, 3, b"payload", extensions=ext)
    assert tcc_seq_of(packet, 3) == 0x1234
    assert tcc_seq_of(packet, 5) == -1
    assert tcc_seq_of(build_packet(96, 1, 2, 3, b"x"), 3) == -1
    rnd = random.Random(5)
    for _ in range(500):  # cut anywhere: no exception
        cut = packet[: rnd.randrange(12, len(packet))]
        assert tcc_seq_of(cut, 3) in (-1, 0x1234)
