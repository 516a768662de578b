"""Where a room's media lives (DESIGN.md section 7), through the control API only.

A room's media lives on one worker, in its origin Router. With a pool of workers, a room with
more subscribers than one worker should carry gets edge Routers on other workers, each fed
through a pair of pipes from the origin with a mirror of every track of the main room; its
subscribers consume the mirrors (`Room.producer_for`). With several signalling nodes the
origin Router is shared: the cluster records which one it is, and the last node to leave
closes it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mediaserver.api import MediaControl, MediaError

if TYPE_CHECKING:
    from .cluster import Cluster
    from .rooms import Room, Track


@dataclass
class Edge:
    """A Router of the room on another worker, fed by a pipe from the origin Router."""

    router_id: str
    origin_pipe: str
    edge_pipe: str
    mirrors: dict[str, str] = field(default_factory=dict)  # origin producer -> mirror
    subscribers: int = 0


class Placement:
    def __init__(self, media: MediaControl, subscribers_per_worker: int = 0,
                 shared: Cluster | None = None) -> None:
        self.media = media
        # 0: never spread (one worker, or no pool). Otherwise the origin worker takes this
        # many subscribers of a room and further ones go to edge Routers on other workers.
        self.subscribers_per_worker = subscribers_per_worker
        self.shared = shared  # the Router of each room, when nodes share a Redis
        self._lock = asyncio.Lock()  # one edge added at a time; none while a room closes

    async def origin_router(self, room_name: str) -> str:
        """A new room's Router (with other nodes: the one they use, if they have it)."""
        if self.shared is not None:
            return await self.shared.room_router(room_name, self.media.create_router)
        return await self.media.create_router()

    async def release(self, room: Room) -> None:
        """The room ended here: close its Routers (a shared one only when no node has anyone
        in the room; its groups' Routers stay)."""
        if self.shared is not None:
            await self.shared.forget_router(room.name, room.router_id)
            return
        async with self._lock:
            for group in room.breakouts.groups.values():
                if group.router_id is not None:
                    await self.media.close_router(group.router_id)
            for edge in room.edges:
                await self.media.close_router(edge.router_id)
            await self.media.close_router(room.router_id)

    # ---- subscribers --------------------------------------------------------------------

    async def subscriber_router(self, room: Room) -> str:
        """The Router a new subscriber of the room's main group is placed on."""
        limit = self.subscribers_per_worker
        if not limit or room.origin_subscribers < limit:
            room.origin_subscribers += 1
            return room.router_id
        async with self._lock:
            for edge in room.edges:
                if edge.subscribers < limit:
                    edge.subscribers += 1
                    return edge.router_id
            added = await self._add_edge(room)
            if added is None:  # no other worker: the origin takes it
                room.origin_subscribers += 1
                return room.router_id
            added.subscribers += 1
            return added.router_id

    def release_subscriber(self, room: Room, router_id: str) -> None:
        if router_id == room.router_id:
            room.origin_subscribers = max(0, room.origin_subscribers - 1)
        for edge in room.edges:
            if edge.router_id == router_id:
                edge.subscribers = max(0, edge.subscribers - 1)

    async def _add_edge(self, room: Room) -> Edge | None:
        media = self.media
        used = tuple({await media.worker_of(r) for r in (room.router_id,
                                                         *(e.router_id for e in room.edges))})
        try:
            router_id = await media.create_router(exclude=used)
        except MediaError:  # every worker already serves this room
            return None
        origin = await media.create_pipe_transport(room.router_id)
        far = await media.create_pipe_transport(router_id)
        await media.connect_pipe_transport(origin.id, far.ip, far.port)
        await media.connect_pipe_transport(far.id, origin.ip, origin.port)
        edge = Edge(router_id, origin.id, far.id)
        room.edges.append(edge)
        for track in list(room.tracks.values()):
            await self._mirror(edge, track)
        return edge

    def worker_lost(self, room: Room, prefix: str) -> list[str]:
        """Forget the room's edges on a lost worker (ids `prefix`...); their Router ids."""
        lost = [e.router_id for e in room.edges if e.router_id.startswith(prefix)]
        room.edges = [e for e in room.edges if not e.router_id.startswith(prefix)]
        return lost

    # ---- tracks of the main group, mirrored on every edge -------------------------------

    async def _mirror(self, edge: Edge, track: Track) -> None:
        # every simulcast encoding: the edge's subscribers get the layers their links carry
        params = await self.media.pipe_consume(edge.origin_pipe, track.producer_id,
                                               every_encoding=True)
        edge.mirrors[track.producer_id] = await self.media.pipe_produce(edge.edge_pipe, params)
        if track.muted:
            await self.media.pause_producer(edge.mirrors[track.producer_id], True)

    async def track_published(self, room: Room, track: Track) -> None:
        for edge in room.edges:
            await self._mirror(edge, track)

    async def track_unpublished(self, room: Room, track: Track) -> None:
        for edge in room.edges:
            mirror = edge.mirrors.pop(track.producer_id, None)
            if mirror is not None:
                await self.media.close_producer(mirror)

    async def track_paused(self, room: Room, track: Track, paused: bool) -> None:
        await self.media.pause_producer(track.producer_id, paused)
        for edge in room.edges:
            mirror = edge.mirrors.get(track.producer_id)
            if mirror is not None:
                await self.media.pause_producer(mirror, paused)
