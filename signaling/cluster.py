"""Several signalling nodes sharing one Redis (DESIGN.md sections 5 and 7).

Each node serves its own WebSockets. What they share goes through Redis:
- the worker registry (`ms:workers`: id prefix -> RPC socket) and room placement
  (`ms:router:<room>`: the Router all nodes use for that room's media, on one worker);
- the live state of each room (`ms:live:<room>:p` participants and `ms:live:<room>:t` tracks,
  each entry tagged with the node that owns it), read by a node when its first participant joins;
- a pub/sub channel per room (`ms:bus:<room>`) carrying events for participants on other nodes
  and the track and participant changes that keep each node's copy of the room up to date.

Worker RPC goes over Unix sockets, so the nodes of one deployment run on one host; workers on
other hosts need the RPC over TCP (not built yet).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from mediaserver.api import Codec, MediaControl, decode, encode

from .rooms import Track

log = logging.getLogger(__name__)


class Cluster:
    def __init__(self, url: str, media: MediaControl, node: str | None = None,
                 prefix: str = "ms:") -> None:
        self.node = node or secrets.token_hex(3)
        self.media = media
        self.prefix = prefix
        self.redis = aioredis.from_url(url, decode_responses=True)
        self._pubsub = self.redis.pubsub()
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._listener: asyncio.Task | None = None

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def start(self) -> None:
        await self.redis.hset(self._k("workers"), mapping=self.media.addresses())
        await self._pubsub.subscribe(self._k("bus", "_"))  # a listen loop needs one channel
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        await self.redis.hdel(self._k("workers"), *self.media.addresses())
        await self._pubsub.aclose()
        await self.redis.aclose()

    # ---- media placement ------------------------------------------------------------------

    async def reach(self, some_id: str) -> None:
        """Make sure we can call the worker that owns `some_id`."""
        if self.media.reaches(some_id):
            return
        prefix = some_id.split(".", 1)[0] + "."
        path = await self.redis.hget(self._k("workers"), prefix)
        if path is None:
            raise RuntimeError(f"no node serves worker {prefix}")
        await self.media.attach(prefix, path)

    async def room_router(self, room: str, create: Callable[[], Awaitable[str]]) -> str:
        """The one Router of this room, whichever node created it first."""
        key = self._k("router", room)
        existing = await self.redis.get(key)
        if existing is None:
            router_id = await create()
            if await self.redis.set(key, router_id, nx=True):
                return router_id
            await self.media.close_router(router_id)  # another node won the race
            existing = await self.redis.get(key)
        await self.reach(existing)
        return existing

    async def forget_router(self, room: str, router_id: str) -> None:
        """Drop the placement once no node has anyone in the room."""
        if not await self.redis.hlen(self._k("live", room, "p")):
            await self.redis.delete(self._k("router", room))
            await self.media.close_router(router_id)

    # ---- live room state ----------------------------------------------------------------

    async def put_participant(self, room: str, public: dict[str, Any], identity: str) -> None:
        entry = {**public, "identity": identity, "node": self.node}
        await self.redis.hset(self._k("live", room, "p"), public["id"], json.dumps(entry))

    async def drop_participant(self, room: str, participant_id: str) -> None:
        await self.redis.hdel(self._k("live", room, "p"), participant_id)

    async def put_track(self, room: str, track: dict[str, Any]) -> None:
        await self.redis.hset(self._k("live", room, "t"), track["id"],
                              json.dumps({**track, "node": self.node}))

    async def drop_track(self, room: str, track_id: str) -> None:
        await self.redis.hdel(self._k("live", room, "t"), track_id)

    async def remote_state(self, room: str) -> tuple[list[dict], list[dict]]:
        """Participants and tracks that other nodes hold in this room."""
        people = await self.redis.hvals(self._k("live", room, "p"))
        tracks = await self.redis.hvals(self._k("live", room, "t"))
        return ([p for p in map(json.loads, people) if p["node"] != self.node],
                [t for t in map(json.loads, tracks) if t["node"] != self.node])

    # ---- bus ----------------------------------------------------------------------------

    async def publish(self, room: str, message: dict[str, Any]) -> None:
        await self.redis.publish(self._k("bus", room), json.dumps({**message, "node": self.node}))

    async def follow(self, room: str, handler: Callable[[dict[str, Any]], None]) -> None:
        self._handlers[room] = handler
        await self._pubsub.subscribe(self._k("bus", room))

    async def unfollow(self, room: str) -> None:
        self._handlers.pop(room, None)
        await self._pubsub.unsubscribe(self._k("bus", room))

    async def _listen(self) -> None:
        bus = self._k("bus", "")
        while True:
            try:
                message = await self._pubsub.get_message(ignore_subscribe_messages=True,
                                                         timeout=1.0)
            except (aioredis.ConnectionError, RuntimeError):
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            body = json.loads(message["data"])
            if body.get("node") == self.node:
                continue  # our own broadcast, already delivered locally
            handler = self._handlers.get(message["channel"][len(bus):])
            if handler is not None:
                try:
                    handler(body)
                except Exception:
                    log.exception("bad bus message %s", body)


def track_to_wire(track: Track) -> dict[str, Any]:
    """A track as Redis (`ms:live:<room>:t`) and the bus carry it."""
    return {"id": track.id, "participantId": track.participant_id, "kind": track.kind,
            "name": track.name, "producerId": track.producer_id,
            "codec": encode(track.codec), "cname": track.cname, "muted": track.muted,
            "group": track.group, "source": track.source}


def track_from_wire(entry: dict[str, Any]) -> Track:
    return Track(entry["id"], entry["participantId"], entry["kind"], entry["name"],
                 entry["producerId"], decode(Codec, entry["codec"]), entry["cname"],
                 entry.get("muted", False), entry.get("group"), entry.get("source", ""))
