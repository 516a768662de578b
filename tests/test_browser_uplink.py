"""A publisher on a thin uplink, in Chromium: the rep's page runs in a NetLab namespace
(tests/support/netlab.py) whose uplink is 250 kbit/s (tc tbf), a doctor watches from a clean
link. With our transport-cc feedback the rep's browser estimates its uplink and its encoder
follows it: it neither floods the link nor starves on it (without the feedback, measured here,
its estimate falls to its 84 kbit/s floor and it sends about 70 kbit/s)."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

from tests.support.browser import WAIT_MS, lab_browsers, wait_joined
from tests.support.netlab import NetLab

UPLINK = 250_000  # bit/s
WINDOW = 20  # samples, one every 0.5 s: the measurement

# the publish connection: Chromium's estimate of its uplink and the bytes it sent
PUBLISHED = """async () => {
  const pc = window.__meeting && window.__meeting.publishPc;
  if (!pc) return null;
  const out = {estimate: 0, bytes: 0};
  (await pc.getStats()).forEach(s => {
    if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate)
      out.estimate = s.availableOutgoingBitrate;
    if (s.type === 'outbound-rtp') out.bytes += s.bytesSent + (s.headerBytesSent || 0);
  });
  return out;
}"""


async def joined(page) -> None:
    await wait_joined(page, WAIT_MS, reloads=1)  # see wait_joined on lab pages that stall


async def test_publisher_follows_a_250_kbit_uplink(tmp_path: Path) -> None:
    with NetLab() as lab:
        lab.rate(up_kbit=UPLINK // 1000, queue_bytes=30_000)
        async with lab_browsers(lab, tmp_path) as (server, here, there):
            await server.create_room("ward")
            rep = await (await there.new_context()).new_page()
            await rep.goto(f"{server.base_url}/r/ward?name=Rep&autojoin=1")
            await joined(rep)
            doctor = await (await here.new_context()).new_page()
            await doctor.goto(f"{server.base_url}/r/ward?name=Doctor&autojoin=1")
            await joined(doctor)
            await asyncio.sleep(3)  # past the start-up probes: the steady state is measured
            samples = [await rep.evaluate(PUBLISHED)]
            for _ in range(WINDOW):
                await asyncio.sleep(0.5)  # getStats is polled: it has no event to await
                samples.append(await rep.evaluate(PUBLISHED))
    estimates = [s["estimate"] for s in samples]
    rates = [(b["bytes"] - a["bytes"]) * 8 / 0.5 for a, b in zip(samples, samples[1:],
                                                                   strict=False)]
    # its estimate sits around the link, and it sends a good share of it, never far more
    assert 0.5 * UPLINK < statistics.median(estimates) < 1.5 * UPLINK, estimates
    assert statistics.median(rates) > 0.4 * UPLINK, rates
    assert statistics.mean(rates) < 1.1 * UPLINK, rates
