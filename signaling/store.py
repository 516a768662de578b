"""Room state that outlives a process: rooms and their chat history.

`Store` is the interface; `SqliteStore` the embedded default (one file under the data
directory). Calls are async and run on one worker thread, so the event loop never waits on
the disk.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Protocol

from .sqlite_file import SqliteFile
from .store_interaction import SCHEMA as INTERACTION_SCHEMA
from .store_interaction import AlreadyVoted, NotFound, NotOpen, SqliteInteraction

__all__ = ["Store", "SqliteStore", "NotesConflict", "AlreadyVoted", "NotFound", "NotOpen"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS chat (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL REFERENCES rooms(name),
    participant TEXT NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chat_room ON chat(room, id);
CREATE TABLE IF NOT EXISTS notes (
    room TEXT PRIMARY KEY REFERENCES rooms(name),
    text TEXT NOT NULL,
    version INTEGER NOT NULL,
    author TEXT NOT NULL,
    ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    created REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS recording_chapters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recording TEXT NOT NULL,
    at REAL NOT NULL,
    title TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recording_chapters_rec ON recording_chapters(recording, id);
CREATE TABLE IF NOT EXISTS hands (
    room TEXT NOT NULL REFERENCES rooms(name),
    identity TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (room, identity)
);
"""


class NotesConflict(Exception):
    """The notes changed since the version the editor started from; nothing was written."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__("notes were changed by someone else")
        self.current = current


class Store(Protocol):
    async def open(self) -> None: ...
    async def create_room(self, name: str, settings: dict[str, Any] | None = None
                          ) -> tuple[dict[str, Any], bool]: ...
    async def get_room(self, name: str) -> dict[str, Any] | None: ...
    async def list_rooms(self) -> list[dict[str, Any]]: ...
    async def add_chat(self, room: str, participant: str, name: str, text: str
                       ) -> dict[str, Any]: ...
    async def chat_history(self, room: str, limit: int = 200) -> list[dict[str, Any]]: ...
    async def update_settings(self, room: str, changes: dict[str, Any]) -> dict[str, Any]: ...
    async def get_notes(self, room: str) -> dict[str, Any]: ...
    async def set_notes(self, room: str, text: str, base_version: int, author: str
                        ) -> dict[str, Any]: ...
    async def set_hand(self, room: str, identity: str, raised: bool) -> None: ...
    async def hands(self, room: str) -> list[str]: ...
    async def add_question(self, room: str, participant: str, name: str, text: str
                           ) -> dict[str, Any]: ...
    async def upvote_question(self, room: str, qid: int, identity: str) -> dict[str, Any]: ...
    async def set_question_state(self, room: str, qid: int, state: str) -> dict[str, Any]: ...
    async def questions(self, room: str) -> list[dict[str, Any]]: ...
    async def create_poll(self, room: str, question: str, options: list[str]
                          ) -> dict[str, Any]: ...
    async def set_poll_state(self, room: str, pid: int, state: str) -> dict[str, Any]: ...
    async def vote_poll(self, room: str, pid: int, identity: str, option: int
                        ) -> dict[str, Any]: ...
    async def polls(self, room: str) -> list[dict[str, Any]]: ...
    async def put_recording(self, recording: dict[str, Any]) -> None: ...
    async def get_recording(self, recording_id: str) -> dict[str, Any] | None: ...
    async def list_recordings(self, room: str) -> list[dict[str, Any]]: ...
    async def add_recording_chapter(self, recording_id: str, at: float, title: str
                                    ) -> None: ...
    async def recording_chapters(self, recording_id: str) -> list[dict[str, Any]]: ...
    async def close(self) -> None: ...


class SqliteStore(SqliteFile, SqliteInteraction):
    SCHEMAS = (SCHEMA, INTERACTION_SCHEMA)
    ROWS = sqlite3.Row

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "sqlite")

    async def create_room(self, name: str, settings: dict[str, Any] | None = None
                          ) -> tuple[dict[str, Any], bool]:
        def work() -> tuple[dict[str, Any], bool]:
            db = self._conn()
            with db:
                cur = db.execute(
                    "INSERT OR IGNORE INTO rooms(name, created, settings) VALUES (?, ?, ?)",
                    (name, time.time(), json.dumps(settings or {})))
            row = db.execute("SELECT * FROM rooms WHERE name = ?", (name,)).fetchone()
            return _room(row), cur.rowcount == 1

        return await self._run(work)

    async def get_room(self, name: str) -> dict[str, Any] | None:
        def work() -> dict[str, Any] | None:
            row = self._conn().execute("SELECT * FROM rooms WHERE name = ?", (name,)).fetchone()
            return _room(row) if row else None

        return await self._run(work)

    async def list_rooms(self) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            rows = self._conn().execute("SELECT * FROM rooms ORDER BY created").fetchall()
            return [_room(r) for r in rows]

        return await self._run(work)

    async def add_chat(self, room: str, participant: str, name: str, text: str
                       ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            ts = int(time.time() * 1000)
            with db:
                cur = db.execute(
                    "INSERT INTO chat(room, participant, name, text, ts) VALUES (?, ?, ?, ?, ?)",
                    (room, participant, name, text, ts))
            return {"id": cur.lastrowid, "participantId": participant, "name": name,
                    "text": text, "ts": ts}

        return await self._run(work)

    async def chat_history(self, room: str, limit: int = 200) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            rows = self._conn().execute(
                "SELECT * FROM (SELECT * FROM chat WHERE room = ? ORDER BY id DESC LIMIT ?) "
                "ORDER BY id", (room, limit)).fetchall()
            return [{"id": r["id"], "participantId": r["participant"], "name": r["name"],
                     "text": r["text"], "ts": r["ts"]} for r in rows]

        return await self._run(work)

    async def update_settings(self, room: str, changes: dict[str, Any]) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            with db:
                row = db.execute("SELECT settings FROM rooms WHERE name = ?", (room,)).fetchone()
                settings = {**json.loads(row["settings"]), **changes} if row else dict(changes)
                db.execute("UPDATE rooms SET settings = ? WHERE name = ?",
                           (json.dumps(settings), room))
            return settings

        return await self._run(work)

    async def get_notes(self, room: str) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            row = self._conn().execute("SELECT * FROM notes WHERE room = ?", (room,)).fetchone()
            return _notes(row)

        return await self._run(work)

    async def set_notes(self, room: str, text: str, base_version: int, author: str
                        ) -> dict[str, Any]:
        """Last write wins, but only over the version the writer saw: no silent loss."""

        def work() -> dict[str, Any]:
            db = self._conn()
            with db:  # one transaction: read the version and write atomically
                current = _notes(db.execute("SELECT * FROM notes WHERE room = ?",
                                            (room,)).fetchone())
                if current["version"] != base_version:
                    raise NotesConflict(current)
                notes = {"text": text, "version": base_version + 1, "author": author,
                         "ts": int(time.time() * 1000)}
                db.execute("INSERT OR REPLACE INTO notes(room, text, version, author, ts) "
                           "VALUES (?, ?, ?, ?, ?)", (room, text, notes["version"], author,
                                                      notes["ts"]))
            return notes

        return await self._run(work)

    async def set_hand(self, room: str, identity: str, raised: bool) -> None:
        def work() -> None:
            db = self._conn()
            with db:
                if raised:
                    db.execute("INSERT OR IGNORE INTO hands(room, identity, ts) VALUES (?, ?, ?)",
                               (room, identity, int(time.time() * 1000)))
                else:
                    db.execute("DELETE FROM hands WHERE room = ? AND identity = ?",
                               (room, identity))

        await self._run(work)

    async def hands(self, room: str) -> list[str]:
        def work() -> list[str]:
            rows = self._conn().execute(
                "SELECT identity FROM hands WHERE room = ? ORDER BY rowid",
                (room,)).fetchall()
            return [r["identity"] for r in rows]

        return await self._run(work)

    async def put_recording(self, recording: dict[str, Any]) -> None:
        """Insert or replace the index entry of a recording (id, room and anything else)."""

        def work() -> None:
            db = self._conn()
            with db:
                db.execute("INSERT INTO recordings(id, room, created, data) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT(id) DO UPDATE SET data = excluded.data",
                           (recording["id"], recording["room"], time.time(),
                            json.dumps(recording)))

        await self._run(work)

    async def get_recording(self, recording_id: str) -> dict[str, Any] | None:
        def work() -> dict[str, Any] | None:
            row = self._conn().execute("SELECT data FROM recordings WHERE id = ?",
                                       (recording_id,)).fetchone()
            return json.loads(row["data"]) if row else None

        return await self._run(work)

    async def list_recordings(self, room: str) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            rows = self._conn().execute(
                "SELECT data FROM recordings WHERE room = ? ORDER BY created, id",
                (room,)).fetchall()
            return [json.loads(r["data"]) for r in rows]

        return await self._run(work)

    async def add_recording_chapter(self, recording_id: str, at: float, title: str) -> None:
        """A chapter mark of a running recording: wall-clock `at` (seconds) and a title."""

        def work() -> None:
            db = self._conn()
            with db:
                db.execute("INSERT INTO recording_chapters(recording, at, title) VALUES (?, ?, ?)",
                           (recording_id, at, title))

        await self._run(work)

    async def recording_chapters(self, recording_id: str) -> list[dict[str, Any]]:
        """The marks of a recording in the order they were added: [{"at", "title"}]."""

        def work() -> list[dict[str, Any]]:
            rows = self._conn().execute(
                "SELECT at, title FROM recording_chapters WHERE recording = ? ORDER BY id",
                (recording_id,)).fetchall()
            return [{"at": r["at"], "title": r["title"]} for r in rows]

        return await self._run(work)


def _room(row: sqlite3.Row) -> dict[str, Any]:
    return {"name": row["name"], "created": row["created"],
            "settings": json.loads(row["settings"])}


def _notes(row: sqlite3.Row | None) -> dict[str, Any]:
    if row is None:
        return {"text": "", "version": 0, "author": "", "ts": 0}
    return {"text": row["text"], "version": row["version"], "author": row["author"],
            "ts": row["ts"]}
