"""Rooms and chat history live in the SQLite store and survive a server restart."""

from __future__ import annotations

from pathlib import Path

from tests.support.client import Client
from tests.support.server import running_server


async def test_room_and_chat_survive_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as server:
        await server.create_room("fixed-room")
        c = Client(server.base_url, server.token("fixed-room", "rep", "Rep"))
        await c.connect()
        await c.join()
        await c.request("chat", {"text": "see you after the break"})
        await c.request("chat", {"text": "notes: dosage table p.4"})
        await c.close()
    assert (data / "mediaserver.sqlite3").exists()

    async with running_server(data) as server:
        d = Client(server.base_url, server.token("fixed-room", "doc", "Doctor"))
        await d.connect()
        try:
            joined = await d.join()
            assert [m["text"] for m in joined["chat"]] == \
                ["see you after the break", "notes: dosage table p.4"]
            assert {m["name"] for m in joined["chat"]} == {"Rep"}
        finally:
            await d.close()


async def test_join_unknown_room_is_refused(server) -> None:
    c = Client(server.base_url, server.token("never-created", "x"))
    await c.connect()
    try:
        try:
            await c.join()
        except Exception as exc:  # RequestFailed
            assert getattr(exc, "code", "") == "not_found"
        else:
            raise AssertionError("joined a room that does not exist")
    finally:
        await c.close()
