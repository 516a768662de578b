"""Draining a node and a rolling restart (issue 14): node processes on one real redis-server,
aiortc clients checking decoded video. SIGTERM to a node's process group (what systemd and
Ctrl-C do) with clients connected: every process of the node is gone within the shutdown's
bound, every client got 4503 "server_draining", nothing was restarted or logged an error. A
rolling restart of two nodes (SIGTERM a, start it again, then the same for b) while the test
plays the load balancer (a client told to move reconnects through the node that is up): every
participant is back and decodes the others again, and nobody is listed twice, by either node
or by any client. A client told to move by the draining node resumes through the other node
(the same participant id; nobody sees it leave); one whose room's media was on the stopping
node's worker (4503 "media_restart") rejoins with a new id. docs/operations.md, "Draining a
node, rolling deploys"."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from aiortc.exceptions import InvalidStateError

from tests.support.client import Client, RequestFailed
from tests.support.recording_checks import until
from tests.support.tracks import PatternVideoTrack
from tests.test_node_liveness import ROOM, WAIT, Nodes, decodes, nodes
from tests.test_shutdown import LIMIT, ServerProcess, check_output, gone_within

DRAINED = (4503, "server_draining")
GRACE = 30  # the default: a drained node's participants must not wait it out
PATTERNS = {"ann": 1, "bob": 2, "cat": 3}


def sigterm(server: ServerProcess) -> tuple[list[int], float]:
    """SIGTERM to the node's process group: the PIDs of its tree, and when."""
    tree = list(server.tree())
    assert len(tree) == 3, server.tree()  # the node and its two media workers
    since = time.monotonic()
    os.killpg(server.pid, signal.SIGTERM)
    return tree, since


async def drained(cluster: Nodes, server: ServerProcess, tree: list[int], since: float) -> float:
    """Seconds from the signal until every process of the node's tree is gone (fails beyond
    LIMIT, the documented bound: --shutdown-timeout, 5 s by default); it stopped cleanly."""
    took = await gone_within(tree, LIMIT, since)
    assert server.proc is not None and await server.proc.wait() == 0
    cluster.servers.remove(server)
    check_output(server.output())  # nothing restarted, no traceback, no ERROR
    assert "error closing" not in server.output()
    return took


def roster(client: Client) -> list[str]:
    """Who the client sees in the room besides itself: the join's list, then the events."""
    assert client.joined is not None
    present = {p["id"]: p["name"] for p in client.joined["participants"]}
    for e in client.events:
        if e["event"] == "participantJoined":
            present[e["data"]["participant"]["id"]] = e["data"]["participant"]["name"]
        elif e["event"] == "participantLeft":
            present.pop(e["data"]["participantId"], None)
    present.pop(client.self_id or "", None)
    return sorted(present.values())


async def back(cluster: Nodes, via: ServerProcess, who: str) -> Client:
    """Join again through `via` and publish, as the web client does; a publish refused with
    "media worker not connected" (the room's media still on the stopping node's worker in the
    instant before the survivor moves it, docs/operations.md), or overtaken by that move (a
    `moved` closed the connection the answer was for), is tried again, as after any failed
    join."""
    deadline = time.monotonic() + LIMIT
    while True:
        try:
            return await cluster.client(via, who, PatternVideoTrack(PATTERNS[who]))
        except (RequestFailed, InvalidStateError) as failed:
            # (only the client's handling of `moved` closes its connections)
            refused = isinstance(failed, InvalidStateError) or \
                "media worker not connected" in str(failed)
            if not refused or time.monotonic() > deadline:
                raise
            # cut, not left: the next attempt takes this session's place over, same id
            await cluster.clients.pop().drop()
            await asyncio.sleep(0.5)


async def come_back(cluster: Nodes, clients: dict[str, Client], via: ServerProcess,
                    moved: list[str]) -> int:
    """The load balancer: each client closed with 4503 joins again through `via`, publishing
    its pattern again; how many did."""
    count = 0
    for who, client in list(clients.items()):
        if not client.closed.is_set():
            continue
        assert (client.close_code, client.close_reason) == DRAINED
        clients[who] = await back(cluster, via, who)
        same = clients[who].self_id == client.self_id
        # told to move by a draining node: a resume through the other node, same id
        assert same or client.close_reason != DRAINED[1], (who, client.close_reason)
        moved.append(f"{who} after {client.close_reason} ({'same' if same else 'new'} id)")
        count += 1
    return count


async def republish_moved(clients: dict[str, Client], moved: list[str]) -> None:
    """Each client that got a `moved` (media_restart) not yet answered publishes again."""
    for who, client in clients.items():
        restarts = sum(1 for e in client.events if e["event"] == "moved")
        done = sum(1 for m in moved if m == f"{who} moved in place")
        if restarts > done:
            await asyncio.wait_for(client.moved.wait(), LIMIT)
            await client.publish(PatternVideoTrack(PATTERNS[who]))
            moved.extend([f"{who} moved in place"] * (restarts - done))


