"""The retransmission buffer: store/get by sequence number, wrap, expiry and sizing."""

from __future__ import annotations

import time

import pytest

from mediaserver.rtp.retransmit import RetransmitBuffer

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
