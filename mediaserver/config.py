"""Media-plane configuration: one frozen dataclass, defaults in code, validated at start."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class MediaConfig:
    host: str = "127.0.0.1"  # address the UDP socket (and the TCP listener) binds to
    port: int = 40000  # the one UDP port every peer of this worker uses
    # ICE-TCP (tcp.py): a passive TCP candidate for peers whose UDP is blocked, on tcp_port
    # (None: the same number as the UDP port; 0: any free port)
    ice_tcp: bool = True
    tcp_port: int | None = None
    announced_ip: str = ""  # address put in ICE candidates (NAT, cloud); default: host
    max_incoming_bitrate: int = 2_500_000  # REMB sent to publishers, bits per second
    consent_timeout: float = 30.0  # RFC 7675: no valid STUN for this long closes a transport
    rtcp_interval: float = 1.0  # mean interval of RTCP reports (RFC 3550 6.2, randomized)
    nack_interval: float = 0.02  # how often gaps are scanned for upstream NACKs
    # how often publishers that negotiated transport-cc get feedback (libwebrtc: 50-250 ms)
    twcc_interval: float = 0.1
    id_prefix: str = ""  # "w1." in a pool of workers: every id this worker makes starts so
    recv_buffer: int = 4 << 20
    send_buffer: int = 4 << 20

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.host)  # raises ValueError for a bad address
        if not 0 <= self.port <= 65535:
            raise ValueError(f"bad UDP port {self.port}")
        if self.tcp_port is not None and not 0 <= self.tcp_port <= 65535:
            raise ValueError(f"bad TCP port {self.tcp_port}")
        if self.announced_ip:
            ipaddress.ip_address(self.announced_ip)
        if self.consent_timeout <= 0 or self.rtcp_interval <= 0 or self.twcc_interval <= 0:
            raise ValueError("timeouts must be positive")

    @property
    def candidate_ip(self) -> str:
        if self.announced_ip:
            return self.announced_ip
        if self.host in ("0.0.0.0", "::"):
            return "127.0.0.1"
        return self.host
