"""Live rooms: who is in them, which tracks they publish, and the Routers carrying their media.

The persistent part of a room (its existence, settings, chat) lives in the Store; this module
holds what exists only while people are connected. A room's media lives on one worker (its
origin Router); with a pool of workers, a room with more subscribers than one worker should
carry gets edge Routers on other workers, fed through pipes with mirrors of every track.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mediaserver.api import Codec, MediaControl, MediaError, decode

from .store import Store

if TYPE_CHECKING:
    from .participant import Participant


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class Track:
    id: str
    participant_id: str
    kind: str
    name: str
    producer_id: str
    codec: Codec
    cname: str
    muted: bool = False
    group: str | None = None  # the breakout group it was published in; None: main room

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "participantId": self.participant_id, "kind": self.kind,
                "name": self.name, "muted": self.muted}


@dataclass
class Edge:
    """A Router of the room on another worker, fed by a pipe from the origin Router."""

    router_id: str
    origin_pipe: str
    edge_pipe: str
    mirrors: dict[str, str] = field(default_factory=dict)  # origin producer -> mirror
    subscribers: int = 0


@dataclass
class Group:
    id: str
    name: str
    router_id: str | None = None  # created when the groups open


@dataclass
class Breakouts:
    open: bool = False
    allow_choose: bool = False
    ends_at: int | None = None  # ms since the epoch
    groups: dict[str, Group] = field(default_factory=dict)
    assignments: dict[str, str] = field(default_factory=dict)  # identity -> group id


@dataclass
class Room:
    name: str
    router_id: str
    participants: dict[str, Participant] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    origin_subscribers: int = 0
    type: str = "meeting"  # or "webinar"
    breakouts: Breakouts = field(default_factory=lambda: Breakouts())
    breakout_timer: asyncio.TimerHandle | None = None
    chat_enabled: bool = True
    hands: list[str] = field(default_factory=list)  # identities, in the order raised
    lobby: bool = False  # attendees wait until a host admits them
    admitted: set[str] = field(default_factory=set)  # identities let in (reconnects skip)
    waiting: dict[str, Participant] = field(default_factory=dict)  # lobby, by participant id
    live: bool = True  # a webinar with a backstage starts False: only the stage sees media
    auto_record: bool = False  # start recording when the first host or presenter publishes
    remote: dict[str, dict[str, Any]] = field(default_factory=dict)  # on other nodes: public
    bus: Any = None  # publish(message) to the other nodes, when there are any

    def hand_ids(self) -> list[str]:
        """Participant ids of those present with a raised hand, first raised first."""
        by_identity = {p.identity: p.id for p in self.participants.values() if p.joined}
        return [by_identity[i] for i in self.hands if i in by_identity]

    def broadcast(self, event: str, data: dict[str, Any], exclude: str | None = None) -> None:
        self.deliver(event, data, exclude)
        if self.bus is not None:
            self.bus({"t": "event", "event": event, "data": data, "exclude": exclude})

    def deliver(self, event: str, data: dict[str, Any], exclude: str | None = None,
                group: Any = "all", media: bool = False) -> None:
        """To the participants connected to this node (group "all": everyone). `media`
        events (about tracks) skip those who may not see the media yet (backstage)."""
        for participant in list(self.participants.values()):
            if participant.id != exclude and participant.joined and \
                    (group == "all" or participant.group == group) and \
                    (not media or self.sees_media(participant)):
                participant.send_event(event, data)

    def sees_media(self, participant: Participant) -> bool:
        """Backstage: before a webinar goes live only the stage (hosts, presenters, promoted
        attendees) sees and hears each other."""
        return self.live or participant.role in ("host", "presenter", "service") or \
            participant.on_stage

    def in_group(self, group: str | None) -> list[Participant]:
        return [p for p in self.participants.values() if p.joined and p.group == group]

    def tell_hosts(self, event: str, data: dict[str, Any]) -> None:
        """Lobby news, for the hosts connected to this node (the waiting queue is per node)."""
        for participant in list(self.participants.values()):
            if participant.joined and participant.role == "host":
                participant.send_event(event, data)

    def broadcast_group(self, group: str | None, event: str, data: dict[str, Any],
                        exclude: str | None = None) -> None:
        """Media events stay inside a breakout group: others neither see nor hear it."""
        self.deliver(event, data, exclude, group, media=True)
        if self.bus is not None:
            self.bus({"t": "event", "event": event, "data": data, "exclude": exclude,
                      "group": group, "media": True})

    def tracks_in(self, group: str | None) -> list[Track]:
        return [t for t in self.tracks.values() if t.group == group]

    def router_of_group(self, group: str | None) -> str:
        if group is None:
            return self.router_id
        return self.breakouts.groups[group].router_id or self.router_id

    def public_participants(self) -> list[dict[str, Any]]:
        return [p.public() for p in self.participants.values() if p.joined] + \
            list(self.remote.values())

    def producer_for(self, track: Track, router_id: str) -> str | None:
        """The producer a subscriber on `router_id` consumes for `track`."""
        if router_id == self.router_id or track.group is not None:
            return track.producer_id
        for edge in self.edges:
            if edge.router_id == router_id:
                return edge.mirrors.get(track.producer_id)
        return None


class RoomRegistry:
    def __init__(self, store: Store, media: MediaControl,
                 subscribers_per_worker: int = 0, cluster: Any = None) -> None:
        self.store = store
        self.media = media
        self.cluster = cluster  # signaling.cluster.Cluster when nodes share a Redis
        self.recordings: Any = None  # signaling.recordings.Recordings, set by the app
        # 0: never spread (one worker, or no pool). Otherwise the origin worker takes this
        # many subscribers of a room and further ones go to edge Routers on other workers.
        self.subscribers_per_worker = subscribers_per_worker
        self.rooms: dict[str, Room] = {}
        self._lock = asyncio.Lock()

    async def open(self, name: str) -> Room:
        """The live room, creating its Router on first use (the room must exist in the store)."""
        async with self._lock:
            room = self.rooms.get(name)
            if room is None:
                settings = (await self.store.get_room(name) or {}).get("settings", {})
                if self.cluster is not None:
                    router_id = await self.cluster.room_router(name, self.media.create_router)
                else:
                    router_id = await self.media.create_router()
                room = Room(name, router_id,
                            type=settings.get("type", "meeting"),
                            chat_enabled=settings.get("chat", True),
                            lobby=settings.get("lobby", False),
                            live=not settings.get("backstage", False),
                            auto_record=settings.get("autoRecord", False),
                            hands=await self.store.hands(name))
                self.rooms[name] = room
                if self.cluster is not None:
                    await self._join_cluster(room)
            return room

    # ---- several signalling nodes -------------------------------------------------------

    async def _join_cluster(self, room: Room) -> None:
        cluster = self.cluster
        people, tracks = await cluster.remote_state(room.name)
        room.remote = {p["id"]: _public(p) for p in people}
        for t in tracks:
            track = _track(t)
            room.tracks[track.id] = track
        room.bus = lambda message: asyncio.ensure_future(cluster.publish(room.name, message))
        await cluster.follow(room.name, lambda message: self._on_bus(room, message))

    def _on_bus(self, room: Room, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "event":
            room.deliver(message["event"], message["data"], message.get("exclude"),
                         message.get("group", "all"), message.get("media", False))
        elif kind == "live":
            set_live(room, message["live"])
        elif kind == "participant":
            if message["op"] == "add":
                room.remote[message["participant"]["id"]] = _public(message["participant"])
            else:
                room.remote.pop(message["participantId"], None)
        elif kind == "track":
            if message["op"] == "add":
                track = _track(message["track"])
                room.tracks[track.id] = track
                for participant in room.in_group(track.group):
                    participant.on_track_published(track)
            elif message["op"] == "remove":
                track = room.tracks.pop(message["trackId"], None)
                if track is not None:
                    for participant in room.in_group(track.group):
                        participant.on_track_unpublished(track)
            elif message["op"] == "mute" and message["trackId"] in room.tracks:
                room.tracks[message["trackId"]].muted = message["muted"]

    async def announce(self, room: Room, message: dict[str, Any]) -> None:
        """Tell the other nodes about a participant or track change, and record it."""
        if self.cluster is None:
            return
        if message["t"] == "participant":
            if message["op"] == "add":
                p = message["participant"]
                await self.cluster.put_participant(room.name, p, p.get("identity", ""))
            else:
                await self.cluster.drop_participant(room.name, message["participantId"])
        elif message["t"] == "track":
            if message["op"] == "add":
                await self.cluster.put_track(room.name, message["track"])
            elif message["op"] == "remove":
                await self.cluster.drop_track(room.name, message["trackId"])
        await self.cluster.publish(room.name, message)

    async def release_if_empty(self, room: Room) -> None:
        async with self._lock:
            if not room.participants and not room.waiting and self.rooms.get(room.name) is room:
                del self.rooms[room.name]
                if self.recordings is not None and room.name in self.recordings.active:
                    await self.recordings.stop(room)  # the room ended: the VOD is made now
                if self.cluster is not None:
                    # the Router is shared: only the last node to leave closes it
                    await self.cluster.unfollow(room.name)
                    await self.cluster.forget_router(room.name, room.router_id)
                    return
                if room.breakout_timer is not None:
                    room.breakout_timer.cancel()
                for group in room.breakouts.groups.values():
                    if group.router_id is not None:
                        await self.media.close_router(group.router_id)
                for edge in room.edges:
                    await self.media.close_router(edge.router_id)
                await self.media.close_router(room.router_id)

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())

    # ---- spreading subscribers over workers ---------------------------------------------

    async def subscriber_router(self, room: Room) -> str:
        """The Router a new subscriber of the room is placed on."""
        limit = self.subscribers_per_worker
        if not limit or room.origin_subscribers < limit:
            room.origin_subscribers += 1
            return room.router_id
        async with self._lock:
            for edge in room.edges:
                if edge.subscribers < limit:
                    edge.subscribers += 1
                    return edge.router_id
            edge = await self._add_edge(room)
            if edge is None:  # no other worker: the origin takes it
                room.origin_subscribers += 1
                return room.router_id
            edge.subscribers += 1
            return edge.router_id

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

    async def _mirror(self, edge: Edge, track: Track) -> None:
        params = await self.media.pipe_consume(edge.origin_pipe, track.producer_id)
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

    def worker_lost(self, prefix: str) -> list[Participant]:
        """Forget Routers on a lost worker; the participants who must reconnect."""
        affected: list[Participant] = []
        for name, room in list(self.rooms.items()):
            if room.router_id.startswith(prefix):
                affected += room.participants.values()
                del self.rooms[name]
                continue
            lost = [e for e in room.edges if e.router_id.startswith(prefix)]
            room.edges = [e for e in room.edges if not e.router_id.startswith(prefix)]
            for edge in lost:
                affected += [p for p in room.participants.values()
                             if p.subscribe_router == edge.router_id]
        return affected


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry[k] for k in ("id", "name", "role", "handRaised", "onStage") if k in entry}


def _track(entry: dict[str, Any]) -> Track:
    return Track(entry["id"], entry["participantId"], entry["kind"], entry["name"],
                 entry["producerId"], decode(Codec, entry["codec"]), entry["cname"],
                 entry.get("muted", False), entry.get("group"))


def set_live(room: Room, live: bool) -> None:
    """Go live (attendees get the stage's media) or back to backstage, on this node."""
    if room.live == live:
        return
    room.live = True  # so that sees_media() is true while we announce what they now get
    audience = [p for p in room.participants.values() if p.joined and p.role == "attendee"
                and not p.on_stage]
    for participant in audience:
        for track in room.tracks_in(participant.group):
            if live:
                participant.send_event("trackPublished", {"track": track.public()})
                participant.on_track_published(track)
            else:
                participant.send_event("trackUnpublished", {"trackId": track.id,
                                                             "participantId": track.participant_id})
                participant.on_track_unpublished(track)
    room.live = live
