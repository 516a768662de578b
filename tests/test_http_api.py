"""HTTP API: API key protection, rooms, tokens, dev tokens, health and metrics."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from signaling.tokens import verify
from tests.support.client import Client
from tests.support.server import API_KEY, JWT_SECRET, running_server

AUTH = {"Authorization": f"Bearer {API_KEY}"}


async def test_api_requires_key(server) -> None:
    async with aiohttp.ClientSession() as s:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
            async with s.post(server.base_url + "/api/rooms", json={"name": "x"},
                              headers=headers) as r:
                assert r.status == 401
                assert (await r.json())["error"]["code"] == "unauthorized"
        async with s.get(server.base_url + "/api/rooms/x", headers={}) as r:
            assert r.status == 401


async def test_rooms_and_tokens(server) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(server.base_url + "/api/rooms", json={"name": "board-1"},
                          headers=AUTH) as r:
            assert r.status == 201
            assert (await r.json())["room"]["name"] == "board-1"
        async with s.post(server.base_url + "/api/rooms", json={"name": "board-1"},
                          headers=AUTH) as r:
            assert r.status == 200  # idempotent
        async with s.post(server.base_url + "/api/rooms", json={"name": "../etc"},
                          headers=AUTH) as r:
            assert r.status == 400
        async with s.post(server.base_url + "/api/rooms", data="{nope", headers=AUTH) as r:
            assert r.status == 400
        async with s.post(server.base_url + "/api/rooms/board-1/tokens",
                          json={"identity": "dr-a", "name": "Dr. A", "role": "presenter",
                                "ttl": 120}, headers=AUTH) as r:
            assert r.status == 200
            body = await r.json()
        grant = verify(JWT_SECRET, body["token"])
        assert (grant.room, grant.identity, grant.name, grant.role) == \
            ("board-1", "dr-a", "Dr. A", "presenter")
        assert body["url"] == f"/r/board-1?token={body['token']}"
        async with s.post(server.base_url + "/api/rooms/board-1/tokens",
                          json={"role": "emperor"}, headers=AUTH) as r:
            assert r.status == 400
        async with s.post(server.base_url + "/api/rooms/none/tokens", json={},
                          headers=AUTH) as r:
            assert r.status == 404

        client = Client(server.base_url, body["token"])
        await client.connect()
        try:
            await client.join()
            async with s.get(server.base_url + "/api/rooms/board-1", headers=AUTH) as r:
                info = await r.json()
            assert [p["name"] for p in info["participants"]] == ["Dr. A"]
            async with s.get(server.base_url + "/api/health") as r:
                assert await r.json() == {"status": "ok", "rooms": 1, "participants": 1}
        finally:
            await client.close()


async def test_dev_token_only_in_dev_mode(server, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as s, s.post(server.base_url + "/api/dev/token",
                      json={"room": "r1", "name": "Ann"}) as r:
        assert r.status == 404
    async with running_server(tmp_path / "dev", dev=True) as dev, aiohttp.ClientSession() as s:
        async with s.post(dev.base_url + "/api/dev/token", json={"room": "r1", "name": "Ann"}) as r:
            assert r.status == 200
            token = (await r.json())["token"]
        grant = verify(dev.config.effective_jwt_secret, token)
        assert (grant.room, grant.name, grant.role) == ("r1", "Ann", "host")
        async with s.post(dev.base_url + "/api/dev/token", json={"room": "a/b"}) as r:
            assert r.status == 400
        async with s.get(dev.base_url + "/r/r1") as r:
            assert r.status == 200
            assert "<html" in (await r.text()).lower()


async def test_metrics_exposed(server) -> None:
    text = await server.metrics()
    for name in ("mediaserver_participants", "mediaserver_rooms",
                 "mediaserver_packets_in_total", "mediaserver_packets_out_total",
                 "mediaserver_bytes_in_total", "mediaserver_bytes_out_total",
                 "mediaserver_packets_lost_total", "mediaserver_nacks_received_total",
                 "mediaserver_plis_received_total", "mediaserver_retransmissions_total"):
        assert f"\n{name} " in "\n" + text, name


async def test_room_page_preloads_its_whole_module_graph(server) -> None:
    """The hints must name every module the client imports (else a round trip per level comes
    back) and only files that exist."""
    async with aiohttp.ClientSession() as s:
        async with s.get(server.base_url + "/r/any-room") as r:
            assert r.status == 200 and r.content_type == "text/html"
            html = await r.text()
        preloaded = re.findall(r'<link rel="modulepreload" href="/static/js/([\w.-]+)">', html)
        assert "meeting.js" in preloaded and "room.js" not in preloaded  # room.js is the entry
        known = {"room.js", *preloaded}
        for name in sorted(known):
            async with s.get(f"{server.base_url}/static/js/{name}") as r:
                assert r.status == 200, name
                imports = re.findall(r"""from\s+['"]\./([\w.-]+\.js)['"]""", await r.text())
            assert set(imports) <= known, f"{name} imports {set(imports) - known} unhinted"


def test_production_refuses_a_short_jwt_secret() -> None:
    """HS256 with a key under 32 bytes can be guessed offline (RFC 7518 3.2): refused at
    start, with a hint, as `mediaserver serve` reports it."""
    import pytest

    from signaling.cli import main
    from signaling.config import ServerConfig

    with pytest.raises(ValueError, match="at least 32 bytes"):
        ServerConfig(jwt_secret="too-short-secret")
    assert ServerConfig(jwt_secret="x" * 32).jwt_secret
    assert main(["serve", "--jwt-secret", "too-short-secret", "--port", "0"]) == 2
