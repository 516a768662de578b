"""SDP parsing, remote transport parameters and malformed input, case by case; the
property-based tests of the reader are in tests/test_sdp_properties.py."""

from __future__ import annotations

import re
import time

import pytest

from mediaserver.params import (
    MAX_CNAME,
    MAX_FMTP,
    MAX_MID,
)
from mediaserver.rtp.packet import EXT_AUDIO_LEVEL, EXT_MID, EXT_TRANSPORT_CC
from signaling import sdp, sdp_parse
from signaling.sdp import SdpError
from tests.support.sdp_samples import (
    CHROME_OFFER,
    CNAME,
    CONTROL,
    FIREFOX_OFFER,
    INFO,
    RTX_SSRC,
    STREAM,
    VIDEO_SSRC,
)


def test_parse_chrome_offer_media_sections() -> None:
    session = sdp.parse(CHROME_OFFER)
    assert session.bundle == ["0", "1"]
    audio, video = session.media
    assert (audio.kind, audio.mid, audio.port, audio.direction) == ("audio", "0", 9, "sendonly")
    assert (video.kind, video.mid, video.direction) == ("video", "1", "sendonly")
    assert audio.fmts == ["111", "63", "9", "0", "8", "13", "110", "126"]
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert audio.ice_ufrag == "Chr0" and audio.ice_pwd == "chromepasswordchrome123"
    assert audio.setup == "actpass"
    assert audio.fingerprints == [("sha-256", CHROME_OFFER.split("sha-256 ")[1].split("\r\n")[0])]


def test_parse_chrome_offer_codecs_and_feedback() -> None:
    audio, video = sdp.parse(CHROME_OFFER).media
    opus = audio.rtpmaps[111]
    assert (opus.name, opus.clock_rate, opus.channels) == ("opus", 48000, 2)
    assert opus.fmtp == "minptime=10;useinbandfec=1"
    assert opus.feedback == ["transport-cc"]
    assert audio.rtpmaps[63].fmtp == "111/111"
    assert audio.rtpmaps[0].name == "PCMU"
    vp8 = video.rtpmaps[96]
    assert vp8.feedback == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    assert video.rtpmaps[97].fmtp == "apt=96"
    assert sdp.fmtp_params(video.rtpmaps[104].fmtp)["packetization-mode"] == "0"
    assert sdp.fmtp_params(video.rtpmaps[106].fmtp)["profile-level-id"] == "42e01f"


def test_parse_chrome_offer_extensions_and_ssrcs() -> None:
    audio, video = sdp.parse(CHROME_OFFER).media
    assert audio.extensions[EXT_AUDIO_LEVEL] == 1
    assert video.extensions[EXT_TRANSPORT_CC] == 3
    assert video.extensions["urn:3gpp:video-orientation"] == 13
    assert video.ssrc_groups == [("FID", [VIDEO_SSRC, RTX_SSRC])]
    assert video.ssrcs[VIDEO_SSRC] == {"cname": CNAME, "msid": f"{STREAM} video-track-1"}
    assert video.msid == f"{STREAM} video-track-1"


def test_parse_session_level_attributes_apply_to_media() -> None:
    text = "\r\n".join([
        "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0",
        "a=ice-ufrag:sess", "a=ice-pwd:sessionpasswordsession12", "a=fingerprint:SHA-256 ab:cd",
        "a=setup:active",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:a", "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:v", "a=ice-ufrag:own1", "a=setup:passive",
    ]) + "\r\n"
    audio, video = sdp.parse(text).media
    assert (audio.ice_ufrag, audio.ice_pwd, audio.setup) == ("sess", "sessionpasswordsession12",
                                                             "active")
    assert audio.fingerprints == [("sha-256", "AB:CD")]
    assert (video.ice_ufrag, video.setup) == ("own1", "passive")


def test_parse_accepts_lf_line_endings() -> None:
    session = sdp.parse(CHROME_OFFER.replace("\r\n", "\n"))
    assert [m.mid for m in session.media] == ["0", "1"]


