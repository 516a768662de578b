"""SDP parsing and the server's answers and offers: Chrome offer, aiortc both ways, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mediaserver.params import Codec, IceCandidate, TransportInfo
from mediaserver.rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_TRANSPORT_CC,
)
from signaling import sdp
from signaling.sdp import SdpError, Slot

FINGERPRINT = ":".join(f"{b:02X}" for b in range(0xA0, 0xC0))
INFO = TransportInfo("tr-1", "ufragX", "pwd" * 8, FINGERPRINT,
                     [IceCandidate("127.0.0.1", 40000)])

AUDIO_SSRC = 3735928559
VIDEO_SSRC = 1122334455
RTX_SSRC = 2233445566
CNAME = "4TOk42mSjXCkVIa6"
STREAM = "a7f1c5d2-stream"

# A Chrome 12x publish offer (camera + microphone, sendonly), trimmed of nothing important.
CHROME_OFFER = "\r\n".join([
    "v=0",
    "o=- 7614219274584779017 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=extmap-allow-mixed",
    f"a=msid-semantic: WMS {STREAM}",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Chr0",
    "a=ice-pwd:chromepasswordchrome123",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 0F:2A:4C:90:1B:33:7D:E2:84:56:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:"
    "12:34:56:78:9A:BC:DE:F0:12:34",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendonly",
    f"a=msid:{STREAM} audio-track-1",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=rtpmap:63 red/48000/2",
    "a=fmtp:63 111/111",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:13 CN/8000",
    "a=rtpmap:110 telephone-event/48000",
    "a=rtpmap:126 telephone-event/8000",
    f"a=ssrc:{AUDIO_SSRC} cname:{CNAME}",
    f"a=ssrc:{AUDIO_SSRC} msid:{STREAM} audio-track-1",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 102 103 104 105 106 107 108 109",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Chr0",
    "a=ice-pwd:chromepasswordchrome123",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 0F:2A:4C:90:1B:33:7D:E2:84:56:9A:BC:DE:F0:12:34:56:78:9A:BC:DE:F0:"
    "12:34:56:78:9A:BC:DE:F0:12:34",
    "a=setup:actpass",
    "a=mid:1",
    "a=extmap:14 urn:ietf:params:rtp-hdrext:toffset",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:13 urn:3gpp:video-orientation",
    "a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
    "a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
    "a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
    "a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "a=sendonly",
    f"a=msid:{STREAM} video-track-1",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 goog-remb",
    "a=rtcp-fb:96 transport-cc",
    "a=rtcp-fb:96 ccm fir",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rtpmap:98 VP9/90000",
    "a=rtcp-fb:98 goog-remb",
    "a=rtcp-fb:98 transport-cc",
    "a=rtcp-fb:98 ccm fir",
    "a=rtcp-fb:98 nack",
    "a=rtcp-fb:98 nack pli",
    "a=fmtp:98 profile-id=0",
    "a=rtpmap:99 rtx/90000",
    "a=fmtp:99 apt=98",
    "a=rtpmap:102 H264/90000",
    "a=rtcp-fb:102 goog-remb",
    "a=rtcp-fb:102 transport-cc",
    "a=rtcp-fb:102 ccm fir",
    "a=rtcp-fb:102 nack",
    "a=rtcp-fb:102 nack pli",
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
    "a=rtpmap:103 rtx/90000",
    "a=fmtp:103 apt=102",
    "a=rtpmap:104 H264/90000",
    "a=rtcp-fb:104 goog-remb",
    "a=rtcp-fb:104 transport-cc",
    "a=rtcp-fb:104 ccm fir",
    "a=rtcp-fb:104 nack",
    "a=rtcp-fb:104 nack pli",
    "a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f",
    "a=rtpmap:105 rtx/90000",
    "a=fmtp:105 apt=104",
    "a=rtpmap:106 H264/90000",
    "a=rtcp-fb:106 goog-remb",
    "a=rtcp-fb:106 transport-cc",
    "a=rtcp-fb:106 ccm fir",
    "a=rtcp-fb:106 nack",
    "a=rtcp-fb:106 nack pli",
    "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:107 rtx/90000",
    "a=fmtp:107 apt=106",
    "a=rtpmap:108 H264/90000",
    "a=rtcp-fb:108 goog-remb",
    "a=rtcp-fb:108 transport-cc",
    "a=rtcp-fb:108 ccm fir",
    "a=rtcp-fb:108 nack",
    "a=rtcp-fb:108 nack pli",
    "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
    "a=rtpmap:109 rtx/90000",
    "a=fmtp:109 apt=108",
    f"a=ssrc-group:FID {VIDEO_SSRC} {RTX_SSRC}",
    f"a=ssrc:{VIDEO_SSRC} cname:{CNAME}",
    f"a=ssrc:{VIDEO_SSRC} msid:{STREAM} video-track-1",
    f"a=ssrc:{RTX_SSRC} cname:{CNAME}",
    f"a=ssrc:{RTX_SSRC} msid:{STREAM} video-track-1",
]) + "\r\n"

VIDEO_START = CHROME_OFFER.index("m=video")


def video_only_with(pts: str, *keep: str) -> str:
    """The Chrome offer with the video m-line cut down to `pts` and the codec lines for `keep`."""
    head, video = CHROME_OFFER[:VIDEO_START], CHROME_OFFER[VIDEO_START:]
    lines = video.split("\r\n")
    out = []
    for line in lines:
        if line.startswith("m=video"):
            out.append(f"m=video 9 UDP/TLS/RTP/SAVPF {pts}")
        elif line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            if line.split(":", 1)[1].split()[0] in keep:
                out.append(line)
        else:
            out.append(line)
    return head + "\r\n".join(out)


def sections(text: str) -> list[list[str]]:
    """The answer's m-sections as lists of lines (session part dropped)."""
    result: list[list[str]] = []
    for line in text.split("\r\n"):
        if line.startswith("m="):
            result.append([line])
        elif result and line:
            result[-1].append(line)
    return result


