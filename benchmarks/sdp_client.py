"""The bots' side of SDP: their own publish offer and their answer to a subscriber offer.

Written like a browser's, minus everything the server ignores. Server SDP is read with the
project's own parser (`signaling.sdp.parse`); its candidates, which that parser skips, are read
here.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from mediaserver.rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_MID,
    EXT_REPAIRED_RID,
    EXT_RID,
    EXT_TRANSPORT_CC,
)
from signaling.sdp import Media, Session, parse

# Ids of the header extensions in our publish offer (one BUNDLE: the same for every m-line).
PUB_ABS_SEND_TIME_ID = 2
PUB_MID_ID = 4
PUB_TCC_ID = 5  # transport-wide sequence numbers (with --twcc)
PUB_RID_ID = 10  # simulcast: rtp-stream-id and repaired-rtp-stream-id, as Chromium numbers them
PUB_RRID_ID = 11
OPUS_PT = 111
VP8_PT = 96
RTX_PT = 97
CANDIDATE = re.compile(r"^a=candidate:\S+ 1 udp \d+ (\S+) (\d+) typ host", re.M | re.I)
# ICE-TCP (RFC 6544): the server's passive candidate, which a client connects to
TCP_CANDIDATE = re.compile(r"^a=candidate:\S+ 1 tcp \d+ (\S+) (\d+) typ host tcptype passive",
                           re.M | re.I)


@dataclass
class LocalTransport:
    """What our SDP says about our end: ICE credentials and DTLS certificate fingerprint."""

    ufrag: str
    pwd: str
    fingerprint: str
    candidate: tuple[str, int] | None = None  # written into our SDP when set


@dataclass
class PublishStreams:
    """The SSRCs and mids of what a publisher bot sends."""

    audio_ssrc: int = field(default_factory=lambda: secrets.randbits(32) or 1)
    video_ssrc: int = field(default_factory=lambda: secrets.randbits(32) or 1)
    rtx_ssrc: int = field(default_factory=lambda: secrets.randbits(32) or 1)
    audio_mid: str = "0"
    video_mid: str = "1"
    cname: str = field(default_factory=lambda: "bot-" + secrets.token_hex(6))
    stream: str = field(default_factory=lambda: "s-" + secrets.token_hex(6))
    # simulcast (RFC 8853) as Chromium offers it: rids lowest first, no a=ssrc for the video
    # (the server learns the SSRCs from the rid and repaired-rid header extensions)
    rids: tuple[str, ...] = ()
    twcc: bool = False  # transport-cc: transport-wide numbers on every packet, feedback asked


@dataclass
class RemoteTransport:
    """The server's end of one transport, from its SDP."""

    ufrag: str
    pwd: str
    fingerprints: list[tuple[str, str]]
    addr: tuple[str, int]
    setup: str = "actpass"  # the remote's a=setup: "active" makes us the DTLS server
    tcp_addr: tuple[str, int] | None = None  # its passive ICE-TCP candidate, if it has one


def _session_head(mids: list[str]) -> list[str]:
    return ["v=0", f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
            "a=group:BUNDLE " + " ".join(mids), "a=msid-semantic: WMS *"]


def _transport_lines(local: LocalTransport, setup: str, mid: str) -> list[str]:
    lines = ["c=IN IP4 127.0.0.1", "a=rtcp:9 IN IP4 0.0.0.0", f"a=ice-ufrag:{local.ufrag}",
             f"a=ice-pwd:{local.pwd}", f"a=fingerprint:sha-256 {local.fingerprint}",
             f"a=setup:{setup}", f"a=mid:{mid}", "a=rtcp-mux", "a=rtcp-rsize"]
    if local.candidate is not None:  # our server learns it from STUN; Janus wants it written
        host, port = local.candidate
        lines += [f"a=candidate:1 1 udp 2130706431 {host} {port} typ host",
                  "a=end-of-candidates"]
    return lines


def publish_offer(local: LocalTransport, s: PublishStreams) -> str:
    """sendonly Opus audio and VP8 video (with RTX) carrying abs-send-time and mid; with
    `s.twcc` transport-cc too, with `s.rids` the video as simulcast encodings."""
    exts = [f"a=extmap:{PUB_ABS_SEND_TIME_ID} {EXT_ABS_SEND_TIME}",
            f"a=extmap:{PUB_MID_ID} {EXT_MID}"]
    tcc_fb = []
    if s.twcc:
        exts.append(f"a=extmap:{PUB_TCC_ID} {EXT_TRANSPORT_CC}")
    msid = f"a=msid:{s.stream} "
    audio = [f"m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT}", *_transport_lines(local, "actpass",
                                                                         s.audio_mid),
             *exts, "a=sendonly", msid + "audio-" + s.stream,
             f"a=rtpmap:{OPUS_PT} opus/48000/2", f"a=fmtp:{OPUS_PT} minptime=10;useinbandfec=1",
             *([f"a=rtcp-fb:{OPUS_PT} transport-cc"] if s.twcc else []),
             f"a=ssrc:{s.audio_ssrc} cname:{s.cname}"]
    if s.twcc:
        tcc_fb = [f"a=rtcp-fb:{VP8_PT} transport-cc"]
    video_exts = exts + ([f"a=extmap:{PUB_RID_ID} {EXT_RID}",
                          f"a=extmap:{PUB_RRID_ID} {EXT_REPAIRED_RID}"] if s.rids else [])
    if s.rids:  # as Chromium: rids and simulcast, no SSRCs
        ssrc_lines = [*(f"a=rid:{rid} send" for rid in s.rids),
                      "a=simulcast:send " + ";".join(s.rids)]
    else:
        ssrc_lines = [f"a=ssrc-group:FID {s.video_ssrc} {s.rtx_ssrc}",
                      f"a=ssrc:{s.video_ssrc} cname:{s.cname}",
                      f"a=ssrc:{s.rtx_ssrc} cname:{s.cname}"]
    video = [f"m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT} {RTX_PT}",
             *_transport_lines(local, "actpass", s.video_mid), *video_exts, "a=sendonly",
             msid + "video-" + s.stream, f"a=rtpmap:{VP8_PT} VP8/90000",
             f"a=rtcp-fb:{VP8_PT} goog-remb", *tcc_fb, f"a=rtcp-fb:{VP8_PT} nack",
             f"a=rtcp-fb:{VP8_PT} nack pli", f"a=rtcp-fb:{VP8_PT} ccm fir",
             f"a=rtpmap:{RTX_PT} rtx/90000", f"a=fmtp:{RTX_PT} apt={VP8_PT}", *ssrc_lines]
    lines = _session_head([s.audio_mid, s.video_mid]) + audio + video
    return "\r\n".join(lines) + "\r\n"