def test_parse_firefox_offer_joins_fmtp_and_feedback_written_before_rtpmap() -> None:
    audio, video = sdp.parse(FIREFOX_OFFER).media
    assert audio.rtpmaps[109].fmtp == "maxplaybackrate=48000;stereo=1;useinbandfec=1"
    vp8 = video.rtpmaps[120]
    assert vp8.fmtp == "max-fs=12288;max-fr=60"
    assert vp8.feedback == ["nack", "nack pli", "ccm fir", "goog-remb", "transport-cc"]
    assert video.extensions["urn:ietf:params:rtp-hdrext:sdes:mid"] == 3
    answer, media = sdp.publish_answer(sdp.parse(FIREFOX_OFFER), INFO)
    opus, vp8_pub = media
    assert (vp8_pub.codec.name, vp8_pub.codec.rtx_payload_type) == ("VP8", 124)
    assert vp8_pub.codec.nack and vp8_pub.codec.pli and vp8_pub.codec.fir
    assert (vp8_pub.ssrc, vp8_pub.rtx_ssrc) == (1530417662, 3045616201)
    assert opus.cname == "{e2d2c1b7-9a4c-4f0e-8e2b-8f1d2c3b4a5e}"
    assert "a=rtcp-fb:120 nack pli" in answer


# --- remote_params ---------------------------------------------------------------------------


def with_setup(value: str) -> str:
    return CHROME_OFFER.replace("a=setup:actpass", f"a=setup:{value}")


def test_remote_params_offer_actpass_makes_us_server() -> None:
    remote = sdp.remote_params(sdp.parse(CHROME_OFFER), is_offer=True)
    assert remote.dtls_role == "server"
    assert remote.ice_ufrag == "Chr0"
    assert remote.ice_pwd == "chromepasswordchrome123"
    assert remote.fingerprints[0][0] == "sha-256"


def test_remote_params_answer_passive_makes_us_client() -> None:
    assert sdp.remote_params(sdp.parse(with_setup("passive")), is_offer=False).dtls_role == "client"


def test_remote_params_answer_active_makes_us_server() -> None:
    assert sdp.remote_params(sdp.parse(with_setup("active")), is_offer=False).dtls_role == "server"


def test_remote_params_bad_setup_raises() -> None:
    with pytest.raises(SdpError):
        sdp.remote_params(sdp.parse(with_setup("holdconn")), is_offer=True)


def test_remote_params_skips_rejected_first_section() -> None:
    text = CHROME_OFFER.replace("m=audio 9 ", "m=audio 0 ").replace(
        "a=ice-ufrag:Chr0", "a=ice-ufrag:Rej0", 1)
    assert sdp.remote_params(sdp.parse(text), is_offer=True).ice_ufrag == "Chr0"


@pytest.mark.parametrize("prefix", ["a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:"])
def test_remote_params_missing_credentials_raise(prefix: str) -> None:
    text = "\r\n".join(line for line in CHROME_OFFER.split("\r\n") if not line.startswith(prefix))
    session = sdp.parse(text)
    with pytest.raises(SdpError):
        sdp.remote_params(session, is_offer=True)


# --- malformed input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\n",
        " v=0\r\nm=audio 9 RTP/AVP 0\r\n",
        "v=0\r\ns=-\r\n",  # no media
        "v=0\r\nm=audio 9 RTP/AVP\r\n",  # m-line without formats
        "v=0\r\nm=audio\r\n",
        "v=0\r\nm=audio nine RTP/AVP 0\r\n",
        "v=0\r\nm=audio 9/2x RTP/AVP 0\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:garbage\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/fast\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 opus/48000/two\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=fmtp:zero apt=1\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtcp-fb:zero nack\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=extmap:one urn:x\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=extmap:1\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=ssrc:abc cname:x\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=ssrc-group:FID 1 two\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=ssrc-group:\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=fingerprint:sha-256\r\n",
        "v=0\r\na=fingerprint:sha-256 AA BB\r\nm=audio 9 RTP/AVP 0\r\n",
        "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rid:\r\n",
    ],
)
def test_malformed_sdp_raises_sdp_error(text: str) -> None:
    with pytest.raises(SdpError):
        sdp.parse(text)


