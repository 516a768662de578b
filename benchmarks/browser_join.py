"""Join time in a real browser: page opened to first decoded remote video frame.

A headless Chromium (Debian's, as in the tests) opens `/r/<room>?autojoin=1` on a running
server in which an aiortc participant already publishes; the time from navigation to the first
`framesDecoded > 0` in the page's inbound stats is the join time a person waits for. Repeated
`--runs` times with a fresh browser context each time.

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


async def measure(runs: int, workers: int) -> dict[str, object]:
    times: list[float] = []
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
                    await context.close()
            finally:
                await publisher.close()
    return {"runs": runs, "workers": workers, "seconds": [round(t, 3) for t in times],
            "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}


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
