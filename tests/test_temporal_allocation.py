"""The allocator thins a VP8 video's frame rate before it holds it or overloads the link
(allocation.TEMPORAL_SHARES): a budget short of the lowest encoding gives TL0+TL1 (half the
frame rate, 60% of the encoding's bitrate, libwebrtc's share) or TL0 alone (a quarter, 40%).

A real Worker with plaintext "SRTP" (tests/test_allocation.py's Room); the publisher's packets
carry RFC 7741 descriptors with libwebrtc's TIDs 0 2 1 2 (tests/test_vp8_temporal.py), and what
the subscriber receives is read back: which TIDs, one continuous stream."""

from __future__ import annotations

from mediaserver import allocator
from mediaserver.allocator import Demand, Layer
from tests.test_allocation import Room
from tests.test_simulcast import SSRCS
from tests.test_vp8_temporal import PATTERN, Encoding, assert_one_stream, received

AUDIO = 40_000  # Room.second_of_media: audio at 40 kbit/s, the lowest encoding at 150 kbit/s


def layered_room() -> tuple[Room, Encoding]:
    room = Room()
    room.second_of_media()
    room.allocate(300_000)
    low = Encoding(room.video, 0, pid=10, tl0=0, seq=room.seq[SSRCS[0]])
    low.frame(0, key=True)
    for i in range(8):  # the consumer learns that the encoding has temporal layers
        low.frame(PATTERN[i % 4])
    return room, low


def tids_of_eight_frames(room: Room, low: Encoding, sync: bool = False) -> list[int]:
    """The TIDs of the packets the subscriber gets of 8 frames (2 packets each); `sync`: the
    frames carry Y, where the filter may move up a layer."""
    sub = room.subs[0]
    sub.rtp.clear()
    for i in range(8):
        low.frame(PATTERN[i % 4], sync=sync)
    got = received(sub)
    assert_one_stream(got)
    return [tid for *_, tid, _ in got]


async def test_a_budget_between_the_shares_gets_half_the_frame_rate() -> None:
    room, low = layered_room()
    video = room.video_consumers[0]
    room.allocate(AUDIO + 100_000)  # 67% of the lowest encoding: TL0+TL1 (60%) fits
    assert not video.paused and video.target_spatial_layer == 0
    assert video.temporal is not None and video.temporal.target == 1
    assert room.dump(video).target_temporal_layer == 1
    # frames of TIDs 0 2 1 2 0 2 1 2: the 0s and 1s (two packets each)
    assert tids_of_eight_frames(room, low) == [0, 0, 1, 1, 0, 0, 1, 1]

    rate = room.video.streams[0].bitrate  # measured: ~145 kbit/s
    tl0, tl1 = int(rate * 0.4), int(rate * 0.6) - int(rate * 0.4)
    room.allocate(AUDIO + tl0 + tl1 // 2)  # TL0 alone
    assert video.temporal.target == 0
    assert tids_of_eight_frames(room, low) == [0, 0, 0, 0]
    room.allocate(AUDIO + tl0 + int(tl1 * 1.05))  # TL1 again only with 10% to spare
    assert video.temporal.target == 0
    room.allocate(AUDIO + tl0 + int(tl1 * 1.15))
    assert video.temporal.target == 1
    room.allocate(AUDIO + tl0 + int(tl1 * 0.85))  # kept while 80% of it fits
    assert video.temporal.target == 1

    room.allocate(AUDIO + int(rate * 1.15))  # the whole encoding with headroom: all frames
    assert video.temporal.target == 3 and not video.paused
    # up one layer at each frame with Y (from TL0: it was sent last), then every frame
    assert tids_of_eight_frames(room, low, sync=True) == [0, 0, 1, 1, 2, 2, 0, 0, 2, 2, 1, 1,
                                                          2, 2]


async def test_without_temporal_layers_the_lowest_layer_is_kept_at_half_its_cost() -> None:
    """What a video with no TIDs gets (H.264, VP8 without layers): all of its lowest layer
    while half of it fits, rather than nothing (allocation.KEEP_LOWEST)."""
    room = Room()
    room.second_of_media()
    room.allocate(300_000)
    video = room.video_consumers[0]
    room.allocate(AUDIO + 100_000)
    assert not video.paused and video.target_spatial_layer == 0
    assert video.temporal is None or video.temporal.target == 3


def test_a_thinnable_video_is_not_given_its_whole_lowest_layer_on_half_a_budget() -> None:
    """The pure allocator: keep_lowest applies to videos that cannot be thinned only."""
    layers = (Layer(320, 180, 150_000), Layer(640, 360, 500_000))
    for thin, expect in ((False, 0), (True, None)):
        got = allocator.allocate(100_000, [Demand("v", "video", layers, thinnable=thin)],
                                 keep_lowest=0.5)
        assert got.layer("v") == expect
