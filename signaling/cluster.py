"""Several signalling nodes sharing one Redis (DESIGN.md sections 5 and 7).

Each node serves its own WebSockets. What they share goes through Redis:
- the worker registry (`ms:workers`: id prefix -> {path: RPC socket, node, inc}) and room
  placement (`ms:router:<room>`: the Router all nodes use for that room's media, on one worker;
  one on a dead node's worker is replaced by the next node that needs it);
- the live state of each room (`ms:live:<room>:p` participants and `ms:live:<room>:t` tracks,
  each entry tagged with the node and incarnation that own it, and `ms:live:<room>:b` its
  breakout groups), read by a node when its first participant joins;
- which nodes are alive, and the cleanup after one that is not (liveness.py);
- a pub/sub channel per room (`ms:bus:<room>`) carrying events for participants on other nodes
  and the track and participant changes that keep each node's copy of the room up to date.

Worker RPC goes over Unix sockets, so the nodes of one deployment run on one host; workers on
other hosts need the RPC over TCP (not built yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from mediaserver.api import Codec, MediaControl, decode, encode

from .liveness import Liveness, of_incarnation
from .rooms import Track

log = logging.getLogger(__name__)

# Replaces (ARGV[2]) or deletes (ARGV[2] == "") a key only if it still holds ARGV[1].
SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
"""
# Deletes a hash field only if it still holds ARGV[2] (the value read): an entry that another
# node has taken over meanwhile (a resume, cluster_sync.py) is not ended with its old owner.
HDEL_IF = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"""


class Cluster:
    def __init__(self, url: str, media: MediaControl, node: str | None = None,
                 prefix: str = "ms:", ttl: float = 10.0, grace: float = 30.0) -> None:
        self.node = node or secrets.token_hex(3)
        self.media = media
        self.prefix = prefix
        self.redis = aioredis.from_url(url, decode_responses=True)
        self._pubsub = self.redis.pubsub()
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._listener: asyncio.Task | None = None
        self._swap = self.redis.register_script(SWAP)
        self._hdel_if = self.redis.register_script(HDEL_IF)
        self._gone_routers: set[str] = set()  # seen ending (router_gone); ids are never reused
        self.liveness = Liveness(self, ttl, grace)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @property
    def incarnation(self) -> str:
        return self.liveness.incarnation

    async def start(self) -> None:
        await self.liveness.register(self.media.addresses())
        await self._pubsub.subscribe(self._k("bus", "_"))  # a listen loop needs one channel
        self._listener = asyncio.create_task(self._listen())

    async def stop(self, handed_over: bool = False) -> None:
        """`handed_over`: our participants were told to come back through another node,
        which takes over their entries; those who don't are ended by a survivor after the
        grace period, as for a node that died."""
        if self._listener is not None:
            self._listener.cancel()
        await self.liveness.stop(handed_over)
        await self._pubsub.aclose()
        await self.redis.aclose()

    # ---- media placement ------------------------------------------------------------------

    async def reach(self, some_id: str) -> None:
        """Make sure we can call the worker that owns `some_id`."""
        if self.media.reaches(some_id):
            return
        prefix = worker_prefix(some_id)
        entry = await self._worker(prefix)
        if entry is None:
            raise RuntimeError(f"no live node serves worker {prefix}")
        await self._attach(prefix, entry["path"])

    async def _attach(self, prefix: str, path: str) -> None:
        """Connect to another node's worker; OSError if nobody listens there."""
        remote = getattr(self.media, "remote", None)
        control = remote.get(prefix) if isinstance(remote, dict) else None
        if control is not None and not control.rpc.connected:
            await self.forget_workers([prefix])  # that worker went away: connect anew
        await self.media.attach(prefix, path)

    async def _worker(self, prefix: str) -> dict[str, Any] | None:
        """A registered worker whose node is alive."""
        raw = await self.redis.hget(self._k("workers"), prefix)
        entry = json.loads(raw) if raw else None
        if entry is None or not await self.liveness.alive(entry["node"], entry["inc"]):
            return None
        return entry

    def router_gone(self, router_id: str, transport_id: str) -> None:
        """A transport on the room's Router's worker closed as its Router or worker ended
        (app.py): that Router is gone, even while its node's registration lasts."""
        if same_worker(router_id, transport_id):
            self._gone_routers.add(router_id)

    async def _usable(self, router_id: str) -> bool:
        """Whether the Router's worker is ours or a live node's that answers (a killed node's
        workers stop at once, before its registration expires)."""
        prefix = worker_prefix(router_id)
        if router_id in self._gone_routers:
            return False
        if prefix in self.media.addresses():
            return True
        entry = await self._worker(prefix)
        if entry is None:
            return False
        try:
            await self._attach(prefix, entry["path"])
        except OSError:
            return False
        return True

    async def forget_workers(self, prefixes: list[str]) -> None:
        """A dead node's workers: drop our connections to them (a restart of that node
        registers new sockets under the same prefixes). WorkerPool.remote holds them."""
        remote = getattr(self.media, "remote", None)
        for prefix in prefixes:
            control = remote.pop(prefix, None) if isinstance(remote, dict) else None
            if control is not None:
                await control.rpc.close()

    async def room_router(self, room: str, create: Callable[[], Awaitable[str]]) -> str:
        """The one Router of this room, whichever node created it first; one on a worker of
        a node that is gone is replaced by one of ours (its clients come back to it)."""
        key = self._k("router", room)
        existing = await self.redis.get(key)
        while existing is None or not await self._usable(existing):
            router_id = await create()
            placed = await self.redis.set(key, router_id, nx=True) if existing is None else \
                await self._swap(keys=[key], args=[existing, router_id])
            if placed:
                await self.redis.sadd(self._rooms_key(), room)
                return router_id
            await self.media.close_router(router_id)  # another node won the race
            existing = await self.redis.get(key)
        await self.reach(existing)
        return existing

    async def forget_router(self, room: str, router_id: str) -> None:
        """Drop the placement once no node has anyone in the room."""
        if not await self.redis.hlen(self._k("live", room, "p")):
            await self.redis.delete(self._k("router", room), self._k("live", room, "b"),
                                    self._k("live", room, "w"))
            await self.redis.srem(self._rooms_key(), room)
            await self.media.close_router(router_id)

    def _rooms_key(self) -> str:
        """The rooms where this incarnation wrote live state or placed a Router."""
        return self._k("noderooms", self.node, self.incarnation)

    # ---- live room state ----------------------------------------------------------------

    async def _put(self, room: str, kind: str, entry: dict[str, Any]) -> None:
        """An entry of the room's live state (`kind`: p, t or w), tagged as ours."""
        await self.redis.sadd(self._rooms_key(), room)
        await self.redis.hset(self._k("live", room, kind), entry["id"], json.dumps(
            {**entry, "node": self.node, "inc": self.incarnation}))

    async def _take(self, room: str, kind: str,
                    gone: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The entries of `kind` that are `gone` and that this call removed (compare and
        delete: one taken over meanwhile stays, and each is removed by one caller only)."""
        key, taken = self._k("live", room, kind), []
        for raw in await self.redis.hvals(key):
            entry = json.loads(raw)
            if gone(entry) and await self._hdel_if(keys=[key], args=[entry["id"], raw]):
                taken.append(entry)
        return taken

    async def put_participant(self, room: str, public: dict[str, Any], identity: str) -> None:
        await self._put(room, "p", {**public, "identity": identity})

    async def drop_participant(self, room: str, participant_id: str) -> None:
        await self.redis.hdel(self._k("live", room, "p"), participant_id)

    async def put_track(self, room: str, track: dict[str, Any]) -> None:
        await self._put(room, "t", track)

    async def drop_track(self, room: str, track_id: str) -> None:
        await self.redis.hdel(self._k("live", room, "t"), track_id)

    async def put_breakouts(self, room: str, state: dict[str, Any]) -> None:
        await self.redis.set(self._k("live", room, "b"), json.dumps(state))

    async def ours(self, room: str) -> set[str]:
        """The ids of the room's participants whose entries are still ours (not ended, nor
        taken over by another node)."""
        entries = (await self.redis.hgetall(self._k("live", room, "p"))).items()
        return {pid for pid, raw in entries
                if of_incarnation(json.loads(raw), self.node, self.incarnation)}

    async def claim_recording(self, room: str, entry: dict[str, Any]) -> bool:
        """Take the room's one running recording for us, unless a live node runs one."""
        key = self._k("live", room, "rec")
        value = json.dumps({**entry, "node": self.node, "inc": self.incarnation})
        while True:
            if await self.redis.set(key, value, nx=True):
                await self.redis.sadd(self._rooms_key(), room)
                return True
            held = await self.redis.get(key)
            if held is None:
                continue
            if await self.node_alive(json.loads(held)):
                return False
            if await self._swap(keys=[key], args=[held, value]):  # its node is gone
                return True

    async def drop_recording(self, room: str, recording_id: str) -> None:
        key = self._k("live", room, "rec")
        held = await self.redis.get(key)
        if held is not None and json.loads(held).get("recordingId") == recording_id:
            await self._swap(keys=[key], args=[held, ""])

    async def recording(self, room: str) -> dict[str, Any] | None:
        """The recording another live node runs in the room: {"recordingId", "mode"}."""
        held = await self.redis.get(self._k("live", room, "rec"))
        entry = json.loads(held) if held else None
        if entry is None or entry["node"] == self.node or not await self.node_alive(entry):
            return None
        return {"recordingId": entry["recordingId"], "mode": entry["mode"]}

    async def put_waiting(self, room: str, public: dict[str, Any]) -> None:
        await self._put(room, "w", public)

    async def drop_waiting(self, room: str, participant_id: str) -> None:
        await self.redis.hdel(self._k("live", room, "w"), participant_id)

    async def waiting(self, room: str) -> list[dict[str, Any]]:
        """Who waits in the room's lobby on other nodes."""
        entries = map(json.loads, await self.redis.hvals(self._k("live", room, "w")))
        return [w for w in entries if w["node"] != self.node]

    async def get_breakouts(self, room: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._k("live", room, "b"))
        return json.loads(raw) if raw else None

    async def remote_state(self, room: str) -> tuple[list[dict], list[dict]]:
        """Participants and tracks that other nodes hold in this room."""
        people = await self.redis.hvals(self._k("live", room, "p"))
        tracks = await self.redis.hvals(self._k("live", room, "t"))
        return ([p for p in map(json.loads, people) if p["node"] != self.node],
                [t for t in map(json.loads, tracks) if t["node"] != self.node])

    async def end_entries(self, room: str, node: str, incarnation: str,
                          workers: list[str]) -> None:
        """A dead incarnation's participants and tracks leave the room (liveness.py); its
        placement goes."""
        await self._end(room, lambda entry: of_incarnation(entry, node, incarnation))
        for entry in await self._take(room, "w", lambda e: of_incarnation(e, node, incarnation)):
            await self.everywhere(room, {"t": "lobby", "op": "left",  # they wait no more
                                         "participantId": entry["id"]})
        people_key = self._k("live", room, "p")
        key = self._k("router", room)
        router = await self.redis.get(key)
        if router is None:
            return
        if worker_prefix(router) in workers:  # its media died with the node
            await self._swap(keys=[key], args=[router, ""])
        elif not await self.redis.hlen(people_key) and \
                await self._swap(keys=[key], args=[router, ""]):
            with contextlib.suppress(Exception):  # nobody is left: the Router goes
                await self.reach(router)
                await self.media.close_router(router)

    async def entries_of(self, room: str, identity: str) -> list[dict[str, Any]]:
        """The places other nodes hold (or held, and nobody has ended yet) in the room for
        this person."""
        people = map(json.loads, await self.redis.hvals(self._k("live", room, "p")))
        return [p for p in people if p.get("identity") == identity and p["node"] != self.node]

    async def node_alive(self, entry: dict[str, Any]) -> bool:
        return bool(entry.get("inc")) and await self.liveness.alive(entry["node"], entry["inc"])

    async def end_tracks_of(self, room: str, participant_id: str) -> None:
        """The tracks still listed for a participant whose place we take over: they leave
        (trackUnpublished everywhere, their producers close); the participant stays."""
        await self._end(room, lambda entry: entry.get("participantId") == participant_id)

    async def end_ghosts(self, room: str, identity: str, newcomer: str) -> None:
        """`newcomer` joins here: entries of the same person left by a node that is gone leave
        at once, so that nobody is listed twice (the grace period is for coming back, and
        they have); the newcomer, who never saw them, is not told."""
        ghosts = [p for p in map(json.loads, await self.redis.hvals(self._k("live", room, "p")))
                  if p.get("identity") == identity and p.get("node") != self.node and
                  p["id"] != newcomer and  # a place the newcomer took over is theirs
                  p.get("inc") and not await self.liveness.alive(p["node"], p["inc"])]
        if ghosts:
            gone = {p["id"] for p in ghosts}
            await self._end(room, lambda entry: entry.get("participantId", entry["id"]) in gone,
                            exclude=newcomer)

    async def _end(self, room: str, gone: Callable[[dict[str, Any]], bool],
                   exclude: str | None = None) -> None:
        """Tracks, then participants, that are `gone` leave the room's live state and are
        announced by whoever removed each from Redis: exactly once, however many try."""
        for track in await self._take(room, "t", gone):
            await self.everywhere(room, {"t": "track", "op": "remove", "trackId": track["id"]})
            await self.everywhere(room, {
                "t": "event", "event": "trackUnpublished", "exclude": exclude,
                "data": {"trackId": track["id"], "participantId": track["participantId"]},
                "group": track.get("group"), "media": True})
            # its media stops (the producer may live on a survivor's worker)
            with contextlib.suppress(Exception):
                await self.reach(track["producerId"])
                await self.media.close_producer(track["producerId"])
        for person in await self._take(room, "p", gone):
            await self.everywhere(room, {"t": "participant", "op": "remove",
                                         "participantId": person["id"]})
            await self.everywhere(room, {"t": "event", "event": "participantLeft",
                                         "data": {"participantId": person["id"]},
                                         "exclude": exclude})

    # ---- bus ----------------------------------------------------------------------------

    async def publish(self, room: str, message: dict[str, Any]) -> None:
        await self.redis.publish(self._k("bus", room), json.dumps({**message, "node": self.node}))

    async def everywhere(self, room: str, message: dict[str, Any]) -> None:
        """On the bus, and to this node's copy of the room (the bus skips our own)."""
        await self.publish(room, message)
        handler = self._handlers.get(room)
        if handler is not None:
            handler({**message, "node": self.node})

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


def worker_prefix(some_id: str) -> str:
    """The worker part of a media id ("aw0." of "aw0.r-1f2e")."""
    return some_id.split(".", 1)[0] + "."


def same_worker(one_id: str, other_id: str) -> bool:
    return worker_prefix(one_id) == worker_prefix(other_id)


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
