"""Browser end to end: two headless Chromium pages join one room through the web client.

Each page's fake camera and microphone are published through the SFU; each page must decode
the other's video (framesDecoded rising in getStats) and receive its audio.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser import INBOUND_STATS, chromium
from tests.support.server import running_server

WAIT_MS = 30_000


async def watch_stats(page) -> None:
    """Keep the latest inbound totals on window.__inbound (getStats is async; the wait is not)."""
    await page.evaluate(f"""() => {{
        const read = {INBOUND_STATS};
        setInterval(async () => {{ window.__inbound = await read(); }}, 200);
    }}""")


async def wait_decoding(page, frames: int) -> dict:
    handle = await page.wait_for_function(
        f"""() => {{
            const s = window.__inbound;
            return s && s.framesDecoded >= {frames} && s.audioPackets > 50 ? s : null;
        }}""", timeout=WAIT_MS, polling=200)
    return await handle.json_value()


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
