"""Browser end to end: the web client publishes its camera in three encodings (simulcast), the
server learns their SSRCs from the rid header extensions and forwards one to each subscriber;
switching a consumer's layer through the control call changes the resolution the other page
decodes, and the picture keeps going."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import av

from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import API_KEY, running_server

AUTH = {"Authorization": f"Bearer {API_KEY}"}

# The subscribe connection's inbound video, as the page decodes it.
VIDEO_IN = """async () => {
  const stats = await window.__meeting.subscribePc.getStats();
  let out = null;
  stats.forEach(s => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0)
      out = {width: s.frameWidth, frames: s.framesDecoded};
  });
  return out;
}"""


async def watch_video(page) -> None:
    """Keep the latest inbound video figures on window.__video (getStats is async)."""
    await page.evaluate(f"""() => {{
        const read = {VIDEO_IN};
        setInterval(async () => {{ window.__video = await read(); }}, 100);
    }}""")


async def wait_width(page, test: str, frames: int) -> dict:
    """Wait until the decoded width passes `test` (JavaScript on w) with `frames` decoded."""
    handle = await page.wait_for_function(
        f"""() => {{
            const v = window.__video;
            return v && v.frames >= {frames} && ((w) => {test})(v.width) ? v : null;
        }}""", timeout=WAIT_MS, polling=100)
    return await handle.json_value()


async def video_layers(media) -> list[tuple[str, int, int]]:
    dump = await media.dump()
    return [(c.id, c.spatial_layer, c.target_spatial_layer) for c in dump.consumers
            if c.kind == "video"]


async def join_pages(browser, base_url: str, room: str) -> list[tuple[object, list[str]]]:
    """Alice's and Bob's pages joined to `room`, each with its page errors collected and its
    inbound totals watched (window.__inbound)."""
    pages = []
    for name in ("Alice", "Bob"):
        page = await (await browser.new_context()).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        await page.goto(f"{base_url}/r/{room}?name={name}&autojoin=1")
        await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                     timeout=WAIT_MS)
        await watch_stats(page)
        pages.append((page, errors))
    return pages


async def test_simulcast_layers_switch_through_the_control_call(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        pages = await join_pages(browser, server.base_url, "simulcast-room")
        for page, _ in pages:
            await watch_video(page)
        bob = pages[1][0]
        await wait_decoding(bob, 30)
        media = server.state.media
        # the publish offer had rids: each camera is one producer of three encodings.
        # Chromium sends the encodings its camera's size and its uplink allow (here not
        # always the top one); each subscriber starts low (its estimate starts at 300
        # kbit/s) and the allocator raises it as its estimate climbs: both consumers come to
        # target a higher one (dump polled: the allocator's rounds are its own timer's)
        for _ in range(100):
            layers = await video_layers(media)
            if len(layers) == 2 and all(layer == target >= 1 for _, layer, target in layers):
                break
            await asyncio.sleep(0.2)
        assert len(layers) == 2 and all(layer == target >= 1 for _, layer, target in layers), \
            layers
        seen = await wait_width(bob, "w > 0", 30)
        start = await wait_width(bob, "w > 0", seen["frames"] + 10)  # from the switched layer

        # (Chromium may scale every encoding down a step when the machine is busy: widths
        # are compared, never expected exactly)
        for consumer_id, _, _ in layers:  # (temporal 3: all, the frame rate as it is)
            await media.set_preferred_layers(consumer_id, 0, 3)
        low = f"w <= {start['width'] // 2}"
        first_low = await wait_width(bob, low, start["frames"] + 1)
        assert all(layer == 0 for _, layer, _ in await video_layers(media))
        more = await wait_width(bob, low, first_low["frames"] + 30)  # the picture goes on

        for consumer_id, _, _ in layers:
            await media.set_preferred_layers(consumer_id, 2, 3)
        high = await wait_width(bob, f"w > {more['width']}", more["frames"] + 1)
        await wait_width(bob, f"w > {more['width']}", high["frames"] + 30)
        async def raised():
            return all(layer == target >= 1 for _, layer, target in await video_layers(media))
        await wait_for(raised, "both consumers on a raised layer")
        for _, errors in pages:
            assert not errors, errors


async def wait_for(check, what: str, timeout: float = WAIT_MS / 1000):
    """Poll `check()` (async) until it returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return found


async def test_simulcast_camera_is_recorded_across_a_layer_switch(tmp_path: Path) -> None:
    """The recorder's pipe carries one encoding, renumbered: a per-track recording of a
    simulcast camera stays one decodable VP8 stream when its layer is switched."""
    room = "simulcast-rec"
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{server.base_url}/r/{room}?name=Alice&autojoin=1")
        await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                     timeout=WAIT_MS)
        media = server.state.media
        async with aiohttp.ClientSession() as s, s.post(
                server.base_url + f"/api/rooms/{room}/recordings", json={"mode": "pertrack"},
                headers=AUTH) as r:
            assert r.status == 201, await r.text()

        async def piped(lowest: bool, packets: int):
            """The recorder's video pipe consumer once it sent `packets` (on layer 0)."""
            dump = await media.dump()
            return next((c for c in dump.consumers if c.kind == "video" and
                         c.transport_id.startswith("pp-") and c.packets >= packets and
                         c.spatial_layer >= 0 and (c.spatial_layer == 0) == lowest), None)

        first = await wait_for(lambda: piped(False, 150), "the top arriving layer piped")
        await media.set_preferred_layers(first.id, 0, 0)
        await wait_for(lambda: piped(True, first.packets + 100), "layer 0 piped")
        async with aiohttp.ClientSession() as s, s.post(
                server.base_url + f"/api/rooms/{room}/recordings/stop", headers=AUTH) as r:
            assert r.status == 200, await r.text()
            recording = (await r.json())["recording"]
        (video,) = (server.state.recordings.directory / recording["id"]).glob("video_*.webm")
    with av.open(str(video)) as container:
        frames = list(container.decode(video=0))
    widths = [f.width for f in frames]
    assert len(frames) >= 30
    # Chromium may open on its lowest encoding while its estimate ramps up: the recording
    # holds a wider encoding at some point, then ends on the lowest one it switched to.
    top = max(widths)
    assert top > widths[-1] == min(widths), sorted(set(widths))
    last_top = len(widths) - 1 - widths[::-1].index(top)
    assert all(w == widths[-1] for w in widths[last_top + 1:][-10:]) and last_top < len(widths) - 10
    pts = [f.pts for f in frames]
    assert pts == sorted(pts)  # one stream: time never goes back across the switch
