"""Live rooms: who is in them, which tracks they publish, and the Router carrying their media.

The persistent part of a room (its existence, settings, chat) lives in the Store; this module
holds what exists only while people are connected.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mediaserver.api import MediaControl
from mediaserver.params import Codec

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

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "participantId": self.participant_id, "kind": self.kind,
                "name": self.name, "muted": self.muted}


@dataclass
class Room:
    name: str
    router_id: str
    participants: dict[str, Participant] = field(default_factory=dict)
    tracks: dict[str, Track] = field(default_factory=dict)

    def broadcast(self, event: str, data: dict[str, Any], exclude: str | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant.id != exclude and participant.joined:
                participant.send_event(event, data)

    def public_participants(self) -> list[dict[str, Any]]:
        return [p.public() for p in self.participants.values() if p.joined]


class RoomRegistry:
    def __init__(self, store: Store, media: MediaControl) -> None:
        self.store = store
        self.media = media
        self.rooms: dict[str, Room] = {}
        self._lock = asyncio.Lock()

    async def open(self, name: str) -> Room:
        """The live room, creating its Router on first use (the room must exist in the store)."""
        async with self._lock:
            room = self.rooms.get(name)
            if room is None:
                room = Room(name, await self.media.create_router())
                self.rooms[name] = room
            return room

    async def release_if_empty(self, room: Room) -> None:
        async with self._lock:
            if not room.participants and self.rooms.get(room.name) is room:
                del self.rooms[room.name]
                await self.media.close_router(room.router_id)

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())
