"""Lobby (hosts admit or refuse waiting attendees) and shared invitation links."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.client import Client
from tests.support.server import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def test_lobby_admit_and_refuse(server) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            server.base_url + "/api/rooms", json={"name": "clinic", "lobby": True},
            headers=AUTH) as r:
        assert r.status == 201
    host = Client(server.base_url, server.token("clinic", "doctor", role="host"))
    guest = Client(server.base_url, server.token("clinic", "patient", role="attendee"))
    stranger = Client(server.base_url, server.token("clinic", "stranger", role="attendee"))
    cohost = Client(server.base_url, server.token("clinic", "nurse", role="host"))
    try:
        for c in (host, guest, stranger, cohost):
            await c.connect()
        await host.join()
        await cohost.join()
        waiting = await guest.request("join")
        assert waiting["lobby"] is True
        request = await host.wait_event("lobbyRequest")
        assert request["participant"]["name"] == "patient"
        listed = await host.request("lobbyList")
        assert [w["id"] for w in listed["waiting"]] == [request["participant"]["id"]]
        try:
            await guest.request("chat", {"text": "hello?"})
        except Exception as exc:
            assert getattr(exc, "code", "") == "not_joined"
        await host.request("admit", {"participantId": request["participant"]["id"]})
        await guest.wait_event("admitted")
        # the other host's lobby list drops the admitted guest
        left = await cohost.wait_event("lobbyLeft")
        assert left == {"participantId": request["participant"]["id"], "admitted": True}
        joined = await guest.join()
        assert "lobby" not in joined and joined["self"]["name"] == "patient"
        await host.wait_event("participantJoined",
                              lambda d: d["participant"]["name"] == "patient")

        await stranger.request("join")
        other = await host.wait_event("lobbyRequest",
                                      lambda d: d["participant"]["name"] == "stranger")
        await host.request("refuse", {"participantId": other["participant"]["id"]})
        await stranger.wait_event("refused")
        await asyncio.wait_for(stranger.closed.wait(), 5)
        assert stranger.close_code == 4403
        refused = await cohost.wait_event(
            "lobbyLeft", lambda d: d["participantId"] == other["participant"]["id"])
        assert "admitted" not in refused
        assert (await cohost.request("lobbyList"))["waiting"] == []

        # admitted once: a reconnect goes straight in
        await guest.drop()
        again = Client(server.base_url, server.token("clinic", "patient", role="attendee"))
        await again.connect()
        assert (await again.join())["resumed"] is True
        await again.close()
    finally:
        for c in (host, guest, stranger, cohost):
            await c.close()


async def test_invitation_link_gives_each_holder_an_identity(server) -> None:
    await server.create_room("launch")
    async with aiohttp.ClientSession() as s:
        async with s.post(server.base_url + "/api/rooms/launch/invites",
                          json={"role": "attendee", "ttl": 3600}, headers=AUTH) as r:
            assert r.status == 200
            invite = await r.json()
        async with s.post(server.base_url + "/api/rooms/launch/invites",
                          json={"role": "attendee"}) as r:
            assert r.status == 401
    assert invite["url"] == f"/r/launch?token={invite['token']}"
    a = Client(server.base_url, invite["token"], query={"identity": "tab-aaaa", "name": "Dr A"})
    b = Client(server.base_url, invite["token"], query={"name": "Dr B"})
    # a name with control characters is shown without them
    c = Client(server.base_url, invite["token"],
               query={"identity": "bad id!", "name": "Dr\x00 C\u2028\x1b"})
    try:
        for client in (a, b, c):
            await client.connect()
            await client.join()
        ids = {client.self_id for client in (a, b, c)}
        assert len(ids) == 3  # three people, not one identity taken over twice
        names = {p["name"] for p in c.joined["participants"]} | {c.joined["self"]["name"]}
        assert names == {"Dr A", "Dr B", "Dr C"}
        assert all(client.joined["self"]["role"] == "attendee" for client in (a, b, c))
        # the same tab identity reconnecting takes its place back
        a_id = a.self_id
        await a.drop()
        a2 = Client(server.base_url, invite["token"],
                    query={"identity": "tab-aaaa", "name": "Dr A"})
        await a2.connect()
        assert (await a2.join())["self"]["id"] == a_id
        await a2.close()
    finally:
        for client in (a, b, c):
            await client.close()
