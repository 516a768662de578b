"""Which signalling nodes are alive, and the cleanup after one that is not (DESIGN.md section 7).

Each node runs under a fresh incarnation id and keeps `ms:node:<node>` = that id with an expiry
of `ttl` seconds, renewed every third of it. `ms:nodes` (node -> {"inc", "workers"}) lists every
incarnation not cleaned up yet; `ms:noderooms:<node>:<inc>` the rooms where it wrote live state or
placed a Router. Every node polls the registry: an incarnation whose key has expired (or was
replaced by a restart under the same name) is dead. Then, on each survivor at once, the rooms
whose media lived on its workers are dropped locally (their participants come back, 4503, and
the room gets a Router on a live worker); and one survivor (the first to claim
`ms:reap:<node>:<inc>`) waits the grace period and ends its participants: their tracks and
entries leave the room's live state and participantLeft / trackUnpublished go out once on the
room's bus. Each entry is removed with HDEL, and only the caller that removed it announces it,
so a restarted node and a survivor cleaning the same incarnation never announce a leave twice.
Nothing of this is on the media path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger(__name__)

# Removes a dead incarnation's workers and its registry entry, unless a newer incarnation of
# the same node (a restart) has replaced them meanwhile.
FORGET_INCARNATION = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v or cjson.decode(v).inc ~= ARGV[2] then return 0 end
for _, w in ipairs(cjson.decode(v).workers) do
  local reg = redis.call('HGET', KEYS[2], w)
  if reg and cjson.decode(reg).inc == ARGV[2] then redis.call('HDEL', KEYS[2], w) end
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""

NodeLost = Callable[[list[str]], None]  # the dead incarnation's worker prefixes


class Liveness:
    def __init__(self, cluster: Cluster, ttl: float, grace: float) -> None:
        self.cluster = cluster
        self.ttl = ttl
        self.grace = grace
        self.incarnation = secrets.token_hex(6)
        self._forget = cluster.redis.register_script(FORGET_INCARNATION)
        self._lost_listeners: list[NodeLost] = []
        self._expired_listeners: list[Callable[[], None]] = []
        self._known: dict[str, dict[str, Any]] = {}  # node -> its registry entry, last look
        self._noticed: set[str] = set()  # "<node>:<inc>" found gone, handled here already
        self._reaping: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self._workers: dict[str, str] = {}  # ours: id prefix -> RPC socket

    def _k(self, *parts: str) -> str:
        return self.cluster._k(*parts)

    def on_node_lost(self, listener: NodeLost) -> None:
        self._lost_listeners.append(listener)

    def on_expired(self, listener: Callable[[], None]) -> None:
        """We were silent past our TTL (a frozen host) and registered again: others may
        have ended our participants meanwhile."""
        self._expired_listeners.append(listener)

    @property
    def poll_interval(self) -> float:
        return min(1.0, self.ttl / 3)

    # ---- our own registration -------------------------------------------------------------

    async def register(self, workers: dict[str, str]) -> None:
        """Before serving: clean up what our previous incarnation left (a restart under the
        same name inherits no ghosts), then announce ourselves and start renewing."""
        redis, node = self.cluster.redis, self.cluster.node
        await self._wait_for_predecessor()
        previous = await redis.hget(self._k("nodes"), node)
        if previous is not None:
            await self.reap(node, json.loads(previous)["inc"])
        self._workers = workers
        await self._announce()
        self._tasks = [asyncio.create_task(self._renew()), asyncio.create_task(self._watch())]

    async def _announce(self) -> None:
        redis, node = self.cluster.redis, self.cluster.node
        await redis.set(self._k("node", node), self.incarnation, px=int(self.ttl * 1000))
        await redis.hset(self._k("nodes"), node, json.dumps(
            {"inc": self.incarnation, "workers": list(self._workers)}))
        await redis.hset(self._k("workers"), mapping={
            prefix: json.dumps({"path": path, "node": node, "inc": self.incarnation})
            for prefix, path in self._workers.items()})

    async def _wait_for_predecessor(self) -> None:
        """A key of our name still there is a killed predecessor's, which expires within
        `ttl`, or another node running under our name, which renews it: refuse that."""
        key = self._k("node", self.cluster.node)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ttl + 2 * self.poll_interval
        while await self.cluster.redis.exists(key):
            if loop.time() > deadline:
                raise RuntimeError(f"another node named {self.cluster.node!r} is running "
                                   "on this Redis")
            await asyncio.sleep(self.poll_interval)

    async def _renew(self) -> None:
        key = self._k("node", self.cluster.node)
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                renewed = await self.cluster.redis.set(key, self.incarnation, xx=True,
                                                       px=int(self.ttl * 1000))
                if not renewed:
                    # We were silent longer than the TTL: others may have ended our
                    # participants and unregistered our workers. Say so; register again.
                    log.error("node %s: registration had expired; registering again",
                              self.cluster.node)
                    await self._announce()
                    for listener in self._expired_listeners:
                        listener()
            except Exception:
                log.exception("node %s: heartbeat failed", self.cluster.node)

    async def stop(self, handed_over: bool = False) -> None:
        """A clean stop: nothing of ours stays registered (our sessions were closed), unless
        our participants were `handed_over` (a drain): then our key goes and our registry
        entry stays, so that survivors end, after the grace period, those who did not come
        back through another node (as for a node that died)."""
        for task in [*self._tasks, *self._reaping.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._reaping.values(), return_exceptions=True)
        redis, node = self.cluster.redis, self.cluster.node
        if await redis.get(self._k("node", node)) == self.incarnation:
            await redis.delete(self._k("node", node))
        if not handed_over:
            await self.reap(node, self.incarnation)

    # ---- others ---------------------------------------------------------------------------

    async def alive(self, node: str, incarnation: str) -> bool:
        return await self.cluster.redis.get(self._k("node", node)) == incarnation

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self._check()
            except Exception:
                log.exception("node %s: liveness check failed", self.cluster.node)

    async def _check(self) -> None:
        redis = self.cluster.redis
        registry = {node: json.loads(v) for node, v in
                    (await redis.hgetall(self._k("nodes"))).items()}
        for node in self._known.keys() - registry.keys():  # stopped and cleaned up
            await self._lost(node, self._known.pop(node), "stopped")
        if not registry:
            return
        names = list(registry)
        current = await redis.mget([self._k("node", n) for n in names])
        for node, inc_now in zip(names, current, strict=True):
            entry = registry[node]
            known = self._known.get(node)
            if known is not None and known["inc"] != entry["inc"]:
                await self._lost(node, known)  # restarted between two looks: it cleans up
            self._known[node] = entry
            if inc_now == entry["inc"] or entry["inc"] == self.incarnation:
                self._noticed.discard(f"{node}:{entry['inc']}")  # (back from a freeze)
                continue
            await self._lost(node, entry)
            tag = f"{node}:{entry['inc']}"
            claimed = tag in self._reaping or await redis.set(
                self._k("reap", node, entry["inc"]), self.cluster.node, nx=True,
                px=int((self.grace + 60) * 1000))
            if claimed and tag not in self._reaping:
                self._reaping[tag] = asyncio.create_task(self._reap_later(node, entry["inc"]))

    async def _lost(self, node: str, entry: dict[str, Any], how: str = "is gone") -> None:
        """What every survivor does at once: no more calls to the dead workers, and the
        rooms whose media lived there are left to come back (app.py)."""
        tag = f"{node}:{entry['inc']}"
        if tag in self._noticed or entry["inc"] == self.incarnation:
            return
        self._noticed.add(tag)
        log.warning("node %s (incarnation %s) %s", node, entry["inc"], how)
        await self.cluster.forget_workers(entry["workers"])
        for listener in self._lost_listeners:
            listener(entry["workers"])

    async def _reap_later(self, node: str, incarnation: str) -> None:
        await asyncio.sleep(self.grace)  # as on one node: a dropped participant's place
        tag = f"{node}:{incarnation}"
        try:
            if await self.alive(node, incarnation):
                # it was frozen, not dead, and registered again in time: its participants
                # stay (a later death is noticed anew)
                log.warning("node %s (incarnation %s) is back", node, incarnation)
                await self.cluster.redis.delete(self._k("reap", node, incarnation))
                return
            await self.reap(node, incarnation)
        except Exception:
            log.exception("cleanup of node %s failed", node)
        finally:
            self._reaping.pop(tag, None)

    async def reap(self, node: str, incarnation: str) -> None:
        """End what incarnation `incarnation` of `node` left in every room it touched."""
        redis = self.cluster.redis
        rooms_key = self._k("noderooms", node, incarnation)
        registered = await redis.hget(self._k("nodes"), node)
        workers = json.loads(registered)["workers"] if registered else []
        for room in await redis.smembers(rooms_key):
            await self.cluster.end_entries(room, node, incarnation, workers)
        await self._forget(keys=[self._k("nodes"), self._k("workers")],
                           args=[node, incarnation])
        await redis.delete(rooms_key)
        log.info("node %s (incarnation %s): cleaned up", node, incarnation)


def of_incarnation(entry: dict[str, Any], node: str, incarnation: str) -> bool:
    return entry.get("node") == node and entry.get("inc") == incarnation
