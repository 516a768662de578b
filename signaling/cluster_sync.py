"""A node's copy of the rooms it shares with other signalling nodes (DESIGN.md section 7).

When its first participant joins, a node reads who and which tracks the other nodes hold in
the room and follows the room's bus; from then on each bus message updates that copy or is
delivered to the participants connected here. What changes here (a participant or a track
added, removed, muted) is recorded in Redis and announced on the bus. cluster.py holds the
Redis side. The bus messages (each also carries the sending node, added by cluster.py):

    {"t": "event", "event", "data", "exclude", ["group", "media"]}  an event for participants
    {"t": "live", "live"}                                              backstage on or off
    {"t": "participant", "op": "add", "participant"} / {"op": "remove", "participantId"}
    {"t": "track", "op": "add", "track"} / {"op": "remove", "trackId"}
                                        / {"op": "mute", "trackId", "muted"}
    {"t": "breakouts", "state"}               the breakout groups changed (breakouts.py)
    {"t": "lobby", "op": "wait", "participant"} / {"op": "left", "participantId", "admitted"?}
                                              someone waits in the lobby, or stopped waiting
    {"t": "lobby", "op": "admit" | "refuse", "participantId", "by"}
                                              a host's decision, for the node holding them
    {"t": "release", "participantId", "to"}   node `to` takes this participant's place over
    {"t": "released", "participantId"}         the node that held it has let it go

Resume through any node: a person who joins here while another node holds their place in the
room (connected in another tab, in its grace period, or left by a node that drained or died)
takes that place over (`claim`): the same participant id, stage and hand; the other node, if
alive, is asked to let go (its session ends without anyone seeing a leave), and the tracks
still listed for the place go (the client publishes again).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import breakouts, lobby
from .cluster import same_worker, track_from_wire
from .rooms import set_live

# How long a claim waits for the node holding the place to let it go (it may be frozen: then
# the place is taken anyway, and that node's late release is harmless)
RELEASE_WAIT = 3.0

if TYPE_CHECKING:
    from .cluster import Cluster
    from .participant import Participant
    from .rooms import Room, RoomRegistry


class RoomSync:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._releases: dict[str, asyncio.Future[None]] = {}  # participant id -> let go
        # set by the app: end a local participant's session for another node (close it
        # with handed_over)
        self.let_go: Callable[[Participant], Awaitable[None]] | None = None
        self.rooms: RoomRegistry | None = None  # set by the registry that uses us

    async def join(self, room: Room) -> None:
        """The room just opened here: take in what the other nodes hold, follow its bus."""
        cluster = self.cluster
        people, tracks = await cluster.remote_state(room.name)
        room.remote = {p["id"]: _public(p) for p in people}
        room.remote_identities = {p["id"]: p.get("identity", "") for p in people}
        room.remote_waiting = {p["id"]: _public(p) for p in await cluster.waiting(room.name)}
        room.remote_recording = await cluster.recording(room.name)
        state = await cluster.get_breakouts(room.name)
        if state is not None:
            await breakouts.adopt(room, state, cluster.reach)
        for t in tracks:
            track = track_from_wire(t)
            if track.group is None and not same_worker(track.producer_id, room.router_id):
                continue  # left on a dead node's worker, which the room has moved from
            room.tracks[track.id] = track
        room.bus = lambda message: asyncio.ensure_future(cluster.publish(room.name, message))
        await cluster.follow(room.name, lambda message: self.received(room, message))

    async def leave(self, room: Room) -> None:
        """The room ended here."""
        await self.cluster.unfollow(room.name)

    def received(self, room: Room, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "event" and message["event"] == "recordingChanged":  # another node's
            data = message["data"]
            room.remote_recording = {"recordingId": data["recordingId"],
                                     "mode": data.get("mode")} if data["recording"] else None
        if kind == "event":
            room.deliver(message["event"], message["data"], message.get("exclude"),
                         message.get("group", "all"), message.get("media", False))
        elif kind == "live":
            set_live(room, message["live"])
        elif kind == "participant":
            if message["op"] == "add":
                entry = message["participant"]
                room.remote[entry["id"]] = _public(entry)
                room.remote_identities[entry["id"]] = entry.get("identity", "")
            else:
                room.remote.pop(message["participantId"], None)
                room.remote_identities.pop(message["participantId"], None)
        elif kind == "track":
            if message["op"] == "add":
                track = track_from_wire(message["track"])
                room.tracks[track.id] = track
                for participant in room.in_group(track.group):
                    participant.on_track_published(track)
            elif message["op"] == "remove":
                gone = room.tracks.pop(message["trackId"], None)
                if gone is not None:
                    for participant in room.in_group(gone.group):
                        participant.on_track_unpublished(gone)
            elif message["op"] == "mute" and message["trackId"] in room.tracks:
                room.tracks[message["trackId"]].muted = message["muted"]
        elif kind == "lobby":
            self._lobby(room, message)
        elif kind == "breakouts":
            asyncio.ensure_future(breakouts.adopt(room, message["state"], self.cluster.reach))
        elif kind == "release" and message.get("to") != self.cluster.node:
            held = room.participants.get(message["participantId"])
            if held is not None and self.let_go is not None:
                asyncio.ensure_future(self._let_go(room, held))
        elif kind == "released":
            waiting = self._releases.get(message["participantId"])
            if waiting is not None and not waiting.done():
                waiting.set_result(None)

    def _lobby(self, room: Room, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "wait":
            entry = message["participant"]
            room.remote_waiting[entry["id"]] = _public(entry)
            room.tell_hosts("lobbyRequest", {"participant": _public(entry)})
        elif op == "left":
            room.remote_waiting.pop(message["participantId"], None)
            room.tell_hosts("lobbyLeft", {k: message[k] for k in ("participantId", "admitted")
                                          if k in message})
        elif op in ("admit", "refuse") and self.rooms is not None:
            asyncio.ensure_future(lobby.decide(self.rooms, room, message["participantId"],
                                               op == "admit", message.get("by", "")))

    async def _let_go(self, room: Room, held: Participant) -> None:
        assert self.let_go is not None
        try:
            await self.let_go(held)
        finally:
            await self.cluster.publish(room.name, {"t": "released", "participantId": held.id})

    async def present(self, room: Room, identity: str) -> list[dict[str, Any]]:
        """Places other nodes hold for `identity` in the room (see `claim`)."""
        return await self.cluster.entries_of(room.name, identity)

    async def claim(self, room: Room, places: list[dict[str, Any]]) -> dict[str, Any]:
        """Take over the first of `places` (from `present`): its node, if alive, lets it go;
        the tracks still listed for it leave. Returns its entry (id, onStage, ...)."""
        place = places[0]
        pid, cluster = place["id"], self.cluster
        if await cluster.node_alive(place):
            waiting = self._releases[pid] = asyncio.get_running_loop().create_future()
            try:
                await cluster.publish(room.name, {"t": "release", "participantId": pid,
                                                  "to": cluster.node})
                await asyncio.wait_for(waiting, RELEASE_WAIT)
            except TimeoutError:
                pass  # frozen or gone meanwhile: its tracks are ended below
            finally:
                self._releases.pop(pid, None)
        await cluster.end_tracks_of(room.name, pid)
        room.remote.pop(pid, None)
        room.remote_identities.pop(pid, None)
        return place

    async def announce(self, room: Room, message: dict[str, Any]) -> None:
        """Tell the other nodes about a participant or track change, and record it."""
        cluster = self.cluster
        if message["t"] == "participant":
            if message["op"] == "add":
                p = message["participant"]
                await cluster.end_ghosts(room.name, p.get("identity", ""), p["id"])
                await cluster.put_participant(room.name, p, p.get("identity", ""))
            else:
                await cluster.drop_participant(room.name, message["participantId"])
        elif message["t"] == "breakouts":
            await cluster.put_breakouts(room.name, message["state"])
        elif message["t"] == "lobby" and message["op"] == "wait":
            await cluster.put_waiting(room.name, message["participant"])
        elif message["t"] == "lobby" and message["op"] == "left":
            await cluster.drop_waiting(room.name, message["participantId"])
        elif message["t"] == "track":
            if message["op"] == "add":
                await cluster.put_track(room.name, message["track"])
            elif message["op"] == "remove":
                await cluster.drop_track(room.name, message["trackId"])
        await cluster.publish(room.name, message)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    """What participants on this node are shown of one on another node."""
    return {k: entry[k] for k in ("id", "name", "role", "handRaised", "onStage") if k in entry}
