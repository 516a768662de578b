"""Blocking playlist reload and preload hints through the server's HTTP (RFC 8216bis 6.2.5.2,
6.2.6): a request for a future part returns once the part is there, one too far ahead or
never coming gets an error, never a hang. The recording's files are written here with the
recorder's own playlist code, so each step of the live edge is under the test's control."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from recorder.hls import PLAYLIST, Part, Playlist, Segment, write_atomic
from signaling.grants import grant_path
from signaling.hls_reload import (
    READY,
    TOO_FAR,
    WAIT,
    BadDirective,
    directives,
    parse_playlist,
    reload_state,
)
from tests.support.client import Client
from tests.support.server import API_KEY, RunningServer, running_server
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack

PARTS_PER_SEGMENT = 3


class LiveEdge:
    """A low-latency recording growing part by part: files first, then the playlist."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / "init_0.mp4", b"init")
        self.playlist = Playlist(target=1, part_target=0.334)
        self.parts = 0
        self.segments = 0

    def next_part_name(self) -> str:
        return f"part_0_{self.parts:05d}.m4s"

    def add_part(self) -> str:
        pl = self.playlist
        if pl.open is not None and len(pl.open.parts) == PARTS_PER_SEGMENT:
            write_atomic(self.dir / pl.open.uri, b"segment")
            pl.segments.append(pl.open)
            pl.open = None
        if pl.open is None:
            pl.open = Segment(f"seg_{self.segments:05d}.m4s", 0.0, 1.8e9 + self.segments,
                              "init_0.mp4" if not self.segments else None)
            self.segments += 1
        name = self.next_part_name()
        write_atomic(self.dir / name, name.encode())
        pl.open.parts.append(Part(name, 0.33333, not pl.open.parts))
        pl.open.duration += 0.33333
        self.parts += 1
        pl.preload_hint = self.next_part_name()
        self.publish()
        return name

    def publish(self) -> None:
        write_atomic(self.dir / PLAYLIST, self.playlist.render().encode())


# ---- the rules, without HTTP -----------------------------------------------------------------


def test_reload_states() -> None:
    edge = LiveEdge(Path("/nonexistent-never-written"))  # only the playlist text is used
    edge.publish = lambda: None  # type: ignore[method-assign]
    for _ in range(7):  # segments 0 and 1 complete (3 parts each), segment 2 has one part
        edge.add_part()
    state = parse_playlist(edge.playlist.render())
    assert (state.last_msn, state.open_parts, state.part_counts) == (1, 1, [3, 3])
    assert state.can_block and state.part_target == 0.334
    assert state.preload_hint == "part_0_00007.m4s"
    assert reload_state(state, 1, None) == READY
    assert reload_state(state, 2, None) == WAIT  # segment 2 is not complete
    assert reload_state(state, 2, 0) == READY
    assert reload_state(state, 2, 1) == WAIT
    assert reload_state(state, 1, 2) == READY
    assert reload_state(state, 1, 3) == READY  # past segment 1's last part: segment 2's first
    assert reload_state(state, 3, 0) == WAIT  # the segment after the open one
    assert reload_state(state, 4, None) == TOO_FAR  # beyond the last segment + 2
    assert reload_state(state, 2, 8) == WAIT  # 8 parts ahead: Advance Part Limit 3/0.334 = 9
    assert reload_state(state, 2, 9) == TOO_FAR
    edge.playlist.ended = True
    assert reload_state(parse_playlist(edge.playlist.render()), 3, 5) == READY
    plain = Playlist(target=2, segments=[Segment("seg_00000.m4s", 2.0, 1.8e9, "init_0.mp4")])
    assert reload_state(parse_playlist(plain.render()), 3, 0) == READY  # no blocking offered
    assert directives({"_HLS_msn": "4", "_HLS_part": "1"}) == (4, 1)
    assert directives({"other": "x"}) is None
    for bad in ({"_HLS_part": "1"}, {"_HLS_msn": "x"}, {"_HLS_msn": "1", "_HLS_part": "-1"}):
        with pytest.raises(BadDirective):
            directives(bad)


# ---- through the server ----------------------------------------------------------------------


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, float]:
    """(status, body, seconds taken)"""
    start = time.monotonic()
    async with session.get(url) as r:
        return r.status, await r.text(), time.monotonic() - start


