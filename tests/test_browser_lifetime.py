"""Chromium pages on long timelines, every timer at its default as `make run` starts the server.

A page alone in a room past the default ICE consent timeout (30 s), then joined by a second
page: the first is still in the meeting, with the same place, and both decode each other. A
page whose link token expired during the meeting comes back after losing its media."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from signaling import session_token, tokens
from signaling.tokens import TokenError, verify
from tests.support import canary
from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import JWT_SECRET, running_server

DEFAULT_CONSENT = 30.0

IN_MEETING = "window.__meeting && window.__meeting.joined"


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


async def test_page_comes_back_after_its_link_token_expired(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A portal link's token, valid an hour, has expired 70 minutes into the meeting (the token
    clock is moved on rather than waited for); then the page's media goes silent (4503
    media_lost). The page comes back by itself with the token the server kept fresh for it,
    into the same place, and decodes a colleague who joins after."""
    monkeypatch.setattr(session_token, "REFRESH_EVERY", 0.5)
    async with running_server(tmp_path / "data") as server, chromium() as browser:
        await server.create_room("ward-round")
        link = server.token("ward-round", "dr-lee", "Dr. Lee", role="host", ttl=3600)
        errors: list[str] = []
        doctor = await (await browser.new_context()).new_page()
        doctor.on("pageerror", lambda exc: errors.append(str(exc)))
        await doctor.goto(f"{server.base_url}/r/ward-round?token={link}&autojoin=1")
        await doctor.wait_for_function(IN_MEETING, timeout=WAIT_MS)
        first_id = await doctor.evaluate("window.__meeting.selfId")
        joins = await doctor.evaluate("window.__meeting.joins")

        later = 70 * 60
        monkeypatch.setattr(tokens, "clock", lambda: time.time() + later)
        fresh = int(time.time() + later + session_token.LIFETIME - 60)
        await doctor.wait_for_function(  # the page holds a token minted since
            f"window.__meeting.sessionTokenExpires > {fresh}", timeout=WAIT_MS)
        with pytest.raises(TokenError, match="expired"):
            verify(JWT_SECRET, link)  # the link itself is dead by now
        session = next(p for p in server.state.sessions if p.id == first_id)
        session.media_lost()  # as when its ICE consent expires (tests/test_lifetime.py)
        await doctor.wait_for_function(
            f"{IN_MEETING} && window.__meeting.joins > {joins}", timeout=WAIT_MS)
        assert await doctor.evaluate("window.__meeting.selfId") == first_id  # resumed

        nurse = await (await browser.new_context()).new_page()
        nurse.on("pageerror", lambda exc: errors.append(str(exc)))
        token = server.token("ward-round", "nurse-kim", "Nurse Kim", role="presenter")
        await nurse.goto(f"{server.base_url}/r/ward-round?token={token}&autojoin=1")
        await nurse.wait_for_function(IN_MEETING, timeout=WAIT_MS)
        for page in (doctor, nurse):
            await watch_stats(page)
        for page in (doctor, nurse):
            stats = await wait_decoding(page, 30)
            assert stats["decodingVideos"] == 1, stats
        assert not errors, errors
