"""A signalling node killed with SIGKILL (issue 14, liveness): node processes on one real
redis-server, aiortc clients. After its registration expires and the grace period passes, the
clients of both survivors see each of its participants leave exactly once, their tracks
unpublished; a survivor lists exactly the people connected; the dead node's workers leave the
registry and a newcomer decodes a survivor's video. A room whose media lived on the dead node's
worker: it moves to a live worker and its participants on the survivor get new connections
in place (`moved`, media_restart: same ids); one of the dead node's participants rejoining
through the survivor resumes their place (same id, their old tracks go at once, nobody sees
them leave); a node restarted under the same name ends its predecessor's participants and
lists none of them. Short TTL and grace here (same code path as the defaults);
docs/operations.md, "Several signalling nodes"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis

from benchmarks.server_proc import _alive as alive
from benchmarks.server_proc import free_udp_range
from signaling.tokens import mint
from tests.support.client import Client
from tests.support.recording_checks import until
from tests.support.redis_server import redis_server
from tests.support.server import JWT_SECRET, free_port
from tests.support.tracks import FrameChecker, PatternVideoTrack, ToneAudioTrack
from tests.test_shutdown import ServerProcess, gone_within

ROOM = "lively"
TTL = "1.5"  # --node-ttl: the node key expires 1.5 s after the last renewal
WAIT = 40.0  # bound on any wait for the cleanup (TTL + poll + grace, with room for a loaded host)


class Nodes:
    """Node processes ("--node NAME", two media workers each) on one Redis, and the clients."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        self.servers: list[ServerProcess] = []
        self.killed: list[int] = []  # the process trees of killed nodes
        self.clients: list[Client] = []

    async def start(self, name: str, grace: float) -> ServerProcess:
        server = ServerProcess(self.tmp_path / name, free_port(), free_udp_range(2),
                               "--store", self.url, "--node", name, "--node-ttl", TTL,
                               "--grace-period", str(grace))
        self.servers.append(server)
        await server.start()
        return server

    def kill(self, server: ServerProcess) -> None:
        """kill -9 of the node process alone; its workers leave by themselves."""
        self.killed += list(server.tree())
        os.kill(server.pid, signal.SIGKILL)
        self.servers.remove(server)

    async def client(self, server: ServerProcess, identity: str, *tracks: object) -> Client:
        client = Client(server.base_url, mint(JWT_SECRET, ROOM, identity, identity, "host", 600))
        self.clients.append(client)
        await client.connect()
        await client.join()
        if tracks:
            await client.publish(*tracks)
        return client

    def workers(self) -> list[str]:
        return sorted(self.redis.hkeys("ms:workers"))

    async def close(self) -> None:
        for client in self.clients:
            await client.drop()
        for server in self.servers:
            await server.stop()
        try:
            await gone_within(self.killed, 10, time.monotonic())
        finally:
            for pid in self.killed:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)  # a process this test started
        self.redis.close()


@asynccontextmanager
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    async with redis_server(tmp_path / "redis") as url:
        running = Nodes(tmp_path, url)
        try:
            yield running
        finally:
            await running.close()


def seen(client: Client, event: str, key: str) -> list[str]:
    return sorted(e["data"][key] for e in client.events if e["event"] == event)


async def decodes(client: Client, sender: Client, pattern: int, timeout: float = 20) -> None:
    assert sender.self_id is not None
    checker = FrameChecker()
    track = await client.remote_track(await client.live_track_of(sender.self_id, "video"))
    task = asyncio.create_task(checker.run(track))
    try:
        await checker.wait_for(pattern, 15, timeout=timeout)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def newcomer(cluster: Nodes, server: ServerProcess, sender: Client,
                   present: list[Client]) -> None:
    """"dan" joins through `server`: the node lists exactly the people connected, dan decodes
    `sender`'s video (pattern 1), and each of `present` has seen dan arrive (on the same
    socket as anything due before, such as the leaves of a cleanup)."""
    dan = await cluster.client(server, "dan")
    names = sorted(c.joined["self"]["name"] for c in present)
    assert sorted(p["name"] for p in dan.joined["participants"]) == names
    status, listed = await server.api("GET", f"/api/rooms/{ROOM}")
    assert status == 200
    assert sorted(p["name"] for p in listed["participants"]) == sorted([*names, "dan"])
    await decodes(dan, sender, 1)
    for client in present:
        await client.wait_event("participantJoined", lambda d:
                                d["participant"]["id"] == dan.self_id)


