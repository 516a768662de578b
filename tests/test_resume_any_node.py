"""Resume through any node (issue 14): a participant whose socket drops and who comes back
through the *other* node (what a load balancer does) takes their place over: the same
participant id, hand and unread chat; their old tracks are replaced, never listed twice; nobody
sees them leave. Node processes on one real redis-server, aiortc clients checking decoded
content (a colour pattern per publisher). docs/operations.md, "Several signalling nodes"."""

from __future__ import annotations

import json
from pathlib import Path

from signaling.tokens import mint
from tests.support.client import Client
from tests.support.server import JWT_SECRET
from tests.support.tracks import PatternVideoTrack
from tests.test_node_liveness import ROOM, Nodes, decodes, nodes, seen
from tests.test_shutdown import ServerProcess

GRACE = 30  # the default: a resume must not wait for the old node's grace period


async def listed(server: ServerProcess) -> list[str]:
    status, body = await server.api("GET", f"/api/rooms/{ROOM}")
    assert status == 200, body
    return sorted(p["name"] for p in body["participants"])


async def come_back(cluster: Nodes, via: ServerProcess, identity: str,
                    since_chat: str | None) -> Client:
    """The same person (same signed token) joins through `via`, with the last chat message
    id it saw, as the web client does."""
    client = Client(via.base_url, mint(JWT_SECRET, ROOM, identity, identity, "host", 600))
    cluster.clients.append(client)
    await client.connect()
    await client.join_media()
    client.joined = await client.request("join", {"sinceChatId": since_chat})
    client.self_id = client.joined["self"]["id"]
    client.live_tracks.update({t["id"]: t for t in client.joined["tracks"]})
    return client


def owner(cluster: Nodes, participant_id: str) -> str:
    """The node whose entry the room's live state holds for this participant."""
    return json.loads(cluster.redis.hget(f"ms:live:{ROOM}:p", participant_id))["node"]


async def test_a_dropped_participant_resumes_through_the_other_node(tmp_path: Path) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=GRACE)
        b = await cluster.start("b", grace=GRACE)
        assert (await b.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        bob = await cluster.client(b, "bob", PatternVideoTrack(1))
        cat = await cluster.client(a, "cat")  # on ann's first node
        ann = await cluster.client(a, "ann", PatternVideoTrack(2))
        assert ann.self_id is not None
        first_video = await bob.live_track_of(ann.self_id, "video")
        await decodes(bob, ann, 2)
        await ann.request("raiseHand", {"raised": True})
        seen_chat = (await bob.request("chat", {"text": "before"}))["message"]["id"]
        await ann.wait_event("chat", lambda d: d["message"]["id"] == seen_chat)

        await ann.drop()  # her network goes: a keeps her place for the grace period
        missed = (await bob.request("chat", {"text": "while you were away"}))["message"]
        again = await come_back(cluster, b, "ann", seen_chat)  # the load balancer picks b
        joined = again.joined
        assert again.self_id == ann.self_id and joined["resumed"] is True
        assert joined["mediaKept"] is False  # new connections: she publishes again
        assert again.self_id in joined["hands"] and joined["self"]["handRaised"]
        assert [m["id"] for m in joined["missedChat"]] == [missed["id"]]
        assert sorted(p["name"] for p in joined["participants"]) == ["bob", "cat"]
        assert owner(cluster, ann.self_id) == "b"

        await again.publish(PatternVideoTrack(3))
        for viewer in (bob, cat):  # on her new node and on her old one
            await decodes(viewer, again, 3)
            await viewer.wait_event("trackUnpublished", lambda d: d["trackId"] == first_video)
            assert seen(viewer, "participantLeft", "participantId") == []
            videos = [t for t in viewer.live_tracks.values()
                      if t["participantId"] == ann.self_id and t["kind"] == "video"]
            assert len(videos) == 1 and videos[0]["id"] != first_video  # replaced, not doubled
        for node in (a, b):
            assert await listed(node) == ["ann", "bob", "cat"]

        # still connected through b, she opens the room again through a (a second tab, or
        # the load balancer again): a takes the place back, b's session ends as replaced
        back = await come_back(cluster, a, "ann", missed["id"])
        await again.closed.wait()
        assert (again.close_code, again.close_reason) == (1000, "replaced by a newer session")
        assert back.self_id == ann.self_id and back.joined["resumed"] is True
        assert back.joined["missedChat"] == []
        assert owner(cluster, ann.self_id) == "a"
        await back.publish(PatternVideoTrack(4))
        await decodes(bob, back, 4)
        assert seen(bob, "participantLeft", "participantId") == []
        for node in (a, b):
            assert await listed(node) == ["ann", "bob", "cat"]
