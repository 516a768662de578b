"""Several media worker processes: placement, a webinar spread over two workers through a
pipe, and a worker killed mid-call."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

from mediaserver.rpc import RpcClient
from tests.support.client import Client
from tests.support.server import free_port, running_server
from tests.support.tracks import FrameChecker, PatternVideoTrack


async def joined(server, room: str, identity: str) -> Client:
    client = Client(server.base_url, server.token(room, identity))
    await client.connect()
    await client.join()
    return client


async def watch_video(client: Client, publisher: Client) -> tuple[FrameChecker, asyncio.Task]:
    frames = FrameChecker()
    track = await client.remote_track(await client.tracks_of(publisher.self_id, "video"))
    return frames, asyncio.create_task(frames.run(track))


def session_of(server, client: Client):
    return next(p for p in server.state.sessions if p.id == client.self_id)


async def test_webinar_spread_over_two_workers(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", workers=2, subscribers_per_worker=2) as server:
        await server.create_room("webinar")
        presenter = await joined(server, "webinar", "presenter")
        attendees = [await joined(server, "webinar", f"att{i}") for i in range(4)]
        tasks = []
        try:
            await presenter.publish(PatternVideoTrack(9))
            checkers = []
            for a in attendees:
                frames, task = await watch_video(a, presenter)
                checkers.append(frames)
                tasks.append(task)
            await asyncio.gather(*(c.wait_for(9, 20, timeout=30) for c in checkers))
            assert all(c.sender_ids == {9} for c in checkers)
            workers = {session_of(server, a).subscribe_transport.split(".")[0]
                       for a in attendees}
            origin = session_of(server, presenter).publish_transport.split(".")[0]
            assert len(workers) == 2 and origin in workers  # both workers serve attendees
            room = server.state.rooms.rooms["webinar"]
            assert len(room.edges) == 1 and len(room.edges[0].mirrors) == 1
            stats = await server.state.media.stats()
            assert stats["workers"] == 2
        finally:
            for t in tasks:
                t.cancel()
            for c in [presenter, *attendees]:
                await c.close()


async def test_killed_worker_clients_reconnect_others_continue(tmp_path: Path) -> None:
    async with running_server(tmp_path / "d", workers=2) as server:
        pool = server.state.media
        for room in ("room-a", "room-b"):
            await server.create_room(room)
        a1, a2 = await joined(server, "room-a", "a1"), await joined(server, "room-a", "a2")
        b1, b2 = await joined(server, "room-b", "b1"), await joined(server, "room-b", "b2")
        tasks: list[asyncio.Task] = []
        clients = [a1, a2, b1, b2]
        try:
            await a1.publish(PatternVideoTrack(1))
            await b1.publish(PatternVideoTrack(2))
            frames_a, t = await watch_video(a2, a1)
            tasks.append(t)
            frames_b, t = await watch_video(b2, b1)
            tasks.append(t)
            await frames_a.wait_for(1, 10, timeout=20)
            await frames_b.wait_for(2, 10, timeout=20)
            worker_a = await pool.worker_of(server.state.rooms.rooms["room-a"].router_id)
            worker_b = await pool.worker_of(server.state.rooms.rooms["room-b"].router_id)
            assert worker_a != worker_b  # the least loaded worker took the second room

            victim = next(w for w in pool.workers if w.prefix == worker_a)
            os.kill(victim.process.pid, signal.SIGKILL)  # a process this test's server started

            # room-a moves to a live worker in place: its clients get new connections
            # (`moved`, reason media_restart), keep their ids and sockets, publish again
            ids = (a1.self_id, a2.self_id)
            for c in (a1, a2):
                moved = await c.wait_event("moved", timeout=15)
                assert moved == {"groupId": None, "tracks": moved["tracks"],
                                 "activeSpeaker": moved["activeSpeaker"],
                                 "reason": "media_restart"}
                await asyncio.wait_for(c.moved.wait(), 10)
            new_router = server.state.rooms.rooms["room-a"].router_id
            assert not new_router.startswith(worker_a) or victim.restarts == 1
            await a1.publish(PatternVideoTrack(3))
            frames_a2 = FrameChecker()
            track = await a2.remote_track(await a2.live_track_of(a1.self_id, "video"))
            tasks.append(asyncio.create_task(frames_a2.run(track)))
            await frames_a2.wait_for(3, 10, timeout=30)
            assert (a1.self_id, a2.self_id) == ids and not a1.closed.is_set()
            assert not any(e["event"] == "participantLeft" for e in a2.events)
            await asyncio.wait_for(_restarted(victim), 20)

            # room-b never stopped: its counters kept advancing through all of this
            before = frames_b.senders[2].readable
            await frames_b.wait_for(2, before + 30, timeout=20)
            assert not b2.closed.is_set() and not frames_b.ended
            assert (await pool.stats())["worker_restarts"] == 1
        finally:
            for t in tasks:
                t.cancel()
            for c in clients:
                await c.close()


async def _restarted(handle) -> None:
    while handle.control is None:  # the pool's watcher brings the worker back
        await asyncio.sleep(0.05)


async def test_worker_leaves_quietly_on_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C in `make run` reaches the workers too: with its control connection open, a
    worker exits 0 without logging an error (a cancelled RPC handler used to)."""
    rpc_path = tmp_path / "w.sock"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mediaserver.worker_main", "--port",
        str(free_port(socket.SOCK_DGRAM)), "--rpc", str(rpc_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert ready.startswith(b"ready ")
        client = RpcClient(lambda event: None)
        await client.connect(str(rpc_path))
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
        await client.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert b"ERROR" not in stderr and b"Traceback" not in stderr, stderr.decode()
