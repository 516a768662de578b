"""A dropped participant keeps their place for the grace period (docs/protocol.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.client import Client
from tests.support.server import running_server
from tests.support.tracks import FrameChecker, PatternVideoTrack


async def test_reconnect_within_grace_restores_place(server) -> None:
    await server.create_room("fixed")
    rep = Client(server.base_url, server.token("fixed", "rep"))
    doc = Client(server.base_url, server.token("fixed", "doc"))
    tasks: list[asyncio.Task] = []
    doc2 = None
    try:
        for c in (rep, doc):
            await c.connect()
            await c.join()
        await rep.publish(PatternVideoTrack(1))
        await doc.publish(PatternVideoTrack(2))
        old_video = await rep.tracks_of(doc.self_id, "video")
        await doc.request("raiseHand", {"raised": True})
        last_chat = (await doc.request("chat", {"text": "back in a minute"}))["message"]["id"]
        doc_id = doc.self_id

        await doc.drop()  # laptop closed: no leave, socket and UDP gone
        await rep.request("chat", {"text": "while you were away"})
        await rep.request("chat", {"text": "see slide 4"})
        assert doc_id in {p.id for p in server.state.rooms.rooms["fixed"].participants.values()}

        doc2 = Client(server.base_url, server.token("fixed", "doc"))
        await doc2.connect()
        joined = await doc2.request("join", {"sinceChatId": last_chat})
        doc2.joined, doc2.self_id = joined, joined["self"]["id"]
        assert joined["resumed"] is True and doc2.self_id == doc_id  # same place, no duplicate
        assert joined["self"]["handRaised"] is True
        assert [m["text"] for m in joined["missedChat"]] == ["while you were away", "see slide 4"]
        assert not any(e.get("event") == "participantLeft" for e in rep.events)
        assert sum(1 for p in server.state.rooms.rooms["fixed"].participants.values()
                   if p.identity == "doc") == 1
        # the old stream is gone, the republished one arrives and decodes
        await rep.wait_event("trackUnpublished", lambda d: d["trackId"] == old_video)
        await doc2.join_media()
        await doc2.publish(PatternVideoTrack(3))
        new_video = (await rep.wait_event(
            "trackPublished", lambda d: d["track"]["participantId"] == doc_id
            and d["track"]["kind"] == "video" and d["track"]["id"] != old_video))["track"]["id"]
        frames = FrameChecker()
        tasks.append(asyncio.create_task(frames.run(await rep.remote_track(new_video))))
        await frames.wait_for(3, 10, timeout=20)
        # and doc is resubscribed to rep's video
        back = FrameChecker()
        tasks.append(asyncio.create_task(back.run(await doc2.remote_track(
            await doc2.tracks_of(rep.self_id, "video")))))
        await back.wait_for(1, 10, timeout=20)
    finally:
        for t in tasks:
            t.cancel()
        for c in (rep, doc, doc2):
            if c is not None:
                await c.close()


async def test_after_grace_the_others_see_them_leave(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", grace_period=0.5) as server:
        await server.create_room("brief")
        a = Client(server.base_url, server.token("brief", "a"))
        b = Client(server.base_url, server.token("brief", "b"))
        try:
            for c in (a, b):
                await c.connect()
                await c.join()
            b_id = b.self_id
            await b.drop()
            left = await a.wait_event("participantLeft", lambda d: d["participantId"] == b_id,
                                      timeout=10)
            assert left["participantId"] == b_id
            assert b_id not in server.state.rooms.rooms["brief"].participants
        finally:
            await a.close()
            await b.close()
