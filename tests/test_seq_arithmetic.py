"""RTP sequence numbers extended to 64 bits across wraps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mediaserver.rtp.seq import SeqExtender


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
