"""catchUp over the WebSocket (docs/protocol.md, "Catching up"): who may rewind when, the grant
that lives with the session, and the count hosts see. Real server, recorder and aiortc peers;
the browser side is tests/test_browser_catchup.py."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.client import Client, RequestFailed
from tests.support.recorder_hls import until_playlist
from tests.support.tracks import PatternVideoTrack, ToneAudioTrack


async def refused(coro, code: str) -> None:
    with pytest.raises(RequestFailed) as failed:
        await coro
    assert failed.value.code == code, failed.value


async def status_of(url: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status


async def joined(server, room: str, identity: str, role: str) -> Client:
    c = Client(server.base_url, server.token(room, identity, role=role))
    await c.connect()
    await c.join()
    return c


async def stage_held(server, client: Client, want: bool) -> None:
    """Until the client's consumer of the stage video is (or is not) held as a hidden tile in
    the media worker's dump (state: polled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        session = next(p for p in server.state.sessions if p.id == client.self_id and p.joined)
        dump = await server.state.media.dump()
        found = [c for c in dump.consumers
                 if c.kind == "video" and c.transport_id == session.subscribe_transport]
        if found and ("view" in found[0].paused_by) == want:
            return
        assert loop.time() < deadline, found
        await asyncio.sleep(0.05)


async def test_catch_up_grant_lives_with_the_session(server) -> None:
    await server.create_room("talk", type="webinar", backstage=True)
    host = await joined(server, "talk", "host", "host")
    early = await joined(server, "talk", "early", "attendee")
    late = await joined(server, "talk", "late", "attendee")
    people = [host, early, late]
    try:
        await refused(host.request("catchUp", {"rewound": True}), "not_found")  # no recording
        await host.publish(PatternVideoTrack(1), ToneAudioTrack(440.0))
        await host.request("recordStart", {"mode": "composite"})
        rid = (await early.wait_event("recordingChanged"))["recordingId"]
        await refused(early.request("catchUp", {"rewound": True}), "forbidden")  # backstage
        await host.request("setLive", {"live": True})
        await until_playlist(server.state.recordings.directory / rid / "index.m3u8",
                             lambda m: m.segments)

        grants = {}
        await stage_held(server, early, False)
        for who in (early, late):
            grant = await who.request("catchUp", {"rewound": True})
            assert grant["recordingId"] == rid
            grants[who.self_id] = server.base_url + grant["playlist"]
            assert await status_of(grants[who.self_id]) == 200
        assert await host.wait_event("rewoundChanged", lambda d: d["count"] == 2)
        cohost = await joined(server, "talk", "cohost", "host")  # a host who comes later
        people.append(cohost)
        assert cohost.joined["rewound"] == 2 and "rewound" not in late.joined
        # a grant names its participant: another id under the same signature is refused
        forged = grants[early.self_id].replace(early.self_id, late.self_id)
        assert await status_of(forged) == 403

        # rewound: the server holds the live video, whatever the client says of its tiles
        await stage_held(server, early, True)
        video = await early.live_track_of(host.self_id, "video")
        await early.request("setTrackView", {"trackId": video, "visible": True,
                                             "width": 640, "height": 360})
        await stage_held(server, early, True)
        await early.request("catchUp", {"rewound": False})
        await stage_held(server, early, False)  # back live: as its tile was last reported
        assert await host.wait_event("rewoundChanged", lambda d: d["count"] == 1)
        assert await status_of(grants[early.self_id]) == 200  # in the room: still theirs

        await host.request("removeParticipant", {"participantId": late.self_id})
        assert await host.wait_event("rewoundChanged", lambda d: d["count"] == 0)
        assert await status_of(grants[late.self_id]) == 403
        await early.close()
        assert await status_of(grants[early.self_id]) == 403  # left: the grant went with them
    finally:
        for c in people:
            await c.close()
