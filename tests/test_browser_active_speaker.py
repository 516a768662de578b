"""Browser: a Chromium page in a room where two aiortc participants take turns to speak; the
web client's state (`window.__meeting.activeSpeaker`) follows the `activeSpeaker` event, and
the speaker's tile is highlighted and larger than the others."""

from __future__ import annotations

from pathlib import Path

from tests.support.browser import WAIT_MS, chromium
from tests.support.server import running_server
from tests.test_active_speaker_room import speakers

TILE = """(id) => {
  const tiles = [...document.querySelectorAll('#tiles .tile')].filter((t) => !t.hidden);
  const box = (t) => t.getBoundingClientRect();
  const mine = tiles.find((t) => t.dataset.participantId === id);
  const others = tiles.filter((t) => t !== mine);
  return {
    speaking: tiles.filter((t) => t.classList.contains('speaking'))
      .map((t) => t.dataset.participantId),
    larger: Boolean(mine) && others.length > 0 &&
      others.every((t) => box(mine).width > 1.5 * box(t).width),
  };
}"""


async def test_the_page_follows_and_shows_the_active_speaker(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", dev=True) as server, chromium() as browser:
        await server.create_room("spk")
        page = await (await browser.new_context()).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        async with speakers(server, "spk", ("ann", "bea")) as (clients, tones):
            await page.goto(f"{server.base_url}/r/spk?name=Viewer&autojoin=1")
            await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                         timeout=WAIT_MS)
            for speaker, tone in zip(clients, tones, strict=True):
                for other in tones:
                    other.loud = other is tone
                await page.wait_for_function("(id) => window.__meeting.activeSpeaker === id",
                                             arg=speaker.self_id, timeout=WAIT_MS)
                # the tile's class and size follow in the same task as the state
                shown = await page.evaluate(TILE, speaker.self_id)
                assert shown == {"speaking": [speaker.self_id], "larger": True}, shown
        assert not errors, errors
