"""Q&A and polls in SQLite: their part of the Store contract, kept apart for size.

Votes are unique per (item, identity) by a primary key, so "once per person" holds however
many sessions or nodes a person uses.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL, participant TEXT NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'open', ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS question_votes (
    question INTEGER NOT NULL, identity TEXT NOT NULL, PRIMARY KEY (question, identity)
);
CREATE TABLE IF NOT EXISTS polls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL, question TEXT NOT NULL, options TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'draft', ts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS poll_votes (
    poll INTEGER NOT NULL, identity TEXT NOT NULL, option INTEGER NOT NULL,
    PRIMARY KEY (poll, identity)
);
"""


class NotFound(Exception):
    pass


class AlreadyVoted(Exception):
    pass


class NotOpen(Exception):
    pass


MAX_STORED_ID = 2**63 - 1  # SQLite's INTEGER; Redis keys hold the same ids


def stored_id(what: str, value: int) -> int:
    """`value` if it can be the id of a stored question or poll; NotFound otherwise (an id
    past 64 bits would raise OverflowError in SQLite: refused here, whatever the caller)."""
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 0 <= value <= MAX_STORED_ID:
        raise NotFound(f"no such {what}")
    return value


def question_order(q: dict[str, Any]) -> tuple:
    """Open questions first, most votes first, then oldest first."""
    return (q["state"] != "open", -q["votes"], q["ts"], q["id"])


def poll_view(poll_id: int, question: str, options: list[str], state: str, ts: int,
              choices: list[int]) -> dict[str, Any]:
    counts = [0] * len(options)
    for c in choices:
        if 0 <= c < len(counts):
            counts[c] += 1
    return {"id": poll_id, "question": question, "state": state, "ts": ts,
            "options": [{"text": t, "votes": n} for t, n in zip(options, counts, strict=True)],
            "total": sum(counts)}


class SqliteInteraction:
    """Mixed into SqliteStore: needs `_conn()` and `_run()`."""

    def _conn(self) -> sqlite3.Connection: ...  # pragma: no cover - provided by the store
    async def _run(self, fn: Any, *args: Any) -> Any: ...  # pragma: no cover

    def _question(self, db: sqlite3.Connection, room: str, qid: int) -> dict[str, Any]:
        stored_id("question", qid)
        row = db.execute("SELECT * FROM questions WHERE id = ? AND room = ?",
                         (qid, room)).fetchone()
        if row is None:
            raise NotFound("no such question")
        votes = db.execute("SELECT COUNT(*) FROM question_votes WHERE question = ?",
                           (qid,)).fetchone()[0]
        return {"id": row["id"], "text": row["text"], "name": row["name"],
                "participantId": row["participant"], "state": row["state"], "ts": row["ts"],
                "votes": votes}

    async def add_question(self, room: str, participant: str, name: str, text: str
                           ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            with db:
                cur = db.execute("INSERT INTO questions(room, participant, name, text, ts) "
                                 "VALUES (?, ?, ?, ?, ?)",
                                 (room, participant, name, text, int(time.time() * 1000)))
            return self._question(db, room, cur.lastrowid)

        return await self._run(work)

    async def upvote_question(self, room: str, qid: int, identity: str) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            self._question(db, room, qid)
            try:
                with db:
                    db.execute("INSERT INTO question_votes(question, identity) VALUES (?, ?)",
                               (qid, identity))
            except sqlite3.IntegrityError:
                raise AlreadyVoted("already voted") from None
            return self._question(db, room, qid)

        return await self._run(work)

    async def set_question_state(self, room: str, qid: int, state: str) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            self._question(db, room, qid)
            with db:
                db.execute("UPDATE questions SET state = ? WHERE id = ?", (state, qid))
            return self._question(db, room, qid)

        return await self._run(work)

    async def questions(self, room: str) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            db = self._conn()
            ids = [r[0] for r in db.execute("SELECT id FROM questions WHERE room = ?", (room,))]
            return sorted((self._question(db, room, i) for i in ids), key=question_order)

        return await self._run(work)

    def _poll(self, db: sqlite3.Connection, room: str, pid: int) -> dict[str, Any]:
        stored_id("poll", pid)
        row = db.execute("SELECT * FROM polls WHERE id = ? AND room = ?", (pid, room)).fetchone()
        if row is None:
            raise NotFound("no such poll")
        choices = [r[0] for r in db.execute("SELECT option FROM poll_votes WHERE poll = ?",
                                            (pid,))]
        return poll_view(row["id"], row["question"], json.loads(row["options"]), row["state"],
                         row["ts"], choices)

    async def create_poll(self, room: str, question: str, options: list[str]
                          ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            with db:
                cur = db.execute("INSERT INTO polls(room, question, options, ts) "
                                 "VALUES (?, ?, ?, ?)", (room, question, json.dumps(options),
                                                         int(time.time() * 1000)))
            return self._poll(db, room, cur.lastrowid)

        return await self._run(work)

    async def set_poll_state(self, room: str, pid: int, state: str) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            self._poll(db, room, pid)
            with db:
                db.execute("UPDATE polls SET state = ? WHERE id = ?", (state, pid))
            return self._poll(db, room, pid)

        return await self._run(work)

    async def vote_poll(self, room: str, pid: int, identity: str, option: int
                        ) -> dict[str, Any]:
        def work() -> dict[str, Any]:
            db = self._conn()
            poll = self._poll(db, room, pid)
            if poll["state"] != "open":
                raise NotOpen("the poll is not open")
            if not 0 <= option < len(poll["options"]):
                raise NotFound("no such option")
            try:
                with db:
                    db.execute("INSERT INTO poll_votes(poll, identity, option) VALUES (?, ?, ?)",
                               (pid, identity, option))
            except sqlite3.IntegrityError:
                raise AlreadyVoted("already voted") from None
            return self._poll(db, room, pid)

        return await self._run(work)

    async def polls(self, room: str) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            db = self._conn()
            ids = [r[0] for r in db.execute("SELECT id FROM polls WHERE room = ? ORDER BY id",
                                            (room,))]
            return [self._poll(db, room, i) for i in ids]

        return await self._run(work)
