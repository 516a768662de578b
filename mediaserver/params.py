"""Plain data exchanged over the control API: what a Producer or Consumer is, no SDP.

Every class here is a frozen dataclass of JSON-friendly fields, so the same calls can run
in-process or over a local RPC to a worker process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# What the media plane accepts; signalling's SDP parser checks the same bounds when it reads
# an offer, so a value it lets through is never refused here.
MAX_U32 = 0xFFFFFFFF  # SSRCs (RFC 3550 section 5.1)
MAX_PAYLOAD_TYPE = 127  # 7 bits (RFC 3550 section 5.1)
# No RTP clock runs faster than 192 kHz audio or 90 kHz video; 10 MHz only refuses nonsense
# (0, 2^32) while any codec a browser might list still parses.
MAX_CLOCK_RATE = 10_000_000
MAX_CHANNELS = 255  # multi-channel Opus (RFC 7587 section 7) stays far below
# One-byte header extensions (RFC 8285 section 4.2): the only form the forwarder reads
# (`find_extension`) and writes without negotiating two-byte headers.
MAX_EXTENSION_ID = 14
MAX_CNAME = 255  # an SDES item's length is one octet (RFC 3550 section 6.5)
MAX_MID = 64
MAX_CODEC_NAME = 32
MAX_FMTP = 1024
MAX_URI = 256
MAX_TILE = 16384  # device pixels of a shown tile, per side (an 8K screen is 7680)
SOURCES = ("camera", "microphone", "screen")

# token-char of RFC 8866 section 9 (mid, encoding names, msid parts...)
TOKEN = re.compile(r"[\x21\x23-\x27\x2A\x2B\x2D\x2E\x30-\x39\x41-\x5A\x5E-\x7E]+")
VISIBLE = re.compile(r"[\x21-\x7E]+")  # printable ASCII without space
PRINTABLE = re.compile(r"[\x20-\x7E]*")  # printable ASCII, space included
ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")  # ice-char (RFC 8839 section 5.4)


class MediaError(Exception):
    """A control call that cannot be carried out (unknown id, bad state, bad parameters)."""


# Why a transport closed, as `on_transport_closed` listeners are told; signalling tells the
# first (a connection that was up and went silent: come back) from the others.
CONSENT_EXPIRED = "ice consent expired"
CLOSED_BY_SIGNALLING = "closed by signalling"


class ParamsError(MediaError, ValueError):
    """A control call's parameters out of range or of the wrong type."""


def check_int(value: Any, lo: int, hi: int, what: str) -> int:
    """An int (not a bool) in lo..hi, or ParamsError naming the field."""
    if type(value) is not int or not lo <= value <= hi:
        raise ParamsError(f"{what} must be an integer {lo}..{hi}, not {_show(value)}")
    return value


def check_optional_int(value: Any, lo: int, hi: int, what: str) -> None:
    if value is not None:
        check_int(value, lo, hi, what)


def check_text(value: Any, grammar: re.Pattern[str], max_len: int, what: str,
               min_len: int = 1) -> str:
    """A str of min_len..max_len characters, all of them matching grammar."""
    if not isinstance(value, str) or not min_len <= len(value) <= max_len or \
            (value and grammar.fullmatch(value) is None):
        raise ParamsError(f"{what} must be {min_len} to {max_len} characters of "
                          f"{GRAMMAR_NAMES.get(grammar, 'its grammar')}, not {_show(value)}")
    return value


