"""SRTP contexts for one WebRtcTransport, keyed from the DTLS handshake (RFC 5764).

Wraps libsrtp so the rest of the media plane depends on four tiny methods only; they go through
`srtp_fast` (pylibsrtp's low-level binding, buffers reused) rather than pylibsrtp's `Session`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy

from .srtp_fast import SrtpContext

__all__ = ["SrtpError", "SrtpProfile", "PROFILES", "SrtpPair", "make_pair"]


@dataclass(frozen=True)
class SrtpProfile:
    openssl_name: bytes
    libsrtp_profile: int
    key_length: int
    salt_length: int

    def split(self, material: bytes, idx: int) -> bytes:
        """Key and salt number idx (0 = client, 1 = server) from the exported material."""
        k0 = idx * self.key_length
        s0 = 2 * self.key_length + idx * self.salt_length
        return material[k0 : k0 + self.key_length] + material[s0 : s0 + self.salt_length]


# Preference order offered in the DTLS use_srtp extension: GCM is cheaper and authenticated.
PROFILES = [
    SrtpProfile(b"SRTP_AEAD_AES_128_GCM", Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12),
    SrtpProfile(b"SRTP_AES128_CM_SHA1_80", Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14),
]


class SrtpPair:
    """Inbound and outbound SRTP sessions of one transport."""

    __slots__ = ("profile", "protect", "protect_rtcp", "unprotect", "unprotect_rtcp",
                 "protect_parts", "tx_view", "tx_native")

    def __init__(self, profile: SrtpProfile, tx_key: bytes, rx_key: bytes) -> None:
        self.profile = profile
        tx = SrtpContext(_policy(profile, tx_key, Policy.SSRC_ANY_OUTBOUND))
        rx = SrtpContext(_policy(profile, rx_key, Policy.SSRC_ANY_INBOUND))
        # Bound methods cached as attributes: one attribute lookup per packet, not two.
        self.protect = tx.protect
        self.protect_parts = tx.protect_parts
        # the outbound session and buffer as the fan-out's C builds packets in them
        # (sendbatch.Outbound; `protect` keeps the session alive), and the buffer as Python
        # reads a packet built there
        self.tx_native = tx.native
        self.tx_view = tx._view
        self.protect_rtcp = tx.protect_rtcp
        self.unprotect = rx.unprotect
        self.unprotect_rtcp = rx.unprotect_rtcp


def _policy(profile: SrtpProfile, key: bytes, ssrc_type: int) -> Policy:
    policy = Policy(key=key, ssrc_type=ssrc_type, srtp_profile=profile.libsrtp_profile)
    # Retransmissions resend an already protected sequence number on the same SSRC.
    policy.allow_repeat_tx = True
    policy.window_size = 1024
    return policy


def make_pair(profile_name: bytes, material: bytes, is_server: bool) -> SrtpPair:
    for profile in PROFILES:
        if profile.openssl_name == profile_name:
            break
    else:
        raise ValueError(f"unsupported SRTP profile {profile_name!r}")
    client, server = profile.split(material, 0), profile.split(material, 1)
    if is_server:
        return SrtpPair(profile, tx_key=server, rx_key=client)
    return SrtpPair(profile, tx_key=client, rx_key=server)
