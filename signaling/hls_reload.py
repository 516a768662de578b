"""Blocking playlist reload for low-latency HLS recordings (RFC 8216bis section 6.2.5.2).

A player asks for `index.m3u8?_HLS_msn=M&_HLS_part=P`: the answer waits until the playlist holds
part P of segment M (or segment M itself when no part is asked for), at most three target
durations, then 503; a request too far ahead (M beyond the last segment + 2, or P beyond the
last part by the Advance Part Limit) gets 400 at once, as does a part without a segment. A
finished playlist (EXT-X-ENDLIST) is served as is. The playlist is read from the recorder's
files, so a poller stats each watched playlist (one stat per tick however many clients wait,
and only while some do): asyncio offers no portable file-change notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

READY, WAIT, TOO_FAR = "ready", "wait", "too_far"
_URI = re.compile(r'URI="([^"]+)"')
MAX_DIRECTIVE_DIGITS = 10  # a media sequence number is a 32-bit unsigned integer at most
_DIRECTIVE = re.compile(rf"[0-9]{{1,{MAX_DIRECTIVE_DIGITS}}}")


class BadDirective(ValueError):
    pass


@dataclass(slots=True)
class PlaylistState:
    """What a media playlist holds, as far as blocking reload needs to know."""

    target: int = 2
    part_target: float | None = None
    can_block: bool = False
    ended: bool = False
    media_sequence: int = 0
    part_counts: list[int | None] = field(default_factory=list)  # per complete segment
    open_parts: int = 0  # parts after the last complete segment
    preload_hint: str | None = None

    @property
    def last_msn(self) -> int:
        """Media sequence number of the last complete segment (one less than the first's
        when there is none)."""
        return self.media_sequence + len(self.part_counts) - 1


def parse_playlist(text: str) -> PlaylistState:
    state = PlaylistState()
    parts = 0
    for line in text.splitlines():
        line = line.strip()
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            state.target = int(value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            state.media_sequence = int(value)
        elif tag == "#EXT-X-PART-INF":
            m = re.search(r"PART-TARGET=([0-9.]+)", value)
            state.part_target = float(m.group(1)) if m else None
        elif tag == "#EXT-X-SERVER-CONTROL":
            state.can_block = "CAN-BLOCK-RELOAD=YES" in value
        elif tag == "#EXT-X-PART":
            parts += 1
        elif tag == "#EXT-X-PRELOAD-HINT":
            m = _URI.search(value)
            state.preload_hint = m.group(1) if m else None
        elif line == "#EXT-X-ENDLIST":
            state.ended = True
        elif line and not line.startswith("#"):
            # A segment whose parts have left the playlist: its part count is unknown.
            state.part_counts.append(parts or None)
            parts = 0
    state.open_parts = parts
    return state


def directives(query: dict[str, str]) -> tuple[int, int | None] | None:
    """(msn, part) from `_HLS_msn` / `_HLS_part`, None without them; BadDirective if broken."""
    msn, part = query.get("_HLS_msn"), query.get("_HLS_part")
    if msn is None:
        if part is not None:
            raise BadDirective("_HLS_part without _HLS_msn")
        return None
    if not _DIRECTIVE.fullmatch(msn) or (part is not None and not _DIRECTIVE.fullmatch(part)):
        raise BadDirective("_HLS_msn and _HLS_part are decimal integers of at most "
                           f"{MAX_DIRECTIVE_DIGITS} digits")
    return int(msn), None if part is None else int(part)


def advance_part_limit(part_target: float | None) -> float:
    """RFC 8216bis 6.2.5.2: 3 / PART-TARGET parts below one second, otherwise 3."""
    return 3 / part_target if part_target and part_target < 1 else 3


def reload_state(state: PlaylistState, msn: int, part: int | None) -> str:
    """READY when the playlist holds what was asked for, WAIT, or TOO_FAR (answer 400).
    Directives are ignored once the playlist has ended (6.2.5.2), and by a playlist that does
    not offer blocking reload (no parts will ever come)."""
    if state.ended or not state.can_block:
        return READY
    last = state.last_msn
    if msn > last + 2:
        return TOO_FAR
    if part is None:
        return READY if msn <= last else WAIT
    if msn <= last:
        count = state.part_counts[msn - state.media_sequence] if msn >= state.media_sequence \
            else None
        if count is None or part < count:
            return READY
        msn, part = msn + 1, 0  # past a segment's last part: the next segment's first (M3)
    limit = advance_part_limit(state.part_target)
    if msn == last + 1:
        if part < state.open_parts:
            return READY
        return TOO_FAR if part - (state.open_parts - 1) > limit else WAIT
    return TOO_FAR if part + 1 > limit else WAIT  # the segment after the open one


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass(slots=True)
class _Watched:
    event: asyncio.Event
    task: asyncio.Task | None = None
    waiters: int = 0


class PlaylistWatcher:
    """Tells waiters that a file was replaced (the recorder renames every new version in)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self._watched: dict[Path, _Watched] = {}

    async def wait_change(self, path: Path, seen: tuple[int, int, int] | None,
                          timeout: float) -> bool:
        """Until `path` differs from the version `seen` (its signature); False on timeout."""
        w = self._watched.get(path)
        if w is None:
            w = self._watched[path] = _Watched(asyncio.Event())
            w.task = asyncio.create_task(self._poll(path, w))
        w.waiters += 1
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = w.event  # taken before the check: a change after it sets it
                    if _signature(path) != seen:
                        return True
                    await event.wait()
        except TimeoutError:
            return False
        finally:
            w.waiters -= 1
            if w.waiters == 0 and w.task is not None:
                w.task.cancel()
                del self._watched[path]

    async def _poll(self, path: Path, w: _Watched) -> None:
        last = _signature(path)
        while True:
            await asyncio.sleep(self.interval)
            now = _signature(path)
            if now != last:
                last = now
                w.event.set()
                w.event = asyncio.Event()

    async def close(self) -> None:
        for w in self._watched.values():
            if w.task is not None:
                w.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await w.task
        self._watched.clear()


