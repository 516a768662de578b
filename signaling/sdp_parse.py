"""Reading SDP (RFC 8866): browser offers and answers into plain values, every number
range-checked and every token held to its grammar as it is read, so nothing out of range or
unsafe reaches the media plane or is copied into another participant's SDP. Anything
malformed raises `SdpError` naming the line, which the WebSocket answers with `bad_sdp`.
Writing the server's answers and offers is sdp.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mediaserver.api import (
    GRAMMAR_NAMES,
    ICE_CHARS,
    MAX_CHANNELS,
    MAX_CLOCK_RATE,
    MAX_CNAME,
    MAX_CODEC_NAME,
    MAX_EXTENSION_ID,
    MAX_FMTP,
    MAX_MID,
    MAX_PAYLOAD_TYPE,
    MAX_U32,
    MAX_URI,
    PRINTABLE,
    TOKEN,
    VISIBLE,
    RemoteParams,
    check_int,
    check_text,
)

MAX_SDP = 64 * 1024
# Counts a browser stays far below; with MAX_SDP they keep every table of a parsed SDP small.
MAX_MEDIA = 256
MAX_FORMATS = 128  # a payload type is 7 bits
MAX_CANDIDATES = 64  # per section: host, reflexive and relayed, per interface and family
MAX_FINGERPRINTS = 8
MAX_FEEDBACK = 512  # rtcp-fb lines per section: Chrome writes ~5 for each of ~16 video codecs
MAX_SSRCS = 32  # per section: simulcast layers, their RTX and FEC streams
MAX_SSRC_ATTRS = 16
MAX_SSRC_GROUPS = 16
MAX_GROUP_MEMBERS = 16
MAX_RIDS = 16
MAX_RID = 16  # the rtp-stream-id header extension carries at most 16 bytes (one-byte form)
MAX_VALUE = 1024  # any other attribute value kept (an SSRC's msid, rid restrictions)

_DIGITS = re.compile(r"[0-9]{1,10}")  # 2^32 - 1 has ten digits
# C0 and C1 controls (tab included: SDP separates with spaces), DEL and Unicode line breaks;
# searched once CRLF is LF, so a CR counts only where it is not part of a line's end.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
PROTO = re.compile(rf"{TOKEN.pattern}(?:/{TOKEN.pattern})*")  # RFC 8866 section 5.14
HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")  # RFC 8122 section 5
RID = re.compile(r"[A-Za-z0-9_-]+")  # rid-id, RFC 8851 section 10
GRAMMAR_NAMES.update({PROTO: "token/token", HEX_PAIRS: "hex pairs joined by ':'",
                      RID: "letters, digits, '-' and '_'"})

class SdpError(ValueError):
    pass


@dataclass
class RtpMap:
    pt: int
    name: str
    clock_rate: int
    channels: int = 1
    fmtp: str = ""
    feedback: list[str] = field(default_factory=list)


@dataclass
class Media:
    kind: str
    port: int
    proto: str
    fmts: list[str]
    mid: str = ""
    direction: str = "sendrecv"
    ice_ufrag: str = ""
    ice_pwd: str = ""
    fingerprints: list[tuple[str, str]] = field(default_factory=list)
    setup: str = ""
    rtpmaps: dict[int, RtpMap] = field(default_factory=dict)
    extensions: dict[str, int] = field(default_factory=dict)
    ssrcs: dict[int, dict[str, str]] = field(default_factory=dict)
    ssrc_groups: list[tuple[str, list[int]]] = field(default_factory=list)
    msid: str = ""
    rids: list[str] = field(default_factory=list)


@dataclass
class Session:
    media: list[Media]
    bundle: list[str]


def parse(text: str) -> Session:
    """Every value range-checked and held to its grammar as it is read: what comes out is safe
    to pass to the media plane and to copy into other participants' SDP."""
    if not isinstance(text, str) or not text.startswith("v=0"):
        raise SdpError("SDP must start with v=0")
    if len(text) > MAX_SDP:
        raise SdpError("SDP too large")
    text = text.replace("\r\n", "\n")
    bad = _CONTROL.search(text)
    if bad is not None:
        raise SdpError(f"line {text.count(chr(10), 0, bad.start()) + 1}: control character "
                       f"{bad.group()!r}")
    top = _Section(Media("", 0, "", []))  # session-level attributes
    sections: list[_Section] = []
    cur: _Section | None = None
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(" ")
        if len(line) < 2 or line[1] != "=":
            continue
        try:
            if line.startswith("m="):
                if len(sections) >= MAX_MEDIA:
                    raise SdpError(f"more than {MAX_MEDIA} media sections")
                cur = _Section(_media_line(line[2:]))
                sections.append(cur)
            elif line.startswith("a="):
                attr, _, value = line[2:].partition(":")
                (cur or top).attribute(attr, value, session=cur is None)
        except (SdpError, ValueError, IndexError) as exc:
            raise SdpError(f"line {n} ({_line_kind(line)}): {exc}") from None
    if not sections:
        raise SdpError("SDP has no media sections")
    media = [section.finish(top, i) for i, section in enumerate(sections)]
    seen: set[str] = set()
    for i, m in enumerate(media):
        if m.mid in seen:
            raise SdpError(f"media section {i}: its a=mid is the same as an earlier one's")
        if m.mid:
            seen.add(m.mid)
    return Session(media, top.bundle)


