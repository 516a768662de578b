"""Recording through the server: taps from the room's Router to the recorder process, the VOD
checked with ffprobe, grants on every file, and the signed recording.ready webhook."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.support.client import Client
from tests.support.server import API_KEY, free_port, running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def ffprobe(path: Path) -> dict:
    binary = shutil.which("ffprobe")
    assert binary, "ffprobe is missing: `make test` installs Debian's ffmpeg"
    out = subprocess.run([binary, "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", str(path)], capture_output=True, check=True)
    return json.loads(out.stdout)


async def test_record_meeting_to_vod_with_grants_and_webhook(tmp_path: Path) -> None:
    hooks: list[dict] = []
    ready = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        hooks.append({"headers": dict(request.headers), "body": await request.json()})
        ready.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    hook_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", hook_port).start()
    async with running_server(tmp_path / "data") as server:
        server.state.recordings.webhooks.url = f"http://127.0.0.1:{hook_port}/hook"
        await server.create_room("adboard")
        bots = []
        try:
            videos = [PatternVideoTrack(1), PatternVideoTrack(2)]
            for i, freq in ((1, 440.0), (2, 660.0)):
                c = Client(server.base_url, server.token("adboard", f"bot{i}", f"Dr {i}"))
                await c.connect()
                await c.join()
                await c.publish(videos[i - 1], ToneAudioTrack(freq))
                bots.append(c)
            async with aiohttp.ClientSession() as s:
                async with s.post(server.base_url + "/api/rooms/adboard/recordings",
                                  json={"mode": "composite"}, headers=AUTH) as r:
                    assert r.status == 201, await r.text()
                    rid = (await r.json())["recordingId"]
                event = await bots[0].wait_event("recordingChanged", timeout=10)
                assert event["recording"] is True
                # six more seconds of the meeting, counted in the cameras' own frames
                await asyncio.wait_for(asyncio.gather(
                    *(v.sent(v.frames_sent + 6 * v.fps) for v in videos)), 30)
                async with s.post(server.base_url + "/api/rooms/adboard/recordings/stop",
                                  headers=AUTH) as r:
                    assert r.status == 200, await r.text()
                    recording = (await r.json())["recording"]
                assert recording["id"] == rid and recording["state"] == "ready"
                assert abs(recording["duration"] - 6) <= 1.5, recording
                assert set(recording["participants"]) == {"Dr 1", "Dr 2"}
                links = recording["links"]
                async with s.get(server.base_url + links["mp4"]) as r:
                    assert r.status == 200
                    mp4 = tmp_path / "vod.mp4"
                    mp4.write_bytes(await r.read())
                probe = ffprobe(mp4)
                kinds = {st["codec_type"]: st for st in probe["streams"]}
                assert kinds["video"]["codec_name"] == "h264"
                assert (kinds["video"]["width"], kinds["video"]["height"]) == (1280, 720)
                assert kinds["audio"]["codec_name"] == "aac"
                assert kinds["audio"]["sample_rate"] == "48000"
                assert abs(float(probe["format"]["duration"]) - 6) <= 1.5
                async with s.get(server.base_url + links["playlist"]) as r:
                    assert r.status == 200
                    assert "#EXT-X-ENDLIST" in await r.text()
                # no grant, a forged grant, or a path out of the recording: refused
                plain = f"/recordings/{rid}/index.m3u8"
                async with s.get(server.base_url + plain) as r:
                    assert r.status in (403, 404)
                forged = links["mp4"].replace(links["mp4"].split("/")[5], "0" * 32)
                async with s.get(server.base_url + forged) as r:
                    assert r.status == 403
                escape = links["mp4"].rsplit("/", 1)[0] + "/..%2F..%2Fmediaserver.sqlite3"
                async with s.get(server.base_url + escape) as r:
                    assert r.status in (403, 404)
                async with s.get(server.base_url + f"/api/recordings/{rid}", headers=AUTH) as r:
                    assert (await r.json())["recording"]["duration"] == recording["duration"]
            await asyncio.wait_for(ready.wait(), 10)
            body = hooks[0]["body"]
            assert body["event"] == "recording.ready" and body["data"]["id"] == rid
            assert hooks[0]["headers"]["X-Mediaserver-Signature"].startswith("sha256=")
        finally:
            for c in bots:
                await c.close()
            await runner.cleanup()


async def test_player_page_live_dvr_and_jump_to_live(tmp_path: Path) -> None:
    """Chromium plays the live playlist through the player page (hls.js), seeks back 10 s and
    jumps to live: currentTime advances, no error events."""
    from tests.support.browser import chromium

    async with running_server(tmp_path / "data") as server, chromium() as browser:
        await server.create_room("live-event")
        bot = Client(server.base_url, server.token("live-event", "presenter", "Presenter"))
        await bot.connect()
        await bot.join()
        await bot.publish(PatternVideoTrack(5), ToneAudioTrack(550))
        try:
            async with aiohttp.ClientSession() as s:
                async with s.post(server.base_url + "/api/rooms/live-event/recordings",
                                  json={"mode": "composite"}, headers=AUTH) as r:
                    assert r.status == 201, await r.text()
                async with s.get(server.base_url + "/api/rooms/live-event/recordings",
                                 headers=AUTH) as r:
                    entry = (await r.json())["recordings"][0]
            assert entry["state"] == "recording"
            page = await (await browser.new_context()).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # wait for the first segments of the live event before opening the player
            playlist = server.base_url + entry["links"]["playlist"]
            async with aiohttp.ClientSession() as s:
                for _ in range(200):
                    async with s.get(playlist) as r:
                        if r.status == 200 and (await r.text()).count("#EXTINF") >= 2:
                            break
                    await asyncio.sleep(0.1)
            await page.goto(server.base_url + entry["links"]["player"])
            await page.wait_for_function(
                "window.__player.ready && window.__player.live && "
                "document.getElementById('video').currentTime > 1", timeout=30_000)
            # let the event run long enough to have 10 s behind us
            await page.wait_for_function(
                "document.getElementById('video').currentTime > 12", timeout=40_000)
            before = await page.evaluate("document.getElementById('video').currentTime")
            await page.evaluate("window.__player.back()")
            after = await page.evaluate("document.getElementById('video').currentTime")
            assert 8 <= before - after <= 12, (before, after)
            await page.wait_for_function(  # playing again from there
                f"document.getElementById('video').currentTime > {after + 1}", timeout=20_000)
            await page.evaluate("window.__player.toLive()")
            await page.wait_for_function(
                f"document.getElementById('video').currentTime > {before}", timeout=20_000)
            live_at = await page.evaluate("document.getElementById('video').currentTime")
            await page.wait_for_function(
                f"document.getElementById('video').currentTime > {live_at + 1}", timeout=20_000)
            assert await page.evaluate("window.__player.errors") == []
            assert errors == []
        finally:
            await bot.close()


async def test_recorder_failure_stops_the_recording_and_keeps_what_was_written(
        tmp_path: Path) -> None:
    """The recorder reports `recording.failed` (its compositor died): the server stops the
    recording by itself, everyone is told it no longer records, and the VOD holds what came
    before. The event is the recorder's own message, sent here as it would arrive."""
    async with running_server(tmp_path / "data") as server:
        await server.create_room("fragile")
        host = Client(server.base_url, server.token("fragile", "host", "Dr Host", role="host"))
        try:
            await host.connect()
            await host.join()
            await host.publish(PatternVideoTrack(1), ToneAudioTrack(440.0))
            started = await host.request("recordStart", {"mode": "composite"})
            rid = started["recordingId"]
            playlist = tmp_path / "data" / "recordings" / rid / "index.m3u8"
            async with asyncio.timeout(30):
                while not playlist.exists() or "#EXTINF" not in playlist.read_text():
                    await asyncio.sleep(0.05)
            server.state.recordings._on_event({"event": "recording.failed",
                                               "recording_id": rid, "error": "boom"})
            changed = await host.wait_event("recordingChanged",
                                            lambda d: d["recording"] is False, timeout=30)
            assert changed["recordingId"] == rid
            async with asyncio.timeout(30):
                while (entry := await server.state.store.get_recording(rid))["state"] != "ready":
                    await asyncio.sleep(0.05)
            assert entry["duration"] > 0 and "mp4" in entry["files"]
            assert "fragile" not in server.state.recordings.active
        finally:
            await host.close()
