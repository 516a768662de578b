"""The media worker carrying a call dies in the middle of it (issue 14: the room moves to a live
worker): two real Chromium pages in a meeting keep their page, socket and participant id, get
new connections in place (`moved` with reason media_restart) and decode each other's camera and
hear each other again, without anyone seen leaving. docs/operations.md, "Media workers"."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.support.browser import IN_MEETING, WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import running_server

ROOM = "clinic"


async def test_pages_keep_the_call_when_its_worker_dies(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", workers=2) as server, \
            chromium() as browser:
        await server.create_room(ROOM)
        errors: list[str] = []
        pages = []
        for identity in ("dr-lee", "rep-cho"):
            page = await (await browser.new_context()).new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            token = server.token(ROOM, identity, identity, role="host")
            await page.goto(f"{server.base_url}/r/{ROOM}?token={token}&autojoin=1")
            await page.wait_for_function(IN_MEETING, timeout=WAIT_MS)
            await watch_stats(page)
            pages.append(page)
        for page in pages:
            await wait_decoding(page, 30)
        ids = [await page.evaluate("window.__meeting.selfId") for page in pages]
        joins = [await page.evaluate("window.__meeting.joins") for page in pages]
        for page in pages:
            await page.evaluate("window.__before = window.__meeting.subscribePc")

        pool = server.state.media
        prefix = await pool.worker_of(server.state.rooms.rooms[ROOM].router_id)
        victim = next(w for w in pool.workers if w.prefix == prefix)
        os.kill(victim.process.pid, signal.SIGKILL)  # a process this test's server started

        for page in pages:  # a new subscribe connection, then pictures and sound on it
            await page.wait_for_function(
                "window.__meeting.subscribePc && window.__meeting.subscribePc !== "
                "window.__before", timeout=WAIT_MS)
            await page.evaluate("window.__inbound = null")
        for page in pages:
            stats = await wait_decoding(page, 30)
            assert stats["decodingVideos"] == 1, stats
        assert not server.state.rooms.rooms[ROOM].router_id.startswith(prefix) or \
            victim.restarts == 1
        for page, pid, before in zip(pages, ids, joins, strict=True):
            assert await page.evaluate("window.__meeting.selfId") == pid
            assert await page.evaluate("window.__meeting.joins") == before  # no rejoin
        assert not errors, errors