def session_lines(text: str) -> list[str]:
    return text.split("\r\nm=")[0].split("\r\n")


@pytest.fixture
async def pc() -> AsyncIterator[RTCPeerConnection]:
    connection = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    yield connection
    await connection.close()


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


# --- publish_answer with the Chrome offer ----------------------------------------------------


def chrome_answer() -> tuple[str, list[sdp.PublishedMedia]]:
    return sdp.publish_answer(sdp.parse(CHROME_OFFER), INFO)


def test_publish_answer_is_ice_lite_with_bundle() -> None:
    answer, _ = chrome_answer()
    head = session_lines(answer)
    assert head[0] == "v=0"
    assert "a=ice-lite" in head
    assert "a=group:BUNDLE 0 1" in head


def test_publish_answer_keeps_mids_in_order_with_passive_recvonly() -> None:
    answer, _ = chrome_answer()
    secs = sections(answer)
    assert [s[0].split()[0] for s in secs] == ["m=audio", "m=video"]
    for mid, sec in zip(["0", "1"], secs, strict=True):
        assert f"a=mid:{mid}" in sec
        assert "a=setup:passive" in sec
        assert "a=recvonly" in sec
        assert "a=rtcp-mux" in sec
        assert "a=ice-ufrag:ufragX" in sec
        assert f"a=ice-pwd:{'pwd' * 8}" in sec
        assert f"a=fingerprint:sha-256 {FINGERPRINT}" in sec
        assert "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host" in sec


def test_publish_answer_audio_is_opus_only() -> None:
    answer, _ = chrome_answer()
    audio = sections(answer)[0]
    assert audio[0] == "m=audio 9 UDP/TLS/RTP/SAVPF 111"
    rtpmaps = [line for line in audio if line.startswith("a=rtpmap:")]
    assert rtpmaps == ["a=rtpmap:111 opus/48000/2"]
    assert "a=fmtp:111 minptime=10;useinbandfec=1" in audio


def test_publish_answer_video_is_vp8_with_rtx() -> None:
    answer, _ = chrome_answer()
    video = sections(answer)[1]
    assert video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 96 97"
    rtpmaps = [line for line in video if line.startswith("a=rtpmap:")]
    assert rtpmaps == ["a=rtpmap:96 VP8/90000", "a=rtpmap:97 rtx/90000"]
    assert "a=fmtp:97 apt=96" in video
    feedback = {line for line in video if line.startswith("a=rtcp-fb:")}
    assert {"a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 ccm fir"} <= feedback
    assert "a=rtcp-fb:96 transport-cc" not in feedback


def test_publish_answer_extension_ids_as_offered_without_transport_cc() -> None:
    answer, _ = chrome_answer()
    audio, video = sections(answer)
    audio_ext = sorted(line for line in audio if line.startswith("a=extmap:"))
    video_ext = sorted(line for line in video if line.startswith("a=extmap:"))
    assert audio_ext == sorted([
        f"a=extmap:1 {EXT_AUDIO_LEVEL}", f"a=extmap:2 {EXT_ABS_SEND_TIME}", f"a=extmap:4 {EXT_MID}",
    ])
    assert video_ext == sorted([f"a=extmap:2 {EXT_ABS_SEND_TIME}", f"a=extmap:4 {EXT_MID}"])
    assert EXT_TRANSPORT_CC not in answer


