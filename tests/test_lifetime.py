"""Sessions last as long as people stay: real clients on real timelines, content checked.

The server's ICE consent timeout is shortened to CONSENT seconds and the aiortc clients send
their consent checks every second instead of every five (aioice's CONSENT_INTERVAL), so a
"wait ten minutes" runs in seconds through the same code path. Each waiting window is proven
by canaries: connections in another room that came up and then went silent, expired by the
very timer that must leave the waiting people alone. tests/test_browser_lifetime.py runs a
Chromium page through the default 30 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import aioice.ice
import pytest

from tests.support import canary
from tests.support.client import Client
from tests.support.server import RunningServer, running_server
from tests.support.tracks import FrameChecker, PatternVideoTrack, ToneAudioTrack, ToneChecker

CONSENT = 5.0  # the server's ICE consent timeout in these tests (default 30 s)
TONES = {1: 440.0, 2: 660.0, 3: 880.0, 4: 550.0, 5: 770.0}


@pytest.fixture(autouse=True)
def quick_client_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice checks consent every 4-6 s: longer than CONSENT. Every 0.4-0.6 s keeps a live
    # client as far inside CONSENT as Chromium's ~5 s checks are inside the default 30 s, so a
    # busy machine that delays a few checks drops nobody (with 1 s, a CI-like load did). The
    # client must not give up first either: aioice's own limit is 6 failed checks.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.5)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 60)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path / "data", ice_consent_timeout=CONSENT) as srv:
        await srv.create_room(canary.ROOM)
        yield srv


async def outlast_consent(server: RunningServer, periods: int) -> None:
    await canary.outlast_consent(server, periods, CONSENT)


@dataclass
class Person:
    """An aiortc participant who may publish a pattern and a tone and watches others."""

    client: Client
    sender: int = 0
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def id(self) -> str:
        assert self.client.self_id is not None
        return self.client.self_id

    async def publish(self, sender: int) -> None:
        self.sender = sender
        # 15 fps: three people encode and six streams decode in this one process, beside the
        # server; a busy machine must not starve them into a false failure
        await self.client.publish(PatternVideoTrack(sender, fps=15),
                                  ToneAudioTrack(TONES[sender]))

    async def sees_and_hears(self, other: Person, frames: int = 15) -> None:
        """`other`'s current pattern and tone arrive here decoded and intact."""
        video = await self.client.remote_track(
            await self.client.live_track_of(other.id, "video", timeout=20), timeout=20)
        audio = await self.client.remote_track(
            await self.client.live_track_of(other.id, "audio", timeout=20), timeout=20)
        checker, tone = FrameChecker(), ToneChecker()
        tasks = [asyncio.create_task(checker.run(video)), asyncio.create_task(tone.run(audio))]
        self.tasks += tasks
        try:
            stats = await checker.wait_for(other.sender, frames, timeout=20)
            assert stats.advances >= frames - 1, checker.describe()
            assert checker.sender_ids == {other.sender}, checker.describe()
            freq = await tone.wait_for_frequency(TONES[other.sender], tolerance_hz=15,
                                                 timeout=20)
            assert abs(freq - TONES[other.sender]) <= 15
        finally:
            for task in tasks:
                task.cancel()

    def still_in(self) -> None:
        assert not self.client.closed.is_set(), f"dropped: close code {self.client.close_code}"
        failed = [e for e in self.client.events
                  if e["event"] in ("_offer_failed", "_answer_failed")]
        assert not failed, failed
        # one offer per change: never the same offer twice in a row on one connection
        offers = [e["data"] if e["event"] == "subscriberOffer" else None
                  for e in self.client.events if e["event"] in ("subscriberOffer", "moved")]
        for before, after in zip(offers, offers[1:], strict=False):
            if before is not None and after is not None:
                assert _body(before["sdp"]) != _body(after["sdp"]), "the same offer twice"

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.client.close()


@asynccontextmanager
async def person(server: RunningServer, room: str, identity: str, role: str = "host",
                 sender: int = 0) -> AsyncIterator[Person]:
    p = Person(Client(server.base_url, server.token(room, identity, role=role)))
    await p.client.connect()
    try:
        await p.client.join()
        if sender:
            await p.publish(sender)
        yield p
    finally:
        await p.close()


def _body(sdp: str) -> str:
    """An offer without its origin line (whose session version always changes)."""
    return "\n".join(line for line in sdp.splitlines() if not line.startswith("o="))


async def health(server: RunningServer) -> dict:
    async with aiohttp.ClientSession() as s, s.get(f"{server.base_url}/api/health") as r:
        return await r.json()


