"""SDP for the two peer connections of a participant (RFC 8866, RFC 8829, RFC 8843).

Writes the server's answers (publish connection, connectivity check) and offers (subscribe
connection) from what sdp_parse.py read. `parse`, `remote_params` and `SdpError` are re-exported
here: callers speak of one `sdp` module.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

from mediaserver.api import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_REPAIRED_RID,
    EXT_RID,
    EXT_TRANSPORT_CC,
    MAX_ENCODINGS,
    MAX_EXTENSION_ID,
    Codec,
    Encoding,
    TransportInfo,
)

from .sdp_parse import Media, RtpMap, SdpError, Session, fmtp_params, parse, remote_params

__all__ = ["SdpError", "Session", "Media", "parse", "remote_params", "fmtp_params", "Slot",
           "publish_answer", "probe_answer", "subscribe_offer", "subscriber_codec",
           "answered_slot", "published_media", "PublishedMedia"]

# transport-cc: the publisher numbers its packets and gets our feedback (its encoder then
# follows its uplink, draft-holmer-rmcat-transport-wide-cc-extensions-01)
PUBLISH_EXTENSIONS = {EXT_MID, EXT_ABS_SEND_TIME, EXT_AUDIO_LEVEL, EXT_TRANSPORT_CC}
# simulcast (RFC 8853): SSRCs are learnt from these (RFC 8852), Chromium lists none
SIMULCAST_EXTENSIONS = {EXT_RID, EXT_REPAIRED_RID}
# The subscribe side's fixed extension ids and payload types: every m-line of a BUNDLE must
# agree on them, and fixed values keep offers stable across renegotiations.
SUBSCRIBE_EXTENSIONS = {EXT_AUDIO_LEVEL: 1, EXT_ABS_SEND_TIME: 2, EXT_TRANSPORT_CC: 3, EXT_MID: 4}
SUBSCRIBE_PT = {"opus": (111, None), "VP8": (96, 97), "H264": (102, 103)}



# ---- publish connection: the client offers, we answer -------------------------------------


@dataclass
class PublishedMedia:
    mid: str
    kind: str
    codec: Codec
    ssrc: int | None
    rtx_ssrc: int | None
    extensions: dict[str, int]
    cname: str
    encodings: list[Encoding] = field(default_factory=list)  # simulcast, lowest first


def choose_codec(m: Media) -> RtpMap | None:
    """The offerer's first codec we forward: Opus for audio, VP8 or H.264 (mode 1) for video."""
    for pt in (int(f) for f in m.fmts if f.isascii() and f.isdigit()):
        rtpmap = m.rtpmaps.get(pt)
        if rtpmap is None:
            continue
        name = rtpmap.name.upper()
        if m.kind == "audio" and name == "OPUS" and rtpmap.clock_rate == 48000:
            return rtpmap
        if m.kind == "video" and name == "VP8":
            return rtpmap
        if m.kind == "video" and name == "H264":
            params = fmtp_params(rtpmap.fmtp)
            if params.get("packetization-mode") == "1":
                return rtpmap
    return None


def _rtx_for(m: Media, pt: int) -> int | None:
    for rtpmap in m.rtpmaps.values():
        if rtpmap.name.lower() == "rtx" and fmtp_params(rtpmap.fmtp).get("apt") == str(pt):
            return rtpmap.pt
    return None


def _codec(rtpmap: RtpMap, rtx_pt: int | None, offered_fb: list[str]) -> Codec:
    fb = set(offered_fb)
    name = "opus" if rtpmap.name.upper() == "OPUS" else rtpmap.name.upper()
    return Codec(
        name=name, payload_type=rtpmap.pt, clock_rate=rtpmap.clock_rate,
        channels=rtpmap.channels, fmtp=rtpmap.fmtp, rtx_payload_type=rtx_pt,
        nack="nack" in fb, pli="nack pli" in fb, fir="ccm fir" in fb,
        remb="goog-remb" in fb, transport_cc="transport-cc" in fb,
    )


