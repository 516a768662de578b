"""Catching up inside the room (docs/protocol.md, "Catching up"), in a real Chromium.

A webinar records itself from the host's first publish (autoRecord, composite, live HLS). The
host is an aiortc peer publishing the test pattern, whose frame counter is the clock (30 a
second). An attendee joins JOIN_AFTER seconds later, chooses "Watch from the start" and decodes
from the HLS the pattern's counter near the beginning, with the poll the host opened as a
chapter mark on the scrubber (one opened meanwhile joins it); while rewound the media worker
holds the attendee's stage video (the consumer paused, its packet count still) and a chat
message sent meanwhile is shown; at 2x the playback reaches the live edge and the page is
back on WebRTC by itself, decoding the live pattern again, its sound back; "Back to live"
returns at once. The host counted one rewound, then none. The playback was reported to the
replay analytics as DVR viewing. Once the host removes the attendee, the playlist under their
grant is refused.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from recorder.layout import cells
from signaling.analytics_api import EVENTS
from tests.support.browser import WAIT_MS, chromium, wait_decoding, wait_joined, watch_stats
from tests.support.client import Client
from tests.support.patterns import read_video_frame
from tests.support.recorder_hls import until_playlist
from tests.support.server import running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

JOIN_AFTER = 40  # seconds of the event before the attendee comes
FPS = 30
SENDER = 5
POLL_AT = 10  # seconds into the event: the poll (a chapter mark)

# The pattern in a video element's current picture: RGB of the box (fractions of the picture).
PIXELS = """([selector, box]) => {
  const v = document.querySelector(selector);
  if (!v || !v.videoWidth) return null;
  const [x, y, w, h] = [box[0] * v.videoWidth, box[1] * v.videoHeight,
                        box[2] * v.videoWidth, box[3] * v.videoHeight].map(Math.round);
  const c = document.createElement('canvas');
  c.width = w; c.height = h;
  const g = c.getContext('2d');
  g.drawImage(v, x, y, w, h, 0, 0, w, h);
  const rgba = g.getImageData(0, 0, w, h).data;
  let s = '';
  for (let i = 0; i < rgba.length; i += 4) {
    s += String.fromCharCode(rgba[i], rgba[i + 1], rgba[i + 2]);
  }
  return [w, h, btoa(s), v.currentTime];
}"""
WHOLE = (0.0, 0.0, 1.0, 1.0)
_x, _y, _w, _h = cells(1)[0].video_box(320, 240)  # the host's picture in the 1280x720 composite
COMPOSITE = (_x / 1280, _y / 720, _w / 1280, _h / 720)


async def pattern(page, selector: str, box: tuple[float, ...]) -> tuple[int, float]:
    """(counter, the video's currentTime) of the next readable picture in `selector`."""
    for _ in range(200):
        got = await page.evaluate(PIXELS, [selector, list(box)])
        if got is not None:
            w, h, data, at = got
            rgb = np.frombuffer(base64.b64decode(data), np.uint8).reshape(h, w, 3)
            read = read_video_frame(rgb)
            if read is not None:
                assert read[0] == SENDER, read
                return read[1], at
        await asyncio.sleep(0.05)  # the next frame
    raise AssertionError(f"no readable pattern in {selector}")


async def stage_video(server, participant_id: str):
    """The attendee's consumer of the host's video, from the media worker's dump."""
    session = next(p for p in server.state.sessions if p.id == participant_id and p.joined)
    dump = await server.state.media.dump()
    (consumer,) = [c for c in dump.consumers
                   if c.kind == "video" and c.transport_id == session.subscribe_transport]
    return consumer


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


@pytest.mark.timeout(360)  # 40 s before the join, ~45 s of catching up at 2x, a busy machine
async def test_a_late_attendee_catches_up_and_rejoins_live(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server, chromium() as browser:
        await server.create_room("launch", type="webinar", autoRecord=True)
        host = Client(server.base_url, server.token("launch", "host-1", "Host", "host"))
        video = PatternVideoTrack(SENDER)
        try:
            await host.connect()
            await host.join()
            await host.publish(video, ToneAudioTrack(440.0))
            rid = (await host.wait_event("recordingChanged", timeout=20))["recordingId"]
            await until_playlist(server.state.recordings.directory / rid / "index.m3u8",
                                 lambda m: m.segments)
            await video.sent(video.frames_sent + POLL_AT * FPS)
            poll = (await host.request("pollCreate", {"question": "Coffee or tea?",
                                                      "options": ["coffee", "tea"]}))["poll"]
            await host.request("pollOpen", {"pollId": poll["id"]})
            await video.sent(JOIN_AFTER * FPS)

            page = await (await browser.new_context()).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            token = server.token("launch", "late-1", "Late", "attendee")
            await page.goto(f"{server.base_url}/r/launch?token={token}&autojoin=1")
            await wait_joined(page)
            await watch_stats(page)
            await wait_decoding(page, 30)
            tile = f'.tile[data-participant-id="{host.self_id}"] video'
            live_counter, _ = await pattern(page, tile, WHOLE)
            assert live_counter >= (JOIN_AFTER - 5) * FPS, live_counter
            me = await page.evaluate("window.__meeting.selfId")
            assert "view" not in (await stage_video(server, me)).paused_by

            # Watch from the start: the HLS from its beginning, the poll as a chapter mark
            await page.click("#catchup-btn")
            await page.wait_for_function(
                "window.__catchup.rewound && document.querySelector('#catchup video')"
                ".currentTime > 0.5", timeout=WAIT_MS)
            early, at = await pattern(page, "#catchup video", COMPOSITE)
            print(f"live pattern {live_counter}, from the start {early} at {at:.1f} s")
            assert early < 10 * FPS < live_counter, (early, live_counter)
            assert (await host.wait_event("rewoundChanged", lambda d: d["count"] == 1))
            await page.wait_for_function("window.__catchup.chapters.length > 0", timeout=WAIT_MS)
            (chapter,) = await page.evaluate("window.__catchup.chapters")
            assert chapter["title"] == "Poll: Coffee or tea?"
            assert POLL_AT - 5 < chapter["start"] < POLL_AT + 8, chapter
            assert await page.locator(".catchup-tick").count() == 1
            # a poll opened while catching up becomes a mark too
            poll = (await host.request("pollCreate", {"question": "Questions?",
                                                      "options": ["yes", "no"]}))["poll"]
            await host.request("pollOpen", {"pollId": poll["id"]})

            # rewound: the stage video held at the server, chat goes on
            await page.wait_for_function(
                "Object.values(window.__meeting.trackViews).every((v) => v === false)",
                timeout=WAIT_MS)
            held = await stage_video(server, me)
            assert held.paused and "view" in held.paused_by, held
            await host.request("chat", {"text": "welcome, latecomers"})
            await page.wait_for_function(
                "document.getElementById('chat-log').textContent.includes('welcome, latecomers')",
                timeout=WAIT_MS)
            sent = video.frames_sent
            await video.sent(sent + 2 * FPS)  # two seconds of the host's video meanwhile
            assert (await stage_video(server, me)).packets - held.packets <= 2
            assert await page.evaluate("window.__catchup.rewound")
            assert await page.evaluate(f"document.querySelector('{tile}').muted")  # silent

            # 2x until the live edge: back on WebRTC by itself
            await page.wait_for_function("window.__catchup.chapters.length === 2",
                                         timeout=WAIT_MS)
            assert await page.locator(".catchup-tick").count() == 2
            await page.select_option("#catchup-speed", "2")
            await page.wait_for_function("window.__catchup.toLive.length > 0",
                                         timeout=JOIN_AFTER * 3 * 1000)
            assert await page.evaluate("window.__catchup.toLive") == ["live edge"]
            print(f"held: {held.packets} packets at the hold, live edge reached "
                  f"{video.frames_sent / FPS:.0f} s into the event")
            frames = (await page.evaluate("window.__inbound"))["framesDecoded"]
            await wait_decoding(page, frames + 30)
            back, _ = await pattern(page, tile, WHOLE)
            assert back > video.frames_sent - 5 * FPS, (back, video.frames_sent)
            # shown again (the allocator may still pause it for the link's budget: not ours)
            assert "view" not in (await stage_video(server, me)).paused_by
            assert not await page.evaluate(f"document.querySelector('{tile}').muted")
            assert await host.wait_event("rewoundChanged", lambda d: d["count"] == 0)
            assert await page.evaluate("window.__catchup.errors") == [] and errors == []

            # the catch-up went to the replay analytics as DVR viewing of the live event
            log = server.runner.app[EVENTS]
            plays = [e for e in await log.read(recording=rid) if e.kind == "play"]
            assert plays and all(e.data.get("dvr") and e.data["live"] for e in plays), plays
            assert any(r[2] == 2 for e in plays for r in e.data["ranges"]), plays

            # "Back to live" at once; the grant stays theirs while they are in the room...
            await page.click("#catchup-btn")
            await page.wait_for_function("window.__catchup.rewound", timeout=WAIT_MS)
            playlist = await page.evaluate("window.__catchup.playlist")
            await page.click("#catchup-live-btn")
            assert await page.evaluate("window.__catchup.toLive") == ["live edge", "button"]
            assert await page.is_visible(tile) and not await page.is_visible("#catchup")
            status, text = await get(server.base_url + playlist)
            assert status == 200 and text.startswith("#EXTM3U"), (status, text[:200])
            # ... and is refused once the host removed them
            await host.request("removeParticipant", {"participantId": me})
            await host.wait_event("participantLeft", lambda d: d["participantId"] == me)
            status, text = await get(server.base_url + playlist)
            assert status == 403, (status, text[:200])
        finally:
            await host.close()