def test_publish_answer_published_media() -> None:
    _, media = chrome_answer()
    audio, video = media
    assert (audio.mid, audio.kind, audio.ssrc, audio.rtx_ssrc) == ("0", "audio", AUDIO_SSRC, None)
    assert (video.mid, video.kind, video.ssrc, video.rtx_ssrc) == ("1", "video", VIDEO_SSRC,
                                                                   RTX_SSRC)
    assert audio.cname == video.cname == CNAME
    assert audio.codec.name == "opus" and audio.codec.payload_type == 111
    assert audio.codec.channels == 2
    assert video.codec.name == "VP8" and video.codec.payload_type == 96
    assert video.codec.rtx_payload_type == 97
    assert video.codec.nack and video.codec.pli and video.codec.fir and video.codec.remb
    assert not video.codec.transport_cc
    assert video.extensions == {EXT_ABS_SEND_TIME: 2, EXT_MID: 4}
    assert audio.extensions == {EXT_AUDIO_LEVEL: 1, EXT_ABS_SEND_TIME: 2, EXT_MID: 4}


def test_publish_answer_parses_back() -> None:
    answer, _ = chrome_answer()
    session = sdp.parse(answer)
    assert session.bundle == ["0", "1"]
    assert [m.direction for m in session.media] == ["recvonly", "recvonly"]
    remote = sdp.remote_params(session, is_offer=False)
    assert remote.ice_ufrag == "ufragX"
    assert remote.fingerprints == [("sha-256", FINGERPRINT)]
    assert remote.dtls_role == "client"


def test_vp9_only_video_is_rejected() -> None:
    offer = video_only_with("98 99", "98", "99")
    answer, media = sdp.publish_answer(sdp.parse(offer), INFO)
    audio, video = sections(answer)
    assert video[0].split()[1] == "0"
    assert "a=mid:1" in video
    assert not any(line.startswith("a=candidate") for line in video)
    assert [m.mid for m in media] == ["0"]
    assert "a=group:BUNDLE 0" in session_lines(answer)
    assert audio[0].split()[1] != "0"


def test_h264_only_offer_picks_packetization_mode_1() -> None:
    offer = video_only_with("104 105 102 103 108 109", "102", "103", "104", "105", "108", "109")
    answer, media = sdp.publish_answer(sdp.parse(offer), INFO)
    video = sections(answer)[1]
    assert video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 102 103"
    assert "a=rtpmap:102 H264/90000" in video
    fmtp = next(line for line in video if line.startswith("a=fmtp:102 "))
    assert "packetization-mode=1" in fmtp
    assert "profile-level-id=42001f" in fmtp
    assert "a=fmtp:103 apt=102" in video
    assert media[1].codec.name == "H264"
    assert media[1].codec.payload_type == 102
    assert media[1].codec.rtx_payload_type == 103


def test_h264_packetization_mode_0_only_is_rejected() -> None:
    offer = video_only_with("104 105 108 109", "104", "105", "108", "109")
    answer, media = sdp.publish_answer(sdp.parse(offer), INFO)
    assert sections(answer)[1][0].split()[1] == "0"
    assert [m.kind for m in media] == ["audio"]


def test_recvonly_offer_section_is_rejected() -> None:
    offer = CHROME_OFFER.replace("a=sendonly", "a=recvonly")
    answer, media = sdp.publish_answer(sdp.parse(offer), INFO)
    assert media == []
    assert all(s[0].split()[1] == "0" for s in sections(answer))
    assert not any(line.startswith("a=group:BUNDLE") for line in session_lines(answer))


def test_data_channel_section_is_rejected() -> None:
    offer = CHROME_OFFER.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2") + "\r\n".join([
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0", "a=mid:2",
        "a=sctp-port:5000",
    ]) + "\r\n"
    answer, media = sdp.publish_answer(sdp.parse(offer), INFO)
    secs = sections(answer)
    assert secs[2][0] == "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"
    assert "a=group:BUNDLE 0 1" in session_lines(answer)
    assert len(media) == 2