async def test_killed_node_participants_leave_once(tmp_path: Path) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=3)
        b = await cluster.start("b", grace=3)
        c = await cluster.start("c", grace=3)  # two survivors: one of them cleans up
        assert (await b.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        bob = await cluster.client(b, "bob", PatternVideoTrack(1))  # the room's media: on b
        cat = await cluster.client(c, "cat")
        ann = await cluster.client(a, "ann", PatternVideoTrack(2))
        al = await cluster.client(a, "al", ToneAudioTrack(440.0))
        assert ann.self_id is not None and al.self_id is not None
        ghosts = sorted([ann.self_id, al.self_id])
        ghost_tracks = sorted([await bob.live_track_of(ann.self_id, "video"),
                               await bob.live_track_of(al.self_id, "audio")])
        for kind, ghost in (("video", ann), ("audio", al)):
            await cat.live_track_of(ghost.self_id, kind)
        await decodes(cat, ann, 2)  # across the nodes while all live
        assert cluster.workers() == ["aw0.", "aw1.", "bw0.", "bw1.", "cw0.", "cw1."]

        cluster.kill(a)
        for client in (bob, cat):
            for ghost in ghosts:
                await client.wait_event("participantLeft", lambda d, g=ghost:
                                        d["participantId"] == g, timeout=WAIT)
            for track in ghost_tracks:
                await client.wait_event("trackUnpublished", lambda d, t=track:
                                        d["trackId"] == t, timeout=WAIT)

        await newcomer(cluster, b, bob, [bob, cat])
        for client in (bob, cat):
            assert seen(client, "participantLeft", "participantId") == ghosts
            assert seen(client, "trackUnpublished", "trackId") == ghost_tracks
        await until(lambda: cluster.workers() == ["bw0.", "bw1.", "cw0.", "cw1."], WAIT,
                    "the dead node's workers to leave the registry")
        assert sorted(cluster.redis.hkeys("ms:nodes")) == ["b", "c"]


async def test_room_on_dead_worker_moves_and_restart_inherits_no_ghosts(tmp_path: Path
                                                                        ) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=3)
        # b waits long before ending a's participants: ann's return, then the restarted a do
        b = await cluster.start("b", grace=60)
        assert (await a.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        ann = await cluster.client(a, "ann", PatternVideoTrack(2))  # the room's media: on a
        al = await cluster.client(a, "al")
        bob = await cluster.client(b, "bob", PatternVideoTrack(1))
        await decodes(bob, ann, 2)
        assert ann.self_id is not None and al.self_id is not None
        assert cluster.redis.get(f"ms:router:{ROOM}").startswith("aw")

        cluster.kill(a)
        # its media was on a's worker: the room moves to a live one, bob gets new
        # connections in place (same id, same socket) and publishes again
        await bob.wait_event("moved", lambda d: d.get("reason") == "media_restart",
                             timeout=WAIT)
        await asyncio.wait_for(bob.moved.wait(), 10)
        await bob.publish(PatternVideoTrack(1))
        assert not bob.closed.is_set()
        carl = await cluster.client(b, "carl")
        assert cluster.redis.get(f"ms:router:{ROOM}").startswith("bw")  # placed again
        await decodes(carl, bob, 1)

        # ann comes back through b once a is known dead: she takes her place over (same id,
        # nobody sees her leave), her old track goes at once
        await until(lambda: not cluster.redis.exists("ms:node:a"), WAIT,
                    "a's registration to expire")
        (old_video,) = [t["id"] for t in map(json.loads, cluster.redis.hvals(f"ms:live:{ROOM}:t"))
                        if t["participantId"] == ann.self_id]
        ann_again = await cluster.client(b, "ann")
        assert ann_again.self_id == ann.self_id and ann_again.joined["resumed"] is True
        assert sorted(p["name"] for p in ann_again.joined["participants"]) == \
            ["al", "bob", "carl"]  # al: gone with a, within the grace period
        for client in (bob, carl):
            await client.wait_event("trackUnpublished", lambda d: d["trackId"] == old_video,
                                    timeout=WAIT)

        a = await cluster.start("a", grace=3)  # same name, new process: al leaves
        for client in (bob, carl, ann_again):
            await client.wait_event("participantLeft", lambda d:
                                    d["participantId"] == al.self_id, timeout=WAIT)
        await newcomer(cluster, a, bob, [ann_again, bob, carl])
        for client in (bob, carl):
            assert seen(client, "participantLeft", "participantId") == [al.self_id]
        assert seen(ann_again, "participantLeft", "participantId") == [al.self_id]
        assert cluster.workers() == ["aw0.", "aw1.", "bw0.", "bw1."]
