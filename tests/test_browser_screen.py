"""Screen share in Chromium: Alice shares her screen through the web client's button, Bob's
page decodes it at the resolution it was captured at and shows it large above the tiles;
ending it from the browser's side (the capture track's `ended`, as the browser's own "Stop
sharing" bar does) unpublishes it and Bob's page goes back to the tiles; a second share, on a
new m-line of the same connection, is stopped with the button.

Headless Chromium with --use-fake-device-for-media-stream and --use-fake-ui-for-media-stream
(tests/support/browser.py) answers getDisplayMedia with a synthetic screen, no picker.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import WAIT_MS, chromium
from tests.support.recording_checks import until
from tests.support.server import running_server

ROOM = "screen-room"

# Alice's screen sender: its capture settings, encoder parameters and what it sends.
SCREEN_SENDER = """async () => {
  const pc = window.__meeting.publishPc;
  const sender = pc && pc.getSenders().find((s) => s.track && s.track.label.startsWith('screen'));
  if (!sender) return null;
  const settings = sender.track.getSettings();
  const params = sender.getParameters();
  let out = null;
  (await sender.getStats()).forEach((s) => { if (s.type === 'outbound-rtp') out = s; });
  return {width: settings.width, height: settings.height, hint: sender.track.contentHint,
          maxFramerate: params.encodings[0].maxFramerate,
          scale: params.encodings[0].scaleResolutionDownBy,
          degradation: params.degradationPreference,
          sentWidth: out && out.frameWidth, framesSent: out ? out.framesSent : 0};
}"""

# Bob's screen area: the decoded size, frames shown, and its size on the page next to a tile.
SCREEN_SHOWN = """() => {
  const video = document.querySelector('#screen-area .screen video');
  const tile = document.querySelector('#tiles .tile:not([hidden])');
  if (!video || !tile || document.getElementById('screen-area').hidden) return null;
  const box = video.getBoundingClientRect(), t = tile.getBoundingClientRect();
  return {width: video.videoWidth, height: video.videoHeight,
          frames: video.getVideoPlaybackQuality().totalVideoFrames,
          area: box.width * box.height, tileArea: t.width * t.height,
          screenAbove: box.bottom <= t.top + 1,
          label: video.parentElement.textContent};
}"""


async def test_screen_share_decoded_at_full_resolution_and_shown_large(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        pages = {}
        errors: list[str] = []
        for name in ("Alice", "Bob"):
            page = await (await browser.new_context()).new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(f"{server.base_url}/r/{ROOM}?name={name}&autojoin=1")
            await page.wait_for_function("window.__meeting && window.__meeting.joined"
                                         " && window.__meeting.publishPc", timeout=WAIT_MS)
            pages[name] = page
        alice, bob = pages["Alice"], pages["Bob"]
        button = alice.locator("#screen-btn")
        assert await button.is_visible() and await button.inner_text() == "Share screen"
        await button.click()
        await alice.wait_for_function(
            "document.getElementById('screen-btn').getAttribute('aria-pressed') === 'true'"
            " && !document.getElementById('screen-btn').disabled", timeout=WAIT_MS)
        assert await button.inner_text() == "Stop sharing"

        # the server knows it as a screen (Bob's camera may still be on its way: his page
        # had a publish connection, not yet the answer, when he counted as joined)
        room = server.state.rooms.rooms[ROOM]

        def cameras() -> list:
            return [t for t in room.tracks.values() if t.kind == "video" and t.source == "camera"]

        await until(lambda: len(cameras()) == 2, WAIT_MS / 1000, "both cameras published")
        screens = [t for t in room.tracks.values() if t.source == "screen"]
        assert [(t.kind, t.name) for t in screens] == [("video", "screen")]

        # Alice sends every pixel of it, at a low frame rate (getStats is async: the latest
        # reading is kept on window.__screenSender)
        await alice.evaluate(f"""() => {{
            const read = {SCREEN_SENDER};
            setInterval(async () => {{ window.__screenSender = await read(); }}, 200);
        }}""")
        handle = await alice.wait_for_function(
            "(() => { const s = window.__screenSender;"
            " return s && s.framesSent > 10 && s.sentWidth ? s : null; })()",
            timeout=WAIT_MS, polling=200)
        sent = await handle.json_value()
        assert sent["hint"] == "detail" and sent["maxFramerate"] == 15 and sent["scale"] == 1
        assert sent["degradation"] == "maintain-resolution"
        assert sent["width"] > 640  # larger than the camera: a real test of full resolution

        # Bob decodes it at that size, shown large above the tiles
        handle = await bob.wait_for_function(
            f"(() => {{ const s = ({SCREEN_SHOWN})(); return s && s.frames > 10"
            f" && s.width === {sent['width']} ? s : null; }})()",
            timeout=WAIT_MS, polling=200)
        shown = await handle.json_value()
        assert shown["height"] == sent["height"]
        assert shown["area"] > 4 * shown["tileArea"] and shown["screenAbove"], shown
        assert "Alice" in shown["label"]
        # Alice's camera stays in her tile, not in the screen area
        assert await bob.evaluate(
            "document.querySelectorAll('#tiles .tile:not(.self) video').length") == 1
        assert await bob.evaluate(
            "document.querySelector('#tiles .tile:not(.self) video').srcObject"
            ".getVideoTracks().length") == 1

        # The browser's own "Stop sharing" ends the capture track: unpublished everywhere.
        await alice.evaluate("""() => {
          const pc = window.__meeting.publishPc;
          const sender = pc.getSenders().find((s) => s.track && s.track.label.startsWith('screen'));
          sender.track.stop();  // what the browser does, then it fires 'ended'
          sender.track.dispatchEvent(new Event('ended'));
        }""")
        await bob.wait_for_function("document.getElementById('screen-area').hidden"
                                    " && !document.querySelector('.meeting.sharing')",
                                    timeout=WAIT_MS)
        await alice.wait_for_function(
            "document.getElementById('screen-btn').textContent === 'Share screen'",
            timeout=WAIT_MS)
        assert not [t for t in room.tracks.values() if t.source == "screen"]

        # Sharing again takes a new m-line on the same connection; the button stops it.
        await button.click()
        await bob.wait_for_function(
            f"(() => {{ const s = ({SCREEN_SHOWN})(); return s && s.frames > 5; }})()",
            timeout=WAIT_MS, polling=200)
        await alice.wait_for_function(
            "document.getElementById('screen-btn').textContent === 'Stop sharing'"
            " && !document.getElementById('screen-btn').disabled", timeout=WAIT_MS)
        await button.click()
        await bob.wait_for_function("document.getElementById('screen-area').hidden",
                                    timeout=WAIT_MS)
        assert not [t for t in room.tracks.values() if t.source == "screen"]
        assert await alice.evaluate(
            "window.__meeting.publishPc.getSenders().every((s) => !s.track"
            " || s.track.label.startsWith('screen') === false)")
        assert not errors, errors


async def test_late_attendee_sees_the_share_and_a_demote_ends_it(tmp_path: Path) -> None:
    """A webinar: an attendee promoted to the stage shares a screen; an attendee who joins
    afterwards gets it from `join` and shows it large; the host's demote unpublishes it, and
    the sharer's page stops capturing (the browser's sharing indicator goes away)."""
    from tests.support.client import Client

    async with running_server(tmp_path / "data") as server, chromium() as browser:
        await server.create_room("talk", type="webinar")
        host = Client(server.base_url, server.token("talk", "host", "Host", role="host"))
        await host.connect()
        await host.join()
        errors: list[str] = []

        async def open_page(identity: str):
            page = await (await browser.new_context()).new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            token = server.token("talk", identity, identity, role="attendee")
            await page.goto(f"{server.base_url}/r/talk?token={token}&autojoin=1")
            await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                         timeout=WAIT_MS)
            return page

        try:
            ann = await open_page("dr-ann")
            assert await ann.locator("#screen-btn").is_hidden()  # off stage: nothing to share
            ann_id = await ann.evaluate("window.__meeting.selfId")
            await host.request("promote", {"participantId": ann_id})
            await ann.wait_for_function("window.__meeting.publishPc", timeout=WAIT_MS)
            await ann.click("#screen-btn")
            await ann.wait_for_function(
                "document.getElementById('screen-btn').textContent === 'Stop sharing'"
                " && !document.getElementById('screen-btn').disabled", timeout=WAIT_MS)

            bob = await open_page("dr-bob")
            await bob.wait_for_function(
                f"(() => {{ const s = ({SCREEN_SHOWN})(); return s && s.frames > 5; }})()",
                timeout=WAIT_MS, polling=200)

            await ann.evaluate("""() => {
              window.__capture = window.__meeting.publishPc.getSenders().map((s) => s.track)
                .find((t) => t && t.label.startsWith('screen'));
            }""")
            await host.request("demote", {"participantId": ann_id})
            await bob.wait_for_function("document.getElementById('screen-area').hidden",
                                        timeout=WAIT_MS)
            await ann.wait_for_function(
                "document.getElementById('screen-btn').hidden", timeout=WAIT_MS)
            # no capture left running on Ann's page
            assert await ann.evaluate("window.__capture.readyState") == "ended"
            room = server.state.rooms.rooms["talk"]
            assert not [t for t in room.tracks.values() if t.participant_id == ann_id]
            assert not errors, errors
        finally:
            await host.close()
