"""Replay and attention analytics from a real Chromium (docs/analytics.md).

- A meeting is recorded through the server (two aiortc participants, the recorder process,
  VOD); Chromium plays the VOD on the player page `/play` with scripted seeks: it skips a
  range, goes back to see another again and stops before the end, then leaves the page (its
  last report goes out by sendBeacon at pagehide). `GET /api/recordings/{id}/analytics` must
  say what was scripted: unwatched, skipped, re-watched, drop-off and completion, within a
  second or two. The dashboard then shows that recording and the meeting's session to a host
  (strips, table, CSV download, the heatmap scrubber seeking the video).
- A page of the web client in a meeting is hidden for a few seconds (document.visibilityState
  stubbed, visibilitychange dispatched, as a switched tab does): the client's setVisibility
  reaches the server and the session report's visibleSeconds leaves that time out.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from tests.support.browser import WAIT_MS, chromium, wait_joined
from tests.support.client import Client
from tests.support.server import API_KEY, RunningServer, running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

AUTH = {"Authorization": f"Bearer {API_KEY}"}
RECORD_SECONDS = 30
# the viewer's script, in seconds of the recording
SKIP_AT, SKIP_TO = 8, 16  # 8-16 skipped
BACK_AT, BACK_TO = 22, 18  # 18-22 seen twice
STOP_AT = 26  # stops there: 26-end unwatched
NEAR = 1.5  # seconds: a range's ends as scripted, give or take (timeupdate comes every 250 ms)

# Runs in the page: play to each point, then seek or pause there.
SCRIPT = """async ([skipAt, skipTo, backAt, backTo, stopAt]) => {
  const v = document.getElementById('video');
  const until = (t) => new Promise((resolve) => {
    const check = () => (v.currentTime >= t ? resolve(v.currentTime) : setTimeout(check, 5));
    check();
  });
  const done = [];
  done.push(await until(skipAt));
  v.currentTime = skipTo;
  done.push(await until(backAt));
  v.currentTime = backTo;
  done.push(await until(stopAt));
  v.pause();
  return done;
}"""


async def api(server: RunningServer, path: str, headers: dict | None = None) -> dict:
    async with aiohttp.ClientSession() as s, \
            s.get(server.base_url + path, headers=AUTH if headers is None else headers) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def near(ranges: list[list[int]], expected: list[tuple[float, float]]) -> bool:
    return len(ranges) == len(expected) and all(
        abs(a - x) <= NEAR and abs(b - y) <= NEAR
        for (a, b), (x, y) in zip(ranges, expected, strict=True))


async def record_meeting(server: RunningServer, room: str, seconds: int = RECORD_SECONDS,
                         chats: int = 0) -> dict:
    """Two participants publish, `seconds` of them are recorded (counted in their cameras'
    frames) while dr-2 sends `chats` chat messages, the VOD is made; they leave. The
    recording's index entry."""
    await server.create_room(room)
    bots = []
    try:
        videos = [PatternVideoTrack(1), PatternVideoTrack(2)]
        for i, tone in ((1, 440.0), (2, 660.0)):
            c = Client(server.base_url, server.token(room, f"dr-{i}", f"Dr {i}"))
            await c.connect()
            await c.join()
            await c.publish(videos[i - 1], ToneAudioTrack(tone))
            bots.append(c)
        async with aiohttp.ClientSession() as s:
            async with s.post(server.base_url + f"/api/rooms/{room}/recordings",
                              json={"mode": "composite"}, headers=AUTH) as r:
                assert r.status == 201, await r.text()
            await bots[0].wait_event("recordingChanged", timeout=10)
            for i in range(chats):
                await bots[1].request("chat", {"text": f"message {i}"})
            await asyncio.wait_for(asyncio.gather(
                *(v.sent(v.frames_sent + seconds * v.fps) for v in videos)), seconds + 30)
            async with s.post(server.base_url + f"/api/rooms/{room}/recordings/stop",
                              headers=AUTH) as r:
                assert r.status == 200, await r.text()
                recording = (await r.json())["recording"]
    finally:
        for c in bots:
            await c.close()
    assert recording["state"] == "ready"
    assert abs(recording["duration"] - seconds) <= 2, recording["duration"]
    return recording


