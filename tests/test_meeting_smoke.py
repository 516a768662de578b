"""Two aiortc participants through the real server: video pattern and tone arrive intact."""

from __future__ import annotations

import asyncio

from tests.support.client import Client
from tests.support.tracks import FrameChecker, PatternVideoTrack, ToneAudioTrack


async def test_two_participants_exchange_media(server) -> None:
    await server.create_room("smoke")
    a = Client(server.base_url, server.token("smoke", "alice"))
    b = Client(server.base_url, server.token("smoke", "bob"))
    await a.connect()
    await b.connect()
    try:
        await a.join()
        await b.join()
        await a.publish(PatternVideoTrack(1), ToneAudioTrack(440))
        video_id = await b.tracks_of(a.self_id, "video")
        track = await b.remote_track(video_id)
        checker = FrameChecker()
        task = asyncio.create_task(checker.run(track))
        await checker.wait_for(1, 20, timeout=15)
        task.cancel()
    finally:
        await a.close()
        await b.close()
