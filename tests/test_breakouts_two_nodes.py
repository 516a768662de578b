"""Breakout groups across two signalling nodes (issue 14): the host on one node splits the room;
participants on the other node are moved into their groups too, decode their group mates
across the nodes and nobody else; one who drops and comes back through the other node lands
back in their group; closing brings everyone back to the main room. Node processes on one real
redis-server, aiortc clients checking decoded patterns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.client import Client
from tests.support.tracks import PatternVideoTrack
from tests.test_node_liveness import ROOM, decodes, nodes
from tests.test_resume_any_node import come_back


async def republish(client: Client, pattern: int, group: str | None) -> None:
    """After a `moved` into `group`: publish again on the new connection."""
    await client.wait_event("moved", lambda d: d["groupId"] == group, timeout=20)
    await asyncio.wait_for(client.moved.wait(), 10)
    await client.publish(PatternVideoTrack(pattern))


def visible_senders(client: Client) -> set[str]:
    return {t["participantId"] for t in client.live_tracks.values()}


async def test_groups_span_nodes_and_survive_a_resume_elsewhere(tmp_path: Path) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=30)
        b = await cluster.start("b", grace=30)
        assert (await a.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        hana = await cluster.client(a, "hana", PatternVideoTrack(1))  # the host, on a
        bob = await cluster.client(a, "bob", PatternVideoTrack(2))
        ann = await cluster.client(b, "ann", PatternVideoTrack(3))
        cat = await cluster.client(b, "cat", PatternVideoTrack(4))
        await decodes(ann, bob, 2)

        groups = (await hana.request("breakoutCreate", {"names": ["one", "two"]}))
        one, two = (g["id"] for g in groups["breakouts"]["groups"])
        # ann and cat are on b: the host on a assigns them all the same
        for who, group in ((bob, one), (ann, one), (cat, two)):
            await hana.request("breakoutAssign", {"participantId": who.self_id,
                                                  "groupId": group})
        opened = (await hana.request("breakoutOpen"))["breakouts"]
        assert opened["open"] and opened["assignments"] == {
            bob.self_id: one, ann.self_id: one, cat.self_id: two}
        for client, pattern, group in ((bob, 2, one), (ann, 3, one), (cat, 4, two)):
            await republish(client, pattern, group)
        await decodes(ann, bob, 2)  # group one: bob on a, ann on b
        await decodes(bob, ann, 3)
        assert visible_senders(ann) == {bob.self_id}
        assert visible_senders(cat) == set()  # alone in group two
        # what the host's node and the other see of the groups is one state
        state = (await ann.wait_event("breakoutsChanged", lambda d: d["breakouts"]["open"]))
        assert state["breakouts"]["assignments"] == opened["assignments"]

        # ann's network drops; she comes back through a, into group one again
        await ann.drop()
        again = await come_back(cluster, a, "ann", None)
        assert again.self_id == ann.self_id and again.joined["groupId"] == one
        await again.publish(PatternVideoTrack(5))
        await decodes(bob, again, 5)
        assert visible_senders(again) <= {bob.self_id}

        # the host closes the groups: everyone, on both nodes, back in the main room
        await hana.request("breakoutClose")
        for client, pattern in ((bob, 2), (again, 5), (cat, 4)):
            await republish(client, pattern, None)
        await decodes(cat, bob, 2)  # b's participant sees a's again
        await decodes(hana, cat, 4)
