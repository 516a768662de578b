"""The low-level SRTP path must produce exactly what pylibsrtp's Session produces."""

from __future__ import annotations

import os

import pytest
from pylibsrtp import Policy, Session

from mediaserver.rtp.packet import build_packet
from mediaserver.rtp.rtcp import build_rr
from mediaserver.srtp import PROFILES, SrtpError
from mediaserver.srtp_fast import SrtpContext


def policy(profile, key: bytes, direction: int) -> Policy:
    p = Policy(key=key, ssrc_type=direction, srtp_profile=profile.libsrtp_profile)
    p.allow_repeat_tx = True
    p.window_size = 1024
    return p


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.openssl_name.decode())
def test_fast_context_matches_session(profile) -> None:
    key = os.urandom(profile.key_length + profile.salt_length)
    fast = SrtpContext(policy(profile, key, Policy.SSRC_ANY_OUTBOUND))
    slow = Session(policy(profile, key, Policy.SSRC_ANY_OUTBOUND))
    rx = SrtpContext(policy(profile, key, Policy.SSRC_ANY_INBOUND))
    for seq in range(50):
        packet = build_packet(96, seq, seq * 3000, 1234, os.urandom(20 + seq * 20))
        protected = fast.protect(packet)
        assert protected == slow.protect(packet)
        assert rx.unprotect(protected) == packet
    rtcp = build_rr(1234)
    protected = fast.protect_rtcp(rtcp)
    assert protected == slow.protect_rtcp(rtcp)
    assert rx.unprotect_rtcp(protected) == rtcp


def test_fast_context_rejects_tampering_and_oversize() -> None:
    profile = PROFILES[0]
    key = os.urandom(profile.key_length + profile.salt_length)
    tx = SrtpContext(policy(profile, key, Policy.SSRC_ANY_OUTBOUND))
    rx = SrtpContext(policy(profile, key, Policy.SSRC_ANY_INBOUND))
    protected = bytearray(tx.protect(build_packet(96, 1, 0, 99, b"x" * 100)))
    protected[20] ^= 0xFF
    with pytest.raises(SrtpError):
        rx.unprotect(bytes(protected))
    with pytest.raises(ValueError):
        tx.protect(b"\x80" * 1501)


def test_pair_functions_outlive_their_context() -> None:
    """SrtpPair keeps only the bound functions; the libsrtp session must stay alive."""
    import gc

    from mediaserver.srtp import make_pair

    profile = PROFILES[0]
    material = os.urandom(2 * (profile.key_length + profile.salt_length))
    server = make_pair(profile.openssl_name, material, is_server=True)
    client = make_pair(profile.openssl_name, material, is_server=False)
    gc.collect()
    packet = build_packet(96, 7, 0, 42, b"y" * 300)
    assert client.unprotect(server.protect(packet)) == packet


def test_protect_parts_equals_protecting_the_whole_packet() -> None:
    profile = PROFILES[0]
    key = os.urandom(profile.key_length + profile.salt_length)
    parts = SrtpContext(policy(profile, key, Policy.SSRC_ANY_OUTBOUND))
    whole = SrtpContext(policy(profile, key, Policy.SSRC_ANY_OUTBOUND))
    ext = bytes.fromhex("bede0001") + b"\x10\x35\x00\x00"
    for seq, prefix in ((1, b""), (2, b"\x00\x07")):
        payload = os.urandom(900)
        packet = build_packet(96, seq, 1000, 77, prefix + payload, True, ext)
        # the packet is left in the context's buffer; a view of the payload does as well
        size = parts.protect_parts(0x90, 0x80 | 96, seq, 1000, 77, ext, prefix,
                                   memoryview(b"xx" + payload)[2:] if seq == 2 else payload)
        assert parts._view[0:size] == whole.protect(packet)
    with pytest.raises(ValueError):
        parts.protect_parts(0x80, 96, 3, 0, 77, b"", b"", b"x" * 1500)
