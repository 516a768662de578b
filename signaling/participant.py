"""One participant session: the methods of docs/protocol.md and both peer connections.

Publish connection: the client offers, each new sendonly m-line becomes a Producer and a Track.
Subscribe connection: one m-line (Slot) per remote track; the server offers whenever tracks
come or go and creates the Consumers once the client's answer says what it accepted. Its
transport is created with the first offer: someone alone in a room, or an attendee waiting for
the presenter, has no subscribe transport at all, so nothing of theirs can time out meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mediaserver.api import (
    ConsumerParams,
    MediaControl,
    MediaError,
    ProducerParams,
    TransportInfo,
)

from . import breakouts, engagement, features, schemas, sdp
from .cluster import track_to_wire
from .errors import RequestError
from .permissions import allowed
from .rooms import Room, RoomRegistry, Track, new_id
from .session_token import TokenRefresher
from .store import Store
from .tokens import Grant

log = logging.getLogger(__name__)

# A method's handler: the participant and its validated params (schemas.PARAMS) to a result.
Handler = Callable[[Any, Any], Awaitable[dict[str, Any]]]

PROBE_LIFETIME = 20.0


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
        self.publish_transport: str | None = None
        self._publish_ufrag = ""
        self.subscribe_transport: str | None = None
        self.subscribe_router: str | None = None
        self.probe_transport: str | None = None
        self._probe_router: str | None = None
        self._probe_timer: asyncio.TimerHandle | None = None
        self.on_stage = False  # webinar attendees publish only once promoted
        self.group: str | None = None  # breakout group whose media we send and receive
        self.published: dict[str, Track] = {}  # publish mid -> track
        self.retired_mids: set[str] = set()  # unpublished m-lines are never produced again
        self.slots: list[sdp.Slot] = []
        self.consumers: dict[str, str] = {}  # track id -> consumer id
        self._offer_pending = False
        self._offered: tuple | None = None  # the slots as the last offer described them
        self._offer_id = 0  # answers may name the offer they answer; older ones are refused
        # Bumped when both connections are replaced (a move between groups): work begun for
        # the old connections (an offer on its way) sees the change and is dropped.
        self._epoch = 0
        self._moving = False  # slots are rebuilt when the move ends; no offers meanwhile
        self._negotiating = asyncio.Lock()
        self.on_closed: Callable[[str, int], None] | None = None
        self.suspended = False
        self.keep_place = False  # the socket ends but the place is kept (media_lost)
        self.buckets: dict[str, Any] = {}  # per-action rate limits (engagement.LIMITS)
        self._grace_timer: asyncio.TimerHandle | None = None
        # fresh tokens for coming back (session_token.py); set by the WebSocket endpoint
        self.tokens: TokenRefresher | None = None

    def public(self) -> dict[str, Any]:
        hand = self.room is not None and self.identity in self.room.hands
        return {"id": self.id, "name": self.name, "role": self.role, "handRaised": hand,
                "onStage": self.on_stage}

    def send_event(self, event: str, data: dict[str, Any]) -> None:
        if not self.suspended:
            self._send({"event": event, "data": data})

    # ---- dispatch -------------------------------------------------------------------------

    def handler_for(self, method: str) -> Handler:
        """The handler of `method` if we may call it now; unknown_method, not_joined or
        forbidden otherwise. Its params are validated after this (websocket._dispatch)."""
        handler = self.METHODS.get(method)
        if handler is None:
            raise RequestError("unknown_method", f"unknown method {method[:64]!r}")
        if method not in self.BEFORE_JOIN and not self.joined:
            raise RequestError("not_joined", "join first")
        room_type = self.room.type if self.room is not None else "meeting"
        if not allowed(method, self.role, room_type, self.on_stage):
            raise RequestError("forbidden", f"{method} is not allowed for role {self.role}"
                               + (" off stage" if room_type == "webinar" else ""))
        return handler

    # ---- methods ------------------------------------------------------------------------

    async def ping(self, params: schemas.Empty) -> dict[str, Any]:
        return {"pong": True, "time": int(time.time() * 1000)}

    async def join(self, params: schemas.Join) -> dict[str, Any]:
        if self.joined:
            raise RequestError("already_joined", "already joined")
        if await self.store.get_room(self.grant.room) is None:
            raise RequestError("not_found", f"no room {self.grant.room!r}")
        room = await self.rooms.open(self.grant.room)
        if room.lobby and self.role == "attendee" and self.identity not in room.admitted:
            # Wait in the lobby: hosts decide; the client joins again once `admitted`.
            self.room = room
            room.waiting[self.id] = self
            room.tell_hosts("lobbyRequest", {"participant": self.public()})
            return {"lobby": True, "self": self.public(), "room": room.name,
                    "token": self._session_token()}
        room.waiting.pop(self.id, None)
        # Same identity twice (a reconnect within the grace period, a reload, a second tab):
        # the newer session takes the place over instead of appearing twice.
        previous = next((p for p in room.participants.values()
                         if p.identity == self.identity and p is not self), None)
        if previous is not None:
            await self._take_over(previous)
        self.room = room
        room.participants[self.id] = self
        if room.breakouts.open:  # joining while the groups are open: straight into ours
            self.group = room.breakouts.assignments.get(self.identity)
        self.subscribe_router = (await self.rooms.subscriber_router(room) if self.group is None
                                 else room.router_of_group(self.group))
        self.joined = True
        await self.rooms.announce(room, {"t": "participant", "op": "add", "participant": {
            **self.public(), "identity": self.identity}})
        room.broadcast("participantJoined", {"participant": self.public()}, exclude=self.id)
        others = [p.public() for p in room.participants.values() if p.id != self.id and p.joined]
        others += [p for p in room.remote.values() if p["id"] != self.id]
        visible = room.tracks_in(self.group) if room.sees_media(self) else []
        tracks = [t.public() for t in visible]
        chat = await self.store.chat_history(room.name)
        for track in visible:
            self._add_slot(track)
        if self.slots:
            asyncio.get_running_loop().call_soon(self._schedule_offer)
        since = params.since_chat_id
        missed = [m for m in chat if since is not None and m["id"] > since]
        return {"self": self.public(), "participants": others, "tracks": tracks, "chat": chat,
                "missedChat": missed, "resumed": previous is not None,
                "room": room.name, "roomType": room.type, "hands": room.hand_ids(),
                "groupId": self.group, "breakouts": breakouts.view(room),
                "settings": {"chat": room.chat_enabled, "lobby": room.lobby},
                "live": room.live, "recording": self.rooms.recordings is not None
                and room.name in self.rooms.recordings.active,
                "token": self._session_token()}

    def _session_token(self) -> str | None:
        """A token to come back with, refreshed while we are connected (session_token.py)."""
        return self.tokens.start() if self.tokens is not None else None

    async def _take_over(self, previous: Participant) -> None:
        """Become `previous` for the others: same participant id, stage and hand; its media
        is dropped (the client publishes again and gets fresh subscriber offers)."""
        room = previous.room
        assert room is not None
        previous.cancel_grace()
        self.id = previous.id
        self.on_stage = previous.on_stage
        self.group = previous.group
        for track in list(previous.published.values()):
            await previous._unpublish(track, room)
        room.participants.pop(previous.id, None)
        if previous.subscribe_router is not None and previous.group is None:
            self.rooms.release_subscriber(room, previous.subscribe_router)
        previous.joined = False
        await previous.close("replaced by a newer session")

    def suspend(self, grace: float) -> None:
        """Keep our place for `grace` seconds after the socket dropped."""
        self.suspended = True
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

    async def publish(self, params: schemas.Publish) -> dict[str, Any]:
        room = self._room()
        offer = sdp.parse(params.sdp)
        names = params.names or {}
        remote = sdp.remote_params(offer, is_offer=True)
        if self.publish_transport is None:
            router = room.router_of_group(self.group)
            self.publish_transport = (await self.media.create_transport(router)).id
        elif self._publish_ufrag and remote.ice_ufrag != self._publish_ufrag:
            await self.media.restart_ice(self.publish_transport)  # the client restarted ICE
        self._publish_ufrag = remote.ice_ufrag
        await self.media.connect_transport(self.publish_transport, remote)
        info = await self._transport_info(self.publish_transport)
        answer, media = sdp.publish_answer(offer, info)
        wanted = {m.mid for m in media}
        for mid in [mid for mid in self.published if mid not in wanted]:
            await self._unpublish(self.published[mid])
        new_tracks = []
        for m in media:
            if m.mid in self.published or m.mid in self.retired_mids:
                continue
            try:  # the media border checks the values again (ParamsError is a MediaError)
                params_ = ProducerParams(kind=m.kind, mid=m.mid, codec=m.codec, ssrc=m.ssrc,
                                         rtx_ssrc=m.rtx_ssrc, extensions=m.extensions,
                                         cname=m.cname or self.id)
                producer_id = await self.media.produce(self.publish_transport, params_)
            except MediaError as exc:
                raise RequestError("bad_sdp", str(exc)) from None
            track = Track(new_id("t"), self.id, m.kind, names.get(m.mid, m.kind), producer_id,
                          m.codec, params_.cname, group=self.group)
            self.published[m.mid] = track
            if track.group is None:
                await self.rooms.track_published(room, track)  # mirrored to edge workers
            room.tracks[track.id] = track
            await self.rooms.announce(room, {"t": "track", "op": "add",
                                             "track": track_to_wire(track)})
            new_tracks.append(track)
        recordings = self.rooms.recordings
        if recordings is not None and new_tracks:
            if room.auto_record and room.name not in recordings.active and \
                    self.role in ("host", "presenter"):
                await recordings.start(room)  # records every track, the new ones included
            else:
                for track in new_tracks:
                    await recordings.track_added(room, track)
        for track in new_tracks:
            room.broadcast_group(self.group, "trackPublished", {"track": track.public()},
                                 exclude=self.id)
            for other in room.in_group(self.group):
                if other is not self:
                    other.on_track_published(track)
        return {"sdp": answer, "tracks": [t.public() for t in self.published.values()]}

    async def unpublish(self, params: schemas.TrackRef) -> dict[str, Any]:
        await self.unpublish_track(self._own_track(params.track_id))
        return {}

    async def unpublish_track(self, track: Track) -> None:
        await self._unpublish(track)

    async def mute(self, params: schemas.Mute) -> dict[str, Any]:
        await self.set_muted(self._own_track(params.track_id), params.muted)
        return {}

    async def set_muted(self, track: Track, muted: bool) -> None:
        if track.muted != muted:
            track.muted = muted
            # Paused at the producer: nothing of a muted track is forwarded, and unmuting
            # restarts every subscriber on a fresh keyframe.
            await self.rooms.track_paused(self._room(), track, muted)
            await self.rooms.announce(self._room(), {"t": "track", "op": "mute",
                                                     "trackId": track.id, "muted": muted})
            self._room().broadcast_group(track.group, "trackMuted", {
                "trackId": track.id, "participantId": self.id, "muted": muted})

    async def subscriber_answer(self, params: schemas.SubscriberAnswer) -> dict[str, Any]:
        if params.offer_id is not None and params.offer_id != self._offer_id:
            # answered an offer of a connection that was replaced (a move between groups),
            # whether or not a newer offer is waiting
            raise RequestError("conflict", "that offer was superseded")
        if not self._offer_pending or self.subscribe_transport is None:
            raise RequestError("bad_request", "no subscriber offer is waiting for an answer")
        answer = sdp.parse(params.sdp)
        remote = sdp.remote_params(answer, is_offer=False)
        await self.media.connect_transport(self.subscribe_transport, remote)
        by_mid = {m.mid: m for m in answer.media}
        room = self._room()
        for slot in self.slots:
            if slot.track is None or slot.track in self.consumers:
                continue
            m = by_mid.get(slot.mid)
            track = room.tracks.get(slot.track)
            accepted = sdp.answered_slot(slot, m) if m is not None else None
            producer_id = (room.producer_for(track, self.subscribe_router or room.router_id)
                           if track is not None else None)
            if accepted is None or producer_id is None:
                continue
            codec, exts = accepted
            info = await self.media.consume(
                self.subscribe_transport, producer_id,
                ConsumerParams(mid=slot.mid, codec=codec, extensions=exts, ssrc=slot.ssrc,
                               rtx_ssrc=slot.rtx_ssrc if codec.rtx_payload_type else None))
            self.consumers[track.id] = info.id
        self._offer_pending = False
        self._schedule_offer()  # what changed while this offer was out, if anything
        return {}

    async def request_keyframe(self, params: schemas.TrackRef) -> dict[str, Any]:
        track = self._room().tracks.get(params.track_id)
        if track is None:
            raise RequestError("not_found", "no such track")
        await self.media.request_keyframe(track.producer_id)
        return {}

    async def chat(self, params: schemas.Chat) -> dict[str, Any]:
        room = self._room()
        if not room.chat_enabled and self.role not in ("host", "presenter"):
            raise RequestError("chat_disabled", "the host turned the chat off")
        engagement.throttle(self, "chat")
        message = await self.store.add_chat(room.name, self.id, self.name, params.text)
        room.broadcast("chat", {"message": message})
        return {"message": message}

    async def leave(self, params: schemas.Empty) -> dict[str, Any]:
        await self.close("left")
        return {}

    async def probe(self, params: schemas.Probe) -> dict[str, Any]:
        """A short-lived transport to test ICE and DTLS to the media port before joining."""
        offer = sdp.parse(params.sdp)
        remote = sdp.remote_params(offer, is_offer=True)
        await self._close_probe()
        self._probe_router = await self.media.create_router()
        self.probe_transport = (await self.media.create_transport(self._probe_router)).id
        await self.media.connect_transport(self.probe_transport, remote)
        info = await self._transport_info(self.probe_transport)
        answer = sdp.probe_answer(offer, info)
        loop = asyncio.get_running_loop()
        self._probe_timer = loop.call_later(PROBE_LIFETIME,
                                            lambda: asyncio.ensure_future(self._close_probe()))
        return {"sdp": answer}

    async def probe_done(self, params: schemas.Empty) -> dict[str, Any]:
        await self._close_probe()
        return {}

    METHODS = {
        "ping": ping, "join": join, "publish": publish, "unpublish": unpublish, "mute": mute,
        "subscriberAnswer": subscriber_answer, "requestKeyframe": request_keyframe,
        "chat": chat, "leave": leave, "probe": probe, "probeDone": probe_done,
        **features.METHODS, **engagement.METHODS, **breakouts.METHODS,
    }
    BEFORE_JOIN = {"ping", "join", "probe", "probeDone"}

    # ---- reactions to other participants -------------------------------------------------

    def on_track_published(self, track: Track) -> None:
        if self.room is not None and not self.room.sees_media(self):
            return  # backstage: not for the audience yet
        if self._moving:
            return  # the slots are rebuilt from the room's tracks when the move ends
        self._add_slot(track)
        self._schedule_offer()

    def on_track_unpublished(self, track: Track) -> None:
        if self._moving:
            return  # its consumer went with the old connection
        consumer_id = self.consumers.pop(track.id, None)
        if consumer_id is not None:
            asyncio.ensure_future(self.media.close_consumer(consumer_id))
        for slot in self.slots:
            if slot.track == track.id:
                slot.track = None
                slot.codec = None
        self._schedule_offer()

    def _add_slot(self, track: Track) -> None:
        if track.participant_id == self.id:
            return
        self.slots.append(sdp.Slot(
            mid=str(len(self.slots)), kind=track.kind, track=track.id,
            stream=track.participant_id, codec=sdp.subscriber_codec(track.codec),
            ssrc=random.getrandbits(32) or 1,
            rtx_ssrc=(random.getrandbits(32) or 1) if track.kind == "video" else None,
            cname=track.cname))

    def _schedule_offer(self) -> None:
        if not self.joined or self._moving or self.subscribe_router is None:
            return
        if self._offer_pending:
            return  # the answer to the offer out now checks again (subscriber_answer)
        if not self.slots:
            return  # nothing to offer on this connection (yet)
        if self._slots_now() == self._offered:
            return  # changes that cancelled out, or already in the last offer: one per change
        self._offer_pending = True
        asyncio.ensure_future(self._send_offer(self._epoch))

    async def _send_offer(self, epoch: int) -> None:
        try:
            info = await self._subscribe_transport_info(epoch)
        except MediaError:
            if epoch == self._epoch:
                self._offer_pending = False  # the next change tries again
            return
        if info is None or epoch != self._epoch or not self.joined:
            return  # moved to another group or left meanwhile: that connection is gone
        tracks = {s.mid: s.track for s in self.slots if s.track}
        self._offered = self._slots_now()
        self._offer_id += 1
        self.send_event("subscriberOffer", {"sdp": sdp.subscribe_offer(self.slots, info),
                                            "tracks": tracks, "offerId": self._offer_id})

    def _slots_now(self) -> tuple:
        return tuple(dataclasses.astuple(slot) for slot in self.slots)

    async def _subscribe_transport_info(self, epoch: int) -> TransportInfo | None:
        """The subscribe transport's parameters; created here with the first offer."""
        if self.subscribe_transport is not None:
            return await self.media.transport_info(self.subscribe_transport)
        assert self.subscribe_router is not None
        info = await self.media.create_transport(self.subscribe_router)
        if epoch != self._epoch or not self.joined:
            await self.media.close_transport(info.id)  # not wanted any more
            return None
        self.subscribe_transport = info.id
        return info

    async def _transport_info(self, transport_id: str | None) -> TransportInfo:
        if transport_id is None:
            raise MediaError("no transport")
        return await self.media.transport_info(transport_id)

    # ---- teardown -----------------------------------------------------------------------

    async def _unpublish(self, track: Track, room: Room | None = None) -> None:
        room = room or self._room()
        self.retired_mids.update(mid for mid, t in self.published.items() if t is track)
        self.published = {mid: t for mid, t in self.published.items() if t is not track}
        room.tracks.pop(track.id, None)
        if self.rooms.recordings is not None:
            await self.rooms.recordings.track_removed(room, track)
        await self.media.close_producer(track.producer_id)
        await self.rooms.track_unpublished(room, track)
        await self.rooms.announce(room, {"t": "track", "op": "remove", "trackId": track.id})
        room.broadcast_group(track.group, "trackUnpublished",
                             {"trackId": track.id, "participantId": self.id}, exclude=self.id)
        for other in room.in_group(track.group):
            if other is not self:
                other.on_track_unpublished(track)

    def begin_move(self) -> None:
        """From now on the current connections are on their way out: no offer is sent for
        them (moves of several people at once start all of theirs first, so nobody gets an
        offer for a connection that `moved` is about to replace)."""
        self._epoch += 1
        self._moving = True
        self._offer_pending = False
        self._offered = None  # the next offer is the new connection's first
        self._offer_id += 1  # an answer to an offer of the old connection is now superseded

    async def move_to(self, group: str | None) -> None:
        """Switch our media to a breakout group (None: the main room) without a reload:
        our tracks go, both connections are replaced, and the client is told to renegotiate.
        `moved` is the boundary: no offer for the old connections follows it, and one offer
        for the new subscribe connection comes once there is something to receive."""
        room = self._room()
        if group == self.group:
            return
        self.begin_move()
        try:
            for track in list(self.published.values()):
                await self._unpublish(track, room)
            old = (self.publish_transport, self.subscribe_transport)
            self.publish_transport = self.subscribe_transport = None  # not ours any more
            self.slots, self.consumers = [], {}
            for transport in old:
                if transport is not None:
                    await self.media.close_transport(transport)
            if self.subscribe_router is not None and self.group is None:
                self.rooms.release_subscriber(room, self.subscribe_router)
            self.group = group
            self._publish_ufrag = ""
            self.retired_mids.clear()
            self.subscribe_router = (await self.rooms.subscriber_router(room) if group is None
                                     else room.router_of_group(group))
        finally:
            self._moving = False
        visible = room.tracks_in(group) if room.sees_media(self) else []
        self.send_event("moved", {"groupId": group, "tracks": [t.public() for t in visible]})
        self.slots = []  # what arrived while moving is in `visible` too
        for track in visible:
            self._add_slot(track)
        self._schedule_offer()

    async def _close_probe(self) -> None:
        if self._probe_timer is not None:
            self._probe_timer.cancel()
            self._probe_timer = None
        if self._probe_router is not None:
            router, self._probe_router, self.probe_transport = self._probe_router, None, None
            await self.media.close_router(router)

    async def close(self, reason: str, code: int = 1000) -> None:
        """Leave the room: unpublish everything, close both connections, tell the others.

        `code` is the WebSocket close code the client gets (4503: come back, media moved)."""
        self.cancel_grace()
        if self.tokens is not None:
            self.tokens.stop()
        await self._close_probe()
        room, was_joined = self.room, self.joined
        if room is not None and room.waiting.pop(self.id, None) is not None:
            room.tell_hosts("lobbyLeft", {"participantId": self.id})
            if not was_joined:
                await self.rooms.release_if_empty(room)
        self.joined = False
        if room is not None and was_joined:
            for track in list(self.published.values()):
                await self._unpublish(track, room)
            room.participants.pop(self.id, None)
            if self.subscribe_router is not None and self.group is None:
                self.rooms.release_subscriber(room, self.subscribe_router)
            await self.rooms.announce(room, {"t": "participant", "op": "remove",
                                             "participantId": self.id})
            room.broadcast("participantLeft", {"participantId": self.id})
        for transport in (self.publish_transport, self.subscribe_transport):
            if transport is not None:
                await self.media.close_transport(transport)
        self.publish_transport = self.subscribe_transport = None
        if room is not None and was_joined:
            await self.rooms.release_if_empty(room)
        if self.on_closed is not None:
            callback, self.on_closed = self.on_closed, None
            callback(reason, code)

    def owns_transport(self, transport_id: str) -> bool:
        return transport_id in (self.publish_transport, self.subscribe_transport)

    def room_or_fail(self) -> Room:
        return self._room()

    def _room(self) -> Room:
        if self.room is None or not self.joined:
            raise RequestError("not_joined", "join first")
        return self.room

    def _own_track(self, track_id: str) -> Track:
        for track in self.published.values():
            if track.id == track_id:
                return track
        raise RequestError("not_found", "no such track of yours")
