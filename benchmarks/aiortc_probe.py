"""Join time as a browser-like client sees it: one aiortc subscriber, socket open to first
decoded frame, using the integration tests' client (tests.support.client) and FrameChecker.

Run once per step during the warm-up, then closed, so its decoding (~25% of a core) stays out
of the measurement window.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.support.client import Client
from tests.support.tracks import FrameChecker


async def join_time(base_url: str, token: str, timeout: float = 20) -> dict[str, Any]:
    """{"seconds": socket open -> first decoded frame, "readable": the pattern was read}."""
    client = Client(base_url, token)
    checker = FrameChecker()
    task: asyncio.Task[None] | None = None
    start = time.monotonic()
    try:
        await client.connect()
        joined = await client.join()
        video = next((t["id"] for t in joined["tracks"] if t["kind"] == "video"), None)
        if video is None:
            return {"seconds": None, "error": "no video track to subscribe to"}
        track = await client.remote_track(video, timeout=timeout)
        task = asyncio.create_task(checker.run(track))
        deadline = start + timeout
        while checker.frames_received == 0 and not checker.ended:
            if time.monotonic() > deadline:
                return {"seconds": None, "error": "no frame decoded in time"}
            await asyncio.sleep(0.005)
        seconds = time.monotonic() - start
        # A few more frames to check that what was decoded is the publisher's pattern.
        while checker.frames_readable == 0 and time.monotonic() < start + seconds + 2:
            await asyncio.sleep(0.05)
        return {"seconds": round(seconds, 3), "readable": checker.frames_readable > 0,
                "senders": sorted(checker.sender_ids)}
    except Exception as exc:  # reported in the step's results, never fatal to the run
        return {"seconds": None, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if task is not None:
            task.cancel()
        try:
            await asyncio.wait_for(client.close(), 10)
        except Exception:
            pass
