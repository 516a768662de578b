"""A nurse on weak hospital Wi-Fi, in Chromium: her page runs in a NetLab namespace
(tests/support/netlab.py) behind 100 ms and 5% loss each way, the rep's page publishes its
fake camera and microphone from a clean link, and the nurse's own browser says what she sees:
frames decoded, freezes (WebRTC's freezeCount), audio packets lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.browser import WAIT_MS, lab_browsers, wait_joined
from tests.support.netlab import NetLab

WINDOW = 20.0

# the subscribe connection's inbound video and audio, as the page's getStats() reports them
RECEIVED = """async () => {
  const pc = window.__meeting && window.__meeting.subscribePc;
  if (!pc) return null;
  const out = {frames: 0, freezes: 0, freezeSeconds: 0, audioReceived: 0, audioLost: 0,
               width: 0};
  (await pc.getStats()).forEach(s => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') {
      out.frames += s.framesDecoded || 0;
      out.freezes += s.freezeCount || 0;
      out.freezeSeconds += s.totalFreezesDuration || 0;
      out.width = Math.max(out.width, s.frameWidth || 0);
    } else {
      out.audioReceived += s.packetsReceived || 0;
      out.audioLost += s.packetsLost || 0;
    }
  });
  return out;
}"""


async def received(page) -> dict:
    return await page.evaluate(RECEIVED)


async def nurse_watches(tmp_path: Path, **link: float) -> tuple[dict, dict, dict]:
    """(before, after) of the nurse's 20 s window, and the link's counters."""
    with NetLab() as lab:
        lab.set(**link)
        async with lab_browsers(lab, tmp_path) as (server, here, there):
            await server.create_room("ward")
            rep = await (await here.new_context()).new_page()
            await rep.goto(f"{server.base_url}/r/ward?name=Rep&autojoin=1")
            await wait_joined(rep, WAIT_MS, reloads=1)
            nurse = await (await there.new_context()).new_page()
            errors: list[str] = []
            nurse.on("pageerror", lambda exc: errors.append(str(exc)))
            await nurse.goto(f"{server.base_url}/r/ward?name=Nurse&autojoin=1")
            await wait_joined(nurse, WAIT_MS, reloads=1)
            before = await received(nurse)
            for _ in range(120):  # the first second of pictures in, then the measured window
                if before and before["frames"] >= 30:
                    break
                await asyncio.sleep(0.25)  # getStats is async: polled, not awaited as an event
                before = await received(nurse)
            assert before and before["frames"] >= 30, before
            await asyncio.sleep(WINDOW)  # what she sees in these 20 s is the measurement
            after = await received(nurse)
            assert not errors, errors
        return before, after, lab.counters()


async def test_clean_link_control(tmp_path: Path) -> None:
    before, after, _ = await nurse_watches(tmp_path)
    # Chromium's fake camera gives ~20 fps on this machine (simulcast or not)
    assert (after["frames"] - before["frames"]) / WINDOW >= 15, (before, after)
    assert after["freezes"] == before["freezes"], (before, after)
    assert after["audioLost"] == before["audioLost"], (before, after)


async def test_nurse_on_lossy_wifi_sees_and_hears_the_rep(tmp_path: Path) -> None:
    before, after, counters = await nurse_watches(tmp_path, delay_ms=100, loss=0.05)
    assert counters["down_dropped"] > 50, counters  # the link did lose her packets
    fps = (after["frames"] - before["frames"]) / WINDOW
    assert fps >= 12, (before, after)  # of ~20 on a clean link
    # Measured here: 5 to 14 short freezes (0.2-0.3 s) in 20 s, 1.5 to 4.3 s frozen in all:
    # each lost packet is repaired one round trip (200 ms) later and Chromium's jitter buffer
    # (~65 ms) does not wait for it. The picture keeps moving; smoothing it is issue 11's.
    assert after["freezeSeconds"] - before["freezeSeconds"] <= 0.25 * WINDOW, (before, after)
    audio = after["audioReceived"] - before["audioReceived"]
    lost = after["audioLost"] - before["audioLost"]
    assert audio >= 0.9 * 50 * WINDOW and lost <= 0.1 * (audio + lost), (before, after)