def test_ipv6_candidate_uses_ip6_connection_line() -> None:
    info = TransportInfo("tr-2", "u6", "p" * 24, FINGERPRINT, [IceCandidate("2001:db8::1", 5000)])
    answer, _ = sdp.publish_answer(sdp.parse(CHROME_OFFER), info)
    assert "c=IN IP6 2001:db8::1" in sections(answer)[0]
    assert "a=candidate:1 1 udp 2130706431 2001:db8::1 5000 typ host" in sections(answer)[0]


# --- publish_answer with an aiortc offer -----------------------------------------------------


async def aiortc_offer(pc: RTCPeerConnection) -> str:
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def test_publish_answer_to_aiortc_offer(pc: RTCPeerConnection) -> None:
    text = await aiortc_offer(pc)
    offer = sdp.parse(text)
    answer, media = sdp.publish_answer(offer, INFO)
    assert [m.mid for m in media] == [m.mid for m in offer.media]
    audio, video = media
    assert audio.codec.name == "opus"
    assert video.codec.name == "VP8"
    offered_video = offer.media[1]
    fid = next(ssrcs for semantic, ssrcs in offered_video.ssrc_groups if semantic == "FID")
    assert (video.ssrc, video.rtx_ssrc) == tuple(fid)
    assert audio.ssrc == next(iter(offer.media[0].ssrcs))
    assert audio.cname == video.cname != ""
    assert video.codec.rtx_payload_type is not None
    assert video.extensions == {k: v for k, v in offered_video.extensions.items()
                                if k in (EXT_MID, EXT_ABS_SEND_TIME)}
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    assert pc.signalingState == "stable"
    assert [t.currentDirection for t in pc.getTransceivers()] == ["sendonly", "sendonly"]


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


# --- subscribe_offer / answered_slot ---------------------------------------------------------

VP8_SOURCE = Codec("VP8", 96, 90000, rtx_payload_type=97, nack=True, pli=True)
OPUS_SOURCE = Codec("opus", 109, 48000, channels=2, fmtp="minptime=10;useinbandfec=1")


def subscribe_slots() -> list[Slot]:
    return [
        Slot("0", "audio", track="mic-1", stream="alice", codec=sdp.subscriber_codec(OPUS_SOURCE),
             ssrc=1001, cname="alice-cname"),
        Slot("1", "video", track="cam-1", stream="alice", codec=sdp.subscriber_codec(VP8_SOURCE),
             ssrc=2001, rtx_ssrc=2002, cname="alice-cname"),
        Slot("2", "video"),  # an inactive slot left by a track that went away
        Slot("3", "audio"),
    ]


def test_subscriber_codec_renumbers_to_fixed_payload_types() -> None:
    vp8 = sdp.subscriber_codec(VP8_SOURCE)
    assert (vp8.payload_type, vp8.rtx_payload_type) == (96, 97)
    assert vp8.nack and vp8.pli and vp8.transport_cc
    opus = sdp.subscriber_codec(OPUS_SOURCE)
    assert (opus.payload_type, opus.channels, opus.rtx_payload_type) == (111, 2, None)
    h264 = sdp.subscriber_codec(Codec("H264", 125, 90000, fmtp="packetization-mode=1",
                                      rtx_payload_type=126))
    assert (h264.payload_type, h264.rtx_payload_type) == (102, 103)
    assert h264.fmtp == "packetization-mode=1"


def test_subscribe_offer_shape() -> None:
    text = sdp.subscribe_offer(subscribe_slots(), INFO)
    session = sdp.parse(text)
    assert session.bundle == ["0", "1", "2", "3"]
    assert [m.mid for m in session.media] == ["0", "1", "2", "3"]
    assert [m.direction for m in session.media] == ["sendonly", "sendonly", "inactive",
                                                    "inactive"]
    assert all(m.setup == "actpass" for m in session.media)
    video = session.media[1]
    assert video.ssrc_groups == [("FID", [2001, 2002])]
    assert video.ssrcs[2001]["cname"] == "alice-cname"
    assert video.msid == "alice cam-1"
    assert video.extensions == {EXT_ABS_SEND_TIME: 2, EXT_TRANSPORT_CC: 3, EXT_MID: 4}
    assert session.media[0].extensions[EXT_AUDIO_LEVEL] == 1
    assert "a=ice-lite" in session_lines(text)


