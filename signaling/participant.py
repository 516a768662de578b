"""One participant session: identity, socket, dispatch, join and leave, and coming back.

The session holds who the participant is (from the signed token), where it is (room, breakout
group, stage) and how it is reached (`send_event`). Its media, the two peer connections and
the probe, are its MediaSession (media_session.py). Every WebSocket method is in one table
(methods.py); the handlers register themselves in the modules of their concern, which this
module imports so that the table is complete wherever a session dispatches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from mediaserver.api import MediaControl

# features and interaction are imported for the methods they register
from . import (  # noqa: F401
    breakouts,
    catchup,
    events,
    features,
    interaction,
    lobby,
    methods,
    schemas,
    speaking,
)
from .errors import RequestError
from .media_session import MediaSession
from .methods import ALL, Handler, method
from .rooms import Room, RoomRegistry, Track, new_id
from .session_token import TokenRefresher
from .store import Store
from .tokens import Grant
from .turn import TurnIssuer

log = logging.getLogger(__name__)


class Participant:
    def __init__(self, grant: Grant, rooms: RoomRegistry, store: Store, media: MediaControl,
                 send: Callable[[dict[str, Any]], None]) -> None:
        self.id = new_id("p")
        self.grant = grant
        self.identity = grant.identity
        self.name = grant.name
        self.role = grant.role
        self.rooms = rooms
        self.store = store
        self.media = media
        self._send = send
        self.room: Room | None = None
        self.joined = False
        self.on_stage = False  # webinar attendees publish only once promoted
        self.group: str | None = None  # breakout group whose media we send and receive
        self.media_session = MediaSession(self)
        self.on_closed: Callable[[str, int], None] | None = None
        self.suspended = False
        self.keep_place = False  # the socket ends but the place is kept (media_lost)
        self.buckets: dict[str, Any] = {}  # per-action rate limits (interaction.LIMITS)
        self._grace_timer: asyncio.TimerHandle | None = None
        # fresh tokens for coming back (session_token.py); set by the WebSocket endpoint
        self.tokens: TokenRefresher | None = None
        # short-lived TURN credentials for the join result (turn.py); set by the WebSocket
        # endpoint when TURN is configured
        self.turn: TurnIssuer | None = None

    def public(self) -> dict[str, Any]:
        hand = self.room is not None and self.identity in self.room.hands
        return {"id": self.id, "name": self.name, "role": self.role, "handRaised": hand,
                "onStage": self.on_stage}

    def send_event(self, event: str, data: dict[str, Any]) -> None:
        if not self.suspended:
            self._send({"event": event, "data": data})

    # ---- what the room and the media plane ask of a participant ----------------------------

    @property
    def publish_transport(self) -> str | None:
        return self.media_session.publish_transport

    @property
    def subscribe_transport(self) -> str | None:
        return self.media_session.subscribe_transport

    @property
    def subscribe_router(self) -> str | None:
        return self.media_session.subscribe_router

    def owns_transport(self, transport_id: str) -> bool:
        return self.media_session.owns_transport(transport_id)

    def on_track_published(self, track: Track) -> None:
        self.media_session.on_track_published(track)

    def on_track_unpublished(self, track: Track) -> None:
        self.media_session.on_track_unpublished(track)

    # ---- dispatch -------------------------------------------------------------------------

    def handler_for(self, name: str) -> Handler:
        """The handler of method `name` if we may call it now (methods.handler_for)."""
        return methods.handler_for(
            name, joined=self.joined, role=self.role, on_stage=self.on_stage,
            room_type=self.room.type if self.room is not None else "meeting")

    # ---- joining --------------------------------------------------------------------------

    @method("ping", ALL, before_join=True)
    async def ping(self, params: schemas.Empty) -> dict[str, Any]:
        return {"pong": True, "time": int(time.time() * 1000)}

    @method("join", ALL, before_join=True)
    async def join(self, params: schemas.Join) -> dict[str, Any]:
        if self.joined:
            raise RequestError("already_joined", "already joined")
        if await self.store.get_room(self.grant.room) is None:
            raise RequestError("not_found", f"no room {self.grant.room!r}")
        room = await self.rooms.open(self.grant.room)
        # a place another node holds for us (cluster_sync.py): we come back, not anew
        sync = self.rooms.sync
        places = await sync.present(room, self.identity) if sync is not None else []
        if places:
            room.admitted.add(self.identity)  # we were in: no lobby again
        if room.lobby and self.role == "attendee" and self.identity not in room.admitted:
            # Wait in the lobby: hosts decide; the client joins again once `admitted`.
            self.room = room
            await lobby.wait(self, room)
            return {"lobby": True, "self": self.public(), "room": room.name,
                    "token": self._session_token()}
        room.waiting.pop(self.id, None)
        # Same identity twice (a reconnect within the grace period, a reload, a second tab):
        # the newer session takes the place over instead of appearing twice.
        previous = next((p for p in room.participants.values()
                         if p.identity == self.identity and p is not self), None)
        kept = False
        if previous is not None:
            kept = await self._take_over(previous, params.keep_media)
        elif places and sync is not None:
            place = await sync.claim(room, places)
            self.id, self.on_stage = place["id"], bool(place.get("onStage"))
            room.hands = await self.store.hands(room.name)  # raised there, in the store
        self.room = room
        room.participants[self.id] = self
        if not kept:
            if room.breakouts.open:  # joining while the groups are open: straight into ours
                self.group = room.breakouts.assignments.get(self.identity)
            await self.media_session.enter(room)
        self.joined = True
        resumed = previous is not None or bool(places)
        events.note(self, "resume" if resumed else "join", group=self.group)
        await self.rooms.announce(room, {"t": "participant", "op": "add", "participant": {
            **self.public(), "identity": self.identity}})
        room.broadcast("participantJoined", {"participant": self.public()}, exclude=self.id)
        others = [p.public() for p in room.participants.values() if p.id != self.id and p.joined]
        others += [p for p in room.remote.values() if p["id"] != self.id]
        visible = self.media_session.resume(room) if kept else self.media_session.receive(room)
        tracks = [t.public() for t in visible]
        chat = await self.store.chat_history(room.name)
        since = params.since_chat_id
        missed = [m for m in chat if since is not None and m["id"] > since]
        return {"self": self.public(), "participants": others, "tracks": tracks, "chat": chat,
                "missedChat": missed, "resumed": resumed, "mediaKept": kept,
                "room": room.name, "roomType": room.type, "hands": room.hand_ids(),
                "groupId": self.group, "breakouts": breakouts.view(room),
                "settings": {"chat": room.chat_enabled, "lobby": room.lobby},
                "live": room.live, "recording": self.rooms.recordings is not None
                and self.rooms.recordings.anywhere(room),
                "recordingMode": self.rooms.recordings.mode_of(room)
                if self.rooms.recordings is not None else None,
                "activeSpeaker": speaking.speaker_of(room, self.group, room.sees_media(self)),
                **({"rewound": catchup.count(room)} if self.role == "host" else {}),
                "token": self._session_token(),
                **({"iceServers": self.turn.ice_servers(self.id)} if self.turn else {})}

    def _session_token(self) -> str | None:
        """A token to come back with, refreshed while we are connected (session_token.py)."""
        return self.tokens.start() if self.tokens is not None else None

    async def _take_over(self, previous: Participant, keep_media: bool) -> bool:
        """Become `previous` for the others: same participant id, stage and hand. Its media
        is dropped (the client publishes again and gets fresh subscriber offers), unless the
        client came back on a new socket with the same peer connections (`keep_media`, a
        network change) and they are still up: then they become ours, tracks and all, and
        the others see nothing change. Returns whether the media was kept."""
        room = previous.room
        assert room is not None
        previous.cancel_grace()
        self.id = previous.id
        self.on_stage = previous.on_stage
        self.group = previous.group
        room.participants.pop(previous.id, None)
        # media_lost, or a transport that went while nobody listened: nothing left to keep
        kept = keep_media and not previous.keep_place and \
            await previous.media_session.connections_alive()
        if kept:
            self.media_session, previous.media_session = (previous.media_session,
                                                          MediaSession(previous))
            self.media_session.owner = self
        else:
            await previous.media_session.unpublish_all(room)
            previous.media_session.release_router(room)
        previous.joined = False
        await previous.close("replaced by a newer session")
        return kept

    # ---- staying and going ----------------------------------------------------------------

    def suspend(self, grace: float) -> None:
        """Keep our place for `grace` seconds after the socket dropped."""
        self.suspended = True
        events.note(self, "drop")
        if self.tokens is not None:
            self.tokens.stop()
        loop = asyncio.get_running_loop()
        self._grace_timer = loop.call_later(
            grace, lambda: asyncio.ensure_future(self.close("grace period over")))

    def media_lost(self) -> None:
        """A media connection that was up went silent (ICE consent, RFC 7675) while the
        socket stayed: the client must build its connections again. It keeps its place for
        the grace period, as after a dropped socket, and is asked to come back at once
        (4503): its rejoin takes the place over, so the others see no one leave."""
        if self.on_closed is None or not self.joined:
            return
        self.keep_place = True
        callback, self.on_closed = self.on_closed, None
        callback("media_lost", 4503)

    def cancel_grace(self) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None

    @method("leave", ALL)
    async def leave(self, params: schemas.Empty) -> dict[str, Any]:
        await self.close("left")
        return {}

    async def close(self, reason: str, code: int = 1000, handed_over: bool = False) -> None:
        """Leave the room: unpublish everything, close both connections, tell the others.

        `code` is the WebSocket close code the client gets (4503: come back, media moved).
        `handed_over`: another node takes our place (the person came back through it, or we
        drain and tell them to): our tracks go, but our place stays listed and nobody is
        told we left (cluster_sync.py)."""
        self.cancel_grace()
        if self.tokens is not None:
            self.tokens.stop()
        await self.media_session.close_probe()
        room, was_joined = self.room, self.joined
        if room is not None and room.waiting.pop(self.id, None) is not None:
            await lobby.left(self.rooms, room, self.id, admitted=False)
            if not was_joined:
                await self.rooms.release_if_empty(room)
        self.joined = False
        if room is not None and was_joined:
            catchup.left(self)  # before we leave the room: hosts get the new count
            await self.media_session.unpublish_all(room)
            room.participants.pop(self.id, None)
            self.media_session.release_router(room)
            if not handed_over:
                await self.rooms.announce(room, {"t": "participant", "op": "remove",
                                                 "participantId": self.id})
                room.broadcast("participantLeft", {"participantId": self.id})
                events.note(self, "leave", reason=reason)
        await self.media_session.close_transports()
        if room is not None and was_joined:
            await self.rooms.release_if_empty(room)
        if self.on_closed is not None:
            callback, self.on_closed = self.on_closed, None
            callback(reason, code)

    def room_or_fail(self) -> Room:
        if self.room is None or not self.joined:
            raise RequestError("not_joined", "join first")
        return self.room


methods.check_complete()  # every method with a schema has a handler by now
