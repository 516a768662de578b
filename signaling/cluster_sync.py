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
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .cluster import same_worker, track_from_wire
from .rooms import set_live

if TYPE_CHECKING:
    from .cluster import Cluster
    from .rooms import Room


class RoomSync:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def join(self, room: Room) -> None:
        """The room just opened here: take in what the other nodes hold, follow its bus."""
        cluster = self.cluster
        people, tracks = await cluster.remote_state(room.name)
        room.remote = {p["id"]: _public(p) for p in people}
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
        elif message["t"] == "track":
            if message["op"] == "add":
                await cluster.put_track(room.name, message["track"])
            elif message["op"] == "remove":
                await cluster.drop_track(room.name, message["trackId"])
        await cluster.publish(room.name, message)


def _public(entry: dict[str, Any]) -> dict[str, Any]:
    """What participants on this node are shown of one on another node."""
    return {k: entry[k] for k in ("id", "name", "role", "handRaised", "onStage") if k in entry}
