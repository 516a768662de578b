"""SDP parsing, remote transport parameters and malformed input (incl. hypothesis fuzzing).

The property of the parser, checked on random text and on mutated real offers (Chrome's and
Firefox's): `parse` returns a Session whose every value is in range and of its grammar, or
raises SdpError; and what the server writes from that session (the publish answer, a subscribe
offer carrying the published tracks) holds no control character and parses back.
"""

from __future__ import annotations

import re
import time

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
from mediaserver.rtp.packet import EXT_AUDIO_LEVEL, EXT_MID, EXT_TRANSPORT_CC
from signaling import sdp
from signaling.sdp import SdpError
from tests.support.fuzz import fuzz_examples
from tests.support.sdp_samples import (
    CHROME_OFFER,
    CNAME,
    INFO,
    RTX_SSRC,
    STREAM,
    VIDEO_SSRC,
)

# A Firefox publish offer: attributes in alphabetical order, so fmtp and rtcp-fb come before
# the rtpmap they refer to.
FIREFOX_OFFER = "\r\n".join([
    "v=0",
    "o=mozilla...THIS_IS_SDPARTA-99.0 4611731400430051336 0 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "a=fingerprint:sha-256 5E:A1:9C:2B:05:12:D7:8A:55:34:5F:02:8D:DE:A1:4C:73:0F:B1:72:9A:"
    "14:44:E2:6B:88:F0:1D:36:C1:DF:84",
    "a=group:BUNDLE 0 1",
    "a=ice-options:trickle",
    "a=msid-semantic:WMS *",
    "m=audio 9 UDP/TLS/RTP/SAVPF 109 9 0 8 101",
    "c=IN IP4 0.0.0.0",
    "a=sendonly",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:2/recvonly urn:ietf:params:rtp-hdrext:csrc-audio-level",
    "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=fmtp:109 maxplaybackrate=48000;stereo=1;useinbandfec=1",
    "a=fmtp:101 0-15",
    "a=ice-pwd:c5e9ab4cbd38a0b4f1b5c07b2e0c4d1f",
    "a=ice-ufrag:3a7d9e61",
    "a=mid:0",
    "a=msid:{5b8e4a36-cc8f-4d9e-9b3f-1fd1b6a2c1e0} {0f2c4a1e-6d8b-4b6b-a1ff-63b6d2d0e2c9}",
    "a=rtcp-mux",
    "a=rtpmap:109 opus/48000/2",
    "a=rtpmap:9 G722/8000/1",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000/1",
    "a=setup:actpass",
    "a=ssrc:2861517423 cname:{e2d2c1b7-9a4c-4f0e-8e2b-8f1d2c3b4a5e}",
    "m=video 9 UDP/TLS/RTP/SAVPF 120 124 121 125 126 127 97 98",
    "c=IN IP4 0.0.0.0",
    "a=sendonly",
    "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:4 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:5 urn:ietf:params:rtp-hdrext:toffset",
    "a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
    "a=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=fmtp:126 profile-level-id=42e01f;level-asymmetry-allowed=1;packetization-mode=1",
    "a=fmtp:97 profile-level-id=42e01f;level-asymmetry-allowed=1",
    "a=fmtp:120 max-fs=12288;max-fr=60",
    "a=fmtp:124 apt=120",
    "a=fmtp:121 max-fs=12288;max-fr=60",
    "a=fmtp:125 apt=121",
    "a=fmtp:127 apt=126",
    "a=fmtp:98 apt=97",
    "a=ice-pwd:c5e9ab4cbd38a0b4f1b5c07b2e0c4d1f",
    "a=ice-ufrag:3a7d9e61",
    "a=mid:1",
    "a=msid:{5b8e4a36-cc8f-4d9e-9b3f-1fd1b6a2c1e0} {8d1b0b0c-7f0a-4a57-8f3e-2b6a7f1c9d11}",
    "a=rtcp-fb:120 nack",
    "a=rtcp-fb:120 nack pli",
    "a=rtcp-fb:120 ccm fir",
    "a=rtcp-fb:120 goog-remb",
    "a=rtcp-fb:120 transport-cc",
    "a=rtcp-fb:121 nack",
    "a=rtcp-fb:121 nack pli",
    "a=rtcp-fb:126 nack",
    "a=rtcp-fb:126 nack pli",
    "a=rtcp-fb:97 nack",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:120 VP8/90000",
    "a=rtpmap:124 rtx/90000",
    "a=rtpmap:121 VP9/90000",
    "a=rtpmap:125 rtx/90000",
    "a=rtpmap:126 H264/90000",
    "a=rtpmap:127 rtx/90000",
    "a=rtpmap:97 H264/90000",
    "a=rtpmap:98 rtx/90000",
    "a=setup:actpass",
    "a=ssrc:1530417662 cname:{e2d2c1b7-9a4c-4f0e-8e2b-8f1d2c3b4a5e}",
    "a=ssrc:3045616201 cname:{e2d2c1b7-9a4c-4f0e-8e2b-8f1d2c3b4a5e}",
    "a=ssrc-group:FID 1530417662 3045616201",
]) + "\r\n"
CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")

