"""Property-based tests of the SDP reader (signaling/sdp_parse.py), marked fuzz.

The property, checked on random text, on lines shaped by the grammar and on mutated real offers
(Chrome's and Firefox's): `parse` returns a Session whose every value is in range and of its
grammar, or raises SdpError; and what the server writes from that session (the publish answer,
a subscribe offer carrying the published tracks) holds no control character and parses back.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaserver.params import (
    ICE_CHARS,
    MAX_CHANNELS,
    MAX_CLOCK_RATE,
    MAX_CNAME,
    MAX_FMTP,
    MAX_MID,
    MAX_U32,
    PRINTABLE,
    TOKEN,
    VISIBLE,
    ConsumerParams,
    ProducerParams,
)
from signaling import sdp, sdp_parse
from signaling.sdp import SdpError
from tests.support.fuzz import fuzz_examples
from tests.support.sdp_samples import (
    CHROME_OFFER,
    CONTROL,
    FIREFOX_OFFER,
    INFO,
)


def assert_in_range(session: sdp.Session) -> None:
    """Every value of a parsed SDP in its range and of its grammar."""
    assert 1 <= len(session.media) <= sdp_parse.MAX_MEDIA
    for mid in session.bundle:
        assert TOKEN.fullmatch(mid) and len(mid) <= MAX_MID
    mids = [m.mid for m in session.media if m.mid]
    assert len(mids) == len(set(mids))
    for m in session.media:
        assert TOKEN.fullmatch(m.kind) and sdp_parse.PROTO.fullmatch(m.proto)
        assert 0 <= m.port <= 65535
        assert 1 <= len(m.fmts) <= sdp_parse.MAX_FORMATS
        for f in m.fmts:
            assert TOKEN.fullmatch(f)
            if "RTP/" in m.proto.upper():
                assert f.isascii() and 0 <= int(f) <= 127
        assert m.mid == "" or (TOKEN.fullmatch(m.mid) and len(m.mid) <= MAX_MID)
        assert m.direction in ("sendrecv", "sendonly", "recvonly", "inactive")
        assert m.ice_ufrag == "" or (ICE_CHARS.fullmatch(m.ice_ufrag) and
                                     4 <= len(m.ice_ufrag) <= 256)
        assert m.ice_pwd == "" or (ICE_CHARS.fullmatch(m.ice_pwd) and 22 <= len(m.ice_pwd) <= 256)
        assert len(m.fingerprints) <= sdp_parse.MAX_FINGERPRINTS
        for algorithm, fp in m.fingerprints:
            assert TOKEN.fullmatch(algorithm) and sdp_parse.HEX_PAIRS.fullmatch(fp)
        assert m.setup == "" or TOKEN.fullmatch(m.setup)
        for pt, r in m.rtpmaps.items():
            assert pt == r.pt and 0 <= pt <= 127
            assert 1 <= r.clock_rate <= MAX_CLOCK_RATE and 1 <= r.channels <= MAX_CHANNELS
            assert TOKEN.fullmatch(r.name) and "/" not in r.name
            assert PRINTABLE.fullmatch(r.fmtp) and len(r.fmtp) <= MAX_FMTP
            for fb in r.feedback:
                assert PRINTABLE.fullmatch(fb) and fb == " ".join(fb.split())
        ids = list(m.extensions.values())
        assert len(ids) == len(set(ids)) and all(1 <= i <= 255 for i in ids)
        for uri in m.extensions:
            assert VISIBLE.fullmatch(uri)
        assert len(m.ssrcs) <= sdp_parse.MAX_SSRCS
        for ssrc, attrs in m.ssrcs.items():
            assert 0 <= ssrc <= MAX_U32 and len(attrs) <= sdp_parse.MAX_SSRC_ATTRS
            for key, value in attrs.items():
                assert TOKEN.fullmatch(key) and PRINTABLE.fullmatch(value)
            if "cname" in attrs:
                assert VISIBLE.fullmatch(attrs["cname"]) and len(attrs["cname"]) <= MAX_CNAME
        assert len(m.ssrc_groups) <= sdp_parse.MAX_SSRC_GROUPS
        for semantic, members in m.ssrc_groups:
            assert TOKEN.fullmatch(semantic)
            assert 1 <= len(members) <= sdp_parse.MAX_GROUP_MEMBERS
            assert all(0 <= x <= MAX_U32 for x in members)
        assert m.msid == "" or all(TOKEN.fullmatch(p) for p in m.msid.split(" "))
        assert len(m.rids) <= sdp_parse.MAX_RIDS
        assert all(sdp_parse.RID.fullmatch(r) and len(r) <= sdp_parse.MAX_RID for r in m.rids)


def check_parse_property(text: str) -> None:
    """parse gives an in-range Session or SdpError; what the server writes from that session
    (publish answer, probe answer, a subscribe offer of the published tracks) has no control
    character and parses back; what it hands the media plane passes the params' checks."""
    try:
        session = sdp.parse(text)
    except SdpError as exc:
        assert not CONTROL.search(str(exc))
        return
    assert_in_range(session)
    try:
        sdp.remote_params(session, is_offer=True)
    except SdpError:
        pass
    written = [sdp.probe_answer(session, INFO)]
    try:
        answer, media = sdp.publish_answer(session, INFO)
    except SdpError:
        media = []
    else:
        written.append(answer)
    slots = []
    for i, m in enumerate(media):
        # what signalling builds from them: never refused by the media plane's checks
        ProducerParams(kind=m.kind, mid=m.mid, codec=m.codec, ssrc=m.ssrc, rtx_ssrc=m.rtx_ssrc,
                       extensions=m.extensions, cname=m.cname or "p-1")
        codec = sdp.subscriber_codec(m.codec)
        ConsumerParams(mid=str(i), codec=codec, ssrc=5, rtx_ssrc=6 if codec.rtx_payload_type
                       else None)
        slots.append(sdp.Slot(str(i), m.kind, f"t-{i}", "p-1", codec, 5, 6, m.cname or "p-1"))
    if slots:
        written.append(sdp.subscribe_offer(slots, INFO))
    for out in written:
        assert not CONTROL.search(out)
        assert_in_range(sdp.parse(out))


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(st.text(max_size=400))
def test_random_text_gives_in_range_session_or_sdp_error(text: str) -> None:
    check_parse_property(text)
    check_parse_property("v=0\r\n" + text)


