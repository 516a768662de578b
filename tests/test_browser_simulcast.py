"""Browser end to end: the web client publishes its camera in three encodings (simulcast), the
server learns their SSRCs from the rid header extensions and forwards one to each subscriber;
switching a consumer's layer through the control call changes the resolution the other page
decodes, and the picture keeps going."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import running_server

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


async def test_simulcast_layers_switch_through_the_control_call(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        pages = []
        for name in ("Alice", "Bob"):
            page = await (await browser.new_context()).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            await page.goto(f"{server.base_url}/r/simulcast-room?name={name}&autojoin=1")
            await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                         timeout=WAIT_MS)
            await watch_stats(page)
            await watch_video(page)
            pages.append((page, errors))
        bob = pages[1][0]
        await wait_decoding(bob, 30)
        media = server.state.media
        # the publish offer had rids: each camera is one producer of three encodings, and
        # each subscriber's consumer of it targets the top one
        # Chromium sends the encodings its camera's size and its uplink allow (here not
        # always the top one): each consumer targets the highest of them
        layers = await video_layers(media)
        assert len(layers) == 2 and all(target >= 1 for _, _, target in layers), layers
        start = await wait_width(bob, "w > 0", 30)

        for consumer_id, _, _ in layers:
            await media.set_preferred_layers(consumer_id, 0, 0)
        low = await wait_width(bob, f"w <= {start['width'] // 2}", start["frames"] + 1)
        assert all(layer == 0 for _, layer, _ in await video_layers(media))
        more = await wait_width(bob, f"w === {low['width']}", low["frames"] + 30)
        assert more["frames"] > low["frames"]  # the picture goes on at the low encoding

        for consumer_id, _, _ in layers:
            await media.set_preferred_layers(consumer_id, 2, 0)
        high = await wait_width(bob, f"w >= {start['width']}", more["frames"] + 1)
        await wait_width(bob, f"w === {high['width']}", high["frames"] + 30)
        assert all(layer == target >= 1 for _, layer, target in await video_layers(media))
        for _, errors in pages:
            assert not errors, errors
