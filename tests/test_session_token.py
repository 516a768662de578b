"""Coming back to a long meeting after the link's token expired: the server's session token.

A portal mints a link token valid for, say, an hour; the meeting runs for two. A reconnect after
that hour must not fail with `token_expired`: the join result and `tokenRefreshed` carry fresh
tokens for the same place (signaling/session_token.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from signaling import session_token, tokens
from signaling.tokens import verify
from tests.support.client import Client
from tests.support.server import JWT_SECRET, RunningServer
from tests.support.tracks import FrameChecker, PatternVideoTrack

LATER = 70 * 60  # seconds the token clock is moved on: a one-hour link is dead by then


async def test_return_after_the_link_token_expired(server: RunningServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-hour link; the token clock is moved 70 minutes on instead of waiting."""
    monkeypatch.setattr(session_token, "REFRESH_EVERY", 0.5)
    await server.create_room("long-meeting")
    link = server.token("long-meeting", "dr-lee", "Dr. Lee", role="presenter", ttl=3600)
    host = Client(server.base_url, server.token("long-meeting", "host"))
    lee = Client(server.base_url, link)
    back: Client | None = None
    checker = FrameChecker()
    try:
        for c in (host, lee):
            await c.connect()
            await c.join()
        await lee.publish(PatternVideoTrack(4))
        first = verify(JWT_SECRET, lee.joined["token"])
        assert (first.room, first.identity, first.name, first.role) == \
            ("long-meeting", "dr-lee", "Dr. Lee", "presenter")
        assert first.expires >= time.time() + session_token.LIFETIME - 5
        assert verify(JWT_SECRET, (await lee.wait_event("tokenRefreshed"))["token"]
                      ).identity == "dr-lee"

        later = LATER
        monkeypatch.setattr(tokens, "clock", lambda: time.time() + later)  # 70 minutes on
        refreshed = (await lee.wait_event(  # one minted since: valid an hour from "now"
            "tokenRefreshed", lambda d: verify(JWT_SECRET, d["token"], now=0).expires >
            time.time() + later + session_token.LIFETIME - 60))["token"]
        stale = Client(server.base_url, link)  # the link itself no longer lets anyone in
        await stale.connect()
        await asyncio.wait_for(stale.closed.wait(), 5)
        assert stale.close_code == 4401
        await stale.drop()

        old_id = lee.self_id
        await lee.drop()  # the network goes; the place is kept for the grace period
        back = Client(server.base_url, refreshed)
        await back.connect()
        await back.join()
        assert back.joined["resumed"] is True and back.self_id == old_id
        await back.publish(PatternVideoTrack(5))
        track = await host.remote_track(await host.live_track_of(old_id, "video"))
        task = asyncio.create_task(checker.run(track))
        await checker.wait_for(5, 10, timeout=20)
        task.cancel()
        assert not [e for e in host.events if e["event"] == "participantLeft"]
    finally:
        for c in (host, lee, back):
            if c is not None:
                await c.close()


async def test_no_refresh_after_leaving_or_dropping(server: RunningServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens are pushed only while connected: leaving, or a dropped socket waiting out its
    grace period, stops them."""
    monkeypatch.setattr(session_token, "REFRESH_EVERY", 0.2)
    await server.create_room("brief")
    for ending in ("leave", "drop"):
        c = Client(server.base_url, server.token("brief", f"visitor-{ending}"))
        await c.connect()
        try:
            await c.join()
            await c.wait_event("tokenRefreshed")
            session = next(p for p in server.state.sessions if p.id == c.self_id)
            assert session.tokens is not None and session.tokens._timer is not None
            if ending == "leave":
                await c.request("leave")
            else:
                await c.drop()
            await asyncio.wait_for(c.closed.wait(), 5)
            while not (session.suspended or session.on_closed is None):
                await asyncio.sleep(0.01)  # the server's side of the socket is winding up
            assert session.tokens._timer is None
        finally:
            await c.drop()