def with_line(old: str, new: str) -> str:
    assert old in CHROME_OFFER
    return CHROME_OFFER.replace(old, new, 1)


OUT_OF_RANGE = [
    # (replaced line of the Chrome offer, its replacement, what the error names)
    (f"a=ssrc:{VIDEO_SSRC} cname", f"a=ssrc:{2**32} cname", "SSRC"),
    (f"a=ssrc:{VIDEO_SSRC} cname", "a=ssrc:-1 cname", "SSRC"),
    (f"a=ssrc-group:FID {VIDEO_SSRC}", f"a=ssrc-group:FID {2**32}", "SSRC"),
    (f"a=ssrc-group:FID {VIDEO_SSRC} {RTX_SSRC}", "a=ssrc-group:FID", "ssrc-group"),
    ("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP8/0", "clock rate"),
    ("a=rtpmap:96 VP8/90000", f"a=rtpmap:96 VP8/{2**32}", "clock rate"),
    ("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP8/10000001", "clock rate"),
    ("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/48000/0", "channels"),
    ("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/48000/256", "channels"),
    ("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/48000/2/1", "rtpmap"),
    ("a=rtpmap:96 VP8/90000", "a=rtpmap:128 VP8/90000", "payload type"),
    ("a=rtpmap:96 VP8/90000", "a=rtpmap:96 VP 8/90000", "encoding name"),
    ("a=fmtp:97 apt=96", "a=fmtp:300 apt=96", "payload type"),
    ("a=rtcp-fb:96 nack pli", "a=rtcp-fb:-1 nack pli", "payload type"),
    ("a=rtcp-fb:96 nack pli", "a=rtcp-fb:96", "rtcp-fb"),
    ("UDP/TLS/RTP/SAVPF 96 97", "UDP/TLS/RTP/SAVPF 96 200", "payload type"),
    ("m=video 9 ", "m=video 65536 ", "port"),
    ("m=video 9 ", "m=video -9 ", "port"),
    ("a=extmap:4 urn", "a=extmap:0 urn", "extension id"),
    ("a=extmap:4 urn", "a=extmap:256 urn", "extension id"),
    ("a=extmap:4 urn", "a=extmap:4/sideways urn", "extmap direction"),
    ("a=extmap:13 urn", "a=extmap:14 urn", "mapped twice"),
    ("a=mid:1", "a=mid:0", "same as an earlier"),
    ("a=mid:1", "a=mid:a b", "mid"),
    ("a=mid:1", "a=mid:" + "m" * (MAX_MID + 1), "mid"),
    ("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 \"1\"", "mid"),
    ("a=ice-ufrag:Chr0", "a=ice-ufrag:Ch0", "ice-ufrag"),
    ("a=ice-ufrag:Chr0", "a=ice-ufrag:Chr0:x", "ice-ufrag"),
    ("a=ice-pwd:chromepasswordchrome123", "a=ice-pwd:short", "ice-pwd"),
    ("a=ice-pwd:chromepasswordchrome123", "a=ice-pwd:" + "p" * 257, "ice-pwd"),
    ("a=fingerprint:sha-256 0F:2A", "a=fingerprint:sha-256 0G:2A", "fingerprint"),
    ("a=fingerprint:sha-256 0F:2A", "a=fingerprint:sha-256 0F::2A", "fingerprint"),
    ("a=fingerprint:sha-256 0F:2A", "a=fingerprint:sha\"256 0F:2A", "hash function"),
    (f"a=ssrc:{VIDEO_SSRC} cname:{CNAME}", f"a=ssrc:{VIDEO_SSRC} cname:", "cname"),
    (f"a=ssrc:{VIDEO_SSRC} cname:{CNAME}", f"a=ssrc:{VIDEO_SSRC} cname:a b", "cname"),
    (f"a=ssrc:{VIDEO_SSRC} cname:{CNAME}",
     f"a=ssrc:{VIDEO_SSRC} cname:" + "c" * (MAX_CNAME + 1), "cname"),
    (f"a=msid:{STREAM} video-track-1", f"a=msid:{STREAM} video track 1", "msid"),
    ("a=setup:actpass", "a=setup:act pass", "setup"),
    ("a=rtcp-rsize\r\na=rtpmap:96", "a=rtcp-rsize\r\na=rid:h\r\na=rtpmap:96", "rid"),
    ("a=rtcp-rsize\r\na=rtpmap:96", "a=rtcp-rsize\r\na=rid:h.1 send\r\na=rtpmap:96", "rid"),
    ("a=rtcp-rsize\r\na=rtpmap:96", "a=rtcp-rsize\r\na=rid:" + "r" * 17 + " send\r\na=rtpmap:96",
     "rid"),
]


