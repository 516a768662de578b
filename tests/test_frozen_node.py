"""A signalling node frozen past its TTL (a stalled VM, SIGSTOP) and then running again
(issue 14): back before the grace period ended, nobody sees its participants leave and the
survivor does not end them; back after it, the participants the survivor ended are asked to
come back (4503 "node_expired") and rejoin, and nobody is listed twice. Node processes on one
real redis-server (the node process alone is stopped; its media workers run on), aiortc
clients checking decoded patterns. Short TTL and grace, the defaults' code path."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from tests.support.recording_checks import until
from tests.support.tracks import PatternVideoTrack
from tests.test_node_liveness import ROOM, WAIT, decodes, nodes, seen
from tests.test_resume_any_node import listed


async def test_a_node_frozen_past_its_ttl_keeps_or_returns_its_participants(tmp_path: Path
                                                                            ) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=4)
        b = await cluster.start("b", grace=4)
        assert (await b.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        bob = await cluster.client(b, "bob", PatternVideoTrack(1))  # the room's media: on b
        ann = await cluster.client(a, "ann", PatternVideoTrack(2))
        await decodes(bob, ann, 2)
        inc = json.loads(cluster.redis.hget("ms:nodes", "a"))["inc"]

        # frozen past the TTL, running again before the grace period ends
        os.kill(a.pid, signal.SIGSTOP)  # a process this test started
        try:
            await until(lambda: cluster.redis.exists(f"ms:reap:a:{inc}"), WAIT,
                        "b to find a gone and claim its cleanup")
        finally:
            os.kill(a.pid, signal.SIGCONT)
        await until(lambda: not cluster.redis.exists(f"ms:reap:a:{inc}"), WAIT,
                    "b to find a back when its grace period ends, and end nothing")
        assert seen(bob, "participantLeft", "participantId") == []
        assert await listed(b) == ["ann", "bob"] and await listed(a) == ["ann", "bob"]
        await decodes(bob, ann, 2)

        # frozen past the TTL and the grace period: b ends ann; a, running again, asks her
        # to come back, and she is in the room once
        os.kill(a.pid, signal.SIGSTOP)
        try:
            await bob.wait_event("participantLeft", lambda d: d["participantId"] == ann.self_id,
                                 timeout=WAIT)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        await asyncio.wait_for(ann.closed.wait(), WAIT)
        assert (ann.close_code, ann.close_reason) == (4503, "node_expired")
        again = await cluster.client(a, "ann", PatternVideoTrack(3))
        await decodes(bob, again, 3)
        await decodes(again, bob, 1)
        assert await listed(b) == ["ann", "bob"] and await listed(a) == ["ann", "bob"]
        assert seen(bob, "participantLeft", "participantId") == [ann.self_id]
