"""The lobby across two signalling nodes (issue 14): attendees waiting on one node are seen,
admitted and refused by a host on the other; the admitted one joins and decodes the host; one
who resumes through the other node after being in the room does not wait again. Node processes
on one real redis-server, aiortc clients checking decoded patterns."""

from __future__ import annotations

import asyncio
from pathlib import Path

from signaling.tokens import mint
from tests.support.client import Client
from tests.support.server import JWT_SECRET
from tests.support.tracks import PatternVideoTrack
from tests.test_node_liveness import ROOM, Nodes, decodes, nodes
from tests.test_shutdown import ServerProcess


async def waiting(cluster: Nodes, via: ServerProcess, identity: str) -> Client:
    """An attendee who asks to join through `via` and is put in the lobby."""
    client = Client(via.base_url, mint(JWT_SECRET, ROOM, identity, identity, "attendee", 600))
    cluster.clients.append(client)
    await client.connect()
    await client.join_media()
    answer = await client.request("join")
    assert answer["lobby"] is True
    client.self_id = answer["self"]["id"]
    return client


async def test_a_host_on_one_node_decides_for_those_waiting_on_the_other(tmp_path: Path
                                                                          ) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=30)
        b = await cluster.start("b", grace=30)
        assert (await a.api("POST", "/api/rooms", json={"name": ROOM, "lobby": True}))[0] \
            in (200, 201)
        hana = await cluster.client(a, "hana", PatternVideoTrack(1))  # the host, on a
        ann = await waiting(cluster, b, "ann")
        tom = await waiting(cluster, b, "tom")
        for guest in (ann, tom):
            await hana.wait_event("lobbyRequest", lambda d, g=guest:
                                  d["participant"]["id"] == g.self_id)
        listed = (await hana.request("lobbyList"))["waiting"]
        assert sorted(w["name"] for w in listed) == ["ann", "tom"]

        await hana.request("admit", {"participantId": ann.self_id})
        await ann.wait_event("admitted")
        joined = await ann.request("join")
        assert "lobby" not in joined and joined["self"]["id"] == ann.self_id
        ann.joined, ann.self_id = joined, joined["self"]["id"]
        ann.live_tracks.update({t["id"]: t for t in joined["tracks"]})
        await decodes(ann, hana, 1)
        await hana.wait_event("lobbyLeft", lambda d: d["participantId"] == ann.self_id
                              and d.get("admitted") is True)

        await hana.request("refuse", {"participantId": tom.self_id})
        await asyncio.wait_for(tom.closed.wait(), 10)
        assert tom.close_code == 4403
        await hana.wait_event("lobbyLeft", lambda d: d["participantId"] == tom.self_id
                              and "admitted" not in d)
        assert (await hana.request("lobbyList"))["waiting"] == []
        assert not cluster.redis.hlen(f"ms:live:{ROOM}:w")

        # ann's network drops; back through a, she is in the room again, no lobby
        await ann.drop()
        again = Client(a.base_url, mint(JWT_SECRET, ROOM, "ann", "ann", "attendee", 600))
        cluster.clients.append(again)
        await again.connect()
        await again.join()
        assert "lobby" not in again.joined and again.self_id == ann.self_id
        assert again.joined["resumed"] is True
        await decodes(again, hana, 1)
