"""The analytics event log: who joined, left, spoke, chatted, voted, watched (docs/analytics.md).

Every event is appended with its time (epoch seconds), kind, room, session (the participant
id, kept across reconnects; a player view's id for player events), identity, name, role and
the node that wrote it, plus a small `data` object. Storage: one SQLite file
`<data-dir>/analytics.sqlite3` (the embedded default), or Redis Streams (`ms:events:room:<room>`,
`ms:events:rec:<recording>`) when the store is Redis, so several nodes write one log.

Writing never blocks nor breaks a meeting: `emit` only appends to a bounded in-memory queue
(nothing on the media packet path ever calls it); a background task writes batches. A failed
write is logged and counted (`failed`), a full queue drops the event and counts it
(`dropped`); neither raises into the caller. Events older than the retention are deleted once
an hour.

The hooks the signalling modules call (one line each) are the functions at the end of this
module; they find the log through the RoomRegistry (`rooms.events`) and do nothing without one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import schemas
from .methods import ALL, method
from .sqlite_file import SqliteFile
from .view_summaries import Summaries, ViewSummary, merged

if TYPE_CHECKING:
    from .participant import Participant
    from .rooms import Room, RoomRegistry, Track

log = logging.getLogger(__name__)

MAX_QUEUE = 100_000  # events waiting to be written; beyond, new ones are dropped (counted)
BATCH = 500
PURGE_EVERY = 3600.0  # seconds between retention sweeps
# entries per XRANGE: one reply is parsed within the client's socket timeout (redis-py: 5 s),
# which 10,000 player reports could outlast on a loaded machine
XRANGE_CHUNK = 1000


@dataclass(slots=True)
class Event:
    at: float  # seconds since the epoch
    kind: str
    room: str = ""
    session: str = ""  # participant id (a reconnect keeps it); a player view's id
    identity: str = ""
    name: str = ""
    role: str = ""
    recording: str = ""
    node: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def row(self) -> tuple:
        return (self.at, self.kind, self.room, self.session, self.identity, self.name,
                self.role, self.recording, self.node, json.dumps(self.data, separators=(",", ":")))


COLUMNS = ("at", "kind", "room", "session", "identity", "name", "role", "recording", "node",
           "data")


class Backend(Protocol):
    async def open(self) -> None: ...
    async def write(self, events: list[Event]) -> None: ...
    async def read(self, room: str | None = None, recording: str | None = None) -> list[Event]:
        """By time: a room's own events (`room` alone: not its recordings' player events), or
        a recording's player events."""
    async def views(self, recording: str) -> dict[str, ViewSummary]:
        """The recording's per-view summaries (view_summaries.py), every node's merged."""
    async def purge(self, before: float) -> int: ...
    async def claim(self, key: str) -> bool:
        """True for the first caller of `key` on any node (the session.ended webhook)."""
    async def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    room TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL DEFAULT '',
    identity TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL DEFAULT '',
    role TEXT NOT NULL DEFAULT '',
    recording TEXT NOT NULL DEFAULT '',
    node TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_room_recording ON events(room, recording, at);
