"""The server's SDP answers and offers: publish answers to Chrome and aiortc, subscribe offers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from mediaserver.params import Codec, IceCandidate, TransportInfo
from mediaserver.rtp.packet import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_TRANSPORT_CC,
)
from signaling import sdp
from signaling.sdp import Slot
from tests.support.sdp_samples import (
    AUDIO_SSRC,
    CHROME_OFFER,
    CNAME,
    FINGERPRINT,
    INFO,
    RTX_SSRC,
    VIDEO_SSRC,
)

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
    assert "a=rtcp-fb:96 transport-cc" in feedback  # we send the publisher feedback


def test_publish_answer_extension_ids_as_offered_with_transport_cc() -> None:
    answer, _ = chrome_answer()
    audio, video = sections(answer)
    audio_ext = sorted(line for line in audio if line.startswith("a=extmap:"))
    video_ext = sorted(line for line in video if line.startswith("a=extmap:"))
    assert audio_ext == sorted([
        f"a=extmap:1 {EXT_AUDIO_LEVEL}", f"a=extmap:2 {EXT_ABS_SEND_TIME}",
        f"a=extmap:3 {EXT_TRANSPORT_CC}", f"a=extmap:4 {EXT_MID}",
    ])
    assert video_ext == sorted([f"a=extmap:2 {EXT_ABS_SEND_TIME}",
                                f"a=extmap:3 {EXT_TRANSPORT_CC}", f"a=extmap:4 {EXT_MID}"])


def test_publish_answer_transport_cc_needs_both_extension_and_feedback() -> None:
    # an offer with the extension but no transport-cc feedback: neither is answered
    offer = sdp.parse(CHROME_OFFER.replace("a=rtcp-fb:96 transport-cc\r\n", "")
                      .replace("a=rtcp-fb:111 transport-cc\r\n", ""))
    answer, media = sdp.publish_answer(offer, INFO)
    assert EXT_TRANSPORT_CC not in answer and "transport-cc" not in answer
    assert not any(m.codec.transport_cc or EXT_TRANSPORT_CC in m.extensions for m in media)


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
    assert video.codec.transport_cc and audio.codec.transport_cc
    assert video.extensions == {EXT_ABS_SEND_TIME: 2, EXT_TRANSPORT_CC: 3, EXT_MID: 4}
    assert audio.extensions == {EXT_AUDIO_LEVEL: 1, EXT_ABS_SEND_TIME: 2, EXT_TRANSPORT_CC: 3,
                                EXT_MID: 4}


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