async def read_playlist(path: Path) -> tuple[str, tuple[int, int, int] | None]:
    """The playlist's text and the signature of the version read."""
    seen = _signature(path)
    return await asyncio.to_thread(path.read_text), seen


async def wait_for_playlist(watcher: PlaylistWatcher, path: Path, msn: int,
                            part: int | None) -> tuple[str, str]:
    """(state, text): READY with the playlist holding (msn, part), TOO_FAR, or WAIT when three
    target durations passed without it."""
    loop = asyncio.get_running_loop()
    text, seen = await read_playlist(path)
    state = parse_playlist(text)
    deadline = loop.time() + 3 * state.target
    while (verdict := reload_state(state, msn, part)) == WAIT:
        remaining = deadline - loop.time()
        if remaining <= 0 or not await watcher.wait_change(path, seen, remaining):
            return WAIT, text
        text, seen = await read_playlist(path)
        state = parse_playlist(text)
    return verdict, text


async def wait_for_hinted(watcher: PlaylistWatcher, playlist: Path, target: Path) -> bool:
    """A request for the part the playlist hints (EXT-X-PRELOAD-HINT) is held until the part
    exists (6.2.6), at most three target durations; False for anything else missing."""
    loop = asyncio.get_running_loop()
    try:
        text, seen = await read_playlist(playlist)
    except FileNotFoundError:
        return False
    state = parse_playlist(text)
    if state.ended or state.preload_hint != target.name:
        return False
    deadline = loop.time() + 3 * state.target
    while not target.exists():
        remaining = deadline - loop.time()
        if remaining <= 0 or not await watcher.wait_change(playlist, seen, remaining):
            return False
        seen = _signature(playlist)
    return True