@pytest.mark.timeout(240)  # 30 s recorded, 22 s played, and a busy machine
async def test_player_reports_scripted_seeks_and_the_dashboard(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server, chromium() as browser:
        recording = await record_meeting(server, "cme")
        rid, duration = recording["id"], recording["duration"]
        context = await browser.new_context(accept_downloads=True)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(server.base_url + recording["links"]["player"] + "&viewer=dr-script")
        await page.wait_for_function(
            "window.__player.ready && document.getElementById('video').currentTime > 0.2",
            timeout=WAIT_MS)
        started = time.monotonic()
        reached = await page.evaluate(SCRIPT, [SKIP_AT, SKIP_TO, BACK_AT, BACK_TO, STOP_AT])
        played = time.monotonic() - started
        assert [round(t) for t in reached] == [SKIP_AT, BACK_AT, STOP_AT], reached
        assert await page.evaluate("window.__player.errors") == [] and errors == []
        await page.goto("about:blank")  # pagehide: the last report by sendBeacon

        # the figures, once the last report is in
        path = f"/api/recordings/{rid}/analytics"
        for _ in range(100):
            figures = await api(server, path)
            if figures["views"] and figures["dropoff"][STOP_AT - 2][1] == 1.0:
                break
            await asyncio.sleep(0.1)
        n = len(figures["perSecond"])
        print("replay figures:", {k: figures[k] for k in (
            "duration", "unwatched", "skipped", "rewatched", "watchedOnce", "completion",
            "replayMinutes", "pauses", "visibleMinutes")}, "reached", reached)
        assert abs(n - duration) <= 1 and figures["duration"] == round(duration, 3)
        assert (figures["views"], figures["uniqueViewers"]) == (1, 1)
        assert near(figures["unwatched"], [(SKIP_AT, SKIP_TO), (STOP_AT, n)]), figures
        assert near(figures["skipped"], [(SKIP_AT, SKIP_TO)]), figures
        assert near(figures["rewatched"], [(BACK_TO, BACK_AT)]), figures
        assert near(figures["watchedOnce"], [(0, SKIP_AT), (SKIP_TO, BACK_TO),
                                             (BACK_AT, STOP_AT)]), figures
        assert set(figures["perSecond"]) == {0, 1}
        # drop-off: everyone (the one view) until it stopped, nobody after
        shares = dict(figures["dropoff"])
        assert all(shares[s] == 1.0 for s in range(STOP_AT - 2))
        assert all(shares[s] == 0.0 for s in range(STOP_AT + 2, n))
        # 25/50/75 % of 30 s are 7.5, 15 and 22.5 s: reached; the end not
        assert figures["completion"] == {"25": 1.0, "50": 1.0, "75": 1.0, "100": 0.0}
        watched = SKIP_AT + (BACK_AT - SKIP_TO) + (STOP_AT - BACK_TO)
        assert abs(figures["replayMinutes"] * 60 - watched) <= 2, figures["replayMinutes"]
        assert figures["liveMinutes"] == 0
        assert figures["pauses"] >= 1
        assert 0 < figures["visibleMinutes"] * 60 <= played + 10
        one = await api(server, path + "?viewer=dr-script")
        assert one["views"] == 1 and one["rewatched"] == figures["rewatched"]
        assert (await api(server, path + "?viewer=someone-else"))["views"] == 0

        # the dashboard, for a host of the room
        host = server.token("cme", "host-1", role="host")
        await page.goto(f"{server.base_url}/dashboard?room=cme&token={quote(host)}"
                        f"&recording={rid}")
        await page.wait_for_function("window.__dashboard.ready", timeout=WAIT_MS)
        assert await page.evaluate("window.__dashboard.errors") == [] and errors == []
        shown = await page.evaluate("window.__dashboard.recording")
        assert shown["rewatched"] == figures["rewatched"] and shown["id"] == rid
        report = await page.evaluate("window.__dashboard.report")
        assert sorted(p["identity"] for p in report["participants"]) == ["dr-1", "dr-2"]
        assert rid in report["session"]["recordings"]
        lanes = page.locator("#strips .lane")
        assert await lanes.count() == 2
        assert await page.locator("#strips .lane .present").count() >= 2
        assert await page.locator("#people-table tbody tr").count() == 2
        for chart in ("#timeline-chart", "#heat-chart", "#dropoff-chart"):
            assert await page.locator(f"{chart} canvas").count() == 1, chart
        async with page.expect_download() as download:
            await page.click("#csv-btn")
        rows = list(csv.DictReader(io.StringIO(
            Path(await (await download.value).path()).read_text())))
        assert sorted(r["identity"] for r in rows) == ["dr-1", "dr-2"]
        # the heatmap is the scrubber: a click there plays the recording from that point
        scrubber = page.locator("#heat-chart .u-over")
        box = await scrubber.bounding_box()
        assert box is not None
        target = 20
        await scrubber.click(position={"x": box["width"] * target / n, "y": box["height"] / 2})
        video = "document.getElementById('rec-video')"
        for _ in range(300):
            at, paused = await page.evaluate(f"[{video}.currentTime, {video}.paused]")
            if target - 1 <= at <= target + 5 and not paused:
                break
            await asyncio.sleep(0.1)
        assert target - 1 <= at <= target + 5 and not paused, (at, paused)
        assert errors == []
        # nobody else reads it
        attendee = server.token("cme", "dr-9", role="attendee")
        async with aiohttp.ClientSession() as s, s.get(
                server.base_url + path, headers={"Authorization": f"Bearer {attendee}"}) as r:
            assert r.status == 403


async def test_hidden_tab_is_left_out_of_visible_seconds(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        page = await (await browser.new_context()).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(f"{server.base_url}/r/attention?name=Dr%20Vis&autojoin=1")
        await wait_joined(page)
        joined = time.time()
        await asyncio.sleep(1)
        # the tab goes to the background, as Chromium says it when another tab is in front
        await page.evaluate("""() => {
            Object.defineProperty(document, 'visibilityState',
                                  {configurable: true, get: () => 'hidden'});
            Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
            document.dispatchEvent(new Event('visibilitychange')); }""")
        hidden_at = time.time()
        await asyncio.sleep(3)
        await page.evaluate("""() => {
            delete document.visibilityState;
            delete document.hidden;
            document.dispatchEvent(new Event('visibilitychange')); }""")
        hidden = time.time() - hidden_at
        assert await page.evaluate("document.visibilityState") == "visible"
        await asyncio.sleep(1)
        await page.click("#leave-btn")
        left = time.time()
        assert errors == []

        for _ in range(100):  # the leave reaches the log
            (session,) = (await api(server, "/api/rooms/attention/sessions"))["sessions"]
            if session["ended"] is not None:
                break
            await asyncio.sleep(0.1)
        assert session["ended"] is not None, session
        report = await api(server, f"/api/rooms/attention/sessions/{session['id']}/report")
        (person,) = report["participants"]
        assert person["name"] == "Dr Vis"
        assert abs(person["presentSeconds"] - (left - joined)) <= 1.5, person
        assert abs(person["visibleSeconds"] - (person["presentSeconds"] - hidden)) <= 1, \
            (person, hidden)
