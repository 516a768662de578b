"""signaling/placement.py against a real media plane: subscribers spread over workers, edge
Routers fed through pipes with a mirror of every track, mirrors paused and closed with their
tracks, and every Router closed when the room ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from benchmarks.server_proc import free_udp_range
from mediaserver.api import Codec, MediaConfig, MediaControl, ProducerParams, open_media
from signaling.placement import Placement
from signaling.rooms import Room, Track

VP8 = Codec("VP8", 96, 90000)


@asynccontextmanager
async def media_plane(workers: int) -> AsyncIterator[MediaControl]:
    # free ports below the ephemeral range (40000, the default, may be a client's port)
    media = open_media(MediaConfig(port=free_udp_range(max(workers, 1))), workers)
    await media.start()
    try:
        yield media
    finally:
        await media.stop()


async def publish(media: MediaControl, room: Room, ssrc: int, muted: bool = False) -> Track:
    transport = await media.create_transport(room.router_id)
    producer = await media.produce(transport.id, ProducerParams("video", "0", VP8, ssrc=ssrc))
    track = Track(f"t-{ssrc}", "p-1", "video", "camera", producer, VP8, "cname", muted)
    room.tracks[track.id] = track
    return track


async def paused(media: MediaControl) -> dict[str, bool]:
    return {p.id: p.paused for p in (await media.dump()).producers}


async def test_one_worker_keeps_every_subscriber_on_the_origin() -> None:
    async with media_plane(0) as media:
        placement = Placement(media, subscribers_per_worker=1)
        room = Room("solo", await placement.origin_router("solo"))
        await publish(media, room, 1111)
        assert [await placement.subscriber_router(room) for _ in range(3)] == [room.router_id] * 3
        assert room.origin_subscribers == 3 and room.edges == []  # no other worker to use
        placement.release_subscriber(room, room.router_id)
        assert room.origin_subscribers == 2
        await placement.release(room)
        assert (await media.dump()).producers == []


async def test_no_limit_never_spreads() -> None:
    async with media_plane(0) as media:
        placement = Placement(media)
        room = Room("open", await placement.origin_router("open"))
        for _ in range(5):
            assert await placement.subscriber_router(room) == room.router_id
        assert room.edges == []


async def test_edges_on_the_other_worker_mirror_every_track() -> None:
    async with media_plane(2) as media:
        placement = Placement(media, subscribers_per_worker=1)
        room = Room("webinar", await placement.origin_router("webinar"))
        camera = await publish(media, room, 1111)
        assert await placement.subscriber_router(room) == room.router_id
        edge_router = await placement.subscriber_router(room)  # the origin is full
        assert edge_router != room.router_id
        assert await media.worker_of(edge_router) != await media.worker_of(room.router_id)
        (edge,) = room.edges
        mirror = room.producer_for(camera, edge_router)
        assert mirror is not None and mirror != camera.producer_id
        assert await media.worker_of(mirror) == await media.worker_of(edge_router)
        # both workers serve the room and each is full: the origin takes the next one
        assert await placement.subscriber_router(room) == room.router_id
        assert (room.origin_subscribers, edge.subscribers) == (2, 1)

        # a track published later is mirrored too, paused if it is muted
        screen = await publish(media, room, 2222, muted=True)
        await placement.track_published(room, screen)
        assert (await paused(media))[edge.mirrors[screen.producer_id]] is True

        # muting pauses the track and its mirror; unmuting resumes both
        await placement.track_paused(room, camera, True)
        state = await paused(media)
        assert state[camera.producer_id] and state[mirror]
        await placement.track_paused(room, camera, False)
        state = await paused(media)
        assert not state[camera.producer_id] and not state[mirror]

        # unpublished: its mirror goes, the others stay
        screen_mirror = edge.mirrors[screen.producer_id]
        await placement.track_unpublished(room, screen)
        assert screen.producer_id not in edge.mirrors
        producers = set(await paused(media))
        assert screen_mirror not in producers and {camera.producer_id, mirror} <= producers

        # a freed place on the edge is taken again before the origin gets more
        placement.release_subscriber(room, edge_router)
        assert edge.subscribers == 0
        assert await placement.subscriber_router(room) == edge_router

        await placement.release(room)
        assert (await media.dump()).producers == []


async def test_a_lost_worker_takes_its_edges_only() -> None:
    async with media_plane(2) as media:
        placement = Placement(media, subscribers_per_worker=1)
        room = Room("big", await placement.origin_router("big"))
        await placement.subscriber_router(room)
        edge_router = await placement.subscriber_router(room)
        edge_worker = await media.worker_of(edge_router)
        assert placement.worker_lost(room, edge_worker) == [edge_router]
        assert room.edges == []
        await placement.release(room)
