"""Run the real server (signalling + media worker) inside the test's event loop."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.server_proc import free_udp_range
from signaling.app import make_app
from signaling.config import ServerConfig
from signaling.state import STATE, AppState
from signaling.tokens import mint

API_KEY = "test-api-key"
JWT_SECRET = "test-secret-only-for-tests-32-bytes+"  # HS256 keys: at least 32 bytes


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(self, runner: web.AppRunner, config: ServerConfig) -> None:
        self.runner = runner
        self.config = config
        self.base_url = f"http://{config.host}:{config.http_port}"

    @property
    def state(self) -> AppState:
        return self.runner.app[STATE]

    def token(self, room: str, identity: str, name: str | None = None, role: str = "host",
              ttl: int = 600) -> str:
        return mint(JWT_SECRET, room, identity, name or identity, role, ttl)

    async def create_room(self, name: str, **settings: object) -> None:
        """settings: type, lobby, backstage (docs/protocol.md, POST /api/rooms)."""
        async with aiohttp.ClientSession() as s, s.post(
            f"{self.base_url}/api/rooms", json={"name": name, **settings},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as r:
            assert r.status in (200, 201), await r.text()

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(f"{self.base_url}/metrics") as r:
            return await r.text()


@asynccontextmanager
async def running_server(data_dir: Path, dev: bool = False, rtc_port: int | None = None,
                         workers: int = 0, subscribers_per_worker: int = 0,
                         grace_period: float = 30.0, store: str = "", node: str = "",
                         ice_consent_timeout: float = 30.0, host: str = "127.0.0.1",
                         **options: Any) -> AsyncIterator[RunningServer]:
    """In-process server; with workers > 0, media workers are real child processes. `host`:
    where HTTP and media listen and what ICE announces (a NetLab's host address). `options`:
    more ServerConfig fields (turn_urls, turn_secret, ...)."""
    if rtc_port is None:  # free for UDP and TCP (ICE-TCP), outside the ephemeral range
        rtc_port = 0 if workers else free_udp_range(1, host)
    # The HTTP socket is bound here and held until the site serves it: a port only looked up
    # (free_port) was taken meanwhile now and then (an outgoing connection's ephemeral port),
    # and the site's bind failed with "address already in use"
    http = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    http.bind((host, 0))
    config = ServerConfig(host=host, http_port=http.getsockname()[1], rtc_port=rtc_port,
                          data_dir=data_dir, dev=dev, api_key=API_KEY, jwt_secret=JWT_SECRET,
                          workers=workers, subscribers_per_worker=subscribers_per_worker,
                          grace_period=grace_period, store=store, node=node,
                          ice_consent_timeout=ice_consent_timeout, **options)
    runner = web.AppRunner(make_app(config))
    try:
        await runner.setup()
    except BaseException:
        http.close()
        raise
    site = web.SockSite(runner, http)
    await site.start()
    try:
        yield RunningServer(runner, config)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    """Two signalling nodes "a" and "b", one media worker process each, on one real Redis."""
    from tests.support.redis_server import redis_server

    async with redis_server(tmp_path / "redis") as url, \
            running_server(tmp_path / "a", workers=1, store=url, node="a") as node_a, \
            running_server(tmp_path / "b", workers=1, store=url, node="b") as node_b:
        yield node_a, node_b