@pytest.mark.parametrize(("old", "new", "names"), OUT_OF_RANGE,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(OUT_OF_RANGE)])
def test_out_of_range_or_malformed_values_raise_naming_the_line(old: str, new: str,
                                                               names: str) -> None:
    with pytest.raises(SdpError, match=re.escape(names)) as caught:
        sdp.parse(with_line(old, new))
    assert re.match(r"(line|media section) \d+", str(caught.value))
    assert not CONTROL.search(str(caught.value))


@pytest.mark.parametrize("where", ["a=rtpmap:96 VP8/{n}", "a=ssrc:{n} cname:x", "m=video {n} ",
                                   "a=extmap:{n} urn", "UDP/TLS/RTP/SAVPF {n} 97"])
def test_numbers_of_thousands_of_digits_are_refused_before_conversion(where: str) -> None:
    # int() of more than 4300 digits raises ValueError (and costs quadratic time up to it)
    for n in ("9" * 5000, "0" * 20 + "1", "1_000", "+5", "\u0664\u0662"):
        text = {
            "a=rtpmap:96 VP8/{n}": with_line("a=rtpmap:96 VP8/90000", f"a=rtpmap:96 VP8/{n}"),
            "a=ssrc:{n} cname:x": with_line(f"a=ssrc:{VIDEO_SSRC} cname", f"a=ssrc:{n} cname"),
            "m=video {n} ": with_line("m=video 9 ", f"m=video {n} "),
            "a=extmap:{n} urn": with_line("a=extmap:4 urn", f"a=extmap:{n} urn"),
            "UDP/TLS/RTP/SAVPF {n} 97": with_line("UDP/TLS/RTP/SAVPF 96 97",
                                                  f"UDP/TLS/RTP/SAVPF {n} 97"),
        }[where]
        start = time.perf_counter()
        with pytest.raises(SdpError, match="decimal number"):
            sdp.parse(text)
        assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x07", "\t", "\x0b", "\x1b", "\x7f", "\x85",
                                  "\u2028", "\r"])
def test_control_characters_anywhere_are_refused(char: str) -> None:
    fmtp = "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"
    for text in (with_line(fmtp, fmtp + char + "x=1"), with_line("s=-", f"s=-{char}"),
                 with_line(f"cname:{CNAME}", f"cname:{CNAME}{char}")):
        with pytest.raises(SdpError, match="control character"):
            sdp.parse(text)


def test_fmtp_with_characters_outside_printable_ascii_is_refused() -> None:
    with pytest.raises(SdpError, match="fmtp"):
        sdp.parse(with_line("a=fmtp:97 apt=96", "a=fmtp:97 apt=96;x=\u00e9"))
    long = "x=" + "1" * MAX_FMTP
    with pytest.raises(SdpError, match="fmtp"):
        sdp.parse(with_line("a=fmtp:97 apt=96", f"a=fmtp:97 {long}"))


