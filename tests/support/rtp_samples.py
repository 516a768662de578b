"""Shared RTP test helpers: packets built field by field and header-extension strategies."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from hypothesis import strategies as st

from mediaserver.rtp.packet import ONE_BYTE_PROFILE


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


ONE_BYTE_ELEMENT = st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16))
TWO_BYTE_ELEMENT = st.tuples(st.integers(1, 255), st.binary(min_size=0, max_size=255))


def unique_ids(elements: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    seen: dict[int, bytes] = {}
    for ext_id, value in elements:
        seen.setdefault(ext_id, value)
    return list(seen.items())
