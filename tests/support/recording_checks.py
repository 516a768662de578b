"""Checks shared by the recording tests: bounded waits on files, webhooks caught in-process,
the playlist of a recording resumed after a crash, and which bots a composite frame shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from recorder.layout import cells
from tests.support.patterns import read_video_frame
from tests.support.recorder_hls import M3u8, check_playlist
from tests.support.server import RunningServer


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition()` every 50 ms until it holds; fail after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def segments(playlist: Path, count: int, timeout: float = 30) -> int:
    """Wait until the live playlist lists `count` segments (that much media time has passed)."""
    def listed() -> int:
        return playlist.read_text().count("#EXTINF") if playlist.exists() else 0

    await until(lambda: listed() >= count, timeout, f"{count} segments in {playlist}")
    return listed()


def capture_webhooks(server: RunningServer) -> list[dict[str, Any]]:
    """The payloads the server sends from now on, instead of delivering them."""
    sent: list[dict[str, Any]] = []
    server.state.recordings.webhooks.send = (  # type: ignore[method-assign]
        lambda event, data: sent.append({"event": event, **data}))
    return sent


def check_resumed(final: M3u8, crashed: M3u8, directory: Path) -> None:
    """The playlist after a crash and a resume: ended, valid, what was there before kept as it
    was, then exactly one discontinuity with a new init segment, where the resumed part starts."""
    assert final.endlist
    check_playlist(final, directory)
    n = len(crashed.segments)
    assert [s.uri for s in final.segments[:n]] == [s.uri for s in crashed.segments]
    assert [s.discontinuity for s in final.segments] == [i == n for i in
                                                         range(len(final.segments))]
    assert final.segments[n].map_uri not in (None, final.segments[0].map_uri)


def tiles_shown(mp4: Path, at: float, count: int, layout: str) -> set[int | None]:
    """Sender ids whose pattern each of the `count` tiles shows in the first frame at or after
    `at` seconds (None for a tile without a readable pattern)."""
    with av.open(str(mp4)) as container:
        frame = next(f for f in container.decode(video=0) if f.time >= at)
        rgb = frame.to_ndarray(format="rgb24")
    shown: set[int | None] = set()
    for cell in cells(count, layout):
        x, y, w, h = cell.video_box(320, 240)
        read = read_video_frame(rgb[y : y + h, x : x + w])
        shown.add(None if read is None else read[0])
    return shown
