"""Raised hands, shared notes, host controls and the webinar stage, over the WebSocket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.support.client import Client, RequestFailed
from tests.support.server import API_KEY, running_server
from tests.support.tracks import FrameChecker, PatternVideoTrack, ToneAudioTrack


async def create_room(server, name: str, room_type: str = "meeting") -> None:
    async with aiohttp.ClientSession() as s, s.post(
            server.base_url + "/api/rooms", json={"name": name, "type": room_type},
            headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        assert r.status == 201


async def joined(server, room: str, identity: str, role: str = "attendee") -> Client:
    client = Client(server.base_url, server.token(room, identity, role=role))
    await client.connect()
    await client.join()
    return client


async def expect_code(coro, code: str) -> RequestFailed:
    try:
        await coro
    except RequestFailed as exc:
        assert exc.code == code, exc
        return exc
    raise AssertionError(f"expected {code}")


async def test_hands_and_notes_persist_across_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as server:
        await create_room(server, "fixed")
        rep = await joined(server, "fixed", "rep", "host")
        doc = await joined(server, "fixed", "doc")
        try:
            hands = await doc.request("raiseHand", {"raised": True})
            assert hands["hands"] == [doc.self_id]
            event = await rep.wait_event("handRaised", lambda d: d["participantId"] == doc.self_id)
            assert event["raised"] is True
            first = await rep.request("setNotes", {"text": "1. dosage", "baseVersion": 0})
            assert first["notes"]["version"] == 1
            changed = await doc.wait_event("notesChanged")
            assert changed["notes"]["text"] == "1. dosage"
            # doc edited from version 0 as well: refused with the current text, nothing lost
            conflict = await expect_code(
                doc.request("setNotes", {"text": "1. side effects", "baseVersion": 0}),
                "conflict")
            assert conflict.code == "conflict"
            merged = await doc.request("setNotes", {"text": "1. dosage\n2. side effects",
                                                    "baseVersion": 1})
            assert merged["notes"]["version"] == 2
        finally:
            await rep.close()
            await doc.close()
    async with running_server(data) as server:  # everyone left, the server restarted
        doc = await joined(server, "fixed", "doc")
        try:
            assert doc.joined["self"]["handRaised"] is True
            notes = (await doc.request("getNotes"))["notes"]
            assert notes["text"] == "1. dosage\n2. side effects" and notes["version"] == 2
            await doc.request("raiseHand", {"raised": False})
        finally:
            await doc.close()


async def test_host_mutes_and_removes(server) -> None:
    await create_room(server, "ctl")
    host = await joined(server, "ctl", "host", "host")
    guest = await joined(server, "ctl", "guest")
    try:
        await guest.publish(ToneAudioTrack(440))
        audio_id = await host.tracks_of(guest.self_id, "audio")
        await expect_code(guest.request("muteParticipant", {"participantId": host.self_id}),
                          "forbidden")
        await host.request("muteParticipant", {"participantId": guest.self_id, "kind": "audio"})
        muted = await guest.wait_event("trackMuted", lambda d: d["trackId"] == audio_id)
        assert muted["muted"] is True
        await host.request("removeParticipant", {"participantId": guest.self_id})
        await asyncio.wait_for(guest.closed.wait(), 5)
        assert guest.close_code == 4403
        await host.wait_event("participantLeft", lambda d: d["participantId"] == guest.self_id)
    finally:
        await host.close()
        await guest.close()


async def test_webinar_stage_flow(server) -> None:
    await create_room(server, "launch", "webinar")
    host = await joined(server, "launch", "host", "host")
    presenter = await joined(server, "launch", "speaker", "presenter")
    attendee = await joined(server, "launch", "dr-a")
    viewer = await joined(server, "launch", "dr-b")
    tasks: list[asyncio.Task] = []
    try:
        assert attendee.joined["roomType"] == "webinar"
        await presenter.publish(PatternVideoTrack(1))
        # attendees receive only
        await expect_code(attendee.publish(PatternVideoTrack(2)), "forbidden")
        frames = FrameChecker()
        tasks.append(asyncio.create_task(frames.run(await viewer.remote_track(
            await viewer.tracks_of(presenter.self_id, "video")))))
        await frames.wait_for(1, 10, timeout=20)

        await attendee.request("raiseHand", {"raised": True})
        await host.wait_event("handRaised", lambda d: d["participantId"] == attendee.self_id)
        await host.request("promote", {"participantId": attendee.self_id})
        stage = await attendee.wait_event("stageChanged",
                                          lambda d: d["participantId"] == attendee.self_id)
        assert stage["onStage"] is True
        await attendee.publish_pc.close()  # the refused attempt's connection is dropped
        attendee.publish_pc = None
        await attendee.publish(PatternVideoTrack(2))
        for watcher in (viewer, presenter):
            seen = FrameChecker()
            tasks.append(asyncio.create_task(seen.run(await watcher.remote_track(
                await watcher.tracks_of(attendee.self_id, "video")))))
            await seen.wait_for(2, 10, timeout=20)
        assert (await host.request("raiseHand", {"raised": False}))["hands"] == []

        await host.request("demote", {"participantId": attendee.self_id})
        await viewer.wait_event("trackUnpublished",
                                lambda d: d["participantId"] == attendee.self_id)
        await expect_code(attendee.request("publish", {"sdp": "v=0"}), "forbidden")
    finally:
        for t in tasks:
            t.cancel()
        for c in (host, presenter, attendee, viewer):
            await c.close()


async def test_webinar_backstage_until_live(server) -> None:
    async with aiohttp.ClientSession() as s, s.post(
            server.base_url + "/api/rooms",
            json={"name": "premiere", "type": "webinar", "backstage": True},
            headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        assert r.status == 201
    host = await joined(server, "premiere", "host", "host")
    presenter = await joined(server, "premiere", "speaker", "presenter")
    attendee = await joined(server, "premiere", "dr-a")
    tasks: list[asyncio.Task] = []
    try:
        assert attendee.joined["live"] is False
        await presenter.publish(PatternVideoTrack(4))
        # the host (on stage) sees the presenter rehearse; the audience gets nothing
        backstage = FrameChecker()
        tasks.append(asyncio.create_task(backstage.run(await host.remote_track(
            await host.tracks_of(presenter.self_id, "video")))))
        await backstage.wait_for(4, 5, timeout=20)
        assert not any(e.get("event") in ("trackPublished", "subscriberOffer")
                       for e in attendee.events)
        await expect_code(attendee.request("setLive", {"live": True}), "forbidden")

        await host.request("setLive", {"live": True})
        assert (await attendee.wait_event("liveChanged"))["live"] is True
        live = FrameChecker()
        tasks.append(asyncio.create_task(live.run(await attendee.remote_track(
            await attendee.live_track_of(presenter.self_id, "video")))))
        await live.wait_for(4, 10, timeout=20)

        await host.request("setLive", {"live": False})
        await attendee.wait_event("trackUnpublished",
                                  lambda d: d["participantId"] == presenter.self_id)
    finally:
        for t in tasks:
            t.cancel()
        for c in (host, presenter, attendee):
            await c.close()