async def test_aiortc_answers_subscribe_offer(pc: RTCPeerConnection) -> None:
    slots = subscribe_slots()
    offer = sdp.subscribe_offer(slots, INFO)
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    answer = await pc.createAnswer()
    assert answer is not None
    session = sdp.parse(answer.sdp)
    assert [m.mid for m in session.media] == ["0", "1", "2", "3"]
    results = [sdp.answered_slot(slot, m) for slot, m in zip(slots, session.media, strict=True)]
    audio, video, inactive_video, inactive_audio = results
    assert inactive_video is None and inactive_audio is None
    assert audio is not None and video is not None
    audio_codec, audio_ext = audio
    assert (audio_codec.name, audio_codec.payload_type, audio_codec.channels) == ("opus", 111, 2)
    assert audio_ext == {EXT_AUDIO_LEVEL: 1, EXT_MID: 4}
    video_codec, video_ext = video
    assert (video_codec.name, video_codec.payload_type) == ("VP8", 96)
    assert video_codec.rtx_payload_type == 97
    assert video_codec.nack and video_codec.pli
    assert not video_codec.transport_cc  # aiortc does not do transport-wide CC
    assert video_ext == {EXT_ABS_SEND_TIME: 2, EXT_MID: 4}
    remote = sdp.remote_params(session, is_offer=False)
    assert remote.dtls_role == "server"  # aiortc answers a=setup:active


def chrome_style_answer(extra_video: list[str], video_direction: str = "recvonly") -> str:
    common = ["a=ice-ufrag:ans1", "a=ice-pwd:answerpasswordanswer12",
              f"a=fingerprint:sha-256 {FINGERPRINT}", "a=setup:active", "a=rtcp-mux"]
    return "\r\n".join([
        "v=0", "o=- 5 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=mid:0", *common,
        f"a=extmap:1 {EXT_AUDIO_LEVEL}", f"a=extmap:3 {EXT_TRANSPORT_CC}", f"a=extmap:4 {EXT_MID}",
        "a=recvonly", "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97", "c=IN IP4 0.0.0.0", "a=mid:1", *common,
        f"a={video_direction}", "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 transport-cc",
        "a=rtcp-fb:96 ccm fir", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
        "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", *extra_video,
    ]) + "\r\n"


def test_answered_slot_from_chrome_style_answer() -> None:
    slots = subscribe_slots()
    answer = chrome_style_answer([
        f"a=extmap:2 {EXT_ABS_SEND_TIME}",
        f"a=extmap:3 {EXT_TRANSPORT_CC}",
        f"a=extmap:4 {EXT_MID}",
    ])
    media = sdp.parse(answer).media
    audio = sdp.answered_slot(slots[0], media[0])
    video = sdp.answered_slot(slots[1], media[1])
    assert audio is not None and video is not None
    assert audio[0].transport_cc
    assert audio[1] == {EXT_AUDIO_LEVEL: 1, EXT_TRANSPORT_CC: 3, EXT_MID: 4}
    codec, ext = video
    assert codec.nack and codec.pli and codec.fir and codec.transport_cc
    assert codec.rtx_payload_type == 97
    assert ext == {EXT_ABS_SEND_TIME: 2, EXT_TRANSPORT_CC: 3, EXT_MID: 4}


def test_answered_slot_drops_extensions_with_other_ids() -> None:
    slots = subscribe_slots()
    answer = chrome_style_answer([f"a=extmap:7 {EXT_ABS_SEND_TIME}", f"a=extmap:4 {EXT_MID}"])
    result = sdp.answered_slot(slots[1], sdp.parse(answer).media[1])
    assert result is not None
    assert result[1] == {EXT_MID: 4}


@pytest.mark.parametrize("direction", ["inactive", "sendonly"])
def test_answered_slot_none_when_not_receiving(direction: str) -> None:
    answer = chrome_style_answer([], video_direction=direction)
    assert sdp.answered_slot(subscribe_slots()[1], sdp.parse(answer).media[1]) is None


def test_answered_slot_none_when_rejected_or_codec_missing() -> None:
    slot = subscribe_slots()[1]
    rejected = chrome_style_answer([]).replace("m=video 9 ", "m=video 0 ")
    assert sdp.answered_slot(slot, sdp.parse(rejected).media[1]) is None
    no_vp8 = chrome_style_answer([]).replace("a=rtpmap:96 VP8/90000", "a=rtpmap:98 VP9/90000")
    assert sdp.answered_slot(slot, sdp.parse(no_vp8).media[1]) is None


def test_answered_slot_without_rtx_in_answer() -> None:
    answer = chrome_style_answer([]).replace("a=rtpmap:97 rtx/90000\r\n", "")
    result = sdp.answered_slot(subscribe_slots()[1], sdp.parse(answer).media[1])
    assert result is not None
    assert result[0].rtx_payload_type is None


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
