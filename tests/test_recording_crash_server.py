"""kill -9 of the recorder the real server started, mid-meeting: the server starts it again, the
recording goes on into the same playlist after an EXT-X-DISCONTINUITY (taps back, both people
in the picture), the entry stays "recording" meanwhile, and the stop gives one valid VOD, its
API entry and one webhook, with chapters on both sides of the crash."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.support.client import Client
from tests.support.recorder_hls import ffprobe, ffprobe_path, parse_m3u8
from tests.support.recording_checks import (
    capture_webhooks,
    check_resumed,
    segments,
    tiles_shown,
    until,
)
from tests.support.server import API_KEY, running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def after_discontinuity(playlist: Path) -> int:
    """Segments listed after the (first) discontinuity; -1 when there is none yet."""
    text = playlist.read_text() if playlist.exists() else ""
    if "#EXT-X-DISCONTINUITY" not in text:
        return -1
    return text.split("#EXT-X-DISCONTINUITY", 1)[1].count("#EXTINF")


async def test_killed_recorder_restarted_and_recording_resumed(tmp_path: Path) -> None:
    ffprobe_path()
    async with running_server(tmp_path / "data") as server:
        await server.create_room("ward")
        sent = capture_webhooks(server)
        bots = []
        try:
            for i, (name, role) in enumerate((("Dr One", "host"), ("Dr Two", "presenter")), 1):
                c = Client(server.base_url, server.token("ward", f"bot{i}", name, role))
                await c.connect()
                await c.join()
                await c.publish(PatternVideoTrack(i), ToneAudioTrack(440.0 * i))
                bots.append(c)
            host = bots[0]
            question = (await host.request("qaAsk", {"text": "After the crash?"}))["question"]
            poll = (await host.request("pollCreate", {"question": "Before the crash?",
                                                      "options": ["yes", "no"]}))["poll"]
            async with aiohttp.ClientSession() as s, s.post(
                    server.base_url + "/api/rooms/ward/recordings",
                    json={"mode": "composite", "layout": "grid"}, headers=AUTH) as r:
                assert r.status == 201, await r.text()
                rid = (await r.json())["recordingId"]
            directory = server.state.recordings.directory / rid
            playlist = directory / "index.m3u8"
            await segments(playlist, 1)
            await host.request("pollOpen", {"pollId": poll["id"]})
            await segments(playlist, 3)

            link = server.state.recordings.link
            first, first_rpc = link.process, link._rpc
            assert first is not None and first.returncode is None and link.restarts == 0
            os.kill(first.pid, signal.SIGKILL)  # only the recorder this server started
            assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
            crashed = parse_m3u8(playlist.read_text())

            await until(lambda: link.restarts == 1 and link.process is not first
                        and link.process is not None and link.process.returncode is None,
                        60, "the server to start the recorder again")
            # one connection, to the new process: the last one's reader is gone, not kept
            assert link._rpc is not first_rpc and link._rpc.connected
            assert not first_rpc.connected and first_rpc._reader_task.done()
            await until(lambda: after_discontinuity(playlist) >= 1, 60,
                        "resumed segments after a discontinuity")
            await host.request("qaAnswer", {"questionId": question["id"]})
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{server.base_url}/api/recordings/{rid}", headers=AUTH) as r:
                    during = (await r.json())["recording"]
                assert during["state"] == "recording", during  # resumed, not "ready"
                assert sent == []  # and the portal was not told it is ready
                await until(lambda: after_discontinuity(playlist) >= 3, 60,
                            "3 resumed segments")
                async with s.post(server.base_url + "/api/rooms/ward/recordings/stop",
                                  headers=AUTH) as r:
                    assert r.status == 200, await r.text()
                    recording = (await r.json())["recording"]
                async with s.get(f"{server.base_url}/api/recordings/{rid}", headers=AUTH) as r:
                    entry = (await r.json())["recording"]
        finally:
            for c in bots:
                await c.close()

    # One playlist: what was written before the crash, a discontinuity, the resumed part.
    final = parse_m3u8(playlist.read_text())
    check_resumed(final, crashed, directory)
    total = sum(s.duration for s in final.segments)
    before = sum(s.duration for s in crashed.segments)

    # The VOD and its entry.
    assert entry == {**recording, "links": entry["links"]}
    assert entry["state"] == "ready" and entry["id"] == rid
    assert abs(entry["duration"] - total) < 0.5, (entry["duration"], total)
    assert set(entry["participants"]) == {"Dr One", "Dr Two"}
    info = ffprobe(directory / entry["files"]["mp4"], "-show_format", "-show_streams")
    assert abs(float(info["format"]["duration"]) - total) < 0.5
    streams = {s["codec_type"]: s for s in info["streams"]}
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (1280, 720)
    titles = [c["title"] for c in entry["chapters"]]
    assert titles == ["Poll: Before the crash?", "Answered: After the crash?"]
    assert 0 < entry["chapters"][0]["start"] < before <= entry["chapters"][1]["start"] < total
    assert [(h["event"], h["id"]) for h in sent] == [("recording.ready", rid)]
    assert sent[0]["chapters"] == entry["chapters"]
    # The resumed part shows both people: the new taps carry their video again.
    assert tiles_shown(directory / entry["files"]["mp4"], before + 1.5, 2, "grid") == {1, 2}
