"""The web client told its node is shutting down (4503 "server_draining", what SIGTERM sends
every client: signaling/app.py) comes back by itself through the same URL, the load balancer's,
and tries again while no node lets it in (here: the server refuses new sessions with 503 as a
draining node does, for one attempt of the page), then decodes a colleague again.
docs/operations.md, "Draining a node, rolling deploys"; the rolling restart itself, with node
processes: tests/test_rolling_restart.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from signaling.app import tell_to_move
from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import running_server

IN_MEETING = "window.__meeting && window.__meeting.joined"
ROOM = "ward-round"


class Refused(logging.Handler):
    """Set when the server answers a request with 503 (aiohttp's access log)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if '"GET /ws?' in record.getMessage() and '" 503 ' in record.getMessage():
            self.seen.set()


async def test_page_told_to_move_comes_back(tmp_path: Path) -> None:
    refused = Refused()
    access = logging.getLogger("aiohttp.access")
    access.addHandler(refused)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        async with running_server(tmp_path / "data") as server, chromium() as browser:
            await server.create_room(ROOM)
            errors: list[str] = []
            pages = []
            for identity in ("dr-lee", "nurse-kim"):
                page = await (await browser.new_context()).new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                token = server.token(ROOM, identity, identity, role="host")
                await page.goto(f"{server.base_url}/r/{ROOM}?token={token}&autojoin=1")
                await page.wait_for_function(IN_MEETING, timeout=WAIT_MS)
                pages.append(page)
            doctor = pages[0]
            joins = await doctor.evaluate("window.__meeting.joins")
            first_id = await doctor.evaluate("window.__meeting.selfId")

            server.state.draining = True  # its first attempt to come back is refused
            session = next(p for p in server.state.sessions if p.id == first_id)
            tell_to_move(session)
            await asyncio.wait_for(refused.seen.wait(), WAIT_MS / 1000)
            server.state.draining = False  # the load balancer's next node lets it in
            await doctor.wait_for_function(
                f"{IN_MEETING} && window.__meeting.joins > {joins}", timeout=WAIT_MS)
            for page in pages:
                await watch_stats(page)
            for page in pages:
                stats = await wait_decoding(page, 30)
                assert stats["decodingVideos"] == 1, stats
            assert not errors, errors
    finally:
        access.removeHandler(refused)
        access.setLevel(level)
