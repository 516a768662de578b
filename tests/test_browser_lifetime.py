"""A Chromium page alone in a room past the default ICE consent timeout (30 s), then joined by
a second page: the first is still in the meeting, with the same place, and both decode each
other. Runs with every timer at its default, as `make run` starts the server."""

from __future__ import annotations

from pathlib import Path

from tests.support import canary
from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import running_server

DEFAULT_CONSENT = 30.0

IN_MEETING = "window.__meeting && window.__meeting.joined && !window.__meeting.ended"


async def test_alone_past_the_consent_timeout_then_joined(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        assert server.state.config.ice_consent_timeout == DEFAULT_CONSENT
        await server.create_room(canary.ROOM)
        pages, errors = [], []
        for name in ("Doctor", "Rep"):
            page = await (await browser.new_context()).new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            pages.append((name, page))
        doctor = pages[0][1]
        await doctor.goto(f"{server.base_url}/r/waiting-room?name=Doctor&autojoin=1")
        await doctor.wait_for_function(IN_MEETING, timeout=WAIT_MS)
        first_id = await doctor.evaluate("window.__meeting.selfId")

        # one whole default consent period goes by, proven by a canary expiring meanwhile
        await canary.outlast_consent(server, 1, DEFAULT_CONSENT)
        assert await doctor.evaluate(IN_MEETING)
        assert await doctor.evaluate("window.__meeting.selfId") == first_id  # never rejoined
        status = await doctor.locator("body").inner_text()
        assert "Disconnected" not in status and "reconnecting" not in status.lower()
        room = server.state.rooms.rooms["waiting-room"]
        assert [p.id for p in room.participants.values()] == [first_id]

        rep = pages[1][1]
        await rep.goto(f"{server.base_url}/r/waiting-room?name=Rep&autojoin=1")
        await rep.wait_for_function(IN_MEETING, timeout=WAIT_MS)
        for _, page in pages:
            await watch_stats(page)
        for _, page in pages:
            stats = await wait_decoding(page, 30)
            assert stats["decodingVideos"] == 1 and stats["audioEnergy"] > 0, stats
        assert await doctor.evaluate("window.__meeting.selfId") == first_id
        assert not errors, errors
