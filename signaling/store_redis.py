"""Redis implementation of the Store, for several signalling nodes sharing one deployment.

Keys (all under a prefix, default `ms:`): `room:<name>` hash (created, settings JSON),
`rooms` sorted set by creation time, `chat:<room>` list of JSON messages with `chatseq:<room>`
for ids, `notes:<room>` hash, `hands:<room>` sorted set by time. Notes are written with a
server-side Lua check of the version, so two nodes cannot overwrite each other's edits silently.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

from .store import NotesConflict

SET_NOTES = """
local v = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if v ~= tonumber(ARGV[1]) then
  return {0, v, redis.call('HGET', KEYS[1], 'text') or '',
          redis.call('HGET', KEYS[1], 'author') or '', redis.call('HGET', KEYS[1], 'ts') or '0'}
end
redis.call('HSET', KEYS[1], 'text', ARGV[2], 'version', v + 1, 'author', ARGV[3], 'ts', ARGV[4])
return {1, v + 1}
"""


class RedisStore:
    def __init__(self, url: str, prefix: str = "ms:") -> None:
        self.url = url
        self.prefix = prefix
        self.redis = aioredis.from_url(url, decode_responses=True)
        self._set_notes = self.redis.register_script(SET_NOTES)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def open(self) -> None:
        await self.redis.ping()

    async def create_room(self, name: str, settings: dict[str, Any] | None = None
                          ) -> tuple[dict[str, Any], bool]:
        now = time.time()
        created = await self.redis.hsetnx(self._k("room", name), "created", repr(now))
        if created:
            await self.redis.hset(self._k("room", name), "settings", json.dumps(settings or {}))
            await self.redis.zadd(self._k("rooms"), {name: now})
        room = await self.get_room(name)
        assert room is not None
        return room, bool(created)

    async def get_room(self, name: str) -> dict[str, Any] | None:
        data = await self.redis.hgetall(self._k("room", name))
        if not data:
            return None
        return {"name": name, "created": float(data["created"]),
                "settings": json.loads(data.get("settings") or "{}")}

    async def list_rooms(self) -> list[dict[str, Any]]:
        names = await self.redis.zrange(self._k("rooms"), 0, -1)
        rooms = [await self.get_room(n) for n in names]
        return [r for r in rooms if r is not None]

    async def add_chat(self, room: str, participant: str, name: str, text: str
                       ) -> dict[str, Any]:
        message = {"id": await self.redis.incr(self._k("chatseq", room)),
                   "participantId": participant, "name": name, "text": text,
                   "ts": int(time.time() * 1000)}
        await self.redis.rpush(self._k("chat", room), json.dumps(message))
        return message

    async def chat_history(self, room: str, limit: int = 200) -> list[dict[str, Any]]:
        items = await self.redis.lrange(self._k("chat", room), -limit, -1)
        return sorted((json.loads(i) for i in items), key=lambda m: m["id"])

    async def update_settings(self, room: str, changes: dict[str, Any]) -> dict[str, Any]:
        key = self._k("room", room)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:  # optimistic transaction: retry if another node wrote in between
                try:
                    await pipe.watch(key)
                    current = json.loads(await pipe.hget(key, "settings") or "{}")
                    settings = {**current, **changes}
                    pipe.multi()
                    pipe.hset(key, "settings", json.dumps(settings))
                    await pipe.execute()
                    return settings
                except aioredis.WatchError:
                    continue

    async def get_notes(self, room: str) -> dict[str, Any]:
        data = await self.redis.hgetall(self._k("notes", room))
        return {"text": data.get("text", ""), "version": int(data.get("version", 0)),
                "author": data.get("author", ""), "ts": int(data.get("ts", 0))}

    async def set_notes(self, room: str, text: str, base_version: int, author: str
                        ) -> dict[str, Any]:
        ts = int(time.time() * 1000)
        result = await self._set_notes(keys=[self._k("notes", room)],
                                       args=[base_version, text, author, ts])
        if int(result[0]) == 0:
            raise NotesConflict({"text": result[2], "version": int(result[1]),
                                 "author": result[3], "ts": int(result[4])})
        return {"text": text, "version": int(result[1]), "author": author, "ts": ts}

    async def set_hand(self, room: str, identity: str, raised: bool) -> None:
        key = self._k("hands", room)
        if raised:
            await self.redis.zadd(key, {identity: time.time()}, nx=True)
        else:
            await self.redis.zrem(key, identity)

    async def hands(self, room: str) -> list[str]:
        return await self.redis.zrange(self._k("hands", room), 0, -1)

    async def close(self) -> None:
        await self.redis.aclose()
