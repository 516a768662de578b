"""Breakout groups with aiortc participants: four people, two groups; each decodes only its
group's patterns; after closing, all four decode all others."""

from __future__ import annotations

import asyncio

from tests.support.client import Client, RequestFailed
from tests.support.tracks import FrameChecker, PatternVideoTrack


async def watch(client: Client, sender: Client) -> FrameChecker:
    frames = FrameChecker()
    track = await client.remote_track(await client.live_track_of(sender.self_id, "video"))
    client._tasks.append(asyncio.create_task(frames.run(track)))
    return frames


def published_ids(client: Client, since: int) -> list[str]:
    return [e["data"]["track"]["participantId"] for e in client.events[since:]
            if e.get("event") == "trackPublished"]


async def republish(client: Client, sender_id: int) -> None:
    await asyncio.wait_for(client.moved.wait(), 10)
    await client.publish(PatternVideoTrack(sender_id))


async def test_two_groups_then_reconvene(server) -> None:
    await server.create_room("board")
    people = []
    for i, role in enumerate(("host", "attendee", "attendee", "attendee"), start=1):
        c = Client(server.base_url, server.token("board", f"u{i}", role=role))
        c._tasks = []  # type: ignore[attr-defined]
        await c.connect()
        await c.join()
        people.append(c)
    host, u2, u3, u4 = people
    try:
        for i, c in enumerate(people, start=1):
            await c.publish(PatternVideoTrack(i))
        await (await watch(u2, host)).wait_for(1, 5, timeout=20)

        groups = (await host.request("breakoutCreate", {"count": 2}))["breakouts"]["groups"]
        g1, g2 = groups[0]["id"], groups[1]["id"]
        await host.request("breakoutAssign", {"participantId": host.self_id, "groupId": g1})
        await host.request("breakoutAssign", {"participantId": u2.self_id, "groupId": g1})
        await host.request("breakoutAuto")  # u3 and u4 fill the groups evenly
        state = (await host.request("breakoutTimer", {"seconds": 600}))["breakouts"]
        assert state["endsAt"] is not None
        assert sorted(state["assignments"].values()).count(g1) == 3 or \
            sorted(state["assignments"].values()).count(g2) >= 1
        marks = {c.self_id: len(c.events) for c in people}
        opened = (await host.request("breakoutOpen"))["breakouts"]
        assignment = opened["assignments"]
        assert opened["open"] is True and set(assignment) == {c.self_id for c in people}
        for i, c in enumerate(people, start=1):
            await republish(c, i)
        for c in people:
            mates = [o for o in people if o is not c and assignment[o.self_id]
                     == assignment[c.self_id]]
            others = [o for o in people if o is not c and o not in mates]
            for mate in mates:
                frames = await watch(c, mate)
                await frames.wait_for(people.index(mate) + 1, 8, timeout=20)
            # nothing of the other group was offered after the move
            seen = set(published_ids(c, marks[c.self_id]))
            assert not seen & {o.self_id for o in others}, (c.self_id, seen)
        with_u2 = [c for c in people if assignment[c.self_id] == assignment[u2.self_id]]
        assert host in with_u2
        await host.request("breakoutBroadcast", {"text": "5 minutes left"})
        assert (await u4.wait_event("breakoutMessage"))["text"] == "5 minutes left"
        try:
            await u2.request("breakoutOpen")
        except RequestFailed as exc:
            assert exc.code == "forbidden"

        marks = {c.self_id: len(c.events) for c in people}
        closed = (await host.request("breakoutClose"))["breakouts"]
        assert closed["open"] is False
        for i, c in enumerate(people, start=1):
            await asyncio.wait_for(_moves(c, 2), 10)
            await c.publish(PatternVideoTrack(i))
        for c in people:  # everyone decodes everyone again
            for other in people:
                if other is not c:
                    frames = await watch(c, other)
                    await frames.wait_for(people.index(other) + 1, 5, timeout=20)
    finally:
        for c in people:
            for t in c._tasks:
                t.cancel()
            await c.close()


async def _moves(client: Client, count: int) -> None:
    while client.moves < count:
        await asyncio.sleep(0.02)
