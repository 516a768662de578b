"""Plain data exchanged over the control API: what a Producer or Consumer is, no SDP.

Every class here is a frozen dataclass of JSON-friendly fields, so the same calls can run
in-process or over a local RPC to a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Codec:
    name: str  # "opus", "VP8", "H264"
    payload_type: int
    clock_rate: int
    channels: int = 1
    fmtp: str = ""
    rtx_payload_type: int | None = None
    nack: bool = False
    pli: bool = False
    fir: bool = False
    remb: bool = False
    transport_cc: bool = False

    @property
    def kind(self) -> str:
        return "audio" if self.name.lower() == "opus" else "video"


@dataclass(frozen=True)
class ProducerParams:
    kind: str
    mid: str
    codec: Codec
    ssrc: int | None = None  # None: learnt from the mid header extension
    rtx_ssrc: int | None = None
    extensions: dict[str, int] = field(default_factory=dict)  # URI -> id as negotiated
    cname: str = ""


@dataclass(frozen=True)
class ConsumerParams:
    mid: str
    codec: Codec  # the subscriber side's payload types and feedback
    extensions: dict[str, int] = field(default_factory=dict)
    ssrc: int = 0  # chosen by signalling, announced in its SDP offer (0: pick one here)
    rtx_ssrc: int | None = None
    paused: bool = False


@dataclass(frozen=True)
class ConsumerInfo:
    id: str
    producer_id: str
    kind: str
    ssrc: int
    rtx_ssrc: int | None
    cname: str


@dataclass(frozen=True)
class IceCandidate:
    ip: str
    port: int
    protocol: str = "udp"
    priority: int = 2130706431
    foundation: str = "1"


@dataclass(frozen=True)
class TransportInfo:
    id: str
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # sha-256 of the worker's DTLS certificate
    candidates: list[IceCandidate]


@dataclass(frozen=True)
class RemoteParams:
    """What the peer's SDP says about its transport, and which DTLS role we take."""

    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[tuple[str, str]]
    dtls_role: str  # our role: "server" or "client"