# random lines from the grammar's own prefixes and tokens: most get past the first line
LINE_PREFIX = st.sampled_from(["m=audio ", "m=video ", "a=rtpmap:", "a=fmtp:", "a=rtcp-fb:",
                               "a=extmap:", "a=ssrc:", "a=ssrc-group:FID ", "a=rid:", "a=mid:",
                               "a=msid:", "a=fingerprint:sha-256 ", "a=setup:", "a=ice-ufrag:",
                               "a=ice-pwd:", "a=group:BUNDLE ", "a=candidate:", "a=sendonly",
                               "a=extmap-allow-mixed", "c=IN IP4 ", "s="])
WORD = st.sampled_from(["0", "1", "9", "96", "97", "111", "127", "128", "255", "256", "65535",
                        "65536", "4294967295", "4294967296", "-1", "9" * 5000, "VP8/90000",
                        "opus/48000/2", "H264/90000", "rtx/90000", "apt=96", "cname:x", "nack",
                        "nack pli", "UDP/TLS/RTP/SAVPF", "send", "recv", "AB:CD", "0/0",
                        "urn:ietf:params:rtp-hdrext:sdes:mid", "\x00", "\t", "\u2028", " ",
                        "/", ":", "="]) | st.text(max_size=8)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(st.lists(st.tuples(LINE_PREFIX, st.lists(WORD, max_size=3)), max_size=16))
def test_grammar_shaped_lines_give_in_range_session_or_sdp_error(
        lines: list[tuple[str, list[str]]]) -> None:
    text = "v=0\r\n" + "".join(prefix + " ".join(words) + "\r\n" for prefix, words in lines)
    check_parse_property(text)


NUMBER = st.sampled_from(["-1", "0", "1", "127", "128", "255", "256", "65535", "65536",
                          "10000000", "10000001", "4294967295", "4294967296", "9" * 5000,
                          "0" * 12, "1_0", "+1", "\u0661"]) | st.integers(-2, 2**33).map(str)
TOKEN_VALUE = st.text(max_size=12) | st.sampled_from(
    ["", "0", "-1", "96", "65536", "x", ":", "/", " ", "=", "apt=", "99999999999999999999",
     "a\x00b", "a\tb", "\x7f", "\u0085", "\u2028", "\r", "\u00e9", "{uuid}", "a;b=c"])
NUMBERS = re.compile(r"\d+")


@st.composite
def mutated_offer(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from([CHROME_OFFER, FIREFOX_OFFER])).split("\r\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "truncate", "token",
                                   "number", "insert", "control"]))
        if op == "delete" and i > 0:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "replace" and i > 0:
            lines[i] = draw(st.text(max_size=40))
        elif op == "truncate" and i > 0:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "token" and i > 0:
            tokens = lines[i].replace(":", " : ").replace("/", " / ").split(" ")
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[j] = draw(TOKEN_VALUE)
            lines[i] = " ".join(tokens).replace(" : ", ":").replace(" / ", "/")
        elif op == "number" and i > 0:
            found = list(NUMBERS.finditer(lines[i]))
            if found:
                hit = found[draw(st.integers(0, len(found) - 1))]
                lines[i] = lines[i][:hit.start()] + draw(NUMBER) + lines[i][hit.end():]
        elif op == "insert" and i > 0:
            prefix = draw(st.sampled_from(["m=", "a=rtpmap:", "a=fmtp:", "a=rtcp-fb:",
                                           "a=extmap:", "a=ssrc:", "a=ssrc-group:", "a=rid:",
                                           "a=fingerprint:", "a=setup:", "a=mid:", "a=msid:",
                                           "a=ice-ufrag:", "a=ice-pwd:", "a=candidate:"]))
            lines.insert(i, prefix + draw(st.text(max_size=30)))
        elif op == "control" and i > 0:
            at = draw(st.integers(0, len(lines[i])))
            char = draw(st.sampled_from(["\x00", "\x01", "\t", "\x0b", "\r", "\x1b",
                                         "\x7f", "\x85", "\u2028"]))
            lines[i] = lines[i][:at] + char + lines[i][at:]
    return "\r\n".join(lines)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(mutated_offer())
def test_mutated_offers_give_in_range_session_or_sdp_error(text: str) -> None:
    check_parse_property(text)


def test_unmutated_offers_pass_the_property() -> None:
    for offer in (CHROME_OFFER, FIREFOX_OFFER):
        check_parse_property(offer)
        assert len(sdp.publish_answer(sdp.parse(offer), INFO)[1]) == 2