def left_ids(p: Person) -> list[str]:
    return [e["data"]["participantId"] for e in p.client.events
            if e["event"] == "participantLeft"]


async def test_alone_for_several_consent_periods_then_joined(server: RunningServer) -> None:
    """The doctor opens the room and waits for the rep: nothing ends while they are alone."""
    await server.create_room("clinic")
    async with person(server, "clinic", "doctor", sender=1) as doctor:
        await outlast_consent(server, 3)
        doctor.still_in()
        assert doctor.client.subscribe_pc is not None
        assert (await health(server))["participants"] >= 1
        async with person(server, "clinic", "rep", sender=2) as rep:
            await asyncio.gather(doctor.sees_and_hears(rep), rep.sees_and_hears(doctor))
            doctor.still_in()
            rep.still_in()


@pytest.mark.parametrize("backstage", [False, True], ids=["no-backstage", "backstage"])
async def test_webinar_attendees_arrive_early(server: RunningServer, backstage: bool) -> None:
    """Attendees join long before the presenter publishes; with a backstage the presenter
    then waits alone backstage before going live. Everyone ends up seeing and hearing them."""
    await server.create_room("event", type="webinar", backstage=backstage)
    async with person(server, "event", "att1", role="attendee") as att1, \
            person(server, "event", "att2", role="attendee") as att2:
        await outlast_consent(server, 2)
        async with person(server, "event", "speaker", role="host", sender=3) as speaker:
            if backstage:
                await outlast_consent(server, 2)  # alone backstage, publishing
                for p in (att1, att2, speaker):
                    p.still_in()
                assert not [e for e in att1.client.events if e["event"] == "trackPublished"]
                await speaker.client.request("setLive", {"live": True})
            await asyncio.gather(att1.sees_and_hears(speaker), att2.sees_and_hears(speaker))
            for p in (att1, att2, speaker):
                p.still_in()


async def test_breakout_group_of_one(server: RunningServer) -> None:
    """Someone alone in a breakout group keeps their call; after the groups close everyone
    sees and hears everyone, and nobody was sent an offer they could not answer."""
    await server.create_room("board")
    async with person(server, "board", "chair", sender=1) as chair, \
            person(server, "board", "ana", role="attendee", sender=2) as ana, \
            person(server, "board", "ben", role="attendee", sender=3) as ben:
        await ben.sees_and_hears(chair)
        groups = (await chair.client.request("breakoutCreate", {"count": 2}))
        g1, g2 = (g["id"] for g in groups["breakouts"]["groups"])
        for p, g in ((chair, g1), (ben, g1), (ana, g2)):
            await chair.client.request("breakoutAssign", {"participantId": p.id, "groupId": g})
        await chair.client.request("breakoutOpen")
        for p in (chair, ana, ben):
            await asyncio.wait_for(p.client.moved.wait(), 10)
            await p.publish(p.sender)
        await asyncio.gather(chair.sees_and_hears(ben), ben.sees_and_hears(chair))
        await outlast_consent(server, 2)  # ana alone in her group
        ana.still_in()
        await chair.client.request("breakoutClose")
        for p in (chair, ana, ben):
            await asyncio.wait_for(p.client.moved.wait(), 10)
            await p.publish(p.sender)
        everyone = (chair, ana, ben)
        await asyncio.gather(*(x.sees_and_hears(y) for x in everyone for y in everyone
                               if x is not y))
        for p in everyone:
            p.still_in()
            assert not left_ids(p)


async def test_meeting_of_three_through_mute_camera_off_leave_and_rejoin(
        server: RunningServer) -> None:
    """A long meeting compressed: cycles of mute, camera off, leaving and coming back, each
    held past the consent timeout. Nobody is dropped; after every cycle all see and hear
    all."""
    await server.create_room("board-meeting")
    cats: list[str] = []
    async with person(server, "board-meeting", "amy", sender=1) as amy, \
            person(server, "board-meeting", "bob", sender=2) as bob:
        for cycle in range(3):
            async with person(server, "board-meeting", "cat", sender=4 + cycle % 2) as cat:
                trio = (amy, bob, cat)
                await asyncio.gather(*(x.sees_and_hears(y, frames=10) for x in trio
                                       for y in trio if x is not y))
                amy_audio = await bob.client.live_track_of(amy.id, "audio")
                bob_video = await amy.client.live_track_of(bob.id, "video")
                await amy.client.request("mute", {"trackId": amy_audio, "muted": True})
                await bob.client.request("mute", {"trackId": bob_video, "muted": True})
                await outlast_consent(server, 1)  # muted and camera off, for a while
                await amy.client.request("mute", {"trackId": amy_audio, "muted": False})
                await bob.client.request("mute", {"trackId": bob_video, "muted": False})
                await asyncio.gather(cat.sees_and_hears(amy, frames=10),
                                     cat.sees_and_hears(bob, frames=10))
                cats.append(cat.id)
            # cat left; amy and bob go on alone for a while before cat comes back
            for p in (amy, bob):
                await p.client.wait_event("participantLeft",
                                          lambda d: d["participantId"] == cats[-1])
            await outlast_consent(server, 1)
            for p in (amy, bob):
                p.still_in()
                assert left_ids(p) == cats  # the leaves that happened, nobody else
        await asyncio.gather(amy.sees_and_hears(bob), bob.sees_and_hears(amy))


