"""A portal's webhook endpoint for tests: a real HTTP server on 127.0.0.1 that queues what it
receives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from tests.support.server import RunningServer


@asynccontextmanager
async def hook_receiver(*nodes: RunningServer) -> AsyncIterator[asyncio.Queue]:
    """Set as the webhook URL of `nodes`; yields a queue of (headers, JSON body) per POST."""
    received: asyncio.Queue = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put((dict(request.headers), await request.json()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for node in nodes:
        node.state.recordings.webhooks.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield received
    finally:
        await runner.cleanup()
