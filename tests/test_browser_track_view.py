"""The web client tells the server how it shows each remote video (setTrackView): a tile taken
off the screen stops its video at the server, the sound goes on, and it comes back when shown."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import running_server

IN_MEETING = "window.__meeting && window.__meeting.joined"


async def doctor_consumer(server, doctor_id: str):
    session = next(p for p in server.state.sessions if p.id == doctor_id)
    dump = await server.state.media.dump()
    (consumer,) = [c for c in dump.consumers
                   if c.kind == "video" and c.transport_id == session.subscribe_transport]
    return consumer


async def test_a_tile_off_the_screen_gets_no_video(tmp_path: Path) -> None:
    async with running_server(tmp_path, dev=True) as server, chromium() as browser:
        await server.create_room("clinic")
        pages = {}
        for name in ("Rep", "Doctor"):
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{server.base_url}/r/clinic?name={name}&autojoin=1")
            await page.wait_for_function(IN_MEETING, timeout=WAIT_MS)
            await watch_stats(page)
            pages[name] = page
        doctor = pages["Doctor"]
        await wait_decoding(doctor, 30)
        doctor_id = await doctor.evaluate("window.__meeting.selfId")
        rep_id = await pages["Rep"].evaluate("window.__meeting.selfId")
        assert not (await doctor_consumer(server, doctor_id)).paused

        video = await doctor.evaluate(
            "Object.keys(window.__meeting.trackViews)")  # told at once: shown
        assert len(video) == 1
        views = f"window.__meeting.trackViews['{video[0]}']"
        tile = f'.tile[data-participant-id="{rep_id}"]'
        await doctor.evaluate(f"document.querySelector('{tile}').style.display = 'none'")
        await doctor.wait_for_function(f"{views} === false", timeout=WAIT_MS)
        hidden = await doctor_consumer(server, doctor_id)
        assert hidden.paused
        audio_before = (await doctor.evaluate("window.__inbound"))["audioPackets"]
        # the window: a second of the rep's sound arriving (50 packets), the video meanwhile
        await doctor.wait_for_function(
            f"window.__inbound.audioPackets > {audio_before} + 50", timeout=WAIT_MS)
        assert (await doctor_consumer(server, doctor_id)).packets - hidden.packets <= 2

        await doctor.evaluate(f"document.querySelector('{tile}').style.display = ''")
        await doctor.wait_for_function(f"{views} === true", timeout=WAIT_MS)
        frames = (await doctor.evaluate("window.__inbound"))["framesDecoded"]
        await wait_decoding(doctor, frames + 30)  # pictures again, from a keyframe
        assert not (await doctor_consumer(server, doctor_id)).paused
