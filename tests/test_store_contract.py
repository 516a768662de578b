"""One contract, two stores: SQLite (embedded default) and Redis (several nodes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from signaling.store import NotesConflict, SqliteStore
from signaling.store_redis import RedisStore
from tests.support.redis_server import redis_server


@pytest.fixture(params=["sqlite", "redis"])
async def store(request, tmp_path: Path) -> AsyncIterator:
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "store.sqlite3")
        await s.open()
        yield s
        await s.close()
    else:
        async with redis_server(tmp_path / "redis") as url:
            s = RedisStore(url)
            await s.open()
            yield s
            await s.close()


async def test_rooms(store) -> None:
    room, created = await store.create_room("a", {"type": "meeting"})
    assert created and room["name"] == "a" and room["settings"] == {"type": "meeting"}
    again, created = await store.create_room("a", {"type": "webinar"})
    assert not created and again["settings"] == {"type": "meeting"}  # never overwritten
    await store.create_room("b")
    assert [r["name"] for r in await store.list_rooms()] == ["a", "b"]
    assert await store.get_room("nope") is None
    settings = await store.update_settings("a", {"chat": False})
    assert settings == {"type": "meeting", "chat": False}
    assert (await store.get_room("a"))["settings"] == settings


async def test_chat_history_in_order_with_limit(store) -> None:
    await store.create_room("r")
    for i in range(5):
        message = await store.add_chat("r", "p1", "Ann", f"m{i}")
        assert message["text"] == f"m{i}" and message["name"] == "Ann"
    history = await store.chat_history("r")
    assert [m["text"] for m in history] == [f"m{i}" for i in range(5)]
    assert [m["id"] for m in history] == sorted(m["id"] for m in history)
    assert [m["text"] for m in await store.chat_history("r", limit=2)] == ["m3", "m4"]
    assert await store.chat_history("other") == []


async def test_concurrent_chat_keeps_every_message(store) -> None:
    await store.create_room("busy")
    await asyncio.gather(*(store.add_chat("busy", f"p{i}", "x", str(i)) for i in range(40)))
    history = await store.chat_history("busy")
    assert sorted(int(m["text"]) for m in history) == list(range(40))
    assert len({m["id"] for m in history}) == 40


async def test_notes_versioned_no_silent_loss(store) -> None:
    await store.create_room("n")
    assert (await store.get_notes("n"))["version"] == 0
    first = await store.set_notes("n", "agenda", 0, "ann")
    assert first["version"] == 1
    # Bob edited from version 0 too: refused, and told what is there now
    with pytest.raises(NotesConflict) as conflict:
        await store.set_notes("n", "bob's agenda", 0, "bob")
    assert conflict.value.current["text"] == "agenda" and conflict.value.current["version"] == 1
    second = await store.set_notes("n", "agenda + bob", 1, "bob")
    assert second["version"] == 2
    notes = await store.get_notes("n")
    assert (notes["text"], notes["version"], notes["author"]) == ("agenda + bob", 2, "bob")


async def test_raised_hands_in_order(store) -> None:
    await store.create_room("h")
    for who in ("c", "a", "b"):
        await store.set_hand("h", who, True)
    await store.set_hand("h", "a", True)  # raising twice keeps the first place
    assert await store.hands("h") == ["c", "a", "b"]
    await store.set_hand("h", "a", False)
    assert await store.hands("h") == ["c", "b"]


async def test_questions_upvoted_once_and_ordered(store) -> None:
    from signaling.store import AlreadyVoted, NotFound

    await store.create_room("qa")
    q1 = await store.add_question("qa", "p1", "Ann", "dosage for children?")
    q2 = await store.add_question("qa", "p2", "Bob", "side effects?")
    assert (q1["votes"], q1["state"]) == (0, "open")
    assert (await store.upvote_question("qa", q2["id"], "ann"))["votes"] == 1
    with pytest.raises(AlreadyVoted):
        await store.upvote_question("qa", q2["id"], "ann")
    await store.upvote_question("qa", q2["id"], "carl")
    assert [q["id"] for q in await store.questions("qa")] == [q2["id"], q1["id"]]
    answered = await store.set_question_state("qa", q2["id"], "answered")
    assert answered["state"] == "answered" and answered["votes"] == 2
    assert [q["id"] for q in await store.questions("qa")] == [q1["id"], q2["id"]]
    with pytest.raises(NotFound):
        await store.upvote_question("qa", 999, "ann")
    with pytest.raises(NotFound):
        await store.upvote_question("other-room", q1["id"], "ann")


async def test_polls_vote_once_while_open(store) -> None:
    from signaling.store import AlreadyVoted, NotFound, NotOpen

    await store.create_room("pl")
    poll = await store.create_poll("pl", "Preferred dose?", ["5 mg", "10 mg"])
    assert poll["state"] == "draft" and [o["votes"] for o in poll["options"]] == [0, 0]
    with pytest.raises(NotOpen):
        await store.vote_poll("pl", poll["id"], "ann", 0)
    await store.set_poll_state("pl", poll["id"], "open")
    await store.vote_poll("pl", poll["id"], "ann", 1)
    result = await store.vote_poll("pl", poll["id"], "bob", 1)
    assert [o["votes"] for o in result["options"]] == [0, 2] and result["total"] == 2
    with pytest.raises(AlreadyVoted):
        await store.vote_poll("pl", poll["id"], "ann", 0)
    with pytest.raises(NotFound):
        await store.vote_poll("pl", poll["id"], "carl", 5)
    closed = await store.set_poll_state("pl", poll["id"], "closed")
    with pytest.raises(NotOpen):
        await store.vote_poll("pl", poll["id"], "carl", 0)
    assert (await store.polls("pl")) == [closed]


async def test_recordings_index(store) -> None:
    await store.create_room("rec-room")
    await store.put_recording({"id": "rec-1", "room": "rec-room", "state": "recording"})
    await store.put_recording({"id": "rec-2", "room": "rec-room", "state": "recording"})
    await store.put_recording({"id": "rec-1", "room": "rec-room", "state": "ready",
                               "duration": 20.5})
    assert (await store.get_recording("rec-1"))["duration"] == 20.5
    assert [r["id"] for r in await store.list_recordings("rec-room")] == ["rec-1", "rec-2"]
    assert await store.get_recording("nope") is None
    assert await store.list_recordings("other") == []


async def test_recording_chapter_marks_in_order(store) -> None:
    await store.create_room("ch-room")
    await store.put_recording({"id": "rec-c", "room": "ch-room", "state": "recording"})
    assert await store.recording_chapters("rec-c") == []
    marks = [(1700000010.25, "Ann presents"), (1700000005.5, "Poll: dose?"),
             (1700000020.0, "Answered: <b>side effects</b> --> & more")]
    for at, title in marks:
        await store.add_recording_chapter("rec-c", at, title)
    await store.add_recording_chapter("rec-other", 1.0, "elsewhere")
    # in the order noted (not re-sorted by time), exact floats and text
    assert await store.recording_chapters("rec-c") == [{"at": a, "title": t} for a, t in marks]
    assert await store.recording_chapters("rec-other") == [{"at": 1.0, "title": "elsewhere"}]
    assert await store.recording_chapters("nope") == []
