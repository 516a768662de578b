"""Transport-cc with real Chromium, both ways, through the web client.

- Uplink: Chromium publishes with transport-cc negotiated and gets our feedback; its own
  send-side estimate (availableOutgoingBitrate) then climbs from its 300 kbit/s start. Without
  usable feedback it could not: its probes would go unanswered.
- Downlink: each page's subscribe connection answers our numbered packets with feedback, and
  the server's estimate for that transport shows in dump().
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.browser import WAIT_MS, chromium, wait_decoding, watch_stats
from tests.support.server import running_server

CHROMIUM_START_BITRATE = 300_000  # libwebrtc's default start estimate

AVAILABLE_OUTGOING = """async () => {
  const pc = window.__meeting.publishPc;
  if (!pc) return 0;
  let best = 0;
  (await pc.getStats()).forEach(s => {
    if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate)
      best = Math.max(best, s.availableOutgoingBitrate);
  });
  return best;
}"""


async def until_outgoing_above(page, rate: int) -> None:
    """Polls Chromium's estimate (getStats is asynchronous: wait_for_function cannot await it)
    until it passes `rate`; fails with the values seen after WAIT_MS."""
    seen = []
    for _ in range(WAIT_MS // 250):
        seen.append(int(await page.evaluate(AVAILABLE_OUTGOING)))
        if seen[-1] > rate:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"availableOutgoingBitrate never above {rate}: {seen[-20:]}")


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "two-worker-processes"])
async def test_chromium_follows_our_feedback_and_feeds_our_estimate(tmp_path: Path,
                                                                   workers: int) -> None:
    async with running_server(tmp_path / "data", dev=True, workers=workers) as server, \
            chromium() as browser:
        pages = []
        for name in ("Alice", "Bob"):
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{server.base_url}/r/twcc-room?name={name}&autojoin=1")
            await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                         timeout=WAIT_MS)
            await watch_stats(page)
            pages.append(page)
        for page in pages:
            await wait_decoding(page, 30)
        publish_sdp = await pages[0].evaluate(
            "window.__meeting.publishPc.remoteDescription.sdp")
        assert "transport-wide-cc" in publish_sdp and "transport-cc" in publish_sdp
        # Chromium's estimate of its uplink climbs past its start: it reads our feedback. Seen
        # here: 437-969 kbit/s (app-limited, it stays under 1.5 x what it sends); with the
        # feedback withheld it peaks at 352 kbit/s (RTCP receiver reports) and then falls.
        for page in pages:
            await until_outgoing_above(page, CHROMIUM_START_BITRATE * 4 // 3)
        # and each subscriber transport has an estimate from Chromium's feedback
        dump = await server.state.media.dump()
        estimates = [t.estimate for t in dump.transports if t.packets_out > 100]
        assert len(estimates) >= 2 and all(e > 0 for e in estimates), dump.transports