def published_media(m: Media) -> PublishedMedia | None:
    """What one m-line of a publish offer publishes, or None when we must reject it."""
    if m.kind not in ("audio", "video") or m.port == 0 or not m.mid:
        return None  # (BUNDLE needs a mid: without one the answer could not name the section)
    if m.direction not in ("sendonly", "sendrecv"):
        return None
    rtpmap = choose_codec(m)
    if rtpmap is None:
        return None
    rtx_pt = _rtx_for(m, rtpmap.pt) if m.kind == "video" else None
    codec = _codec(rtpmap, rtx_pt, rtpmap.feedback)
    ssrc = rtx_ssrc = None
    for semantic, ssrcs in m.ssrc_groups:
        if semantic == "FID" and len(ssrcs) == 2:
            ssrc, rtx_ssrc = ssrcs
    if ssrc is None and m.ssrcs and not m.rids:
        ssrc = next(iter(m.ssrcs))
    if rtx_pt is None:
        rtx_ssrc = None
    cname = next((a["cname"] for a in m.ssrcs.values() if "cname" in a), "")
    # one-byte ids only: the forwarder reads no other (an id past 14 is answered as not used)
    exts = {uri: i for uri, i in m.extensions.items()
            if uri in PUBLISH_EXTENSIONS and i <= MAX_EXTENSION_ID}
    if m.kind == "video":
        exts.pop(EXT_AUDIO_LEVEL, None)
    if EXT_TRANSPORT_CC not in exts or not codec.transport_cc:  # the numbers and the feedback
        exts.pop(EXT_TRANSPORT_CC, None)  # go together, or neither
        codec = replace(codec, transport_cc=False)
    encodings = []
    rid_ext = m.extensions.get(EXT_RID, 0)
    if m.kind == "video" and len(m.rids) > 1 and EXT_MID in exts and 0 < rid_ext <= \
            MAX_EXTENSION_ID:
        # Simulcast: the rids in the offer's order, the client's lowest resolution first
        # (web_client/js/publisher.js); without the rid extension its streams could not be
        # told apart, and the answer leaves simulcast out (one encoding is sent, RFC 8853 5.3)
        encodings = [Encoding(rid) for rid in m.rids[:MAX_ENCODINGS]]
        ssrc = rtx_ssrc = None
        exts.update((uri, i) for uri, i in m.extensions.items()
                    if uri in SIMULCAST_EXTENSIONS and i <= MAX_EXTENSION_ID)
    return PublishedMedia(m.mid, m.kind, codec, ssrc, rtx_ssrc, exts, cname, encodings)


def publish_answer(offer: Session, info: TransportInfo) -> tuple[str, list[PublishedMedia]]:
    accepted: list[PublishedMedia] = []
    sections = []
    for m in offer.media:
        pub = published_media(m)
        if pub is None:
            sections.append(_rejected(m))
            continue
        accepted.append(pub)
        codec = pub.codec
        fb = [f for f, on in (("nack", codec.nack), ("nack pli", codec.pli),
                              ("ccm fir", codec.fir), ("goog-remb", codec.remb),
                              ("transport-cc", codec.transport_cc)) if on]
        lines = _media_head(m.kind, [codec.payload_type] + ([codec.rtx_payload_type]
                            if codec.rtx_payload_type else []), info, m.mid, "passive")
        lines += [f"a=extmap:{i} {uri}" for uri, i in sorted(pub.extensions.items(),
                                                             key=lambda x: x[1])]
        lines.append("a=recvonly")
        lines += _codec_lines(codec, fb)
        if pub.encodings:  # RFC 8853 section 5.3: the answer's rids and simulcast say recv
            rids = [e.rid for e in pub.encodings]
            lines += [f"a=rid:{rid} recv" for rid in rids]
            lines.append("a=simulcast:recv " + ";".join(rids))
        sections.append(lines)
    mids = [m.mid for m, pub in zip(offer.media, sections, strict=True) if pub[0].split()[1] != "0"]
    return _session(mids, sections), accepted


def probe_answer(offer: Session, info: TransportInfo) -> str:
    """Answer a connectivity-check offer: every m-line kept but inactive, so ICE and DTLS run
    to completion and no media flows."""
    sections, mids = [], []
    for m in offer.media:
        rtpmap = choose_codec(m) if m.kind in ("audio", "video") else None
        if rtpmap is None or m.port == 0 or not m.mid:
            sections.append(_rejected(m))
            continue
        codec = _codec(rtpmap, None, [])
        lines = _media_head(m.kind, [codec.payload_type], info, m.mid, "passive")
        lines.append("a=inactive")
        lines += _codec_lines(codec, [])
        sections.append(lines)
        mids.append(m.mid)
    return _session(mids, sections)


def _rejected(m: Media) -> list[str]:
    fmt = " ".join(m.fmts) or "0"
    lines = [f"m={m.kind} 0 {m.proto} {fmt}", "c=IN IP4 0.0.0.0"]
    if m.mid:
        lines.append(f"a=mid:{m.mid}")
    lines.append("a=inactive")
    return lines


def _media_head(kind: str, pts: list[int], info: TransportInfo, mid: str,
                setup: str) -> list[str]:
    c = info.candidates[0]
    ipv = "IP6" if ":" in c.ip else "IP4"
    lines = [
        f"m={kind} 9 UDP/TLS/RTP/SAVPF {' '.join(str(p) for p in pts)}",
        f"c=IN {ipv} {c.ip}",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{info.ice_ufrag}",
        f"a=ice-pwd:{info.ice_pwd}",
        f"a=fingerprint:sha-256 {info.fingerprint}",
        f"a=setup:{setup}",
        f"a=mid:{mid}",
    ]
    for cand in info.candidates:  # UDP first, then ICE-TCP's passive one (lower priority)
        tcptype = f" tcptype {cand.tcptype}" if cand.tcptype else ""
        lines.append(f"a=candidate:{cand.foundation} 1 {cand.protocol} {cand.priority} "
                     f"{cand.ip} {cand.port} typ host{tcptype}")
    lines += ["a=end-of-candidates", "a=rtcp-mux", "a=rtcp-rsize"]
    return lines


