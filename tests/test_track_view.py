"""setTrackView: a tile the subscriber does not show gets nothing; shown again, its picture
comes back intact on a keyframe. The sound of that participant never stops."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.client import RequestFailed
from tests.test_meeting import bot


async def video_sent_to(server, subscriber_id: str) -> tuple[bool, int]:
    """(paused, packets sent) of the video consumer on the subscriber's connection."""
    session = next(p for p in server.state.sessions if p.id == subscriber_id)
    dump = await server.state.media.dump()
    (consumer,) = [c for c in dump.consumers
                   if c.kind == "video" and c.transport_id == session.subscribe_transport]
    return consumer.paused, consumer.packets


async def test_hidden_tile_gets_nothing_and_comes_back(server) -> None:
    await server.create_room("tiles")
    async with bot(server, "tiles", 1) as rep, bot(server, "tiles", 2) as doctor:
        video, tone = await doctor.watch(rep)
        await video.wait_for(1, 10, timeout=20)
        track = await doctor.client.tracks_of(rep.client.self_id, "video")

        await doctor.client.request("setTrackView", {"trackId": track, "visible": False,
                                                     "width": 320, "height": 180})
        paused, sent = await video_sent_to(server, doctor.client.self_id)
        assert paused
        heard = tone.frames_received
        await rep.client.request("ping")  # forwarding had a round trip to stop
        await asyncio.sleep(0.5)  # a window in which a shown tile gets ~40 packets
        assert (await video_sent_to(server, doctor.client.self_id))[1] - sent <= 2
        assert tone.frames_received > heard  # the sound goes on

        await doctor.client.request("setTrackView", {"trackId": track, "visible": True,
                                                     "width": 320, "height": 180})
        assert not (await video_sent_to(server, doctor.client.self_id))[0]
        before = video.senders[1].readable
        await video.wait_for(1, before + 15, timeout=20)  # intact frames again
        assert video.sender_ids == {1}


async def test_views_of_what_has_no_picture_are_refused(server) -> None:
    await server.create_room("tiles2")
    async with bot(server, "tiles2", 1) as rep, bot(server, "tiles2", 2) as doctor:
        audio = await doctor.client.tracks_of(rep.client.self_id, "audio")
        with pytest.raises(RequestFailed, match="bad_request"):
            await doctor.client.request("setTrackView", {"trackId": audio, "visible": False})
        with pytest.raises(RequestFailed, match="not_found"):
            await doctor.client.request("setTrackView", {"trackId": "t-nope", "visible": False})
        with pytest.raises(RequestFailed, match="bad_request"):
            await doctor.client.request("setTrackView", {"trackId": audio, "visible": True,
                                                         "width": -1})
