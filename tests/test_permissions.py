"""Every cell of the role table (docs/protocol.md): allowed calls are not refused, the others
get `forbidden`, in a meeting and in a webinar (where attendees need the stage to publish)."""

from __future__ import annotations

import aiohttp
import pytest

import signaling.participant  # noqa: F401  (importing it registers every method)
from signaling.methods import METHODS, allowed
from signaling.tokens import ROLES
from tests.support.client import Client, RequestFailed
from tests.support.server import API_KEY

# Methods whose call with empty params would end the session or change who is joined.
LAST = {"leave"}


async def create_room(server, name: str, room_type: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            server.base_url + "/api/rooms", json={"name": name, "type": room_type},
            headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        assert r.status == 201


@pytest.mark.parametrize("room_type", ["meeting", "webinar"])
async def test_role_table(server, room_type: str) -> None:
    room = f"perm-{room_type}"
    await create_room(server, room, room_type)
    for role in ROLES:
        client = Client(server.base_url, server.token(room, f"{role}-user", role=role))
        await client.connect()
        try:
            await client.join()
            for method in sorted(METHODS, key=lambda m: m in LAST):
                expected = allowed(method, role, room_type)
                try:
                    await client.request(method, {})
                    outcome = "ok"
                except RequestFailed as exc:
                    outcome = exc.code
                assert outcome != "internal", (room_type, role, method)
                if expected:
                    assert outcome != "forbidden", (room_type, role, method)
                else:
                    assert outcome == "forbidden", (room_type, role, method, outcome)
        finally:
            await client.close()


def test_table_shape() -> None:
    # hosts may do everything; attendees never control others; the stage matters only in
    # webinars
    assert all(allowed(m, "host", "webinar") for m in METHODS)
    for method in ("muteParticipant", "removeParticipant", "promote", "demote"):
        assert not allowed(method, "attendee") and not allowed(method, "presenter")
    for method in (m for m, entry in METHODS.items() if entry.stage):
        assert allowed(method, "attendee", "meeting")
        assert not allowed(method, "attendee", "webinar")
        assert allowed(method, "attendee", "webinar", on_stage=True)
    assert not allowed("no-such-method", "host")
