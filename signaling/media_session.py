"""A participant's media: the publish and the subscribe peer connections, and the probe.

Publish connection: the client offers, each new sendonly m-line becomes a Producer and a Track.
Subscribe connection: one m-line (Slot) per remote track; the server offers whenever tracks
come or go and creates the Consumers once the client's answer says what it accepted. Its
transport is created with the first offer: someone alone in a room, or an attendee waiting for
the presenter, has no subscribe transport at all, so nothing of theirs can time out meanwhile.
A breakout move replaces both connections (`begin_move`, `move_to`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import TYPE_CHECKING, Any

from mediaserver.api import ConsumerParams, MediaError, ProducerParams, TransportInfo

from . import events, schemas, sdp, speaking
from .cluster import track_to_wire
from .config import ServerConfig
from .errors import RequestError
from .methods import ALL, PUBLISHERS, method
from .rooms import Room, Track, new_id

if TYPE_CHECKING:
    from .participant import Participant

PROBE_LIFETIME = 20.0
MAX_PROBES = 8  # probes of one session at once (the web client tests up to five paths)
PROBE_TURN_TTL = 300.0  # the check's TURN credentials: it needs them for seconds
MAX_VIEWS = 1024  # tile views kept per session; past that, those of gone tracks are dropped


class MediaSession:
    def __init__(self, owner: Participant) -> None:
        self.owner = owner  # identity, room, group and joined state are the session's
        self.media = owner.media
        self.rooms = owner.rooms
        self.publish_transport: str | None = None
        self._publish_ufrag = ""
        self.subscribe_transport: str | None = None
        self.subscribe_router: str | None = None
        self.probes: dict[str, str] = {}  # probe name -> transport id
        self._probe_router: str | None = None
        self._probe_timer: asyncio.TimerHandle | None = None
        # the media ports for the check's advice (media_ports); set by the WebSocket endpoint
        self.ports: dict[str, list[int]] = {}
        self.published: dict[str, Track] = {}  # publish mid -> track
        self.retired_mids: set[str] = set()  # unpublished m-lines are never produced again
        self.slots: list[sdp.Slot] = []
        self.consumers: dict[str, str] = {}  # track id -> consumer id
        # track id -> (visible, width, height) as the client shows it (setTrackView); a track
        # not listed is shown. Hidden ones are consumed paused: nothing sent nobody sees.
        self.views: dict[str, tuple[bool, int, int]] = {}
        # watching the stage's live HLS (catchUp): every video held, whatever the tiles say
        self.rewound = False
        self._offer_pending = False
        self._offered: tuple | None = None  # the slots as the last offer described them
        self.offer_id = 0  # answers may name the offer they answer; older ones are refused
        # Bumped when both connections are replaced (a move between groups): work begun for
        # the old connections (an offer on its way) sees the change and is dropped.
        self._epoch = 0
        self._moving = False  # slots are rebuilt when the move ends; no offers meanwhile
        self._restart_ice = False  # the next subscriber offer carries new ICE credentials

    # ---- joining and leaving the room ------------------------------------------------------

    async def enter(self, room: Room) -> None:
        """Where our subscribe connection will receive from: the room's (or an edge worker's)
        router, or our breakout group's."""
        group = self.owner.group
        self.subscribe_router = (await self.rooms.subscriber_router(room) if group is None
                                 else room.router_of_group(group))

    def receive(self, room: Room) -> list[Track]:
        """The tracks we can see now, each given a slot; the first offer follows the reply."""
        visible = room.tracks_in(self.owner.group) if room.sees_media(self.owner) else []
        for track in visible:
            self._add_slot(track)
        if self.slots:
            asyncio.get_running_loop().call_soon(self._schedule_offer)
        return visible

    async def unpublish_all(self, room: Room) -> None:
        for track in list(self.published.values()):
            await self.unpublish(track, room)

    def resume(self, room: Room) -> list[Track]:
        """Kept by a new socket of the same client (a network change): its connections stay.
        An offer sent while its socket was gone never arrived; the next one goes out now with
        every change since, and what it receives is described again."""
        self._offer_pending = False
        self._offered = None
        self._schedule_offer()
        return room.tracks_in(self.owner.group) if room.sees_media(self.owner) else []

    def restart_ice(self) -> bool:
        """The client's subscribe connection lost its path (a network change): the next
        offer, sent at once or after the answer to the one out now, has new ICE credentials
        (RFC 8445 9). False when there is no subscribe connection to restart."""
        if self.subscribe_transport is None:
            return False
        self._restart_ice = True
        self._schedule_offer()
        return True

    def release_router(self, room: Room) -> None:
        """Give back the main room's subscriber router (a group's router is the group's)."""
        if self.subscribe_router is not None and self.owner.group is None:
            self.rooms.release_subscriber(room, self.subscribe_router)

    async def close_transports(self) -> None:
        old, self.publish_transport, self.subscribe_transport = \
            (self.publish_transport, self.subscribe_transport), None, None
        for transport in old:
            if transport is not None:
                await self.media.close_transport(transport)

    async def connections_alive(self) -> bool:
        """Whether the media plane still has both of our connections (those we have)."""
        for transport in (self.publish_transport, self.subscribe_transport):
            if transport is not None:
                try:
                    await self.media.transport_info(transport)
                except MediaError:
                    return False
        return True

    def owns_transport(self, transport_id: str) -> bool:
        return transport_id in (self.publish_transport, self.subscribe_transport)

    # ---- publishing ------------------------------------------------------------------------

    async def publish(self, params: schemas.Publish) -> dict[str, Any]:
        owner = self.owner
        room = owner.room_or_fail()
        offer = sdp.parse(params.sdp)
        names, sources = params.names or {}, params.sources or {}
        remote = sdp.remote_params(offer, is_offer=True)
        if self.publish_transport is None:
            router = room.router_of_group(owner.group)
            self.publish_transport = (await self.media.create_transport(router)).id
        elif self._publish_ufrag and remote.ice_ufrag != self._publish_ufrag:
            await self.media.restart_ice(self.publish_transport)  # the client restarted ICE
        self._publish_ufrag = remote.ice_ufrag
        await self.media.connect_transport(self.publish_transport, remote)
        info = await self._transport_info(self.publish_transport)
        answer, media = sdp.publish_answer(offer, info)
        wanted = {m.mid for m in media}
        for mid in [mid for mid in self.published if mid not in wanted]:
            await self.unpublish(self.published[mid])
        new_tracks = []
        for m in media:
            if m.mid in self.published or m.mid in self.retired_mids:
                continue
            try:  # the media border checks the values again (ParamsError is a MediaError)
                params_ = ProducerParams(kind=m.kind, mid=m.mid, codec=m.codec, ssrc=m.ssrc,
                                         rtx_ssrc=m.rtx_ssrc, extensions=m.extensions,
                                         cname=m.cname or owner.id, encodings=m.encodings,
                                         source=sources.get(m.mid, ""))
                producer_id = await self.media.produce(self.publish_transport, params_)
            except MediaError as exc:
                raise RequestError("bad_sdp", str(exc)) from None
            track = Track(new_id("t"), owner.id, m.kind, names.get(m.mid, m.kind), producer_id,
                          m.codec, params_.cname, group=owner.group,
                          source=sources.get(m.mid, ""))
            self.published[m.mid] = track
            if track.group is None:
                await self.rooms.track_published(room, track)  # mirrored to edge workers
            room.tracks[track.id] = track
            await self.rooms.announce(room, {"t": "track", "op": "add",
                                             "track": track_to_wire(track)})
            new_tracks.append(track)
            events.track(owner, "publish", track)
        if self.rooms.recordings is not None:  # taps them, or starts an auto-recording
            await self.rooms.recordings.tracks_published(room, new_tracks, owner.role)
        for track in new_tracks:
            room.broadcast_group(owner.group, "trackPublished", {"track": track.public()},
                                 exclude=owner.id)
            for other in room.in_group(owner.group):
                if other is not owner:
                    other.on_track_published(track)
        return {"sdp": answer, "tracks": [t.public() for t in self.published.values()]}

    async def unpublish(self, track: Track, room: Room | None = None) -> None:
        owner = self.owner
        room = room or owner.room_or_fail()
        self.retired_mids.update(mid for mid, t in self.published.items() if t is track)
        self.published = {mid: t for mid, t in self.published.items() if t is not track}
        room.tracks.pop(track.id, None)
        events.track(owner, "unpublish", track)
        if self.rooms.recordings is not None:
            await self.rooms.recordings.track_removed(room, track)
        await self.media.close_producer(track.producer_id)
        await self.rooms.track_unpublished(room, track)
        await self.rooms.announce(room, {"t": "track", "op": "remove", "trackId": track.id})
        room.broadcast_group(track.group, "trackUnpublished",
                             {"trackId": track.id, "participantId": owner.id},
                             exclude=owner.id)
        for other in room.in_group(track.group):
            if other is not owner:
                other.on_track_unpublished(track)

    async def set_muted(self, track: Track, muted: bool) -> None:
        if track.muted != muted:
            room = self.owner.room_or_fail()
            track.muted = muted
            events.track(self.owner, "mute", track)
            # Paused at the producer: nothing of a muted track is forwarded, and unmuting
            # restarts every subscriber on a fresh keyframe.
            await self.rooms.track_paused(room, track, muted)
            await self.rooms.announce(room, {"t": "track", "op": "mute",
                                             "trackId": track.id, "muted": muted})
            room.broadcast_group(track.group, "trackMuted", {
                "trackId": track.id, "participantId": self.owner.id, "muted": muted})

    def view(self, track_id: str) -> dict[str, Any]:
        """The tile of a track as the client last told it (setTrackView): shown, unknown
        size, until it says otherwise."""
        visible, width, height = self.views.get(track_id, (True, 0, 0))
        return {"visible": visible and not self.rewound, "width": width, "height": height}

    async def set_rewound(self, rewound: bool) -> None:
        """Rewound (catchUp): nothing of the live videos is sent; back live: each as its
        tile was last reported. Held here, not only by the client's tile reports."""
        self.rewound = rewound
        tracks = self.owner.room.tracks if self.owner.room is not None else {}
        for track_id, consumer_id in list(self.consumers.items()):
            track = tracks.get(track_id)
            if track is not None and track.kind == "video":
                view = self.view(track_id)
                await self.media.set_consumer_view(consumer_id, view["visible"], view["width"],
                                                   view["height"])

    def own_track(self, track_id: str) -> Track:
        for track in self.published.values():
            if track.id == track_id:
                return track
        raise RequestError("not_found", "no such track of yours")

    # ---- subscribing -----------------------------------------------------------------------

    async def subscriber_answer(self, params: schemas.SubscriberAnswer) -> dict[str, Any]:
        if params.offer_id is not None and params.offer_id != self.offer_id:
            # answered an offer of a connection that was replaced (a move between groups),
            # whether or not a newer offer is waiting
            raise RequestError("conflict", "that offer was superseded")
        if not self._offer_pending or self.subscribe_transport is None:
            raise RequestError("bad_request", "no subscriber offer is waiting for an answer")
        answer = sdp.parse(params.sdp)
        remote = sdp.remote_params(answer, is_offer=False)
        transport = self.subscribe_transport
        try:
            await self.media.connect_transport(transport, remote)
        except MediaError as exc:
            if self._moving or self.subscribe_transport != transport or _gone(exc):
                # the connection the offer was for went (the room's media moved, its worker
                # stopped) before the answer came: a `moved` and a new offer follow
                raise RequestError("conflict", "that offer was superseded") from exc
            raise
        by_mid = {m.mid: m for m in answer.media}
        room = self.owner.room_or_fail()
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
                               rtx_ssrc=slot.rtx_ssrc if codec.rtx_payload_type else None,
                               **self.view(track.id)))
            self.consumers[track.id] = info.id
        self._offer_pending = False
        self._schedule_offer()  # what changed while this offer was out, if anything
        return {}

    def on_track_published(self, track: Track) -> None:
        room = self.owner.room
        if room is not None and not room.sees_media(self.owner):
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
        if track.participant_id == self.owner.id:
            return
        self.slots.append(sdp.Slot(
            mid=str(len(self.slots)), kind=track.kind, track=track.id,
            stream=track.participant_id, codec=sdp.subscriber_codec(track.codec),
            ssrc=random.getrandbits(32) or 1,
            rtx_ssrc=(random.getrandbits(32) or 1) if track.kind == "video" else None,
            cname=track.cname))

    def _schedule_offer(self) -> None:
        if not self.owner.joined or self._moving or self.subscribe_router is None:
            return
        if self._offer_pending:
            return  # the answer to the offer out now checks again (subscriber_answer)
        if not self.slots:
            return  # nothing to offer on this connection (yet)
        if self._slots_now() == self._offered and not self._restart_ice:
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
        if info is None or epoch != self._epoch or not self.owner.joined:
            return  # moved to another group or left meanwhile: that connection is gone
        tracks = {s.mid: s.track for s in self.slots if s.track}
        self._offered = self._slots_now()
        self.offer_id += 1
        self.owner.send_event("subscriberOffer", {
            "sdp": sdp.subscribe_offer(self.slots, info), "tracks": tracks,
            "offerId": self.offer_id})

    def _slots_now(self) -> tuple:
        return tuple(dataclasses.astuple(slot) for slot in self.slots)

    async def _subscribe_transport_info(self, epoch: int) -> TransportInfo | None:
        """The subscribe transport's parameters; created here with the first offer."""
        if self.subscribe_transport is not None:
            if self._restart_ice:
                self._restart_ice = False
                return await self.media.restart_ice(self.subscribe_transport)
            return await self.media.transport_info(self.subscribe_transport)
        assert self.subscribe_router is not None
        info = await self.media.create_transport(self.subscribe_router)
        if epoch != self._epoch or not self.owner.joined:
            await self.media.close_transport(info.id)  # not wanted any more
            return None
        self.subscribe_transport = info.id
        return info

    async def _transport_info(self, transport_id: str | None) -> TransportInfo:
        if transport_id is None:
            raise MediaError("no transport")
        return await self.media.transport_info(transport_id)

    # ---- breakout moves --------------------------------------------------------------------

    def begin_move(self) -> None:
        """From now on the current connections are on their way out: no offer is sent for
        them (moves of several people at once start all of theirs first, so nobody gets an
        offer for a connection that `moved` is about to replace)."""
        self._epoch += 1
        self._moving = True
        self._offer_pending = False
        self._offered = None  # the next offer is the new connection's first
        self.offer_id += 1  # an answer to an offer of the old connection is now superseded

    async def move_to(self, group: str | None, reason: str | None = None) -> None:
        """Switch our media to a breakout group (None: the main room) without a reload:
        our tracks go, both connections are replaced, and the client is told to renegotiate.
        `moved` is the boundary: no offer for the old connections follows it, and one offer
        for the new subscribe connection comes once there is something to receive. With a
        `reason` ("media_restart": the worker carrying our media is gone) the connections
        are replaced even within the same group."""
        owner = self.owner
        room = owner.room_or_fail()
        if group == owner.group and reason is None:
            return
        self.begin_move()
        try:
            await self.unpublish_all(room)
            self.slots, self.consumers = [], {}
            await self.close_transports()
            self.release_router(room)
            owner.group = group
            events.moved(owner, room, group)
            self._publish_ufrag = ""
            self.retired_mids.clear()
            await self.enter(room)
        finally:
            self._moving = False
        visible = room.tracks_in(group) if room.sees_media(owner) else []
        owner.send_event("moved", {"groupId": group, "tracks": [t.public() for t in visible],
                                   "activeSpeaker": speaking.speaker_of(
                                       room, group, room.sees_media(owner)),
                                   **({"reason": reason} if reason else {})})
        self.slots = []  # what arrived while moving is in `visible` too
        for track in visible:
            self._add_slot(track)
        self._schedule_offer()

    # ---- probe: a connectivity check before joining --------------------------------------

    async def probe(self, params: schemas.Probe) -> dict[str, Any]:
        """A short-lived transport to test ICE and DTLS to the media port before joining: one
        per probe name (the web client tests each path on a connection of its own, side by
        side), all in one router, all closed PROBE_LIFETIME after the newest was made."""
        offer = sdp.parse(params.sdp)
        remote = sdp.remote_params(offer, is_offer=True)
        await self.close_probe(params.name)
        if len(self.probes) >= MAX_PROBES:
            raise RequestError("conflict", f"at most {MAX_PROBES} probes at once")
        if self._probe_router is None:
            self._probe_router = await self.media.create_router()
        transport = (await self.media.create_transport(self._probe_router)).id
        self.probes[params.name] = transport
        await self.media.connect_transport(transport, remote)
        answer = sdp.probe_answer(offer, await self._transport_info(transport))
        if self._probe_timer is not None:
            self._probe_timer.cancel()
        self._probe_timer = asyncio.get_running_loop().call_later(
            PROBE_LIFETIME, lambda: asyncio.ensure_future(self.close_probe()))
        return {"sdp": answer}

    async def close_probe(self, name: str | None = None) -> None:
        """The probe of that name, or (None) all of them and their router."""
        if name is not None:
            transport = self.probes.pop(name, None)
            if transport is not None:
                await self.media.close_transport(transport)
            if self.probes:
                return
        if self._probe_timer is not None:
            self._probe_timer.cancel()
            self._probe_timer = None
        self.probes.clear()
        if self._probe_router is not None:
            router, self._probe_router = self._probe_router, None
            await self.media.close_router(router)