async def still_pending(task: asyncio.Task, seconds: float = 0.4) -> bool:
    """True if the request has not been answered within `seconds` (it is being held)."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return not done


async def test_blocking_reload_over_http(server: RunningServer) -> None:
    rid = "rec-ll"
    edge = LiveEdge(server.state.recordings.directory / rid)
    for _ in range(4):  # segment 0 complete, segment 1 with one part
        edge.add_part()
    base = server.base_url + grant_path(server.state.config.effective_jwt_secret, rid)
    async with aiohttp.ClientSession() as s:
        # What is already there comes at once.
        status, text, took = await get(s, f"{base}/{PLAYLIST}?_HLS_msn=1&_HLS_part=0")
        assert status == 200 and "part_0_00003.m4s" in text and took < 1.0
        # The next part: held until the recorder publishes it, then answered with it.
        task = asyncio.create_task(get(s, f"{base}/{PLAYLIST}?_HLS_msn=1&_HLS_part=1"))
        assert await still_pending(task)
        published_at = time.monotonic()
        name = edge.add_part()
        status, text, _ = await task
        assert status == 200 and f'URI="{name}"' in text
        assert time.monotonic() - published_at < 1.0
        # A whole segment (msn without part) and the part hinted before it is written.
        segment = asyncio.create_task(get(s, f"{base}/{PLAYLIST}?_HLS_msn=1"))
        hinted = edge.next_part_name()
        part = asyncio.create_task(get(s, f"{base}/{hinted}"))
        assert await still_pending(part) and not segment.done()
        edge.add_part()  # segment 1 now has its three parts, still open
        assert await still_pending(segment, 0.2)
        status, body, _ = await part
        assert status == 200 and body == hinted
        edge.add_part()  # a key frame: segment 1 is complete, segment 2 begins
        status, text, _ = await segment
        assert status == 200 and "seg_00001.m4s" in text
        # A part nobody hinted is not held: 404 at once.
        status, _, took = await get(s, f"{base}/part_0_00042.m4s")
        assert status == 404 and took < 1.0
        # Too far ahead (beyond the last segment + 2), or a part without a segment: 400 now.
        status, _, took = await get(s, f"{base}/{PLAYLIST}?_HLS_msn=9")
        assert status == 400 and took < 1.0
        status, _, _ = await get(s, f"{base}/{PLAYLIST}?_HLS_part=1")
        assert status == 400
        # Near but never published: 503 after three target durations (3 s), not a hang.
        status, _, took = await get(s, f"{base}/{PLAYLIST}?_HLS_msn=3&_HLS_part=0")
        assert status == 503 and 2.5 <= took < 6.0, took
        # Once the recording ends, the directives are ignored.
        edge.playlist.ended = True
        edge.publish()
        status, text, took = await get(s, f"{base}/{PLAYLIST}?_HLS_msn=3&_HLS_part=0")
        assert status == 200 and "#EXT-X-ENDLIST" in text and took < 1.0
        # And a request without a grant is refused before anything waits.
        status, _, _ = await get(s, f"{server.base_url}/recordings/{rid}/g/1/bad/{PLAYLIST}")
        assert status == 403


async def test_low_latency_recording_started_over_the_api(tmp_path: Path) -> None:
    """`lowLatency: true` reaches the recorder: the live playlist of a real meeting carries
    parts, and a blocking reload for the next part is answered when the recorder writes it."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with running_server(tmp_path / "data") as server:
        await server.create_room("ll")
        bot = Client(server.base_url, server.token("ll", "bot", "Dr LL"))
        try:
            await bot.connect()
            await bot.join()
            await bot.publish(PatternVideoTrack(1), ToneAudioTrack(440.0))
            async with aiohttp.ClientSession() as s:
                async with s.post(server.base_url + "/api/rooms/ll/recordings",
                                  json={"lowLatency": "yes"}, headers=auth) as r:
                    assert r.status == 400  # a bool, not a string
                async with s.post(server.base_url + "/api/rooms/ll/recordings",
                                  json={"lowLatency": True}, headers=auth) as r:
                    assert r.status == 201, await r.text()
                    started = await r.json()
                assert started["lowLatency"] is True
                rid = started["recordingId"]
                base = server.base_url + grant_path(server.state.config.effective_jwt_secret, rid)
                playlist_file = server.state.recordings.directory / rid / PLAYLIST
                async with asyncio.timeout(30):
                    while not playlist_file.exists() or \
                            "#EXT-X-PART:" not in playlist_file.read_text():
                        await asyncio.sleep(0.05)
                status, text, _ = await get(s, f"{base}/{PLAYLIST}")
                assert status == 200 and "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES" in text
                listed = parse_playlist(text)
                # the part after the newest one: held until the recorder writes it
                held = await get(s, f"{base}/{PLAYLIST}?_HLS_msn={listed.last_msn + 1}"
                                     f"&_HLS_part={listed.open_parts}")
                assert held[0] == 200
                later = parse_playlist(held[1])
                assert later.last_msn > listed.last_msn or \
                    later.open_parts > listed.open_parts
                async with s.post(server.base_url + "/api/rooms/ll/recordings/stop",
                                  headers=auth) as r:
                    assert r.status == 200
        finally:
            await bot.close()
