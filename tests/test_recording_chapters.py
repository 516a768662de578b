"""Chapters from room events through the real server: aiortc participants, a recorded meeting,
a poll opened, a question answered, a second presenter; the API entry, the webhook and
chapters.vtt (under a grant only) agree; the player page lists them and seeks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.client import Client
from tests.support.recording_checks import capture_webhooks, segments
from tests.support.server import API_KEY, RunningServer, running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack
from tests.support.webvtt import parse_chapters

AUTH = {"Authorization": f"Bearer {API_KEY}"}
SEGMENT = 2.0  # the recorder's segment length (CompositeOptions)


async def person(server: RunningServer, room: str, identity: str, name: str, role: str,
                 *tracks: Any) -> Client:
    c = Client(server.base_url, server.token(room, identity, name, role))
    await c.connect()
    await c.join()
    if tracks:
        await c.publish(*tracks)
    return c


async def test_chapters_from_poll_answer_and_presenter(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server:
        await server.create_room("rounds")
        sent = capture_webhooks(server)
        host = await person(server, "rounds", "host", "Dr Host", "host",
                            PatternVideoTrack(1), ToneAudioTrack(440))
        bob = await person(server, "rounds", "bob", "Dr Bob", "presenter")
        ann = await person(server, "rounds", "ann", "Ann", "attendee")
        people = [host, bob, ann]
        try:
            question = (await ann.request("qaAsk", {"text": "Any side effects?"}))["question"]
            poll = (await host.request("pollCreate", {"question": "Which dose first?",
                                                      "options": ["5 mg", "10 mg"]}))["poll"]
            rid = (await host.request("recordStart", {"mode": "composite"}))["recordingId"]
            playlist = server.state.recordings.directory / rid / "index.m3u8"
            walls, counts = [], []

            counts.append(await segments(playlist, 1))
            walls.append(time.time())
            await host.request("pollOpen", {"pollId": poll["id"]})
            await host.request("pollOpen", {"pollId": poll["id"]})  # again: no second chapter

            counts.append(await segments(playlist, counts[-1] + 1))
            # a meeting attendee's camera is no presenter change
            await ann.publish(PatternVideoTrack(3))
            walls.append(time.time())
            await host.request("qaAnswer", {"questionId": question["id"]})

            counts.append(await segments(playlist, counts[-1] + 1))
            walls.append(time.time())
            await bob.publish(PatternVideoTrack(2), ToneAudioTrack(660))
            after_bob = time.time()
            await segments(playlist, counts[-1] + 2)
            recording = (await host.request("recordStop", timeout=120))["recording"]
        finally:
            for c in people:
                await c.close()

        titles = ["Poll: Which dose first?", "Answered: Any side effects?", "Dr Bob presents"]
        found = recording["chapters"]
        assert [c["title"] for c in found] == titles, found
        duration = recording["duration"]
        starts = [c["start"] for c in found]
        assert 0 < starts[0] < starts[1] < starts[2] < duration
        assert [c["end"] for c in found] == [*starts[1:], round(duration, 3)]
        for start, written in zip(starts, counts, strict=True):
            # `written` whole segments were out before the event: it is past them, and not
            # far past (a segment is written some latency after its end)
            assert written * SEGMENT - 0.25 <= start <= written * SEGMENT + 4, (start, written)
        # media offsets keep wall-clock distances (one part, so no gap in between)
        assert abs((starts[1] - starts[0]) - (walls[1] - walls[0])) < 0.3
        assert walls[2] - walls[1] - 0.3 < starts[2] - starts[1] < after_bob - walls[1] + 0.3
        assert len(await server.state.store.recording_chapters(rid)) == 3

        async with aiohttp.ClientSession() as s:
            async with s.get(f"{server.base_url}/api/recordings/{rid}", headers=AUTH) as r:
                assert (await r.json())["recording"]["chapters"] == found
            links = recording["links"]
            async with s.get(server.base_url + links["chapters"]) as r:
                assert r.status == 200 and r.content_type == "text/vtt"
                cues = parse_chapters(await r.text())
            assert [(c.start, c.end, c.text) for c in cues] == [
                (c["start"], c["end"], c["title"]) for c in found]
            async with s.get(f"{server.base_url}/recordings/{rid}/chapters.vtt") as r:
                assert r.status in (403, 404)
            forged = links["chapters"].replace(links["chapters"].split("/")[5], "0" * 32)
            async with s.get(server.base_url + forged) as r:
                assert r.status == 403
        assert sent and sent[-1]["id"] == rid and sent[-1]["chapters"] == found


async def test_player_lists_chapters_and_seeks(tmp_path: Path) -> None:
    from tests.support.browser import chromium

    async with running_server(tmp_path / "data") as server:
        await server.create_room("talk")
        host = await person(server, "talk", "host", "Host", "host",
                            PatternVideoTrack(4), ToneAudioTrack(550))
        try:
            why = (await host.request("qaAsk", {"text": "Why?"}))["question"]
            how = (await host.request("qaAsk", {"text": "How?"}))["question"]
            rid = (await host.request("recordStart", {"mode": "composite"}))["recordingId"]
            playlist = server.state.recordings.directory / rid / "index.m3u8"
            await segments(playlist, 1)
            await host.request("qaAnswer", {"questionId": why["id"]})
            await segments(playlist, 3)
            await host.request("qaAnswer", {"questionId": why["id"]})  # again: no chapter
            await host.request("qaDismiss", {"questionId": how["id"]})  # no chapter
            await host.request("qaAnswer", {"questionId": how["id"]})
            await segments(playlist, 5)
            recording = (await host.request("recordStop", timeout=120))["recording"]
        finally:
            await host.close()
        found = recording["chapters"]
        assert [c["title"] for c in found] == ["Answered: Why?", "Answered: How?"], found

        async with chromium() as browser:
            page = await (await browser.new_context()).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(server.base_url + recording["links"]["player"])
            await page.wait_for_function("window.__player.ready && "
                                         "window.__player.chapters.length > 0", timeout=30_000)
            listed = await page.evaluate("window.__player.chapters")
            # Chromium's own WebVTT parser read the same cues
            assert [(round(c["start"], 3), round(c["end"], 3), c["title"]) for c in listed] == [
                (c["start"], c["end"], c["title"]) for c in found]
            assert await page.locator("#chapters button").count() == 2
            second = found[1]["start"]
            await page.evaluate("window.__player.seekChapter(1)")
            await page.wait_for_function(
                f"document.getElementById('video').currentTime > {second + 0.5}",
                timeout=20_000)
            now = await page.evaluate("document.getElementById('video').currentTime")
            assert second < now < second + 5
            await page.wait_for_function(
                "document.querySelector('#chapters [data-index=\"1\"]')"
                ".getAttribute('aria-current') === 'true'", timeout=10_000)
            assert await page.evaluate("window.__player.errors") == []
            assert errors == []