# ---- the methods ------------------------------------------------------------------------------

@method("publish", PUBLISHERS, stage=True)
async def publish(p: Participant, params: schemas.Publish) -> dict[str, Any]:
    return await p.media_session.publish(params)


@method("unpublish", PUBLISHERS, stage=True)
async def unpublish(p: Participant, params: schemas.TrackRef) -> dict[str, Any]:
    await p.media_session.unpublish(p.media_session.own_track(params.track_id))
    return {}


@method("mute", PUBLISHERS, stage=True)
async def mute(p: Participant, params: schemas.Mute) -> dict[str, Any]:
    await p.media_session.set_muted(p.media_session.own_track(params.track_id), params.muted)
    return {}


@method("subscriberAnswer", ALL)
async def subscriber_answer(p: Participant, params: schemas.SubscriberAnswer
                            ) -> dict[str, Any]:
    return await p.media_session.subscriber_answer(params)


@method("restartIce", ALL)
async def restart_ice(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    """The subscribe connection's ICE restart: the server offers, so it sends the new
    credentials in a subscriberOffer (the publish connection restarts with a new offer)."""
    return {"restarting": p.media_session.restart_ice()}


@method("setTrackView", ALL)
async def set_track_view(p: Participant, params: schemas.SetTrackView) -> dict[str, Any]:
    """A remote video's tile was shown, hidden or resized: the media plane sends nothing to
    a hidden one and no simulcast layer larger than the tile (audio is never paused this way:
    it plays whatever the tile does)."""
    track = p.room_or_fail().tracks.get(params.track_id)
    if track is None:
        raise RequestError("not_found", "no such track")
    if track.kind != "video":
        raise RequestError("bad_request", "only a video track has a view")
    session = p.media_session
    if track.id not in session.views and len(session.views) >= MAX_VIEWS:
        session.views = {t: v for t, v in session.views.items()
                         if t in p.room_or_fail().tracks}  # forget tracks that went away
    session.views[track.id] = (params.visible, params.width, params.height)
    consumer_id = session.consumers.get(track.id)
    if consumer_id is not None:
        await p.media.set_consumer_view(consumer_id, params.visible and not session.rewound,
                                        params.width, params.height)
    return {}


@method("requestKeyframe", ALL)
async def request_keyframe(p: Participant, params: schemas.TrackRef) -> dict[str, Any]:
    track = p.room_or_fail().tracks.get(params.track_id)
    if track is None:
        raise RequestError("not_found", "no such track")
    await p.media.request_keyframe(track.producer_id)
    return {}


@method("probe", ALL, before_join=True)
async def probe(p: Participant, params: schemas.Probe) -> dict[str, Any]:
    return await p.media_session.probe(params)


@method("probeDone", ALL, before_join=True)
async def probe_done(p: Participant, params: schemas.ProbeRef) -> dict[str, Any]:
    await p.media_session.close_probe(params.name if "name" in params.model_fields_set
                                      else None)
    return {}


@method("probeInfo", ALL, before_join=True)
async def probe_info(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    """What the connectivity check needs before join: TURN credentials to test the relay (the
    socket was opened with a valid token, websocket.py, as for join's own; short-lived, the
    check takes seconds) and the media ports, for the advice when nothing gets through."""
    servers: list[dict[str, Any]] = []
    if p.turn is not None:
        servers = dataclasses.replace(p.turn, ttl=min(p.turn.ttl, PROBE_TURN_TTL)
                                      ).ice_servers(p.id)
    return {"iceServers": servers, "mediaPorts": p.media_session.ports}


def media_ports(config: ServerConfig) -> dict[str, list[int]]:
    """The media workers' ports by protocol, [first, last] (worker i on port + i), as the
    configuration fixes them; a protocol left out: off, or ports picked at start (port 0)."""
    count = max(1, config.workers)
    tcp = config.rtc_port if config.rtc_tcp_port is None else config.rtc_tcp_port
    ports = {"udp": config.rtc_port, "tcp": tcp if config.ice_tcp else 0}
    return {proto: [first, first + count - 1] for proto, first in ports.items() if first}


def _gone(exc: MediaError) -> bool:
    """A media call refused because its transport is no more: its worker stopped, restarts or
    is not reached (mediaserver's `_find`, the pool and remote_control.LINK_ERRORS say so in
    these words)."""
    text = str(exc)
    return text.startswith(("no transport", "no worker for id", "media worker not connected",
                            "media worker connection lost")) or text.endswith("is restarting")
