"""Browser end to end for the host controls, clicked on real pages in headless Chromium:
the lobby (waiting screen, admit, refuse), the recording indicator, and a webinar's backstage
going live."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from playwright.async_api import TimeoutError as PageTimeout

from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import RunningServer, running_server

# Counts the WebSockets a page opens: a refused guest must not knock again by itself.
COUNT_SOCKETS = """(() => {
  const Native = window.WebSocket;
  window.__sockets = 0;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets += 1; }
  };
})();"""


async def open_room(browser: Browser, server: RunningServer, room: str, identity: str,
                    name: str, role: str, errors: list[str]) -> Page:
    page = await (await browser.new_context()).new_page()
    page.on("pageerror", lambda exc: errors.append(f"{identity}: {exc}"))
    await page.add_init_script(COUNT_SOCKETS)
    token = server.token(room, identity, name, role=role)
    await page.goto(f"{server.base_url}/r/{room}?token={token}&autojoin=1")
    return page


async def joined(page: Page) -> None:
    await page.wait_for_function("window.__meeting && window.__meeting.joined", timeout=WAIT_MS)


async def wait_in_lobby(page: Page) -> None:
    await expect(page.locator("#lobby")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#lobby h1")).to_have_text("Waiting for the host to let you in")
    assert await page.evaluate("window.__meeting.waiting && !window.__meeting.joined")
    await expect(page.locator("#lobby-leave-btn")).to_be_visible()


async def test_lobby_waiting_admit_and_refuse(tmp_path: Path) -> None:
    errors: list[str] = []
    async with running_server(tmp_path / "data") as server, chromium() as browser:
        await server.create_room("clinic", lobby=True)
        host = await open_room(browser, server, "clinic", "rep", "Rep", "host", errors)
        await joined(host)
        await expect(host.locator("#tab-lobby")).to_be_visible()
        await expect(host.locator("#lobby-count")).to_have_text("0")

        # A guest waits; the host's lobby panel shows them, and Admit lets them in.
        guest = await open_room(browser, server, "clinic", "dr-ames", "Dr. Ames", "attendee",
                                errors)
        await wait_in_lobby(guest)
        await expect(host.locator("#lobby-count")).to_have_text("1", timeout=WAIT_MS)
        await host.click("#tab-lobby")
        row = host.locator(".lobby-row", has_text="Dr. Ames")
        await row.locator("button", has_text="Admit").click()
        await joined(guest)
        await expect(guest.locator("#meeting")).to_be_visible()
        await expect(guest.locator("#lobby")).to_be_hidden()
        await expect(host.locator("#lobby-count")).to_have_text("0", timeout=WAIT_MS)
        await expect(row).to_have_count(0)
        # media started once admitted: the guest decodes the host's camera (and hears it)
        await watch_stats(guest)
        first = await wait_decoding(guest, 30)
        assert (await wait_decoding(guest, first["framesDecoded"] + 30))["framesDecoded"] > \
            first["framesDecoded"]

        # A second guest is refused: a clear message, and no knocking again.
        other = await open_room(browser, server, "clinic", "dr-bell", "Dr. Bell", "attendee",
                                errors)
        await wait_in_lobby(other)
        await expect(host.locator("#lobby-count")).to_have_text("1", timeout=WAIT_MS)
        await host.locator(".lobby-row", has_text="Dr. Bell").locator(
            "button", has_text="Refuse").click()
        await expect(other.locator("#ended")).to_be_visible(timeout=WAIT_MS)
        await expect(other.locator("#ended-title")).to_have_text("The host did not let you in")
        await expect(other.locator("#ended-detail")).to_contain_text("declined")
        await expect(other.locator("#rejoin-btn")).to_be_hidden()
        assert await other.evaluate("window.__meeting.lastError.code") == "refused"
        await expect(host.locator("#lobby-count")).to_have_text("0", timeout=WAIT_MS)
        # the page would reconnect within a second if it retried: give it three
        with pytest.raises(PageTimeout):
            await other.wait_for_function("window.__sockets > 1", timeout=3000)
        room = server.state.rooms.rooms["clinic"]
        assert not room.waiting
        assert sorted(p.identity for p in room.participants.values()) == ["dr-ames", "rep"]

        assert not errors, errors


async def test_webinar_go_live_and_recording_indicator(tmp_path: Path) -> None:
    errors: list[str] = []
    async with running_server(tmp_path / "data") as server, chromium() as browser:
        await server.create_room("launch", type="webinar", backstage=True)
        host = await open_room(browser, server, "launch", "chair", "Chair", "host", errors)
        await joined(host)
        attendee = await open_room(browser, server, "launch", "dr-c", "Dr. C", "attendee",
                                   errors)
        await joined(attendee)
        await expect(attendee.locator("#live-badge")).to_have_text("Backstage")
        await expect(host.locator("#live-badge")).to_have_text("Backstage")
        await expect(attendee.locator("#live-btn")).to_be_hidden()  # hosts only
        await expect(host.locator("#live-btn")).to_have_text("Go live")
        # backstage: the host sends, the attendee gets nothing yet
        await host.wait_for_function(
            "window.__meeting.publishPc && window.__meeting.publishPc.connectionState"
            " === 'connected'", timeout=WAIT_MS)
        await watch_stats(attendee)
        assert await attendee.evaluate(
            "!window.__inbound || window.__inbound.framesDecoded === 0")

        await host.click("#live-btn")
        await expect(attendee.locator("#live-badge")).to_have_text("Live", timeout=WAIT_MS)
        await expect(host.locator("#live-btn")).to_have_text("End broadcast")
        await wait_decoding(attendee, 30)  # the stage's media reached the audience

        # Recording: the host starts it, everyone sees the indicator; stopping removes it.
        await expect(attendee.locator("#rec-badge")).to_be_hidden()
        await expect(attendee.locator("#rec-btn")).to_be_hidden()  # hosts only
        await host.click("#rec-btn")
        await expect(attendee.locator("#rec-badge")).to_be_visible(timeout=WAIT_MS)
        await expect(attendee.locator("#rec-badge")).to_have_text("● Recording")
        await expect(host.locator("#rec-badge")).to_be_visible()
        await expect(host.locator("#rec-btn")).to_have_text("Stop recording", timeout=WAIT_MS)
        assert "launch" in server.state.recordings.active
        await host.click("#rec-btn")
        await expect(attendee.locator("#rec-badge")).to_be_hidden(timeout=60_000)
        await expect(host.locator("#rec-btn")).to_have_text("Start recording", timeout=WAIT_MS)
        assert "launch" not in server.state.recordings.active

        await host.click("#live-btn")
        await expect(attendee.locator("#live-badge")).to_have_text("Backstage", timeout=WAIT_MS)
        await expect(host.locator("#live-btn")).to_have_text("Go live")
        assert server.state.rooms.rooms["launch"].live is False
        assert not errors, errors