def _line_kind(line: str) -> str:
    """'m=', 'a=rtpmap'...: names the line in an error without echoing what it carries."""
    attr = line[2:].partition(":")[0]
    return line[:2] + attr if line[0] == "a" and TOKEN.fullmatch(attr) and len(attr) <= 32 \
        else line[:2]


def _number(text: str, lo: int, hi: int, what: str) -> int:
    """A decimal number in lo..hi. Its digits are counted before any conversion: a number of
    thousands of digits is refused here, not left to int()'s own limit."""
    if _DIGITS.fullmatch(text) is None:
        raise SdpError(f"{what} must be a decimal number {lo}..{hi}")
    return check_int(int(text), lo, hi, what)


def _text(value: str, grammar: re.Pattern[str], lo: int, hi: int, what: str) -> str:
    return check_text(value, grammar, hi, what, min_len=lo)


def _media_line(value: str) -> Media:
    parts = value.split()
    if len(parts) < 4:
        raise SdpError("m-line needs media, port, proto and formats")
    kind = _text(parts[0], TOKEN, 1, 32, "media")
    port = _number(parts[1], 0, 65535, "port")
    proto = _text(parts[2], PROTO, 1, 64, "proto")
    fmts = parts[3:]
    if len(fmts) > MAX_FORMATS:
        raise SdpError(f"more than {MAX_FORMATS} formats")
    rtp = "RTP/" in proto.upper()
    for f in fmts:
        if rtp:
            _number(f, 0, MAX_PAYLOAD_TYPE, "payload type")
        else:
            _text(f, TOKEN, 1, 64, "format")
    return Media(kind, port, proto, fmts)


def _fingerprint(value: str) -> tuple[str, str]:
    """RFC 8122 section 5: hash-func SP fingerprint (hex pairs joined by colons)."""
    algorithm, fp = value.split()
    _text(algorithm, TOKEN, 1, 16, "fingerprint hash function")
    _text(fp, HEX_PAIRS, 2, 191, "fingerprint")
    return algorithm.lower(), fp.upper()