async def test_silent_media_keeps_the_place(server: RunningServer) -> None:
    """A connection that was up goes silent while the socket stays (UDP blocked mid-call):
    the client is asked to come back (4503 media_lost), keeps its place for the grace period,
    and its return is a resume: same id, the other never saw it leave."""
    await server.create_room("wifi")
    async with person(server, "wifi", "nurse", sender=1) as nurse:
        async with person(server, "wifi", "doctor", sender=2) as doctor:
            await nurse.sees_and_hears(doctor)
            for pc in (doctor.client.publish_pc, doctor.client.subscribe_pc):
                assert pc is not None
                await pc.close()
            await asyncio.wait_for(doctor.client.closed.wait(), CONSENT * 4)
            assert doctor.client.close_code == 4503
            old_id = doctor.id
        async with person(server, "wifi", "doctor", sender=2) as back:
            assert back.client.joined["resumed"] is True and back.id == old_id
            await asyncio.gather(nurse.sees_and_hears(back), back.sees_and_hears(nurse))
            assert not left_ids(nurse)
        await nurse.client.wait_event("participantLeft", lambda d: d["participantId"] == old_id)
        assert left_ids(nurse) == [old_id]  # only when it really left, at the end


async def test_bursts_over_a_long_session_are_refused_not_fatal(
        server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A participant who now and then sends more than the rate allows (clicking reactions in a
    two-hour event) gets `rate_limited` for those messages only; the refusals do not add up
    over the session into a disconnection. A real flood within one window still closes. The
    rate limits' clock is moved between the bursts instead of slept through."""
    from signaling import ratelimit, websocket

    clock = [1000.0]
    monkeypatch.setattr(ratelimit, "monotonic", lambda: clock[0])
    monkeypatch.setattr(websocket, "MAX_REJECTED", 30)
    await server.create_room("clicky")
    rate = server.state.config.messages_per_second
    burst = int(2 * rate)  # what the bucket holds

    def later() -> None:
        """Long enough for the bucket to refill and a flood window to pass."""
        clock[0] += burst / rate + websocket.REJECT_WINDOW + 1

    async with person(server, "clicky", "clicker") as clicker:
        client, ws = clicker.client, clicker.client.ws
        assert ws is not None

        def replies() -> list[dict]:
            return [e["data"] for e in client.events if e["event"] == "_unmatched"]

        async def send(count: int) -> list[dict]:
            """`count` pings at once (ids the client does not wait for); their replies."""
            seen = len(replies())
            for i in range(count):
                await ws.send_json({"id": f"burst-{i}", "method": "ping"})
            while len(replies()) < seen + count and not client.closed.is_set():
                await asyncio.sleep(0.01)  # replies arrive as fast as loopback carries them
            return replies()[seen:]

        refused = 0
        for _ in range(5):  # 25 refusals each: past MAX_REJECTED in all, never in one window
            later()
            got = await send(burst + 25)
            refused += sum(1 for r in got if r.get("error", {}).get("code") == "rate_limited")
            clicker.still_in()
        assert refused == 5 * 25 > websocket.MAX_REJECTED
        later()
        assert (await client.request("ping"))["pong"] is True
        await send(burst + websocket.MAX_REJECTED + 10)  # a flood
        await asyncio.wait_for(client.closed.wait(), 5)
        assert client.close_code == 1008


def test_flood_guard_counts_refusals_per_window() -> None:
    from signaling.ratelimit import FloodGuard

    guard = FloodGuard(limit=3, window=60.0)
    assert not any(guard.flooding(now=t) for t in (0, 1, 2))  # 3 in a window: refused, kept
    assert not any(guard.flooding(now=t) for t in (61, 62, 63))  # next window: count afresh
    assert guard.flooding(now=64)  # the 4th within one window: a flood