def _codec_lines(codec: Codec, fb: list[str]) -> list[str]:
    pt = codec.payload_type
    if codec.name == "opus":
        lines = [f"a=rtpmap:{pt} opus/48000/2"]
    else:
        lines = [f"a=rtpmap:{pt} {codec.name}/{codec.clock_rate}"]
    if codec.fmtp:
        lines.append(f"a=fmtp:{pt} {codec.fmtp}")
    lines += [f"a=rtcp-fb:{pt} {f}" for f in fb]
    if codec.rtx_payload_type:
        rtx = codec.rtx_payload_type
        lines += [f"a=rtpmap:{rtx} rtx/{codec.clock_rate}", f"a=fmtp:{rtx} apt={pt}"]
    return lines


def _session(bundle_mids: list[str], sections: list[list[str]]) -> str:
    head = [
        "v=0",
        f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        "a=msid-semantic: WMS *",
    ]
    if bundle_mids:
        head.insert(4, "a=group:BUNDLE " + " ".join(bundle_mids))
    return "\r\n".join(head + [line for s in sections for line in s]) + "\r\n"


# ---- subscribe connection: we offer, the client answers -----------------------------------


@dataclass
class Slot:
    """One m-line of the subscribe connection; `track` None means inactive."""

    mid: str
    kind: str
    track: str | None = None
    stream: str = ""
    codec: Codec | None = None
    ssrc: int = 0
    rtx_ssrc: int | None = None
    cname: str = ""


def subscriber_codec(source: Codec) -> Codec:
    """The publisher's codec renumbered to the subscribe side's fixed payload types."""
    pt, rtx = SUBSCRIBE_PT.get(source.name, (source.payload_type, source.rtx_payload_type))
    video = source.kind == "video"
    return Codec(
        name=source.name, payload_type=pt, clock_rate=source.clock_rate,
        channels=2 if source.name == "opus" else 1, fmtp=source.fmtp if video else
        "minptime=10;useinbandfec=1", rtx_payload_type=rtx if video else None,
        nack=video, pli=video, fir=video, transport_cc=True,
    )


def subscribe_offer(slots: list[Slot], info: TransportInfo) -> str:
    sections = []
    for slot in slots:
        if slot.track is None or slot.codec is None:
            pt = 111 if slot.kind == "audio" else 96
            lines = _media_head(slot.kind, [pt], info, slot.mid, "actpass")
            lines += ["a=inactive", f"a=rtpmap:{pt} " + ("opus/48000/2" if pt == 111 else
                                                           "VP8/90000")]
            sections.append(lines)
            continue
        codec = slot.codec
        pts = [codec.payload_type] + ([codec.rtx_payload_type] if codec.rtx_payload_type else [])
        lines = _media_head(slot.kind, pts, info, slot.mid, "actpass")
        for uri, ident in SUBSCRIBE_EXTENSIONS.items():
            if uri == EXT_AUDIO_LEVEL and slot.kind != "audio":
                continue
            lines.append(f"a=extmap:{ident} {uri}")
        lines += ["a=sendonly", f"a=msid:{slot.stream} {slot.track}"]
        fb = ["transport-cc"] + (["nack", "nack pli", "ccm fir"] if slot.kind == "video" else [])
        lines += _codec_lines(codec, fb)
        ssrcs = [slot.ssrc] + ([slot.rtx_ssrc] if slot.rtx_ssrc else [])
        if slot.rtx_ssrc:
            lines.append(f"a=ssrc-group:FID {slot.ssrc} {slot.rtx_ssrc}")
        for ssrc in ssrcs:
            lines += [f"a=ssrc:{ssrc} cname:{slot.cname}",
                      f"a=ssrc:{ssrc} msid:{slot.stream} {slot.track}"]
        sections.append(lines)
    return _session([s.mid for s in slots], sections)


def answered_slot(slot: Slot, m: Media) -> tuple[Codec, dict[str, int]] | None:
    """What the subscriber accepted for one slot: codec (rtx and feedback kept) and extensions."""
    if slot.codec is None or m.port == 0 or m.direction not in ("recvonly", "sendrecv"):
        return None
    rtpmap = m.rtpmaps.get(slot.codec.payload_type)
    if rtpmap is None:
        return None
    rtx = slot.codec.rtx_payload_type if slot.codec.rtx_payload_type in m.rtpmaps else None
    fb = set(rtpmap.feedback)
    codec = Codec(
        name=slot.codec.name, payload_type=slot.codec.payload_type,
        clock_rate=slot.codec.clock_rate, channels=slot.codec.channels, fmtp=slot.codec.fmtp,
        rtx_payload_type=rtx, nack="nack" in fb, pli="nack pli" in fb, fir="ccm fir" in fb,
        transport_cc="transport-cc" in fb,
    )
    exts = {uri: i for uri, i in m.extensions.items()
            if SUBSCRIBE_EXTENSIONS.get(uri) == i}
    return codec, exts