def test_fmtp_reaches_subscribers_unchanged_and_only_printable() -> None:
    fmtp = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"
    offer = CHROME_OFFER.replace("UDP/TLS/RTP/SAVPF 96 97 98 99 102", "UDP/TLS/RTP/SAVPF 102")
    _, media = sdp.publish_answer(sdp.parse(offer), INFO)
    video = media[1]
    assert video.codec.name == "H264" and video.codec.fmtp == fmtp
    slot = sdp.Slot("0", "video", "t-1", "p-1", sdp.subscriber_codec(video.codec), 5, 6,
                    video.cname)
    offer_text = sdp.subscribe_offer([slot], INFO)
    assert f"a=fmtp:102 {fmtp}" in offer_text
    assert not CONTROL.search(offer_text)


def test_extension_ids_above_14_need_extmap_allow_mixed_and_are_not_forwarded() -> None:
    at = CHROME_OFFER.index("m=video")
    two_byte = CHROME_OFFER[:at] + CHROME_OFFER[at:].replace(
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:20 urn:ietf:params:rtp-hdrext:sdes:mid")
    video = sdp.parse(two_byte).media[1]  # the session has a=extmap-allow-mixed
    assert video.extensions[EXT_MID] == 20
    _, media = sdp.publish_answer(sdp.parse(two_byte), INFO)
    assert EXT_MID not in media[1].extensions  # the forwarder reads one-byte ids only
    assert EXT_MID in media[0].extensions
    without = two_byte.replace("a=extmap-allow-mixed\r\n", "")
    with pytest.raises(SdpError, match="extmap-allow-mixed"):
        sdp.parse(without)


@pytest.mark.parametrize(("line", "count", "limit"), [
    ("a=candidate:1 1 udp 2122260223 10.0.0.{i} 5000 typ host", sdp_parse.MAX_CANDIDATES + 1,
     "candidates"),
    ("a=ssrc:{i} cname:x", sdp_parse.MAX_SSRCS + 1, "SSRCs"),
    ("a=ssrc:1 k{i}:v", sdp_parse.MAX_SSRC_ATTRS + 1, "attributes"),
    ("a=ssrc-group:SIM 1 2 3", sdp_parse.MAX_SSRC_GROUPS + 1, "ssrc-groups"),
    ("a=rid:r{i} send", sdp_parse.MAX_RIDS + 1, "rids"),
    ("a=fingerprint:sha-256 AA:{i:02X}", sdp_parse.MAX_FINGERPRINTS + 1, "fingerprints"),
    ("a=rtcp-fb:* x{i}", sdp_parse.MAX_FEEDBACK + 1, "rtcp-fb"),
])
def test_counts_are_bounded(line: str, count: int, limit: str) -> None:
    base = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
    extra = "\r\n".join(line.format(i=i) for i in range(count))
    with pytest.raises(SdpError, match=limit):
        sdp.parse(base + extra + "\r\n")
    fewer = "\r\n".join(line.format(i=i) for i in range(count - 1))
    sdp.parse(base + fewer + "\r\n")


def test_media_sections_are_bounded() -> None:
    section = "m=audio 0 UDP/TLS/RTP/SAVPF 0\r\n"
    with pytest.raises(SdpError, match="media sections"):
        sdp.parse("v=0\r\n" + section * (sdp_parse.MAX_MEDIA + 1))
    assert len(sdp.parse("v=0\r\n" + section * sdp_parse.MAX_MEDIA).media) == sdp_parse.MAX_MEDIA


def test_oversized_sdp_raises_sdp_error() -> None:
    text = CHROME_OFFER + "a=x-padding:" + "x" * (64 * 1024) + "\r\n"
    with pytest.raises(SdpError):
        sdp.parse(text)


def test_non_string_sdp_raises_sdp_error() -> None:
    with pytest.raises(SdpError):
        sdp.parse(CHROME_OFFER.encode())  # type: ignore[arg-type]


def test_sdp_error_is_value_error() -> None:
    assert issubclass(SdpError, ValueError)


def test_unicode_digit_format_raises_sdp_error() -> None:
    # '\u00b2'.isdigit() is True but int('\u00b2') fails; the formats come from the client.
    offer = CHROME_OFFER.replace("UDP/TLS/RTP/SAVPF 96 97", "UDP/TLS/RTP/SAVPF \u00b2 96 97")
    with pytest.raises(SdpError, match="payload type"):
        sdp.parse(offer)
