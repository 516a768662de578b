"""The player page (hls.js, unchanged) on a low-latency recording: Chromium plays it through the
server with blocking playlist reloads and parts, a second or so behind the live edge."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from signaling.grants import grant_path
from tests.support.recorder_control import RecorderProcess
from tests.support.recorder_hls import until_playlist
from tests.support.recorder_media import Participant, Tap
from tests.support.server import running_server

SECONDS = 16.0


async def test_player_page_plays_low_latency_hls(tmp_path: Path) -> None:
    from tests.support.browser import chromium

    async with running_server(tmp_path / "data") as server, chromium() as browser:
        directory = server.state.recordings.directory
        recorder = RecorderProcess(directory, tmp_path / "control.sock")
        people = [Participant(0, "Ann", SECONDS)]
        await recorder.start()
        tap: Tap | None = None
        try:
            started = await recorder.request("start", recording_id="ll-play", room="r",
                                             mode="composite", layout="grid", low_latency=True)
            for track in people[0].codecs():
                await recorder.request("add_track", recording_id="ll-play", **track)
            tap = Tap(people, ("127.0.0.1", started["rtp_port"]))
            await tap.open()
            sending = asyncio.create_task(tap.run())
            await until_playlist(directory / "ll-play" / "index.m3u8", lambda m: m.open_parts)
            secret = server.state.config.effective_jwt_secret
            playlist = grant_path(secret, "ll-play") + "/index.m3u8"
            page = await (await browser.new_context()).new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{server.base_url}/play?src={quote(playlist)}")
            await page.wait_for_function(
                "window.__player.ready && window.__player.live && "
                "document.getElementById('video').currentTime > 3", timeout=30_000)
            playing_at = await page.evaluate("document.getElementById('video').currentTime")
            await page.wait_for_function(
                f"document.getElementById('video').currentTime > {playing_at + 2}",
                timeout=15_000)
            behind = await page.evaluate("""() => {
                const v = document.getElementById('video');
                return v.seekable.end(v.seekable.length - 1) - v.currentTime; }""")
            assert await page.evaluate("window.__player.errors") == [] and errors == []
            await sending
            await recorder.request("stop", recording_id="ll-play")
        finally:
            if tap is not None:
                tap.close()
            await recorder.close()
    blocking = [u for u in requests if "_HLS_msn=" in u]
    parts = [u for u in requests if "/part_0_" in u]
    assert len(blocking) >= 5, requests
    assert len(parts) >= 5, requests
    # hls.js holds back PART-HOLD-BACK (about 1 s), not three 2 s segments
    assert 0 <= behind < 3.0, behind
