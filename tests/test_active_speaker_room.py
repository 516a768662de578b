"""Active speaker through the real server: aiortc publishers (whose senders write the RFC 6464
audio level of every frame) in one room, the `activeSpeaker` event following the tone from one
participant to another, the speaking intervals kept by the room, and the composite recorder
told who speaks (the `speaker` operation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import av
import numpy as np
import pytest

from signaling.speaking import current
from tests.support.client import Client
from tests.support.server import RunningServer, running_server, two_nodes
from tests.support.tracks import AUDIO_FRAME_SAMPLES, ToneAudioTrack

TIMEOUT = 20


class SwitchedTone(ToneAudioTrack):
    """A tone while `loud`, digital silence (-127 dBov) otherwise."""

    def __init__(self, freq_hz: float) -> None:
        super().__init__(freq_hz)
        self.loud = False

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        if self.loud:
            return frame
        silent = av.AudioFrame.from_ndarray(np.zeros((1, AUDIO_FRAME_SAMPLES), np.int16),
                                            format="s16", layout="mono")
        silent.sample_rate, silent.pts, silent.time_base = \
            frame.sample_rate, frame.pts, frame.time_base
        return silent


async def speaker_is(client: Client, participant_id: str | None) -> dict:
    return await client.wait_event("activeSpeaker",
                                   lambda d: d["participantId"] == participant_id, TIMEOUT)


@pytest.fixture(params=[0, 2], ids=["in-process", "worker-pool"])
async def media_server(request: pytest.FixtureRequest, tmp_path: Path
                       ) -> AsyncIterator[RunningServer]:
    """The worker in-process, or worker processes (the event crosses RPC and the pool)."""
    async with running_server(tmp_path / "data", workers=request.param) as srv:
        yield srv


@asynccontextmanager
async def speakers(server: RunningServer, room: str, names: tuple[str, ...]
                   ) -> AsyncIterator[tuple[list[Client], list[SwitchedTone]]]:
    """Participants `names` joined to `room`, each publishing a SwitchedTone (silent)."""
    clients = [Client(server.base_url, server.token(room, n)) for n in names]
    tones = [SwitchedTone(440 + 110 * i) for i in range(len(names))]
    try:
        for client, tone in zip(clients, tones, strict=True):
            await client.connect()
            await client.join()
            await client.publish(tone)
        yield clients, tones
    finally:
        for tone in tones:
            tone.stop()
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def test_active_speaker_follows_the_tone(media_server: RunningServer) -> None:
    server = media_server
    await server.create_room("talk")
    async with speakers(server, "talk", ("ann", "bea", "cy")) as (clients, tones):
        ann, bea, cy = clients
        assert ann.self_id and bea.self_id
        tones[0].loud = True
        first = await speaker_is(cy, ann.self_id)
        assert first["trackId"] == await cy.tracks_of(ann.self_id, "audio")
        await speaker_is(ann, ann.self_id)  # everyone, the speaker too
        # Ann stops; while nobody speaks she stays the speaker; then Bea speaks
        tones[0].loud = False
        tones[1].loud = True
        await speaker_is(cy, bea.self_id)
        await speaker_is(ann, bea.self_id)
        changes = [e["data"]["participantId"] for e in cy.events
                   if e["event"] == "activeSpeaker"]
        assert changes == [ann.self_id, bea.self_id]  # no flapping on the way
        room = server.state.rooms.rooms["talk"]
        track = current(room, None)
        assert track is not None and track.participant_id == bea.self_id
        # one finished interval for Ann, one open for Bea, none for Cy
        (start, end), = room.speaking.intervals_of("ann")
        assert end is not None and start < end
        (b_start, b_end), = room.speaking.intervals_of("bea")
        assert b_end is None and b_start >= end
        assert room.speaking.intervals_of("cy") == []
        # a doctor arriving now sees who speaks at once, without waiting for a change
        late = Client(server.base_url, server.token("talk", "dee"))
        try:
            await late.connect()
            joined = await late.join()
            assert joined["activeSpeaker"] == {"participantId": bea.self_id,
                                               "trackId": track.id}
        finally:
            await late.close()


async def test_the_recorder_is_told_who_speaks(server: RunningServer) -> None:
    await server.create_room("rec")
    async with speakers(server, "rec", ("ann", "bea")) as (clients, tones):
        room = server.state.rooms.rooms["rec"]
        recordings = server.state.recordings
        await recordings.start(room, "composite", "speaker")
        tones[1].loud = True
        await speaker_is(clients[0], clients[1].self_id)
        track = current(room, None)
        assert track is not None and recordings.active["rec"].taps.get(track.id)
        # what speaking.py sent: the recorder knows the SSRC of Bea's tapped audio
        await recordings.speaker(room, track)
        await recordings.speaker(room, None)
        await recordings.stop(room)


async def test_each_breakout_group_has_its_own_speaker(server: RunningServer) -> None:
    await server.create_room("groups")
    async with speakers(server, "groups", ("ann", "bea", "cy", "dan")) as (clients, _):
        ann, bea, cy, dan = clients
        groups = (await ann.request("breakoutCreate", {"count": 2}))["breakouts"]["groups"]
        for client, group in zip(clients, (0, 0, 1, 1), strict=True):
            await ann.request("breakoutAssign", {"participantId": client.self_id,
                                                 "groupId": groups[group]["id"]})
        await ann.request("breakoutOpen")
        tones = []
        for client in clients:  # a move starts both connections over: publish again
            await asyncio.wait_for(client.moved.wait(), TIMEOUT)
            tones.append(SwitchedTone(440))
            await client.publish(tones[-1])
        try:
            tones[2].loud = True  # Cy, in the second group
            await speaker_is(dan, cy.self_id)
            tones[0].loud = True  # Ann, in the first
            await speaker_is(bea, ann.self_id)
            await speaker_is(cy, cy.self_id)  # still: the groups' speakers are apart
            for client, other in ((ann, cy), (bea, cy), (cy, ann), (dan, ann)):
                heard = [e["data"]["participantId"] for e in client.events
                         if e["event"] == "activeSpeaker"]
                assert other.self_id not in heard, (client.self_id, heard)
        finally:
            for tone in tones:
                tone.stop()


async def test_two_nodes_each_tell_their_own_once(tmp_path: Path) -> None:
    """Both nodes reach the room's worker and get its event: each delivers it to its own
    participants, nobody gets it twice, and each keeps its own participants' intervals."""
    async with two_nodes(tmp_path) as (node_a, node_b):
        await node_a.create_room("shared")
        ann = Client(node_a.base_url, node_a.token("shared", "ann"))
        bob = Client(node_b.base_url, node_b.token("shared", "bob"))
        tones = [SwitchedTone(440), SwitchedTone(660)]
        try:
            for client, tone in ((ann, tones[0]), (bob, tones[1])):
                await client.connect()
                await client.join()
                await client.publish(tone)
            tones[0].loud = True
            await speaker_is(bob, ann.self_id)
            tones[0].loud = False
            tones[1].loud = True
            await speaker_is(ann, bob.self_id)
            await speaker_is(bob, bob.self_id)
            for client in (ann, bob):
                heard = [e["data"]["participantId"] for e in client.events
                         if e["event"] == "activeSpeaker"]
                assert heard == [ann.self_id, bob.self_id], heard
            room_a = node_a.state.rooms.rooms["shared"]
            room_b = node_b.state.rooms.rooms["shared"]
            assert len(room_a.speaking.intervals_of("ann")) == 1
            assert room_a.speaking.intervals_of("bob") == []  # node b's to keep
            assert len(room_b.speaking.intervals_of("bob")) == 1
        finally:
            for tone in tones:
                tone.stop()
            await asyncio.gather(ann.close(), bob.close(), return_exceptions=True)