class _Section:
    """One media section (or the session level) while its lines are read. Attributes that
    refer to a payload type (fmtp, rtcp-fb) may come before its rtpmap (Firefox writes them in
    alphabetical order): they are joined to it at the end."""

    def __init__(self, media: Media) -> None:
        self.m = media
        self.bundle: list[str] = []
        self.fmtps: dict[int, str] = {}
        self.feedback: list[tuple[str, str]] = []
        self.candidates = 0
        self.allow_mixed = False
        self.ext_ids: set[int] = set()

    def attribute(self, attr: str, value: str, session: bool) -> None:
        m = self.m
        if attr == "ice-ufrag":
            m.ice_ufrag = _text(value, ICE_CHARS, 4, 256, "ice-ufrag")
        elif attr == "ice-pwd":
            m.ice_pwd = _text(value, ICE_CHARS, 22, 256, "ice-pwd")
        elif attr == "fingerprint":
            if len(m.fingerprints) >= MAX_FINGERPRINTS:
                raise SdpError(f"more than {MAX_FINGERPRINTS} fingerprints")
            m.fingerprints.append(_fingerprint(value))
        elif attr == "setup":
            m.setup = _text(value, TOKEN, 1, 16, "setup")
        elif attr == "candidate":
            self.candidates += 1
            if self.candidates > MAX_CANDIDATES:
                raise SdpError(f"more than {MAX_CANDIDATES} candidates")
        elif attr == "extmap-allow-mixed":
            self.allow_mixed = True
        elif session:
            if attr == "group" and value.startswith("BUNDLE"):
                mids = value.split()[1:]
                if len(mids) > MAX_MEDIA:
                    raise SdpError(f"more than {MAX_MEDIA} mids in BUNDLE")
                self.bundle = [_text(mid, TOKEN, 1, MAX_MID, "mid") for mid in mids]
        elif attr == "mid":
            m.mid = _text(value, TOKEN, 1, MAX_MID, "mid")
        elif attr in ("sendrecv", "sendonly", "recvonly", "inactive"):
            m.direction = attr
        elif attr == "rtpmap":
            self._rtpmap(value)
        elif attr == "fmtp":
            pt, _, params = value.partition(" ")
            pt_ = _number(pt, 0, MAX_PAYLOAD_TYPE, "payload type")
            if pt_ in self.fmtps:
                raise SdpError(f"second fmtp for payload type {pt_}")
            # Copied into subscribers' offers: printable ASCII only, never a control character.
            self.fmtps[pt_] = _text(params.strip(), PRINTABLE, 0, MAX_FMTP, "fmtp parameters")
        elif attr == "rtcp-fb":
            pt, _, fb = value.partition(" ")
            if pt != "*":
                pt = str(_number(pt, 0, MAX_PAYLOAD_TYPE, "payload type"))
            words = fb.split()
            if not 1 <= len(words) <= 4:
                raise SdpError("rtcp-fb needs a feedback type")
            for word in words:
                _text(word, TOKEN, 1, 64, "rtcp-fb value")
            if len(self.feedback) >= MAX_FEEDBACK:
                raise SdpError(f"more than {MAX_FEEDBACK} rtcp-fb lines")
            self.feedback.append((pt, " ".join(words)))
        elif attr == "extmap":
            self._extmap(value)
        elif attr == "ssrc":
            self._ssrc(value)
        elif attr == "ssrc-group":
            semantic, *members = value.split()
            _text(semantic, TOKEN, 1, 32, "ssrc-group semantics")
            if not 1 <= len(members) <= MAX_GROUP_MEMBERS:
                raise SdpError(f"ssrc-group needs 1 to {MAX_GROUP_MEMBERS} SSRCs")
            if len(m.ssrc_groups) >= MAX_SSRC_GROUPS:
                raise SdpError(f"more than {MAX_SSRC_GROUPS} ssrc-groups")
            m.ssrc_groups.append((semantic, [_number(x, 0, MAX_U32, "SSRC") for x in members]))
        elif attr == "msid":
            parts = value.split()  # RFC 8830: stream id [SP track id]
            if not 1 <= len(parts) <= 2:
                raise SdpError("msid is a stream id and an optional track id")
            m.msid = " ".join(_text(p, TOKEN, 1, 64, "msid") for p in parts)
        elif attr == "rid":
            self._rid(value)

    def _rtpmap(self, value: str) -> None:
        pt, desc = value.split(None, 1)
        pt_ = _number(pt, 0, MAX_PAYLOAD_TYPE, "payload type")
        if pt_ in self.m.rtpmaps:
            raise SdpError(f"second rtpmap for payload type {pt_}")
        name, rate, *rest = desc.strip().split("/")
        if len(rest) > 1:
            raise SdpError("rtpmap is name/clock rate[/channels]")
        _text(name, TOKEN, 1, MAX_CODEC_NAME, "encoding name")
        channels = _number(rest[0], 1, MAX_CHANNELS, "channels") if rest else 1
        self.m.rtpmaps[pt_] = RtpMap(pt_, name, _number(rate, 1, MAX_CLOCK_RATE, "clock rate"),
                                     channels)

    def _extmap(self, value: str) -> None:
        parts = value.split()
        if len(parts) < 2:
            raise SdpError("extmap needs an id and a URI")
        ident, _, direction = parts[0].partition("/")
        # 1..14 one-byte, up to 255 with two-byte headers (RFC 8285 section 5): the upper
        # bound is checked once the whole section is read (a=extmap-allow-mixed may follow)
        ext_id = _number(ident, 1, 255, "extension id")
        if direction and direction not in ("sendonly", "recvonly", "sendrecv", "inactive"):
            raise SdpError("extmap direction must be sendonly, recvonly, sendrecv or inactive")
        uri = _text(parts[1], VISIBLE, 1, MAX_URI, "extension URI")
        if ext_id in self.ext_ids or uri in self.m.extensions:
            raise SdpError(f"extension id {ext_id} or its URI mapped twice")
        self.ext_ids.add(ext_id)
        self.m.extensions[uri] = ext_id

    def _ssrc(self, value: str) -> None:
        ssrc, _, rest = value.partition(" ")
        ssrc_ = _number(ssrc, 0, MAX_U32, "SSRC")
        key, _, val = rest.partition(":")
        _text(key, TOKEN, 1, 32, "ssrc attribute")
        if key == "cname":
            _text(val, VISIBLE, 1, MAX_CNAME, "cname")  # copied into subscribers' offers
        else:
            _text(val, PRINTABLE, 0, MAX_VALUE, f"ssrc {key}")
        attrs = self.m.ssrcs.get(ssrc_)
        if attrs is None:
            if len(self.m.ssrcs) >= MAX_SSRCS:
                raise SdpError(f"more than {MAX_SSRCS} SSRCs in one media section")
            attrs = self.m.ssrcs[ssrc_] = {}
        if key not in attrs and len(attrs) >= MAX_SSRC_ATTRS:
            raise SdpError(f"more than {MAX_SSRC_ATTRS} attributes of SSRC {ssrc_}")
        attrs[key] = val

    def _rid(self, value: str) -> None:
        # RFC 8851 section 10: rid-id SP ("send" / "recv") [SP restrictions]
        parts = value.split(None, 2)
        if len(parts) < 2:
            raise SdpError("rid needs an id and a direction")
        rid = _text(parts[0], RID, 1, MAX_RID, "rid")
        if parts[1] not in ("send", "recv"):
            raise SdpError("rid direction must be send or recv")
        if len(parts) > 2:
            _text(parts[2], VISIBLE, 1, MAX_VALUE, "rid restrictions")
        if len(self.m.rids) >= MAX_RIDS:
            raise SdpError(f"more than {MAX_RIDS} rids")
        self.m.rids.append(rid)

    def finish(self, top: _Section, index: int) -> Media:
        """Join payload-type attributes to their rtpmaps; take session-level defaults."""
        m, s = self.m, top.m
        if max(self.ext_ids, default=0) > MAX_EXTENSION_ID and not \
                (self.allow_mixed or top.allow_mixed):
            raise SdpError(f"media section {index}: extension ids above "
                           f"{MAX_EXTENSION_ID} need a=extmap-allow-mixed")
        for pt, params in self.fmtps.items():
            if pt in m.rtpmaps:
                m.rtpmaps[pt].fmtp = params
        for pt, fb in self.feedback:
            targets = m.rtpmaps.values() if pt == "*" else [m.rtpmaps.get(int(pt))]
            for rtpmap in targets:
                if rtpmap is not None:
                    rtpmap.feedback.append(fb)
        m.ice_ufrag = m.ice_ufrag or s.ice_ufrag
        m.ice_pwd = m.ice_pwd or s.ice_pwd
        m.fingerprints = m.fingerprints or list(s.fingerprints)
        m.setup = m.setup or s.setup
        return m


def fmtp_params(fmtp: str) -> dict[str, str]:
    out = {}
    for item in fmtp.split(";"):
        key, _, val = item.strip().partition("=")
        if key:
            out[key.lower()] = val
    return out


def remote_params(session: Session, is_offer: bool) -> RemoteParams:
    """The peer's ICE and DTLS parameters, and our DTLS role (RFC 5763 section 5)."""
    m = next((m for m in session.media if m.port != 0), session.media[0])
    if not m.ice_ufrag or not m.ice_pwd:
        raise SdpError("SDP has no ice-ufrag/ice-pwd")
    if not m.fingerprints:
        raise SdpError("SDP has no DTLS fingerprint")
    setup = m.setup or ("actpass" if is_offer else "active")
    if setup not in ("actpass", "active", "passive"):
        raise SdpError(f"bad a=setup:{setup}")
    # Offer actpass/active: we answer passive and are the DTLS server. An answer of passive
    # makes us the client.
    role = "client" if setup == "passive" else "server"
    return RemoteParams(m.ice_ufrag, m.ice_pwd, m.fingerprints, role)