# --- parse -----------------------------------------------------------------------------------


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
    ("a=candidate:1 1 udp 2122260223 10.0.0.{i} 5000 typ host", sdp.MAX_CANDIDATES + 1,
     "candidates"),
    ("a=ssrc:{i} cname:x", sdp.MAX_SSRCS + 1, "SSRCs"),
    ("a=ssrc:1 k{i}:v", sdp.MAX_SSRC_ATTRS + 1, "attributes"),
    ("a=ssrc-group:SIM 1 2 3", sdp.MAX_SSRC_GROUPS + 1, "ssrc-groups"),
    ("a=rid:r{i} send", sdp.MAX_RIDS + 1, "rids"),
    ("a=fingerprint:sha-256 AA:{i:02X}", sdp.MAX_FINGERPRINTS + 1, "fingerprints"),
    ("a=rtcp-fb:* x{i}", sdp.MAX_FEEDBACK + 1, "rtcp-fb"),
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
        sdp.parse("v=0\r\n" + section * (sdp.MAX_MEDIA + 1))
    assert len(sdp.parse("v=0\r\n" + section * sdp.MAX_MEDIA).media) == sdp.MAX_MEDIA


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


def assert_in_range(session: sdp.Session) -> None:
    """Every value of a parsed SDP in its range and of its grammar."""
    assert 1 <= len(session.media) <= sdp.MAX_MEDIA
    for mid in session.bundle:
        assert TOKEN.fullmatch(mid) and len(mid) <= MAX_MID
    mids = [m.mid for m in session.media if m.mid]
    assert len(mids) == len(set(mids))
    for m in session.media:
        assert TOKEN.fullmatch(m.kind) and sdp.PROTO.fullmatch(m.proto)
        assert 0 <= m.port <= 65535
        assert 1 <= len(m.fmts) <= sdp.MAX_FORMATS
        for f in m.fmts:
            assert TOKEN.fullmatch(f)
            if "RTP/" in m.proto.upper():
                assert f.isascii() and 0 <= int(f) <= 127
        assert m.mid == "" or (TOKEN.fullmatch(m.mid) and len(m.mid) <= MAX_MID)
        assert m.direction in ("sendrecv", "sendonly", "recvonly", "inactive")
        assert m.ice_ufrag == "" or (ICE_CHARS.fullmatch(m.ice_ufrag) and
                                     4 <= len(m.ice_ufrag) <= 256)
        assert m.ice_pwd == "" or (ICE_CHARS.fullmatch(m.ice_pwd) and 22 <= len(m.ice_pwd) <= 256)
        assert len(m.fingerprints) <= sdp.MAX_FINGERPRINTS
        for algorithm, fp in m.fingerprints:
            assert TOKEN.fullmatch(algorithm) and sdp.HEX_PAIRS.fullmatch(fp)
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
        assert len(m.ssrcs) <= sdp.MAX_SSRCS
        for ssrc, attrs in m.ssrcs.items():
            assert 0 <= ssrc <= MAX_U32 and len(attrs) <= sdp.MAX_SSRC_ATTRS
            for key, value in attrs.items():
                assert TOKEN.fullmatch(key) and PRINTABLE.fullmatch(value)
            if "cname" in attrs:
                assert VISIBLE.fullmatch(attrs["cname"]) and len(attrs["cname"]) <= MAX_CNAME
        assert len(m.ssrc_groups) <= sdp.MAX_SSRC_GROUPS
        for semantic, members in m.ssrc_groups:
            assert TOKEN.fullmatch(semantic)
            assert 1 <= len(members) <= sdp.MAX_GROUP_MEMBERS
            assert all(0 <= x <= MAX_U32 for x in members)
        assert m.msid == "" or all(TOKEN.fullmatch(p) for p in m.msid.split(" "))
        assert len(m.rids) <= sdp.MAX_RIDS
        assert all(sdp.RID.fullmatch(r) and len(r) <= sdp.MAX_RID for r in m.rids)


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
