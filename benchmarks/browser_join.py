"""Join time in a real browser: page opened to first decoded remote video frame.

A headless Chromium (Debian's, as in the tests) opens `/r/<room>?autojoin=1` on a running
server in which an aiortc participant already publishes; the time from navigation to the first
`framesDecoded > 0` in the page's inbound stats is the join time a person waits for. Repeated
`--runs` times with a fresh browser context each time.

Each run also records when the page reached each step (milliseconds from navigation start,
polled every 5 ms in the page): the client module loaded, `join` answered, the subscribe
connection's ICE connected, its DTLS connected, the first video frame decoded. The medians of
these say where the wait goes.

    python -m benchmarks.browser_join --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.browser import INBOUND_STATS, chromium
from tests.support.client import Client
from tests.support.server import running_server
from tests.support.tracks import PatternVideoTrack

# Polls from the first script of the page: which step was first seen when.
TIMELINE = """
window.__timeline = {};
const mark = (name) => { if (!(name in window.__timeline))
  window.__timeline[name] = Math.round(performance.now()); };
const poll = setInterval(async () => {
  const m = window.__meeting;
  if (!m) return;
  mark('client_loaded');
  if (m.joined) mark('joined');
  const pc = m.subscribePc;
  if (!pc) return;
  if (pc.iceConnectionState === 'connected' || pc.iceConnectionState === 'completed')
    mark('ice_connected');
  if (pc.connectionState === 'connected') mark('dtls_connected');
  if ('first_frame' in window.__timeline) return clearInterval(poll);
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video' && s.framesDecoded > 0)
      mark('first_frame');
  });
}, 5);
"""
STEPS = ("client_loaded", "joined", "ice_connected", "dtls_connected", "first_frame")


async def measure(runs: int, workers: int) -> dict[str, object]:
    times: list[float] = []
    timelines: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp), dev=True, workers=workers) as server, \
                chromium() as browser:
            await server.create_room("join-time")
            publisher = Client(server.base_url, server.token("join-time", "publisher"))
            await publisher.connect()
            await publisher.join()
            await publisher.publish(PatternVideoTrack(1))
            try:
                for i in range(runs):
                    context = await browser.new_context()
                    await context.add_init_script(TIMELINE)
                    page = await context.new_page()
                    start = time.perf_counter()
                    await page.goto(f"{server.base_url}/r/join-time?name=viewer{i}&autojoin=1")
                    await page.wait_for_function("window.__meeting && window.__meeting.joined",
                                                 timeout=30_000)
                    await page.evaluate(f"""() => {{
                        const read = {INBOUND_STATS};
                        setInterval(async () => {{ window.__inbound = await read(); }}, 20);
                    }}""")
                    await page.wait_for_function(
                        "window.__inbound && window.__inbound.framesDecoded > 0",
                        timeout=30_000, polling=20)
                    times.append(time.perf_counter() - start)
                    await page.wait_for_function("'first_frame' in window.__timeline",
                                                 timeout=30_000)
                    timelines.append(await page.evaluate("window.__timeline"))
                    await context.close()
            finally:
                await publisher.close()
    return {"runs": runs, "workers": workers, "seconds": [round(t, 3) for t in times],
            "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
            "median_ms_from_navigation": {
                step: round(statistics.median(t.get(step, 0) for t in timelines))
                for step in STEPS},
            "timelines": timelines}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.browser_join")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    result = asyncio.run(measure(args.runs, args.workers))
    print(json.dumps(result))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "browser_join.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