@dataclass
class ReceivedTrack:
    """One accepted m-line of a subscriber offer."""

    mid: str
    kind: str
    ssrc: int
    rtx_ssrc: int | None
    payload_type: int
    rtx_payload_type: int | None
    extensions: dict[str, int]
    clock_rate: int


def _ssrcs(m: Media) -> tuple[int, int | None]:
    for semantic, ssrcs in m.ssrc_groups:
        if semantic == "FID" and len(ssrcs) == 2:
            return ssrcs[0], ssrcs[1]
    return (next(iter(m.ssrcs)) if m.ssrcs else 0), None


def subscribe_answer(offer_sdp: str, local: LocalTransport) -> tuple[str, list[ReceivedTrack]]:
    """Accept every sendonly m-line as recvonly (codec, RTX, feedback and extensions as
    offered); inactive or rejected ones stay inactive. We are the DTLS client (active)."""
    offer = parse(offer_sdp)
    sections: list[str] = []
    tracks: list[ReceivedTrack] = []
    for m in offer.media:
        codec_pts = [int(f) for f in m.fmts if f.isdigit() and int(f) in m.rtpmaps]
        main = next((pt for pt in codec_pts if m.rtpmaps[pt].name.lower() != "rtx"), None)
        if m.port == 0 or main is None:  # rejected by the offerer: stays rejected
            sections += [f"m={m.kind} 0 {m.proto} {' '.join(m.fmts) or '0'}",
                         "c=IN IP4 0.0.0.0", f"a=mid:{m.mid}", "a=inactive"]
            continue
        if m.direction not in ("sendonly", "sendrecv"):
            # An m-line kept for later reuse: inactive, but still part of the BUNDLE.
            r = m.rtpmaps[main]
            chans = f"/{r.channels}" if r.channels > 1 else ""
            sections += [f"m={m.kind} 9 UDP/TLS/RTP/SAVPF {main}",
                         *_transport_lines(local, "active", m.mid), "a=inactive",
                         f"a=rtpmap:{main} {r.name}/{r.clock_rate}{chans}"]
            continue
        rtx = next((pt for pt in codec_pts if m.rtpmaps[pt].name.lower() == "rtx"
                    and f"apt={main}" in m.rtpmaps[pt].fmtp), None)
        pts = [main] + ([rtx] if rtx is not None else [])
        sections += [f"m={m.kind} 9 UDP/TLS/RTP/SAVPF {' '.join(map(str, pts))}",
                     *_transport_lines(local, "active", m.mid), "a=recvonly"]
        sections += [f"a=extmap:{i} {uri}" for uri, i in sorted(m.extensions.items(),
                                                                key=lambda x: x[1])]
        for pt in pts:
            r = m.rtpmaps[pt]
            chans = f"/{r.channels}" if r.channels > 1 else ""
            sections.append(f"a=rtpmap:{pt} {r.name}/{r.clock_rate}{chans}")
            if r.fmtp:
                sections.append(f"a=fmtp:{pt} {r.fmtp}")
            sections += [f"a=rtcp-fb:{pt} {fb}" for fb in r.feedback]
        ssrc, rtx_ssrc = _ssrcs(m)
        tracks.append(ReceivedTrack(m.mid, m.kind, ssrc, rtx_ssrc if rtx else None, main, rtx,
                                    dict(m.extensions), m.rtpmaps[main].clock_rate))
    head = _session_head([m.mid for m in offer.media if m.port != 0])
    return "\r\n".join(head + sections) + "\r\n", tracks


def remote_transport(sdp: str | Session, text: str | None = None) -> RemoteTransport:
    """ICE credentials, fingerprints and the host candidates (UDP, and TCP if offered) of the
    server's end."""
    session = parse(sdp) if isinstance(sdp, str) else sdp
    raw = sdp if isinstance(sdp, str) else (text or "")
    m = next((m for m in session.media if m.port != 0), session.media[0])
    found = CANDIDATE.search(raw)
    if found is None:
        raise ValueError("server SDP has no host candidate")
    tcp = TCP_CANDIDATE.search(raw)
    return RemoteTransport(m.ice_ufrag, m.ice_pwd, m.fingerprints,
                           (found.group(1), int(found.group(2))), m.setup or "actpass",
                           (tcp.group(1), int(tcp.group(2))) if tcp else None)
