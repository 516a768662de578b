"""Two signalling nodes on one Redis: a participant on each node, in one room, decode each
other's video, and chat and room events cross nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.client import Client
from tests.support.server import two_nodes
from tests.support.tracks import FrameChecker, PatternVideoTrack


async def test_participants_on_two_nodes_meet(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (node_a, node_b):
        await node_a.create_room("shared")
        ann = Client(node_a.base_url, node_a.token("shared", "ann"))
        bob = Client(node_b.base_url, node_b.token("shared", "bob"))
        tasks: list[asyncio.Task] = []
        try:
            await ann.connect()
            await ann.join()
            await ann.publish(PatternVideoTrack(1))
            await bob.connect()
            joined = await bob.join()
            assert [p["name"] for p in joined["participants"]] == ["ann"]  # from the other node
            await bob.publish(PatternVideoTrack(2))
            # the room's media lives on one worker, used by both nodes
            room_a = node_a.state.rooms.rooms["shared"]
            room_b = node_b.state.rooms.rooms["shared"]
            assert room_a.router_id == room_b.router_id and room_a.router_id.startswith("aw0.")
            await ann.wait_event("participantJoined", lambda d: d["participant"]["name"] == "bob")

            to_bob, to_ann = FrameChecker(), FrameChecker()
            tasks.append(asyncio.create_task(to_bob.run(
                await bob.remote_track(await bob.live_track_of(ann.self_id, "video")))))
            tasks.append(asyncio.create_task(to_ann.run(
                await ann.remote_track(await ann.live_track_of(bob.self_id, "video")))))
            await asyncio.gather(to_bob.wait_for(1, 15, timeout=20),
                                 to_ann.wait_for(2, 15, timeout=20))

            await ann.request("chat", {"text": "hello from node a"})
            got = await bob.wait_event("chat")
            assert got["message"]["text"] == "hello from node a"
            await bob.request("chat", {"text": "and from node b"})
            back = await ann.wait_event("chat", lambda d: d["message"]["name"] == "bob")
            assert back["message"]["text"] == "and from node b"
            await bob.request("raiseHand", {"raised": True})
            await ann.wait_event("handRaised", lambda d: d["participantId"] == bob.self_id)

            bob_id = bob.self_id
            await bob.close()
            await ann.wait_event("participantLeft", lambda d: d["participantId"] == bob_id)
        finally:
            for t in tasks:
                t.cancel()
            await ann.close()
            await bob.close()
