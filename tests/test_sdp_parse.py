"""SDP parsing, remote transport parameters and malformed input (incl. hypothesis fuzzing)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaserver.rtp.packet import EXT_AUDIO_LEVEL, EXT_TRANSPORT_CC
from signaling import sdp
from signaling.sdp import SdpError
from tests.support.sdp_samples import (
    CHROME_OFFER,
    CNAME,
    INFO,
    RTX_SSRC,
    STREAM,
    VIDEO_SSRC,
)

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
        "a=ice-ufrag:sess", "a=ice-pwd:sessionpassword", "a=fingerprint:SHA-256 ab:cd",
        "a=setup:active",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=mid:a", "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96", "a=mid:v", "a=ice-ufrag:own", "a=setup:passive",
    ]) + "\r\n"
    audio, video = sdp.parse(text).media
    assert (audio.ice_ufrag, audio.ice_pwd, audio.setup) == ("sess", "sessionpassword", "active")
    assert audio.fingerprints == [("sha-256", "AB:CD")]
    assert (video.ice_ufrag, video.setup) == ("own", "passive")


def test_parse_accepts_lf_line_endings() -> None:
    session = sdp.parse(CHROME_OFFER.replace("\r\n", "\n"))
    assert [m.mid for m in session.media] == ["0", "1"]


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


def test_oversized_sdp_raises_sdp_error() -> None:
    text = CHROME_OFFER + "a=x-padding:" + "x" * (64 * 1024) + "\r\n"
    with pytest.raises(SdpError):
        sdp.parse(text)


def test_non_string_sdp_raises_sdp_error() -> None:
    with pytest.raises(SdpError):
        sdp.parse(CHROME_OFFER.encode())  # type: ignore[arg-type]


def test_sdp_error_is_value_error() -> None:
    assert issubclass(SdpError, ValueError)


def test_publish_answer_with_unicode_digit_format_raises_only_sdp_error() -> None:
    # '\u00b2'.isdigit() is True but int('\u00b2') fails; the formats come from the client.
    offer = CHROME_OFFER.replace("UDP/TLS/RTP/SAVPF 96 97", "UDP/TLS/RTP/SAVPF \u00b2 96 97")
    session = sdp.parse(offer)
    try:
        _, media = sdp.publish_answer(session, INFO)
    except SdpError:
        return
    assert [m.codec.name for m in media] == ["opus", "VP8"]


def check_only_sdp_errors(text: str) -> None:
    """parse and what the server does next with a publish offer raise only SdpError."""
    try:
        session = sdp.parse(text)
    except SdpError:
        return
    try:
        sdp.remote_params(session, is_offer=True)
    except SdpError:
        pass
    try:
        answer, _ = sdp.publish_answer(session, INFO)
    except SdpError:
        return
    sdp.parse(answer)


@given(st.text(max_size=400))
def test_random_text_raises_only_sdp_error(text: str) -> None:
    check_only_sdp_errors(text)
    check_only_sdp_errors("v=0\r\n" + text)


CHROME_LINES = CHROME_OFFER.split("\r\n")
TOKEN = st.text(max_size=12) | st.sampled_from(
    ["", "0", "-1", "96", "65536", "x", ":", "/", " ", "=", "apt=", "99999999999999999999"]
)


@st.composite
def mutated_chrome_offer(draw: st.DrawFn) -> str:
    lines = list(CHROME_LINES)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "truncate", "token",
                                   "insert"]))
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
            tokens[j] = draw(TOKEN)
            lines[i] = " ".join(tokens).replace(" : ", ":").replace(" / ", "/")
        elif op == "insert" and i > 0:
            prefix = draw(st.sampled_from(["m=", "a=rtpmap:", "a=fmtp:", "a=rtcp-fb:",
                                           "a=extmap:", "a=ssrc:", "a=ssrc-group:", "a=rid:",
                                           "a=fingerprint:", "a=setup:", "a=mid:"]))
            lines.insert(i, prefix + draw(st.text(max_size=30)))
    return "\r\n".join(lines)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_chrome_offer())
def test_mutated_chrome_offer_raises_only_sdp_error(text: str) -> None:
    check_only_sdp_errors(text)