def check_bool(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise ParamsError(f"{what} must be true or false, not {_show(value)}")


def check_extensions(value: Any, what: str) -> None:
    """URI -> one-byte extension id, every id used once."""
    if not isinstance(value, dict):
        raise ParamsError(f"{what} must be an object of URI -> id")
    for uri, ident in value.items():
        check_text(uri, VISIBLE, MAX_URI, f"{what} URI")
        check_int(ident, 1, MAX_EXTENSION_ID, f"{what} id of {uri}")
    if len(set(value.values())) != len(value):
        raise ParamsError(f"{what}: one id for two extensions")


# for error messages; signalling's SDP parser adds its own grammars
def check_view(visible: Any, width: Any, height: Any) -> None:
    check_bool(visible, "visible")
    check_int(width, 0, MAX_TILE, "width")
    check_int(height, 0, MAX_TILE, "height")


GRAMMAR_NAMES = {TOKEN: "token characters", VISIBLE: "printable ASCII without spaces",
                 PRINTABLE: "printable ASCII", ICE_CHARS: "ice-char"}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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

    def __post_init__(self) -> None:
        check_text(self.name, TOKEN, MAX_CODEC_NAME, "codec name")
        if "/" in self.name:
            raise ParamsError("codec name must not contain '/'")
        check_int(self.payload_type, 0, MAX_PAYLOAD_TYPE, "payload_type")
        check_int(self.clock_rate, 1, MAX_CLOCK_RATE, "clock_rate")
        check_int(self.channels, 1, MAX_CHANNELS, "channels")
        check_text(self.fmtp, PRINTABLE, MAX_FMTP, "fmtp", min_len=0)
        check_optional_int(self.rtx_payload_type, 0, MAX_PAYLOAD_TYPE, "rtx_payload_type")
        for flag in ("nack", "pli", "fir", "remb", "transport_cc"):
            check_bool(getattr(self, flag), flag)

    @property
    def kind(self) -> str:
        return "audio" if self.name.lower() == "opus" else "video"


# Simulcast encodings one Producer takes: Chromium sends up to three, the RTP stream id
# header extension's 16 bytes (RFC 8852) leave room for far more than anyone encodes.
MAX_ENCODINGS = 4
MAX_TEMPORAL_LAYER = 3  # VP8 and the dependency descriptor: at most four temporal layers


@dataclass(frozen=True)
class Encoding:
    """One simulcast encoding (RFC 8853): its rid (RFC 8851), and its SSRCs when the SDP
    lists them (Chromium does not: they are learnt from the rid header extensions)."""

    rid: str = ""
    ssrc: int | None = None
    rtx_ssrc: int | None = None

    def __post_init__(self) -> None:
        check_text(self.rid, TOKEN, 16, "rid", min_len=0)  # RFC 8852: the one-byte form
        check_optional_int(self.ssrc, 0, MAX_U32, "encoding ssrc")
        check_optional_int(self.rtx_ssrc, 0, MAX_U32, "encoding rtx_ssrc")
        if not self.rid and self.ssrc is None:
            raise ParamsError("an encoding needs a rid or an ssrc")


@dataclass(frozen=True)
class ProducerParams:
    kind: str
    mid: str
    codec: Codec
    ssrc: int | None = None  # None: learnt from the mid header extension
    rtx_ssrc: int | None = None
    extensions: dict[str, int] = field(default_factory=dict)  # URI -> id as negotiated
    cname: str = ""
    # Simulcast: the encodings from the lowest resolution to the highest (the order of
    # a=simulcast and of the client's sendEncodings); empty: one encoding, ssrc/rtx_ssrc.
    encodings: list[Encoding] = field(default_factory=list)
    # what the track shows: the bandwidth allocator serves a screen before cameras
    source: str = ""  # one of SOURCES; "" for the kind's usual one

    def __post_init__(self) -> None:
        if self.kind not in ("audio", "video"):
            raise ParamsError(f"kind must be audio or video, not {_show(self.kind)}")
        check_text(self.mid, TOKEN, MAX_MID, "mid", min_len=0)
        if not isinstance(self.codec, Codec):
            raise ParamsError("codec must be a Codec")
        check_optional_int(self.ssrc, 0, MAX_U32, "ssrc")
        check_optional_int(self.rtx_ssrc, 0, MAX_U32, "rtx_ssrc")
        check_extensions(self.extensions, "extensions")
        check_text(self.cname, VISIBLE, MAX_CNAME, "cname", min_len=0)
        if not isinstance(self.encodings, list) or len(self.encodings) > MAX_ENCODINGS or \
                not all(isinstance(e, Encoding) for e in self.encodings):
            raise ParamsError(f"encodings must be a list of at most {MAX_ENCODINGS} Encoding")
        if self.encodings:
            if self.kind != "video" or self.ssrc is not None or self.rtx_ssrc is not None:
                raise ParamsError("encodings are for video, given instead of ssrc/rtx_ssrc")
            rids = [e.rid for e in self.encodings if e.rid]
            ssrcs = [s for e in self.encodings for s in (e.ssrc, e.rtx_ssrc) if s is not None]
            if len(set(rids)) != len(rids) or len(set(ssrcs)) != len(ssrcs):
                raise ParamsError("encodings repeat a rid or an ssrc")
        if self.source not in ("", *SOURCES):
            raise ParamsError(f"source must be one of {', '.join(SOURCES)}")


@dataclass(frozen=True)
class ConsumerParams:
    mid: str
    codec: Codec  # the subscriber side's payload types and feedback
    extensions: dict[str, int] = field(default_factory=dict)
    ssrc: int = 0  # chosen by signalling, announced in its SDP offer (0: pick one here)
    rtx_ssrc: int | None = None
    paused: bool = False
    # the subscriber's tile (set_consumer_view): a hidden one gets nothing; its size in device
    # pixels caps the simulcast layer (0: unknown, no cap)
    visible: bool = True
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        check_text(self.mid, TOKEN, MAX_MID, "mid", min_len=0)
        if not isinstance(self.codec, Codec):
            raise ParamsError("codec must be a Codec")
        check_extensions(self.extensions, "extensions")
        check_int(self.ssrc, 0, MAX_U32, "ssrc")
        check_optional_int(self.rtx_ssrc, 0, MAX_U32, "rtx_ssrc")
        check_bool(self.paused, "paused")
        check_view(self.visible, self.width, self.height)


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
    protocol: str = "udp"  # or "tcp" (ICE-TCP, RFC 6544)
    priority: int = 2130706431
    foundation: str = "1"
    tcptype: str = ""  # a TCP candidate's: "passive" (the worker accepts connections)


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

    def __post_init__(self) -> None:
        check_text(self.ice_ufrag, ICE_CHARS, 256, "ice_ufrag")
        check_text(self.ice_pwd, ICE_CHARS, 256, "ice_pwd")
        if not isinstance(self.fingerprints, list) or len(self.fingerprints) > 8 or not all(
                isinstance(f, tuple) and len(f) == 2 and all(isinstance(x, str) for x in f)
                for f in self.fingerprints):
            raise ParamsError("fingerprints must be at most 8 (algorithm, value) pairs")
        if self.dtls_role not in ("server", "client"):
            raise ParamsError(f"dtls_role must be server or client, not {_show(self.dtls_role)}")


@dataclass(frozen=True)
class PipeInfo:
    """A plain RTP pipe's local end: the far side sends to ip:port."""

    id: str
    ip: str
    port: int


@dataclass(frozen=True)
class TransportDump:
    id: str
    router_id: str
    state: str  # new -> connected (DTLS done) -> closed
    packets_in: int
    packets_out: int
    # bit/s its peer's path carries, estimated from the peer's transport-cc feedback
    # (bwe/); 0 until the first feedback
    estimate: int = 0
    # the bandwidth allocator (allocation.py): bit/s it gave this subscriber's consumers (0
    # before its first round), and whether it is sending padding to probe for more
    allocated: int = 0
    probing: bool = False
    # how media reaches the peer now: "udp", "tcp" (ICE-TCP), "" before an address is known
    protocol: str = ""


@dataclass(frozen=True)
class EncodingDump:
    """One encoding of a producer (simulcast), lowest first."""

    rid: str
    ssrc: int | None  # None until learnt
    active: bool  # arriving now (producer.RecvStream.active)
    bitrate: int  # bit/s over the last receiver-report interval


@dataclass(frozen=True)
class ProducerDump:
    id: str
    router_id: str
    kind: str
    codec: str
    paused: bool
    packets: int  # received
    consumers: int
    encodings: list[EncodingDump] = field(default_factory=list)


@dataclass(frozen=True)
class ConsumerDump:
    id: str
    producer_id: str
    transport_id: str  # a pipe's id for a pipe consumer
    kind: str
    paused: bool
    packets: int  # sent
    # simulcast: the encoding forwarded now (-1: none yet) and the one it switches to at its
    # next keyframe; -1 both for a consumer of a single encoding
    spatial_layer: int = -1
    target_spatial_layer: int = -1
    # why it is paused, when it is: `paused_by` of "app" (pause_consumer), "view" (a hidden
    # tile), "budget" (the subscriber's estimate has no room for it)
    paused_by: list[str] = field(default_factory=list)
    # VP8 with temporal ids (simulcast): the highest temporal layer forwarded now (-1: none
    # seen) and the one set_preferred_layers asked for (3: all); -1 both for other consumers
    temporal_layer: int = -1
    target_temporal_layer: int = -1


@dataclass(frozen=True)
class MediaDump:
    """What a worker holds now (`MediaControl.dump`); a pool lists all of its workers'."""

    transports: list[TransportDump]
    producers: list[ProducerDump]
    consumers: list[ConsumerDump]
