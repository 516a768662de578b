"""One recording per room across signalling nodes (issue 14): a recording started by a host on
one node is seen by those who join through the other ("● Recording" and its mode in their join
result), a second start from the other node is refused, and once it stops the other node may
start the next one. Node processes on one real redis-server, aiortc clients; the recorder is
each node's own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.client import RequestFailed
from tests.support.tracks import PatternVideoTrack
from tests.test_node_liveness import ROOM, nodes


async def test_a_room_has_one_recording_whichever_node_runs_it(tmp_path: Path) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=30)
        b = await cluster.start("b", grace=30)
        assert (await a.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        hana = await cluster.client(a, "hana", PatternVideoTrack(1))
        started = await hana.request("recordStart", {"mode": "composite"}, timeout=30)
        assert cluster.redis.exists(f"ms:live:{ROOM}:rec")

        bob = await cluster.client(b, "bob")  # joins through the other node meanwhile
        assert bob.joined["recording"] is True and bob.joined["recordingMode"] == "composite"
        with pytest.raises(RequestFailed) as refused:
            await bob.request("recordStart", {"mode": "pertrack"})
        assert refused.value.code == "conflict"

        await hana.request("recordStop", timeout=60)
        changed = await bob.wait_event("recordingChanged", lambda d: not d["recording"])
        assert changed["recordingId"] == started["recordingId"]
        assert not cluster.redis.exists(f"ms:live:{ROOM}:rec")
        again = await bob.request("recordStart", {"mode": "pertrack"}, timeout=30)
        assert again["recordingId"] != started["recordingId"]
        await hana.wait_event("recordingChanged", lambda d: d["recording"])
        late = await cluster.client(a, "cat")
        assert late.joined["recording"] is True and late.joined["recordingMode"] == "pertrack"
        await bob.request("recordStop", timeout=60)