DROP INDEX IF EXISTS events_room;
CREATE INDEX IF NOT EXISTS events_recording ON events(recording, at);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
CREATE TABLE IF NOT EXISTS view_summaries (
    recording TEXT NOT NULL,
    view TEXT NOT NULL,
    node TEXT NOT NULL,
    last REAL NOT NULL,
    summary BLOB NOT NULL,
    PRIMARY KEY (recording, view, node)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS view_summaries_last ON view_summaries(last);
"""
SUMMARIES_VERSION = 1  # PRAGMA user_version once the summaries of older reports are built
UPSERT = ("INSERT INTO view_summaries(recording, view, node, last, summary) VALUES "
          "(?, ?, ?, ?, ?) ON CONFLICT(recording, view, node) DO UPDATE SET "
          "last = excluded.last, summary = excluded.summary")


def _plays(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "play" and e.recording]


def _event(values: Iterable[Any]) -> Event:
    at, kind, room, session, identity, name, role, recording, node, data = values
    return Event(float(at), kind, room, session, identity, name, role, recording, node,
                 json.loads(data or "{}"))


class SqliteEvents(SqliteFile):
    """A SQLite file of its own, written on its own thread (the store's is never held up)."""

    SCHEMAS = (SCHEMA,)

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "events")
        self._claimed: set[str] = set()
        self.summaries = Summaries()  # touched on the thread only

    def _conn(self) -> sqlite3.Connection:
        fresh = self._db is None
        db = super()._conn()
        if fresh and db.execute("PRAGMA user_version").fetchone()[0] < SUMMARIES_VERSION:
            self._backfill(db)
        return db

    def _backfill(self, db: sqlite3.Connection) -> None:
        """Once per file: the summaries of the reports written before there were any."""
        built: dict[tuple[str, str, str], ViewSummary] = {}
        with db:
            rows = db.execute("SELECT at, recording, session, node, identity, data FROM events "
                              "WHERE kind = 'play' AND recording != '' ORDER BY at, id")
            for at, recording, session, node, identity, data in rows:
                summary = built.setdefault((recording, session, node), ViewSummary())
                summary.add(float(at), identity, json.loads(data or "{}"))
            db.execute("DELETE FROM view_summaries")
            db.executemany(UPSERT, [(*k, s.last, s.dump()) for k, s in built.items()])
            db.execute(f"PRAGMA user_version = {SUMMARIES_VERSION}")

    async def write(self, events: list[Event]) -> None:
        plays = _plays(events)

        def work() -> None:
            db = self._conn()
            for k in self.summaries.missing(plays):
                row = db.execute("SELECT summary FROM view_summaries WHERE recording = ? AND "
                                 "view = ? AND node = ?", k).fetchone()
                self.summaries.put(k, None if row is None else row[0])
            try:
                with db:  # the reports and their views' summaries in one transaction
                    db.executemany(f"INSERT INTO events({', '.join(COLUMNS)}) VALUES "
                                   f"({', '.join('?' * len(COLUMNS))})",
                                   [e.row() for e in events])
                    if plays:
                        db.executemany(UPSERT, [(*k, last, blob) for k, (last, blob)
                                                in self.summaries.apply(plays).items()])
            except BaseException:
                self.summaries.forget(self.summaries.key(e) for e in plays)
                raise

        await self._run(work)

    async def views(self, recording: str) -> dict[str, ViewSummary]:
        def work() -> dict[str, ViewSummary]:
            return merged(self._conn().execute(
                "SELECT view, summary FROM view_summaries WHERE recording = ?", (recording,)))

        return await self._run(work)

    async def read(self, room: str | None = None, recording: str | None = None) -> list[Event]:
        def work() -> list[Event]:
            where, args = [], []
            # a room alone: its own events, not its recordings' viewers (as with Redis,
            # which keeps those in streams of their own), and the nodes' starts (room '')
            of = "" if recording is None and room is not None else recording
            if room is not None and of == "":
                where.append("room IN (?, '')")
                args.append(room)
            elif room is not None:
                where.append("room = ?")
                args.append(room)
            if of is not None:
                where.append("recording = ?")
                args.append(of)
            sql = f"SELECT {', '.join(COLUMNS)} FROM events"
            if where:
                sql += " WHERE " + " AND ".join(where)
            return [_event(r) for r in self._conn().execute(sql + " ORDER BY at, id", args)]

        return await self._run(work)

    async def purge(self, before: float) -> int:
        def work() -> int:
            db = self._conn()
            with db:
                db.execute("DELETE FROM view_summaries WHERE last < ?", (before,))
                self.summaries.forget()
                return db.execute("DELETE FROM events WHERE at < ?", (before,)).rowcount

        return await self._run(work)

    async def claim(self, key: str) -> bool:
        # one node per SQLite file: this process is the only claimant
        if key in self._claimed:
            return False
        self._claimed.add(key)
        return True


class RedisEvents:
    """Redis Streams, one per room (`<prefix>events:room:<room>`) and one per recording for the
    player's events (`<prefix>events:rec:<id>`); a set lists the streams for the retention
    sweep (XTRIM MINID: stream ids are milliseconds). The per-view summaries: a hash per
    recording (`<prefix>views:rec:<id>`, field `<view>/<node>`, base64 of the stored form) and
    a sorted set of them by their last report (`<prefix>views:last`) for the sweep. `owner`:
    the name this node's partial summaries go under (its --node; without one a random name,
    so that two nodes left unnamed never write each other's)."""

    def __init__(self, url: str, prefix: str = "ms:", owner: str = "") -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(url, decode_responses=True)
        self.prefix = prefix
        self.summaries = Summaries(owner=owner or secrets.token_hex(4))

    def _views(self, recording: str) -> str:
        return f"{self.prefix}views:rec:{recording}"

    def _key(self, e: Event) -> str:
        return f"{self.prefix}events:rec:{e.recording}" if e.recording else \
            f"{self.prefix}events:room:{e.room}"

    async def open(self) -> None:
        await self.redis.ping()

    async def write(self, events: list[Event]) -> None:
        plays = _plays(events)
        if missing := self.summaries.missing(plays):
            async with self.redis.pipeline(transaction=False) as pipe:
                for rec, view, node in missing:
                    pipe.hget(self._views(rec), f"{view}/{node}")
                for k, got in zip(missing, await pipe.execute(), strict=True):
                    self.summaries.put(k, None if got is None else base64.b64decode(got))
        try:
            # MULTI: the reports and their views' summaries together, or neither
            async with self.redis.pipeline(transaction=bool(plays)) as pipe:
                streams = set()
                for e in events:
                    stream = self._key(e)
                    streams.add(stream)
                    # one field, the row as JSON: an entry of 21 strings costs redis-py's
                    # parser (pure Python) ~7 times as much to read back
                    pipe.xadd(stream, {"e": json.dumps(e.row(), separators=(",", ":"))})
                pipe.sadd(f"{self.prefix}events:streams", *streams)
                for (rec, view, node), (last, blob) in self.summaries.apply(plays).items():
                    pipe.hset(self._views(rec), f"{view}/{node}", base64.b64encode(blob))
                    pipe.zadd(f"{self.prefix}views:last", {f"{rec}/{view}/{node}": last})
                await pipe.execute()
        except BaseException:
            self.summaries.forget(self.summaries.key(e) for e in plays)
            raise

    async def views(self, recording: str) -> dict[str, ViewSummary]:
        stored = await self.redis.hgetall(self._views(recording))
        return merged((field.rsplit("/", 1)[0], base64.b64decode(blob))
                      for field, blob in stored.items())

    async def read(self, room: str | None = None, recording: str | None = None) -> list[Event]:
        if recording is not None:
            events = await self._range(f"{self.prefix}events:rec:{recording}")
        elif room is not None:
            # the room's stream and the nodes' starts (room '': what a node had open ended)
            events = await self._range(f"{self.prefix}events:room:{room}")
            if room:
                events += await self._range(f"{self.prefix}events:room:")
        else:
            raise ValueError("a room or a recording")
        if room is not None and recording is not None:
            events = [e for e in events if e.room == room]
        events.sort(key=lambda e: e.at)
        return events

    async def _range(self, key: str) -> list[Event]:
        events = []
        start = "-"
        while True:
            chunk = await self.redis.xrange(key, start, "+", count=XRANGE_CHUNK)
            for _id, fields in chunk:
                packed = fields.get("e")
                events.append(_event(json.loads(packed) if packed is not None else
                                     (fields.get(c, "") for c in COLUMNS)))  # before 2026-12
            if len(chunk) < XRANGE_CHUNK:
                break
            last = chunk[-1][0]
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"
        return events

    async def claim(self, key: str) -> bool:
        # SET NX is atomic across nodes; kept a week (longer than any retry of the webhook)
        return bool(await self.redis.set(f"{self.prefix}claim:{key}", "1", nx=True,
                                         ex=7 * 86400))

    async def purge(self, before: float) -> int:
        removed = 0
        for stream in await self.redis.smembers(f"{self.prefix}events:streams"):
            removed += await self.redis.xtrim(stream, minid=str(int(before * 1000)))
        index = f"{self.prefix}views:last"
        old = await self.redis.zrangebyscore(index, "-inf", f"({before}")
        if old:
            async with self.redis.pipeline(transaction=False) as pipe:
                for member in old:
                    rec, view, node = member.split("/")
                    pipe.hdel(self._views(rec), f"{view}/{node}")
                pipe.zrem(index, *old)
                await pipe.execute()
            self.summaries.forget()
        return removed

    async def close(self) -> None:
        await self.redis.aclose()


class EventLog:
    def __init__(self, backend: Backend, node: str = "", retention_days: float = 365.0,
                 hash_key: str = "", max_queue: int = MAX_QUEUE) -> None:
        self.backend = backend
        self.node = node
        self.retention_days = retention_days
        self.hash_key = hash_key  # non-empty: identities are stored hashed, names not at all
        self.max_queue = max_queue
        self.queue: deque[Event] = deque()
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task] = []
        self._background: set[asyncio.Task] = set()
        self._last_error_logged = 0.0
        # (room, router) -> the identity this node last logged as speaking there
        self.speakers: dict[tuple[str, str], str] = {}
        # what hooks into sessions (analytics_api.py sets it): called with the room's name
        # and the time whenever the room empties on this node
        self.on_room_empty: Any = None

    # ---- writing -------------------------------------------------------------------------

    def who(self, identity: str) -> str:
        """The identity as stored: itself, or with hashing on a keyed hash of it."""
        if not self.hash_key or not identity:
            return identity
        digest = hmac.new(self.hash_key.encode(), identity.encode(), hashlib.sha256)
        return "h-" + digest.hexdigest()[:24]

    def emit(self, kind: str, room: str = "", *, session: str = "", identity: str = "",
             name: str = "", role: str = "", recording: str = "", at: float | None = None,
             **data: Any) -> None:
        """Append an event; never blocks, never raises."""
        try:
            if len(self.queue) >= self.max_queue:
                self.dropped += 1
                return
            if self.hash_key:
                identity, name = self.who(identity), ""
            self.queue.append(Event(time.time() if at is None else at, kind, room, session,
                                    identity, name, role, recording, self.node, data))
            if self._wake is not None:
                self._wake.set()
        except Exception:  # never into a meeting
            self.dropped += 1
            log.exception("analytics event %s not queued", kind)

    async def flush(self) -> None:
        """Write everything queued so far (readers call this first)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while self.queue:
                batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
                try:
                    await self.backend.write(batch)
                    self.written += len(batch)
                except Exception as exc:
                    self.failed += len(batch)
                    now = time.monotonic()
                    if now - self._last_error_logged > 10:
                        self._last_error_logged = now
                        log.warning("analytics: %d events not written (%r); %d so far",
                                    len(batch), exc, self.failed)

    async def read(self, room: str | None = None, recording: str | None = None) -> list[Event]:
        await self.flush()
        return await self.backend.read(room=room, recording=recording)

    async def views(self, recording: str) -> dict[str, ViewSummary]:
        """The recording's per-view summaries (view id -> summary), this node's reports
        written first."""
        await self.flush()
        return await self.backend.views(recording)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for the background work in flight (session ends; shutdown and tests)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    # ---- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        try:
            await self.backend.open()
        except Exception:
            log.exception("analytics: the event log could not be opened; events are counted "
                          "as failed")
        self.emit("node.start")
        self._tasks = [asyncio.create_task(self._writer()),
                       asyncio.create_task(self._purger())]

    async def _writer(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def _purger(self) -> None:
        await asyncio.sleep(60)  # the first sweep a minute after the start
        while True:
            with contextlib.suppress(Exception):
                await self.purge()
            await asyncio.sleep(PURGE_EVERY)

    async def purge(self, now: float | None = None) -> int:
        if self.retention_days <= 0:  # 0: kept for ever
            return 0
        before = (time.time() if now is None else now) - self.retention_days * 86400
        try:
            return await self.backend.purge(before)
        except Exception:
            log.exception("analytics: retention sweep failed")
            return 0

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.drain()
        await self.flush()
        with contextlib.suppress(Exception):
            await self.backend.close()

    def speaker(self, room: str, router_id: str, identity: str | None) -> None:
        """The active speaker of one Router changed (speaking.py): the previous local
        speaker's turn stops, the new one's starts. Each node logs its own participants, as
        SpeakingLog does."""
        key = (room, router_id)
        previous = self.speakers.pop(key, None)
        if previous is not None:
            self.emit("speak.stop", room, identity=previous, router=router_id)
        if identity is not None:
            self.speakers[key] = identity
            self.emit("speak.start", room, identity=identity, router=router_id)

    def room_empty(self, room: Room) -> None:
        """The last participant of this node left the room (rooms.release_if_empty). Whether
        the session ended is the shared log's to say, not this node's view of the others
        (`room.remote` lags the bus): analytics_api.session_ended decides."""
        for key in [k for k in self.speakers if k[0] == room.name]:
            self.emit("speak.stop", room.name, identity=self.speakers.pop(key), router=key[1])
        if self.on_room_empty is not None:
            self.on_room_empty(room.name, time.time())

    def counters(self) -> dict[str, int]:
        return {"written": self.written, "dropped": self.dropped, "failed": self.failed,
                "queued": len(self.queue)}


def as_dict(e: Event) -> dict[str, Any]:
    return asdict(e)


# ---- hooks (one line each in the signalling modules) ------------------------------------------


def _log(rooms: RoomRegistry | None) -> EventLog | None:
    return getattr(rooms, "events", None)


def note(p: Participant, kind: str, **data: Any) -> None:
    """An event of participant `p` in its room (chat, question, vote, hand, move...)."""
    events = _log(p.rooms)
    if events is not None and p.room is not None:
        events.emit(kind, p.room.name, session=p.id, identity=p.identity, name=p.name,
                    role=p.role, **data)


def track(p: Participant, op: str, t: Track) -> None:
    """A track published, unpublished or muted (camera time comes from these)."""
    note(p, f"track.{op}", track=t.id, media=t.kind, source=t.source, muted=t.muted)


def room_event(rooms: RoomRegistry | None, room: str, kind: str, **data: Any) -> None:
    """An event of a room that is nobody's (recording, token issued, live)."""
    events = _log(rooms)
    if events is not None:
        events.emit(kind, room, **data)


def moved(p: Participant, room: Room, group: str | None) -> None:
    """A breakout move (media_session.move_to): the group's id and name (None: main room)."""
    found = room.breakouts.groups.get(group) if group is not None else None
    note(p, "move", group=group, groupName=found.name if found is not None else None)




@method("setVisibility", ALL)
async def set_visibility(p: Participant, params: schemas.SetVisibility) -> dict[str, Any]:
    """The client's page became visible or hidden (document.visibilityState): visibleSeconds."""
    p.room_or_fail()
    note(p, "visibility", visible=params.visible)
    return {}
