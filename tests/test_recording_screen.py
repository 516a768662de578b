"""A screen share through the server into the composite recording: an aiortc participant
publishes a camera and then a screen (`publish` `sources`), the others get it as a screen
(`trackPublished` `source`), and the recording, started in the grid layout, shows the screen
as its main picture with both people in the strip."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import av
from aiortc import RTCSessionDescription

from recorder.layout import SPEAKER, cells
from tests.support.client import Client
from tests.support.patterns import read_video_frame
from tests.support.server import API_KEY, running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ROOM = "screen-rec"
SCREEN = (960, 540)


async def share_screen(client: Client, track: PatternVideoTrack) -> dict:
    """What the web client's Share screen does: one more video m-line, source "screen"."""
    pc = client.publish_pc
    assert pc is not None
    transceiver = pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    result = await client.request("publish", {
        "sdp": pc.localDescription.sdp, "names": {transceiver.mid: "screen"},
        "sources": {transceiver.mid: "screen"}})
    await pc.setRemoteDescription(RTCSessionDescription(client.rewrite_sdp(result["sdp"]),
                                                        "answer"))
    return result


async def test_recorded_screen_share_is_the_main_picture(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server:
        await server.create_room(ROOM)
        ann = Client(server.base_url, server.token(ROOM, "ann", "Ann"))
        bea = Client(server.base_url, server.token(ROOM, "bea", "Bea"))
        try:
            cameras = [PatternVideoTrack(1), PatternVideoTrack(2)]
            for client, camera, tone in ((ann, cameras[0], 440.0), (bea, cameras[1], 660.0)):
                await client.connect()
                await client.join()
                published = await client.publish(camera, ToneAudioTrack(tone))
                assert {t["kind"]: t["source"] for t in published["tracks"]} == {
                    "video": "camera", "audio": "microphone"}
            async with aiohttp.ClientSession() as s, s.post(
                    server.base_url + f"/api/rooms/{ROOM}/recordings",
                    json={"mode": "composite", "layout": "grid"}, headers=AUTH) as r:
                assert r.status == 201, await r.text()
            screen = PatternVideoTrack(7, *SCREEN, fps=10)
            result = await share_screen(bea, screen)
            mine = [t for t in result["tracks"] if t["source"] == "screen"]
            assert [(t["kind"], t["name"]) for t in mine] == [("video", "screen")]
            seen = await ann.wait_event("trackPublished",
                                        lambda d: d["track"]["source"] == "screen", timeout=10)
            assert seen["track"]["participantId"] == mine[0]["participantId"]
            # four seconds of the share, counted in its own frames
            await asyncio.wait_for(screen.sent(screen.frames_sent + 4 * screen.fps), 30)
            async with aiohttp.ClientSession() as s:
                async with s.post(server.base_url + f"/api/rooms/{ROOM}/recordings/stop",
                                  headers=AUTH) as r:
                    assert r.status == 200, await r.text()
                    recording = (await r.json())["recording"]
                async with s.get(server.base_url + recording["links"]["mp4"]) as r:
                    assert r.status == 200
                    (tmp_path / "vod.mp4").write_bytes(await r.read())
        finally:
            await ann.close()
            await bea.close()
    # The last second: the screen large, Ann and Bea (in the order they came) in the strip.
    with av.open(str(tmp_path / "vod.mp4")) as container:
        frames = list(container.decode(video=0))
    rgb = frames[-15].to_ndarray(format="rgb24")
    layout = cells(3, SPEAKER)

    def sender_in(index: int, size: tuple[int, int]) -> int | None:
        x, y, w, h = layout[index].video_box(*size)
        found = read_video_frame(rgb[y : y + h, x : x + w])
        return None if found is None else found[0]

    assert [sender_in(0, SCREEN), sender_in(1, (320, 240)), sender_in(2, (320, 240))] == [
        7, 1, 2]
