"""Live rooms: who is in them, which tracks they publish, and how events reach them.

The persistent part of a room (its existence, settings, chat) lives in the Store; this module
holds what exists only while people are connected, and the registry that opens and releases
rooms. Where a room's media lives (its Routers and pipes) is placement.py's; what other
signalling nodes learn of a room is cluster_sync.py's; recordings are recordings.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mediaserver.api import Codec, MediaError

from .placement import Edge, Placement
from .speaking import SpeakingLog
from .store import Store

if TYPE_CHECKING:
    from .cluster import Cluster
    from .cluster_sync import RoomSync
    from .events import EventLog
    from .participant import Participant
    from .recordings import Recordings

# `moved` reason: the worker carrying the room's media is gone; new connections, same place
MEDIA_RESTART = "media_restart"

# Publishes a message to the other nodes in the room (cluster_sync.py sets it).
Bus = Callable[[dict[str, Any]], object]


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# What a track shows (`publish` `sources`, one of SOURCES); without one, what its kind
# usually is.
DEFAULT_SOURCE = {"audio": "microphone", "video": "camera"}


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
    source: str = ""  # one of SOURCES; "" takes DEFAULT_SOURCE of the kind

    def __post_init__(self) -> None:
        self.source = self.source or DEFAULT_SOURCE.get(self.kind, "camera")

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "participantId": self.participant_id, "kind": self.kind,
                "name": self.name, "source": self.source, "muted": self.muted}


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
    rewound: set[str] = field(default_factory=set)  # participants watching its live HLS
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
    remote_identities: dict[str, str] = field(default_factory=dict)  # their id -> identity
    remote_waiting: dict[str, dict[str, Any]] = field(default_factory=dict)  # lobby, elsewhere
    bus: Bus | None = None  # to the other nodes, when there are any
    speaking: SpeakingLog = field(default_factory=SpeakingLog)  # active speaker (speaking.py)
    moving: bool = False  # its media is moving to a new origin Router (worker lost)
    # a recording of the room that another node runs: {"recordingId", "mode"}
    remote_recording: dict[str, Any] | None = None

    def hand_ids(self) -> list[str]:
        """Participant ids of those present with a raised hand, first raised first."""
        by_identity = {p.identity: p.id for p in self.participants.values() if p.joined}
        return [by_identity[i] for i in self.hands if i in by_identity]

    def broadcast(self, event: str, data: dict[str, Any], exclude: str | None = None) -> None:
        self.deliver(event, data, exclude)
        if self.bus is not None:
            self.bus({"t": "event", "event": event, "data": data, "exclude": exclude})

    def deliver(self, event: str, data: dict[str, Any], exclude: str | None = None,
                group: str | None = "all", media: bool = False) -> None:
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
    """The live rooms of this node, by name: opened when the first participant comes,
    released when the last one leaves. Where their media lives is the placement's
    (placement.py), what other nodes learn of them the sync's (cluster_sync.py, with several
    nodes), and a room that ends stops its recording (recordings.py)."""

    def __init__(self, store: Store, placement: Placement, sync: RoomSync | None = None,
                 recordings: Recordings | None = None) -> None:
        self.store = store
        self.placement = placement
        self.sync = sync
        if sync is not None:
            sync.rooms = self  # a host's lobby decision from another node is carried out here
        self.recordings = recordings
        self.events: EventLog | None = None  # analytics (events.py; analytics_api.install)
        self.rooms: dict[str, Room] = {}
        self._lock = asyncio.Lock()

    @property
    def cluster(self) -> Cluster | None:
        """The Redis side shared with other signalling nodes, if there are any."""
        return self.sync.cluster if self.sync is not None else None

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())

    async def open(self, name: str) -> Room:
        """The live room, creating its Router on first use (the room must exist in the store)."""
        async with self._lock:
            room = self.rooms.get(name)
            if room is None:
                settings = (await self.store.get_room(name) or {}).get("settings", {})
                room = Room(name, await self.placement.origin_router(name),
                            type=settings.get("type", "meeting"),
                            chat_enabled=settings.get("chat", True),
                            lobby=settings.get("lobby", False),
                            live=not settings.get("backstage", False),
                            auto_record=settings.get("autoRecord", False),
                            hands=await self.store.hands(name))
                self.rooms[name] = room
                if self.sync is not None:
                    await self.sync.join(room)
            return room

    async def release_if_empty(self, room: Room) -> None:
        async with self._lock:
            if not room.participants and not room.waiting and self.rooms.get(room.name) is room:
                del self.rooms[room.name]
                if self.events is not None:  # analytics: speaking stops, session.ended
                    self.events.room_empty(room)
                if self.recordings is not None:
                    await self.recordings.room_ended(room)
                if self.sync is not None:
                    await self.sync.leave(room)
                elif room.breakout_timer is not None:
                    # (shared with other nodes, the timer runs on: the groups' end it
                    # broadcasts reaches those still in the room)
                    room.breakout_timer.cancel()
                await self.placement.release(room)

    async def worker_lost(self, prefix: str, only: Room | None = None) -> list[Participant]:
        """A media worker is gone (it died, or its node stopped): each room whose Router was
        on it gets one on a live worker, and its participants get new connections there in
        place (`moved` with reason "media_restart", the same group): the same ids, nobody
        leaves. Subscribers on a lost edge Router move the same way. Returns those who must
        reconnect instead: the members of a breakout group whose Router was on it, and
        anyone whose move failed (no live worker to move to). `only`: just that room (its
        Router alone was closed)."""
        affected: list[Participant] = []
        for room in [only] if only is not None else list(self.rooms.values()):
            lost = self.placement.worker_lost(room, prefix)
            movers = [p for p in room.participants.values() if p.subscribe_router in lost]
            if room.router_id.startswith(prefix) and not room.moving:
                room.moving = True
                try:
                    await self._move_origin(room, prefix)
                except MediaError:  # nowhere to go: they come back (4503) and rejoin
                    affected += room.participants.values()
                    continue
                finally:
                    room.moving = False
                movers = [p for p in room.participants.values() if p.group is None]
            movers = [p for p in movers if p.joined and p.room is room]
            for participant in movers:  # none is offered anything before every move
                participant.media_session.begin_move()
                if participant.suspended:  # (in its grace period: its peer connections
                    participant.keep_place = True  # were the old ones, never to be kept)
            for participant in movers:
                if participant.joined:  # one may have left meanwhile
                    try:
                        await participant.media_session.move_to(participant.group,
                                                                MEDIA_RESTART)
                    except MediaError:
                        affected.append(participant)
            for group in room.breakouts.groups.values():
                if (group.router_id or "").startswith(prefix):
                    affected += [p for p in room.participants.values() if p.group == group.id]
        return affected

    async def _move_origin(self, room: Room, prefix: str) -> None:
        """A new origin Router for the room; the tracks that lived on the old one are
        forgotten at once, so that nobody is offered them again (our participants' moves
        announce theirs gone, other nodes theirs)."""
        room.tracks = {tid: t for tid, t in room.tracks.items()
                       if t.group is not None or not t.producer_id.startswith(prefix)}
        for edge in room.edges:  # fed from the lost origin
            with contextlib.suppress(MediaError):
                await self.placement.media.close_router(edge.router_id)
        room.edges, room.origin_subscribers = [], 0
        room.router_id = await self.placement.origin_router(room.name)

    async def announce(self, room: Room, message: dict[str, Any]) -> None:
        """Tell the other nodes about a participant or track change (cluster_sync.py)."""
        if self.sync is not None:
            await self.sync.announce(room, message)

    # ---- media placement (placement.py) -------------------------------------------------

    async def subscriber_router(self, room: Room) -> str:
        """The Router a new subscriber of the room's main group is placed on."""
        return await self.placement.subscriber_router(room)

    def release_subscriber(self, room: Room, router_id: str) -> None:
        self.placement.release_subscriber(room, router_id)

    async def track_published(self, room: Room, track: Track) -> None:
        await self.placement.track_published(room, track)

    async def track_unpublished(self, room: Room, track: Track) -> None:
        await self.placement.track_unpublished(room, track)

    async def track_paused(self, room: Room, track: Track, paused: bool) -> None:
        await self.placement.track_paused(room, track, paused)


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
