"""Synthetic media patterns: round trips through numpy, real codecs, and an aiortc loopback."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import aioice.ice
import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.support.patterns import (
    MAX_COUNTER,
    MAX_SENDER,
    dominant_frequency,
    make_tone,
    make_video_frame,
    read_video_frame,
)
from tests.support.tracks import FrameChecker, PatternVideoTrack, ToneAudioTrack, ToneChecker

COUNTERS = [0, 1, 2, 255, 256, 4095, 12345, 32768, 43690, 21845, 65534, MAX_COUNTER]


def _resize_nearest(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    rows = np.arange(height) * rgb.shape[0] // height
    cols = np.arange(width) * rgb.shape[1] // width
    return rgb[rows][:, cols]


@pytest.mark.parametrize("sender_id", range(MAX_SENDER + 1))
def test_pattern_round_trip(sender_id: int) -> None:
    for counter in COUNTERS:
        frame = make_video_frame(sender_id, counter)
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        assert read_video_frame(frame) == (sender_id, counter)


def test_pattern_other_sizes_and_bad_arguments() -> None:
    assert read_video_frame(make_video_frame(5, 777, 640, 360)) == (5, 777)
    assert read_video_frame(make_video_frame(9, 4242, 160, 120)) == (9, 4242)
    with pytest.raises(ValueError):
        make_video_frame(16, 0)
    with pytest.raises(ValueError):
        make_video_frame(0, MAX_COUNTER + 1)


def test_noise_and_flat_frames_are_unreadable() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(20):
        noise = rng.integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
        assert read_video_frame(noise) is None
    assert read_video_frame(np.zeros((240, 320, 3), np.uint8)) is None
    assert read_video_frame(np.full((240, 320, 3), 255, np.uint8)) is None


def _codec_round_trip(encoder: str, decoder: str, options: dict[str, str]) -> list[np.ndarray]:
    """Encode 30 pattern frames (sender changes every frame: worst case) and decode them."""
    enc = av.CodecContext.create(encoder, "w")
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.bit_rate = 500_000
    enc.time_base = Fraction(1, 30)
    enc.framerate = Fraction(30)
    enc.options = options
    dec = av.CodecContext.create(decoder, "r")
    packets = []
    for i in range(30):
        rgb = make_video_frame(i % 16, 1000 + 37 * i)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, enc.time_base
        packets += enc.encode(frame)
    packets += enc.encode(None)
    decoded = [f for p in packets for f in dec.decode(p)] + list(dec.decode(None))
    return [f.to_ndarray(format="rgb24") for f in decoded]


@pytest.mark.parametrize(
    ("encoder", "decoder", "options"),
    [
        ("libvpx", "vp8", {"deadline": "realtime", "cpu-used": "8"}),
        ("libx264", "h264", {"preset": "ultrafast", "tune": "zerolatency"}),
    ],
)
def test_pattern_survives_codec(encoder: str, decoder: str, options: dict[str, str]) -> None:
    images = _codec_round_trip(encoder, decoder, options)
    assert len(images) == 30
    # The first frame is a keyframe from nothing; tolerate it, require every later one.
    for i, rgb in enumerate(images[1:], start=1):
        assert read_video_frame(rgb) == (i % 16, 1000 + 37 * i), f"frame {i}"
        # Decoders may hand a scaled picture to the application: relative layout still reads.
        for width, height in [(160, 120), (640, 480)]:
            scaled = _resize_nearest(rgb, width, height)
            assert read_video_frame(scaled) == (i % 16, 1000 + 37 * i), f"frame {i} {width}"


def test_tone_continuous_phase() -> None:
    whole = make_tone(440, samples=4800)
    parts = np.concatenate([make_tone(440, start_sample=s) for s in range(0, 4800, 960)])
    assert np.array_equal(whole, parts)
    assert whole.dtype == np.int16


@pytest.mark.parametrize("freq", [440.0, 660.0, 880.0, 1234.5])
def test_dominant_frequency_raw(freq: float) -> None:
    mono = make_tone(freq, samples=48000)
    assert abs(dominant_frequency(mono) - freq) < 1
    stereo = np.repeat(mono, 2)  # interleaved L R L R
    assert abs(dominant_frequency(stereo, channels=2) - freq) < 1


@pytest.mark.parametrize("freq", [440.0, 660.0, 880.0])
def test_tone_survives_opus(freq: float) -> None:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.bit_rate = 32000
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate, dec.layout, dec.format = 48000, "stereo", "s16"
    decoded = []
    for i in range(75):  # 1.5 s of 20 ms frames
        frame = av.AudioFrame.from_ndarray(
            make_tone(freq, start_sample=960 * i).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts, frame.time_base = 48000, 960 * i, Fraction(1, 48000)
        for packet in enc.encode(frame):
            decoded += [f.to_ndarray().reshape(-1) for f in dec.decode(packet)]
    channels = 2 if dec.layout.name == "stereo" else 1
    samples = np.concatenate(decoded)[int(0.3 * 48000) * channels :]  # skip decoder ramp-up
    assert len(samples) >= 48000 * channels
    assert abs(dominant_frequency(samples, channels=channels) - freq) < 10


async def _connect(sender: RTCPeerConnection, receiver: RTCPeerConnection) -> None:
    """Offer/answer between two in-process peers (candidates gathered in setLocalDescription)."""
    await sender.setLocalDescription(await sender.createOffer())
    offer = sender.localDescription
    await receiver.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type=offer.type))
    await receiver.setLocalDescription(await receiver.createAnswer())
    answer = receiver.localDescription
    await sender.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type=answer.type))


async def test_tracks_over_loopback_peer_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice leaves 127.0.0.1 out of the host candidates, but both peers live on this machine,
    # so they reach each other through the network card's address without any server. On a
    # machine with only loopback there would be no candidate at all: hand aioice 127.0.0.1.
    if not aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False):
        monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *_a, **_k: ["127.0.0.1"])
    config = RTCConfiguration(iceServers=[])
    sender, receiver = RTCPeerConnection(config), RTCPeerConnection(config)
    video, audio = PatternVideoTrack(3), ToneAudioTrack(660)
    frames, tones = FrameChecker(), ToneChecker()
    tasks: list[asyncio.Task[None]] = []

    @receiver.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        checker = frames if track.kind == "video" else tones
        tasks.append(asyncio.ensure_future(checker.run(track)))

    try:
        sender.addTrack(video)
        sender.addTrack(audio)
        await _connect(sender, receiver)
        stats = await frames.wait_for(3, count=20, timeout=20)
        assert frames.sender_ids == {3}
        assert stats.last_counter is not None and stats.first_counter is not None
        assert stats.last_counter > stats.first_counter
        freq = await tones.wait_for_frequency(660, tolerance_hz=20, seconds=1.0, timeout=20)
        assert abs(freq - 660) <= 20
        print(f"video: {frames.describe()}\naudio: {tones.describe()}")
    finally:
        video.stop()
        audio.stop()
        await sender.close()
        await receiver.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
