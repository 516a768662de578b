"""Integration: aiortc participants meet through the real server and check what they decode.

Each participant publishes video whose frames carry its sender id and a frame counter, and an
Opus tone at its own frequency; every other participant must decode both intact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tests.support.client import Client
from tests.support.tracks import FrameChecker, PatternVideoTrack, ToneAudioTrack, ToneChecker

TONES = {1: 440.0, 2: 660.0, 3: 880.0}


@dataclass
class Bot:
    sender: int
    client: Client
    tasks: list[asyncio.Task] = field(default_factory=list)

    async def watch(self, other: Bot) -> tuple[FrameChecker, ToneChecker]:
        """Start decoding `other`'s video and audio."""
        video = await self.client.remote_track(
            await self.client.tracks_of(other.client.self_id, "video"))
        audio = await self.client.remote_track(
            await self.client.tracks_of(other.client.self_id, "audio"))
        frames, tone = FrameChecker(), ToneChecker()
        self.tasks += [asyncio.create_task(frames.run(video)),
                       asyncio.create_task(tone.run(audio))]
        return frames, tone

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.client.close()


@asynccontextmanager
async def bot(server, room: str, sender: int, identity: str | None = None
              ) -> AsyncIterator[Bot]:
    client = Client(server.base_url, server.token(room, identity or f"bot{sender}"))
    await client.connect()
    b = Bot(sender, client)
    try:
        await client.join()
        await client.publish(PatternVideoTrack(sender), ToneAudioTrack(TONES[sender]))
        yield b
    finally:
        await b.close()


async def check_receives(receiver: Bot, sender: Bot, frames: int = 15) -> None:
    video, tone = await receiver.watch(sender)
    stats = await video.wait_for(sender.sender, frames, timeout=20)
    assert stats.advances >= frames - 1
    assert video.sender_ids == {sender.sender}, video.describe()
    freq = await tone.wait_for_frequency(TONES[sender.sender], tolerance_hz=15, timeout=20)
    assert abs(freq - TONES[sender.sender]) <= 15


async def test_three_participants_decode_each_other(server) -> None:
    await server.create_room("trio")
    async with bot(server, "trio", 1) as a, bot(server, "trio", 2) as b, \
            bot(server, "trio", 3) as c:
        pairs = [(x, y) for x in (a, b, c) for y in (a, b, c) if x is not y]
        await asyncio.gather(*(check_receives(x, y) for x, y in pairs))

        # c leaves: the others are told, and its tracks go away
        c_id = c.client.self_id
        await c.client.request("leave")
        for other in (a, b):
            await other.client.wait_event("participantLeft", lambda d: d["participantId"] == c_id)
            await other.client.wait_event("trackUnpublished",
                                          lambda d: d["participantId"] == c_id)

    # (c closed above by the context manager; a and b too.) Rejoin is checked separately.


async def test_participant_leaves_and_rejoins(server) -> None:
    await server.create_room("rejoin")
    async with bot(server, "rejoin", 1) as a, bot(server, "rejoin", 2) as b:
        await check_receives(a, b)
        old_id = b.client.self_id
        await b.close()
        await a.client.wait_event("participantLeft", lambda d: d["participantId"] == old_id)
        async with bot(server, "rejoin", 2, identity="bot2") as b2:
            new_id = b2.client.self_id
            assert new_id != old_id
            joined = await a.client.wait_event(
                "participantJoined", lambda d: d["participant"]["id"] == new_id)
            assert joined["participant"]["name"] == "bot2"
            await check_receives(a, b2)
            await check_receives(b2, a)


async def test_mute_pauses_forwarding_and_unmute_resumes(server) -> None:
    await server.create_room("mute")
    async with bot(server, "mute", 1) as a, bot(server, "mute", 2) as b:
        frames, _ = await b.watch(a)
        await frames.wait_for(1, 10, timeout=20)
        published = [e["data"]["track"] for e in b.client.events
                     if e.get("event") == "trackPublished"]
        video_id = next(t["id"] for t in published + b.client.joined["tracks"]
                        if t["participantId"] == a.client.self_id and t["kind"] == "video")
        await a.client.request("mute", {"trackId": video_id, "muted": True})
        event = await b.client.wait_event("trackMuted", lambda d: d["trackId"] == video_id)
        assert event["muted"] is True
        media = server.state.media
        b_transport = next(p for p in server.state.sessions
                           if p.id == b.client.self_id).subscribe_transport

        async def b_video_sent() -> int:
            return next(c.packets for c in (await media.dump()).consumers
                        if c.kind == "video" and c.transport_id == b_transport)

        sent_while_muted = await b_video_sent()
        await a.client.request("ping")  # a round trip: forwarding had time to stop
        await asyncio.sleep(0.5)  # a window in which a live stream would send ~40 packets
        assert await b_video_sent() - sent_while_muted <= 2
        await a.client.request("mute", {"trackId": video_id, "muted": False})
        await b.client.wait_event("trackMuted",
                                  lambda d: d["trackId"] == video_id and not d["muted"])
        before = frames.senders[1].readable
        await frames.wait_for(1, before + 10, timeout=20)


async def test_h264_is_forwarded(server) -> None:
    await server.create_room("h264")
    pub = Client(server.base_url, server.token("h264", "pub"))
    sub = Client(server.base_url, server.token("h264", "sub"))
    task = None
    try:
        for c in (pub, sub):
            await c.connect()
            await c.join()
        result = await pub.publish(PatternVideoTrack(7), video_codec="H264")
        assert "H264/90000" in result["sdp"] and "VP8" not in result["sdp"]
        (producer,) = (await server.state.media.dump()).producers
        assert producer.codec == "H264"
        frames = FrameChecker()
        task = asyncio.create_task(frames.run(
            await sub.remote_track(await sub.tracks_of(pub.self_id, "video"))))
        await frames.wait_for(7, 20, timeout=20)
        assert frames.sender_ids == {7}
    finally:
        if task:
            task.cancel()
        await pub.close()
        await sub.close()


async def test_unpublish_then_publish_a_new_track(server) -> None:
    await server.create_room("swap")
    async with bot(server, "swap", 1) as a, bot(server, "swap", 2) as b:
        await check_receives(b, a, frames=5)
        video_id = await b.client.tracks_of(a.client.self_id, "video")
        consumers_before = len((await server.state.media.dump()).consumers)
        await a.client.request("unpublish", {"trackId": video_id})
        await b.client.wait_event("trackUnpublished", lambda d: d["trackId"] == video_id)
        assert len((await server.state.media.dump()).consumers) == consumers_before - 1
        # b's next subscriber offer marks that m-line inactive
        offer = await b.client.wait_event(
            "subscriberOffer", lambda d: video_id not in d["tracks"].values())
        assert "a=inactive" in offer["sdp"]
        # a publishes a different camera on a new m-line; b decodes it
        for t in a.client.publish_pc.getTransceivers():
            if t.sender.track is not None and t.sender.track.kind == "video":
                await t.stop()
        await a.client.publish(PatternVideoTrack(3))
        new_id = (await b.client.wait_event(
            "trackPublished", lambda d: d["track"]["kind"] == "video"
            and d["track"]["id"] != video_id))["track"]["id"]
        frames = FrameChecker()
        track = await b.client.remote_track(new_id)
        b.tasks.append(asyncio.create_task(frames.run(track)))
        await frames.wait_for(3, 15, timeout=20)
        assert frames.sender_ids == {3}
