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
from .store_interaction import (
    AlreadyVoted,
    NotFound,
    NotOpen,
    poll_view,
    question_order,
    stored_id,
)

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

    # ---- Q&A: q:<room>:<id> hash, qvotes:<room>:<id> set, qs:<room> list of ids ----------

    async def _question(self, room: str, qid: int) -> dict[str, Any]:
        stored_id("question", qid)
        data = await self.redis.hgetall(self._k("q", room, str(qid)))
        if not data:
            raise NotFound("no such question")
        votes = await self.redis.scard(self._k("qvotes", room, str(qid)))
        return {"id": qid, "text": data["text"], "name": data["name"],
                "participantId": data["participant"], "state": data["state"],
                "ts": int(data["ts"]), "votes": votes}

    async def add_question(self, room: str, participant: str, name: str, text: str
                           ) -> dict[str, Any]:
        qid = await self.redis.incr(self._k("qseq", room))
        await self.redis.hset(self._k("q", room, str(qid)), mapping={
            "text": text, "name": name, "participant": participant, "state": "open",
            "ts": int(time.time() * 1000)})
        await self.redis.rpush(self._k("qs", room), qid)
        return await self._question(room, qid)

    async def upvote_question(self, room: str, qid: int, identity: str) -> dict[str, Any]:
        await self._question(room, qid)
        if not await self.redis.sadd(self._k("qvotes", room, str(qid)), identity):
            raise AlreadyVoted("already voted")
        return await self._question(room, qid)

    async def set_question_state(self, room: str, qid: int, state: str) -> dict[str, Any]:
        await self._question(room, qid)
        await self.redis.hset(self._k("q", room, str(qid)), "state", state)
        return await self._question(room, qid)

    async def questions(self, room: str) -> list[dict[str, Any]]:
        ids = await self.redis.lrange(self._k("qs", room), 0, -1)
        return sorted([await self._question(room, int(i)) for i in ids], key=question_order)

    # ---- polls: poll:<room>:<id> hash, pvotes:<room>:<id> hash identity -> option ---------

    async def _poll(self, room: str, pid: int) -> dict[str, Any]:
        stored_id("poll", pid)
        data = await self.redis.hgetall(self._k("poll", room, str(pid)))
        if not data:
            raise NotFound("no such poll")
        choices = [int(v) for v in await self.redis.hvals(self._k("pvotes", room, str(pid)))]
        return poll_view(pid, data["question"], json.loads(data["options"]), data["state"],
                         int(data["ts"]), choices)

    async def create_poll(self, room: str, question: str, options: list[str]
                          ) -> dict[str, Any]:
        pid = await self.redis.incr(self._k("pseq", room))
        await self.redis.hset(self._k("poll", room, str(pid)), mapping={
            "question": question, "options": json.dumps(options), "state": "draft",
            "ts": int(time.time() * 1000)})
        await self.redis.rpush(self._k("polls", room), pid)
        return await self._poll(room, pid)

    async def set_poll_state(self, room: str, pid: int, state: str) -> dict[str, Any]:
        await self._poll(room, pid)
        await self.redis.hset(self._k("poll", room, str(pid)), "state", state)
        return await self._poll(room, pid)

    async def vote_poll(self, room: str, pid: int, identity: str, option: int
                        ) -> dict[str, Any]:
        poll = await self._poll(room, pid)
        if poll["state"] != "open":
            raise NotOpen("the poll is not open")
        if not 0 <= option < len(poll["options"]):
            raise NotFound("no such option")
        if not await self.redis.hsetnx(self._k("pvotes", room, str(pid)), identity, option):
            raise AlreadyVoted("already voted")
        return await self._poll(room, pid)

    async def polls(self, room: str) -> list[dict[str, Any]]:
        ids = await self.redis.lrange(self._k("polls", room), 0, -1)
        return [await self._poll(room, int(i)) for i in ids]

    # ---- recordings index: rec:<id> JSON, recs:<room> sorted set by creation time -------
    # and chapter marks: recch:<id> list of JSON {at, title}, in the order noted

    async def put_recording(self, recording: dict[str, Any]) -> None:
        await self.redis.set(self._k("rec", recording["id"]), json.dumps(recording))
        await self.redis.zadd(self._k("recs", recording["room"]), {recording["id"]: time.time()},
                              nx=True)

    async def get_recording(self, recording_id: str) -> dict[str, Any] | None:
        data = await self.redis.get(self._k("rec", recording_id))
        return json.loads(data) if data else None

    async def list_recordings(self, room: str) -> list[dict[str, Any]]:
        ids = await self.redis.zrange(self._k("recs", room), 0, -1)
        found = [await self.get_recording(i) for i in ids]
        return [r for r in found if r is not None]

    async def add_recording_chapter(self, recording_id: str, at: float, title: str) -> None:
        await self.redis.rpush(self._k("recch", recording_id),
                               json.dumps({"at": at, "title": title}))

    async def recording_chapters(self, recording_id: str) -> list[dict[str, Any]]:
        items = await self.redis.lrange(self._k("recch", recording_id), 0, -1)
        return [json.loads(i) for i in items]

    async def close(self) -> None:
        await self.redis.aclose()
