"""Browser end to end: two headless Chromium pages join one room through the web client.

Each page's fake camera and microphone are published through the SFU; each page must decode
the other's video (framesDecoded rising in getStats) and receive its audio.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import running_server


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "two-worker-processes"])
async def test_two_browsers_see_and_hear_each_other(tmp_path: Path, workers: int) -> None:
    async with running_server(tmp_path / "data", dev=True, workers=workers) as server, \
            chromium() as browser:
        pages = []
        for name in ("Alice", "Bob"):
            context = await browser.new_context()
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
            await page.goto(f"{server.base_url}/r/browser-room?name={name}&autojoin=1")
            pages.append((page, errors))
        for page, _ in pages:
            await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                         timeout=WAIT_MS)
            await watch_stats(page)
        first = [await wait_decoding(page, 30) for page, _ in pages]
        # decoding keeps going: a second look sees more frames
        second = [await wait_decoding(page, f["framesDecoded"] + 30)
                  for (page, _), f in zip(pages, first, strict=True)]
        for before, after in zip(first, second, strict=True):
            assert after["framesDecoded"] > before["framesDecoded"]
            assert after["audioPackets"] > before["audioPackets"]
        # the server forwarded both ways
        stats = await server.state.media.stats()
        assert stats["producers"] == 4 and stats["consumers"] == 4
        names = await pages[0][0].evaluate(
            "Array.from(document.querySelectorAll('.tile .name, .tile-name'))"
            ".map(e => e.textContent)")
        assert any("Bob" in n for n in names), names
        for _, errors in pages:
            assert not errors, errors


async def test_prejoin_connectivity_check_passes_then_join(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{server.base_url}/r/checked-room?name=Dr.%20Lee")
        await page.wait_for_function(
            "['pass', 'fail'].includes(document.getElementById('precheck-banner').dataset.state)",
            timeout=WAIT_MS)
        banner = page.locator("#precheck-banner")
        assert await banner.get_attribute("data-state") == "pass", await banner.inner_text()
        steps = await page.locator("#precheck-steps").inner_text()
        assert "Media connection" in steps and "RTT" in steps
        # "pass" means the page's test connection reached 'connected': ICE and DTLS with the
        # server's media port completed
        await page.click("#join-btn")
        await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                     timeout=WAIT_MS)
        # chat from the page reaches the room's history
        await page.fill("#chat-input", "hello from the browser")
        await page.press("#chat-input", "Enter")
        await page.wait_for_function(
            "document.body.innerText.includes('hello from the browser')", timeout=WAIT_MS)
        history = await server.state.store.chat_history("checked-room")
        assert [m["text"] for m in history] == ["hello from the browser"]


async def test_webinar_hand_promotion_and_poll_in_chromium(tmp_path: Path) -> None:
    """One presenter and two attendees in Chromium: an attendee raises a hand, the host
    promotes them, both others decode their video; the other attendee answers a poll on the
    page."""
    from tests.support.client import Client

    async with running_server(tmp_path / "data") as server, chromium() as browser:
        import aiohttp

        from tests.support.server import API_KEY

        async with aiohttp.ClientSession() as s, s.post(
                server.base_url + "/api/rooms", json={"name": "launch", "type": "webinar"},
                headers={"Authorization": f"Bearer {API_KEY}"}) as r:
            assert r.status == 201
        host = Client(server.base_url, server.token("launch", "host", "Host", role="host"))
        await host.connect()
        await host.join()
        pages = {}
        for identity, role in (("speaker", "presenter"), ("dr-a", "attendee"),
                               ("dr-b", "attendee")):
            page = await (await browser.new_context()).new_page()
            token = server.token("launch", identity, identity, role=role)
            await page.goto(f"{server.base_url}/r/launch?token={token}&autojoin=1")
            await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                         timeout=WAIT_MS)
            await watch_stats(page)
            pages[identity] = page
        try:
            # attendees receive only: no publish connection off stage
            assert await pages["dr-a"].evaluate("!window.__meeting.publishPc")
            await wait_decoding(pages["dr-a"], 10)  # the presenter's video

            await pages["dr-a"].click("#hand-btn")
            raised = await host.wait_event("handRaised", lambda d: d["raised"], timeout=20)
            await host.request("promote", {"participantId": raised["participantId"]})
            await pages["dr-a"].wait_for_function(
                "window.__meeting.onStage && window.__meeting.publishPc", timeout=WAIT_MS)
            # both others decode the promoted attendee's video: the presenter's page decodes
            # one video stream (dr-a's), dr-b's page two (the presenter's and dr-a's)
            video_id = await host.live_track_of(raised["participantId"], "video", timeout=20)
            for name, streams in (("speaker", 1), ("dr-b", 2)):
                await pages[name].wait_for_function(
                    f"window.__inbound && window.__inbound.decodingVideos >= {streams}",
                    timeout=WAIT_MS, polling=200)
            consumers = [c for c in (await server.state.media.dump()).consumers
                         if c.producer_id == next(
                             t.producer_id for t in server.state.rooms.rooms["launch"]
                             .tracks.values() if t.id == video_id)]
            assert len(consumers) >= 3 and all(c.packets > 0 for c in consumers)

            poll = (await host.request("pollCreate", {"question": "Preferred dose?",
                                                      "options": ["5 mg", "10 mg"]}))["poll"]
            await host.request("pollOpen", {"pollId": poll["id"]})
            page = pages["dr-b"]
            await page.click("#tab-polls")
            await page.locator(".poll-option", has_text="10 mg").first.click()
            voted = await host.wait_event("pollUpdated", lambda d: d["poll"]["total"] == 1,
                                          timeout=20)
            assert voted["poll"]["options"][1]["votes"] == 1
        finally:
            await host.close()
