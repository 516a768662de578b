"""Recorder building blocks: depacketizers, jitter buffer, clocks, playlist, mixing, layout,
the control socket."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

from mediaserver.rpc import MAX_PENDING, RpcClient, RpcError
from recorder.composite import MixBuffer
from recorder.depacketize import (
    H264Depacketizer,
    OpusDepacketizer,
    Vp8Depacketizer,
    opus_samples,
    vp8_dimensions,
)
from recorder.font import text_mask
from recorder.hls import Playlist, Segment
from recorder.jitter import JitterBuffer
from recorder.layout import GRID, SPEAKER, Painter, SpeakerTracker, TileView, cells, yuv_planes
from recorder.service import RecorderService
from recorder.sync import GroupClock, TrackClock
from tests.support.recorder_media import Participant, h264_payloads, vp8_payloads

SPS = bytes([0x67, 0x42, 0xC0, 0x1E, 0xDA])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65]) + bytes(range(1, 200)) * 20
SLICE = bytes([0x41, 0x9A, 0x02, 0x03])


# ---- depacketizers ---------------------------------------------------------------------------


def test_vp8_frame_from_packets_and_keyframe_flag() -> None:
    key = bytes([0x50, 0x01, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]) + b"k" * 3000
    payloads = vp8_payloads(key, 300)
    assert len(payloads) == 3
    frame = Vp8Depacketizer().depacketize(payloads, 1234)
    assert frame is not None and frame.data == key and frame.keyframe and frame.timestamp == 1234
    assert vp8_dimensions(frame.data) == (320, 240)
    inter = bytes([0x51]) + b"i" * 50  # P bit set: inter frame
    frame = Vp8Depacketizer().depacketize(vp8_payloads(inter, 301), 1)
    assert frame is not None and not frame.keyframe


def test_vp8_frame_without_its_first_packet_is_refused() -> None:
    payloads = vp8_payloads(b"\x50" + b"x" * 3000, 7)
    dep = Vp8Depacketizer()
    assert dep.starts_frame(payloads[0]) and not dep.starts_frame(payloads[1])
    assert dep.depacketize(payloads[1:], 0) is None


def test_h264_stap_a_fu_a_single_to_annex_b() -> None:
    au = b"".join(b"\x00\x00\x00\x01" + n for n in (SPS, PPS, IDR))
    payloads = h264_payloads(au)
    assert payloads[0][0] & 0x1F == 24 and payloads[1][0] & 0x1F == 28  # STAP-A, FU-A
    dep = H264Depacketizer()
    assert dep.starts_frame(payloads[0]) and not dep.starts_frame(payloads[1])
    frame = dep.depacketize(payloads, 9)
    assert frame is not None and frame.keyframe and frame.data == au
    # A later IDR without parameter sets gets the kept SPS/PPS in front.
    frame = dep.depacketize(h264_payloads(b"\x00\x00\x00\x01" + IDR), 10)
    assert frame is not None and frame.keyframe and frame.data == au
    frame = dep.depacketize([SLICE], 11)
    assert frame is not None and not frame.keyframe and frame.data == b"\x00\x00\x00\x01" + SLICE


def test_h264_damaged_fragments_are_refused() -> None:
    fu = h264_payloads(b"\x00\x00\x00\x01" + IDR)
    assert len(fu) >= 3
    dep = H264Depacketizer()
    assert dep.depacketize(fu[1:], 0) is None  # no start fragment
    assert dep.depacketize(fu[:-1], 0) is None  # no end fragment
    assert dep.depacketize([b"\x18\x00\x09" + SPS], 0) is None  # STAP-A size beyond payload
    # An IDR without any parameter set known cannot be a usable key frame.
    frame = H264Depacketizer().depacketize(fu, 0)
    assert frame is not None and not frame.keyframe


def test_opus_frames_and_durations() -> None:
    assert opus_samples(bytes([0xF8, 1, 2])) == 960  # config 31 (CELT FB 20 ms), code 0
    assert opus_samples(bytes([0x09])) == 1920  # config 1 (SILK NB 20 ms), code 1: 2 frames
    assert opus_samples(bytes([0x03, 0x03])) == 480 * 3  # config 0 (10 ms), code 3: 3 frames
    frame = OpusDepacketizer().depacketize([bytes([0xF8, 9])], 5)
    assert frame is not None and frame.keyframe and frame.duration == 960


# ---- jitter buffer ---------------------------------------------------------------------------


class Feed:
    """Real VP8 frames of a pattern source, packetized, with a recording jitter buffer."""

    def __init__(self, frames: int = 12, start_seq: int = 100, max_delay: float = 0.15) -> None:
        p = Participant(0, "A", 10.0)
        p.video.seq = start_seq
        self.packets: list[tuple[int, int, bool, bytes]] = []
        self.frame_of: list[int] = []
        for i in range(frames):
            for data in p.video_packets(i):
                self.packets.append((int.from_bytes(data[2:4], "big"),
                                     int.from_bytes(data[4:8], "big"), bool(data[1] & 0x80),
                                     data[12:]))
                self.frame_of.append(i)
            if i == 0:
                p.force_key = False
        self.out: list = []
        self.nacks: list[list[int]] = []
        self.plis = 0
        self.jb = JitterBuffer(Vp8Depacketizer(), self.out.append, self.nacks.append,
                               self._pli, max_delay=max_delay)

    def _pli(self) -> None:
        self.plis += 1

    def push(self, i: int, now: float) -> None:
        seq, ts, marker, payload = self.packets[i]
        self.jb.push(seq, ts, marker, payload, now)


def test_jitter_in_order_start_asks_for_keyframe() -> None:
    f = Feed()
    for i in range(len(f.packets)):
        f.push(i, i * 0.01)
    assert f.plis == 1  # at the start
    assert len(f.out) == 12 and f.out[0].keyframe
    assert [fr.timestamp for fr in f.out] == sorted({p[1] for p in f.packets})


def test_jitter_reorders() -> None:
    f = Feed()
    order = list(range(len(f.packets)))
    for k in range(1, len(order) - 1, 3):
        order[k], order[k + 1] = order[k + 1], order[k]
    for n, i in enumerate(order):
        f.push(i, n * 0.01)
    assert len(f.out) == 12 and f.jb.stats.dropped_frames == 0


def test_jitter_loss_repaired_by_retransmission() -> None:
    f = Feed()
    lost = len(f.packets) // 2
    for i in range(len(f.packets)):
        if i != lost:
            f.push(i, i * 0.01)
        if i == lost + 2:
            assert f.nacks and f.packets[lost][0] in f.nacks[0]
            f.push(lost, i * 0.01 + 0.02)  # the retransmission, within the wait
    assert len(f.out) == 12 and f.jb.stats.dropped_frames == 0 and f.plis == 1


def test_jitter_unrepaired_loss_drops_until_keyframe_and_asks_pli() -> None:
    f = Feed(frames=20)
    lost = f.frame_of.index(5)
    now = 0.0
    for i in range(len(f.packets)):
        if i != lost:
            f.push(i, now)
        now += 0.03
        f.jb.poll(now)
    assert f.nacks and f.plis >= 2  # start, then after giving up
    assert [f.out[k].timestamp for k in range(5)] == [f.packets[f.frame_of.index(k)][1]
                                                      for k in range(5)]
    assert len(f.out) == 5  # nothing after the hole: no key frame came
    assert f.jb.waiting_keyframe


def test_jitter_sequence_wrap_around() -> None:
    f = Feed(start_seq=65530)
    seqs = [p[0] for p in f.packets]
    assert 65535 in seqs and 0 in seqs
    order = list(range(len(f.packets)))
    wrap = seqs.index(0)
    order[wrap - 1], order[wrap] = order[wrap], order[wrap - 1]
    for n, i in enumerate(order):
        f.push(i, n * 0.01)
    assert len(f.out) == 12 and f.jb.stats.dropped_frames == 0


def test_jitter_waits_for_keyframe_when_stream_starts_mid_gop() -> None:
    f = Feed(frames=8)
    f.jb.poll(0.0)
    assert f.plis == 0  # nobody to ask before the first packet
    first_inter = f.frame_of.index(1)
    for i in range(first_inter, len(f.packets)):
        f.push(i, i * 0.01)
    assert not f.out and f.plis == 1 and f.jb.waiting_keyframe


def test_jitter_sender_restart_and_stray_old_packet() -> None:
    out: list = []
    jb = JitterBuffer(OpusDepacketizer(), out.append)
    for k in range(3000):
        jb.push(k & 0xFFFF, k * 960, False, bytes([0xF8, 1]), k * 0.02)
    jb.push(5, 0, False, bytes([0xF8, 2]), 60.0)  # one stray old packet: ignored
    assert len(out) == 3000 and jb.stats.late == 1
    for k in range(20):  # the sender restarted its sequence numbers lower
        jb.push(100 + k, 7 + k * 960, False, bytes([0xF8, 3]), 61.0 + k * 0.02)
    assert len(out) > 3000 and out[-1].data[1] == 3


def test_jitter_audio_loss_skips_without_keyframe() -> None:
    out: list = []
    jb = JitterBuffer(OpusDepacketizer(), out.append, max_delay=0.1)
    for k in range(10):
        if k != 4:
            jb.push(500 + k, k * 960, False, bytes([0xF8, k]), k * 0.02)
    jb.poll(1.0)
    assert [fr.data[1] for fr in out] == [0, 1, 2, 3, 5, 6, 7, 8, 9]


# ---- clocks ----------------------------------------------------------------------------------


def test_sender_reports_line_up_a_participants_tracks() -> None:
    group = GroupClock()
    video, audio = TrackClock(90000, group), TrackClock(48000, group)
    # The sender's clock is 100 s off ours; video arrived 0.05 s after its capture.
    ntp0 = 5000.0
    assert video.time_of(1000, 1000.05) == pytest.approx(1000.05)  # before SR: arrival
    video.on_sender_report(ntp0, 1000, 1000.06)
    audio.on_sender_report(ntp0 + 0.5, 7000 + 24000, 1000.6)
    # The same capture instant on both tracks maps to the same local time.
    t_video = video.time_of(1000 + 90000 * 2, 0.0)
    t_audio = audio.time_of(7000 + 48000 * 2, 0.0)
    assert t_video == pytest.approx(t_audio, abs=1e-6)
    assert t_video == pytest.approx(1002.05, abs=1e-6)  # continuous with the pre-SR mapping
    assert video.time_of((1000 - 90000) & 0xFFFFFFFF, 0.0) == pytest.approx(999.05)


def test_rtp_timestamp_wrap() -> None:
    clock = TrackClock(90000, GroupClock())
    clock.on_sender_report(10.0, 0xFFFFFF00, 50.0)
    assert clock.time_of(0x100, 0.0) - clock.time_of(0xFFFFFF00, 0.0) == pytest.approx(
        0x200 / 90000)


# ---- playlist, mixing, layout ----------------------------------------------------------------


def test_playlist_round_trip_and_discontinuity() -> None:
    pl = Playlist(2)
    pl.segments = [Segment("seg_00000.m4s", 2.0, 1000.0, "init_0.mp4"),
                   Segment("seg_00001.m4s", 2.0, 1002.0),
                   Segment("seg_00002.m4s", 1.5, 1100.0, "init_1.mp4", True)]
    text = pl.render()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text
    assert text.count("#EXT-X-PROGRAM-DATE-TIME") == 3 and "#EXT-X-DISCONTINUITY" in text
    back = Playlist.parse(text)
    assert back.segments == pl.segments
    pl.ended = True
    assert pl.render().startswith(text) and pl.render().endswith("#EXT-X-ENDLIST\n")


def test_mix_sums_with_clipping_and_drops_the_past() -> None:
    mix = MixBuffer(capacity=100)
    mix.add(0, np.full((2, 50), 0.7, np.float32))
    mix.add(25, np.full((2, 300), 0.7, np.float32))  # overlaps, grows the buffer
    out = mix.take(60)
    assert out[0, 0] == pytest.approx(0.7) and out[0, 30] == 1.0  # clipped sum
    mix.add(10, np.full((2, 10), 0.5, np.float32))  # already encoded: ignored
    assert mix.take(300)[0, 0] == pytest.approx(0.7)


def test_layouts_fit_the_frame() -> None:
    for n in range(1, 10):
        for layout in ("grid", SPEAKER):
            boxes = cells(n, layout)
            assert len(boxes) == n
            for c in boxes:
                assert c.x >= 0 and c.x + c.w <= 1280 and c.y >= 0 and c.y + c.h <= 720
                assert c.x % 2 == c.y % 2 == c.w % 2 == c.h % 2 == 0
    big, *strip = cells(4, SPEAKER)
    assert big.w * big.h > 4 * max(c.w * c.h for c in strip)


def test_active_speaker_is_held() -> None:
    s = SpeakerTracker(hold=1.0)
    for k in range(150):
        t = k * 0.02
        s.add("a", 0.3 if t < 1.0 else 0.0, t)
        s.add("b", 0.0 if t < 1.0 else 0.3, t)
        who = s.speaker(t, ["a", "b"])
        if 0.2 < t < 1.5:
            assert who == "a"
    assert who == "b"


def test_font_renders_names() -> None:
    mask = text_mask("José", 2)
    assert mask.shape == (14, 4 * 12) and mask.any()


@pytest.mark.parametrize("height", [240, 358, 182])
def test_yuv_planes_match_pyav_for_any_even_height(height: int) -> None:
    """A 16:9 camera in a two-tile grid lands in a 636x358 box: H not a multiple of 4."""
    frame = av.VideoFrame.from_ndarray(
        np.random.default_rng(height).integers(0, 255, (height, 636, 3), dtype=np.uint8),
        format="rgb24").reformat(format="yuv420p")
    y, u, v = yuv_planes(frame.to_ndarray(), height)
    for plane, ours in zip(frame.planes, (y, u, v), strict=True):
        expected = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:, :plane.width]
        assert np.array_equal(ours, expected[:plane.height])


def test_painter_draws_16_9_cameras_in_a_two_tile_grid() -> None:
    camera = av.VideoFrame.from_ndarray(np.full((360, 640, 3), 200, np.uint8), format="rgb24")
    painter = Painter(1280, 720)
    canvas = painter.paint([TileView("Ann", camera), TileView("Bob", camera)], GRID)
    cell = cells(2, GRID)[0]
    # the middle of the first tile shows the bright camera, not the dark background
    assert canvas[cell.y + cell.h // 2, cell.x + cell.w // 2] > 150


# ---- control socket -------------------------------------------------------------------------


async def test_control_client_flooding_requests_is_answered_a_bounded_number_at_a_time(
        tmp_path: Path) -> None:
    """Lines of one client are answered concurrently, at most MAX_PENDING at a time: reading
    waits beyond that, so a flood of requests holds no unbounded set of tasks."""
    service = RecorderService("127.0.0.1", tmp_path / "recordings")
    running = peak = 0

    async def slow_ping() -> dict:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return {"pid": 1}

    service.op_ping = slow_ping  # type: ignore[method-assign]
    path = str(tmp_path / "control.sock")
    server = await service.rpc.serve(path)
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        n = 5 * MAX_PENDING
        writer.write(b"".join(json.dumps({"id": i, "method": "ping"}).encode() + b"\n"
                              for i in range(n)))
        answers = [json.loads(await asyncio.wait_for(reader.readline(), 10)) for _ in range(n)]
        assert sorted(a["id"] for a in answers) == list(range(n))
        assert all(a["result"] == {"pid": 1} for a in answers)
        assert 1 < peak <= MAX_PENDING
    finally:
        writer.close()
        server.close()


async def test_control_bad_requests_are_answered_and_the_recorder_keeps_serving(
        tmp_path: Path) -> None:
    """A line that is not JSON, an unknown method and params the method does not take (missing,
    unknown, of the wrong JSON type) get `bad_request`; a refused operation gets `recording`;
    the connection stays and the next request is answered."""
    service = RecorderService("127.0.0.1", tmp_path / "recordings")
    service.start_recovery()  # (nothing to recover) makes the recordings directory
    path = str(tmp_path / "control.sock")
    server = await service.rpc.serve(path)
    reader, writer = await asyncio.open_unix_connection(path)
    client = RpcClient()
    await client.connect(path)
    try:
        writer.write(b"{not json\n")
        reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert reply["id"] is None and reply["error"]["type"] == "bad_request"
        track = {"recording_id": "r1", "ssrc": 5, "kind": "video",
                 "codec": {"name": "VP8", "payload_type": 96, "clock_rate": 90000}}
        for method, params in [
                ("record", {}),  # unknown
                ("_handle", {}),  # no operation
                ("start", {}),  # recording_id missing
                ("start", {"recording_id": "r1", "colour": "red"}),  # unknown param
                ("start", {"recording_id": 7}),  # not a string
                ("start", {"recording_id": "r1", "low_latency": 1}),  # not a bool
                ("add_track", {**track, "ssrc": True}),  # a bool is no int
                ("add_track", {**track, "codec": "VP8"}),
                ("stop", {"recording_id": None})]:
            with pytest.raises(RpcError) as refused:
                await client.call(method, params, timeout=10)
            assert refused.value.type == "bad_request", (method, params, str(refused.value))
        with pytest.raises(RpcError) as refused:
            await client.call("stop", {"recording_id": "r1"}, timeout=10)
        assert refused.value.type == "recording" and "r1" in str(refused.value)
        with pytest.raises(RpcError) as refused:
            await client.call("start", {"recording_id": "../r1"}, timeout=10)
        assert refused.value.type == "recording"
        assert await client.call("list", timeout=10) == {"recordings": []}
        writer.write(json.dumps({"id": "after", "method": "ping"}).encode() + b"\n")
        reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert reply == {"id": "after", "result": {"pid": os.getpid()}}
    finally:
        await client.close()
        writer.close()
        server.close()