async def listed(server: ServerProcess) -> list[str]:
    status, body = await server.api("GET", f"/api/rooms/{ROOM}")
    assert status == 200, body
    return sorted(p["name"] for p in body["participants"])


async def test_group_sigterm_with_clients_connected(tmp_path: Path) -> None:
    async with nodes(tmp_path) as cluster:
        # a short grace period (the same code path as the default): al's end is awaited
        a = await cluster.start("a", grace=3)
        b = await cluster.start("b", grace=3)
        assert (await b.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        bob = await cluster.client(b, "bob", PatternVideoTrack(2))  # the room's media: on b
        ann = await cluster.client(a, "ann", PatternVideoTrack(1))
        al = await cluster.client(a, "al")
        await al.drop()  # gone without leaving: in its grace period when a stops
        cat = await cluster.client(a, "cat")
        await decodes(cat, bob, 2)
        took = await drained(cluster, a, *sigterm(a))
        print(f"node with clients: every process gone {took:.2f} s after SIGTERM")
        for client in (ann, cat):
            assert client.closed.is_set()
            assert (client.close_code, client.close_reason) == DRAINED
        # told to move, ann and cat resume through b (the load balancer's other node): the
        # same ids; al, who had dropped before, does not come back and leaves once after the
        # grace period; nobody else is seen leaving
        clients, moved = {"ann": ann, "cat": cat}, []
        await come_back(cluster, clients, b, moved)
        assert moved == ["ann after server_draining (same id)",
                         "cat after server_draining (same id)"], moved
        await decodes(bob, clients["ann"], 1)
        await bob.wait_event("participantLeft", lambda d: d["participantId"] == al.self_id,
                             timeout=WAIT)
        assert [e["data"]["participantId"] for e in bob.events
                if e["event"] == "participantLeft"] == [al.self_id]
        assert roster(bob) == ["ann", "cat"] and await listed(b) == ["ann", "bob", "cat"]
        assert not bob.closed.is_set()  # its media, on b, untouched
        await until(lambda: sorted(cluster.redis.hkeys("ms:nodes")) == ["b"], WAIT,
                    "the drained node's registry entry to be cleaned up")


async def test_rolling_restart_loses_nobody(tmp_path: Path) -> None:
    async with nodes(tmp_path) as cluster:
        a = await cluster.start("a", grace=GRACE)
        b = await cluster.start("b", grace=GRACE)
        assert (await a.api("POST", "/api/rooms", json={"name": ROOM}))[0] in (200, 201)
        clients = {"ann": await cluster.client(a, "ann", PatternVideoTrack(1)),
                   "bob": await cluster.client(b, "bob", PatternVideoTrack(2))}
        await decodes(clients["ann"], clients["bob"], 2)
        await decodes(clients["bob"], clients["ann"], 1)
        up = {"a": a, "b": b}
        for name in ("a", "b"):
            other = up["b" if name == "a" else "a"]
            media_here = cluster.redis.get(f"ms:router:{ROOM}").startswith(f"{name}w")
            stayed = [who for who, c in clients.items() if c.base_url == other.base_url]
            tree, since = sigterm(up[name])
            moved: list[str] = []
            for client in list(clients.values()):  # told to move
                if client.base_url == up[name].base_url:
                    await asyncio.wait_for(client.closed.wait(), LIMIT)
                    assert (client.close_code, client.close_reason) == DRAINED
            await come_back(cluster, clients, other, moved)
            back = time.monotonic() - since
            took = await drained(cluster, up[name], tree, since)
            # Those on `other` in a room whose media was on the stopping node's worker (a
            # resume that reached `other` before the room moved too) get new connections in
            # place (`moved`, media_restart) and publish again.
            deadline = time.monotonic() + 4 * LIMIT
            while True:
                await republish_moved(clients, moved)
                try:
                    await decodes(clients["ann"], clients["bob"], 2, timeout=5)
                    await decodes(clients["bob"], clients["ann"], 1, timeout=5)
                    break
                except (TimeoutError, RuntimeError):  # not yet, or a track that ended
                    if time.monotonic() > deadline:
                        # what each client saw last, and its own failures, for the report
                        print({who: ([e["event"] for e in c.events][-12:],
                                     [e["data"] for e in c.events if e["event"][0] == "_"])
                               for who, c in clients.items()})
                        raise
            # on `other` all along: the room moved under them, same socket, same id
            assert all(f"{who} moved in place" in moved for who in stayed) if media_here else \
                not any("moved in place" in m for m in moved), moved
            print(f"SIGTERM {name}: every process gone {took:.2f} s after the signal; "
                  f"rejoined through the other node: {moved}, {back:.2f} s after the signal; "
                  f"both decode each other {time.monotonic() - since:.2f} s after it")
            up[name] = await cluster.start(name, grace=GRACE)  # the new version
        # both came back through a when b stopped; b, new, has not opened the room
        assert {c.base_url for c in clients.values()} == {up["a"].base_url}
        assert await listed(up["a"]) == ["ann", "bob"]
        for who, client in clients.items():
            assert roster(client) == [n for n in clients if n != who]
            assert not client.closed.is_set()
