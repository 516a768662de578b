"""Q&A, polls, chat control, private messages and reactions (webinars and meetings alike).

Each participant has its own token buckets per kind of action, so one person flooding
questions or reactions is refused with `rate_limited` while everyone else is unaffected.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .chapters import title
from .errors import RequestError
from .ratelimit import TokenBucket
from .store import AlreadyVoted, NotFound, NotOpen

if TYPE_CHECKING:
    from .participant import Participant

MAX_QUESTION = 500
MAX_POLL_TEXT = 200
MAX_OPTIONS = 10
MAX_PRIVATE = 2000
REACTIONS = frozenset({"👍", "👏", "❤️", "😂", "😮", "🎉"})
# (steady rate per second, burst) per kind of action
LIMITS = {"chat": (1.0, 5), "question": (0.2, 3), "vote": (2.0, 10), "reaction": (2.0, 6),
          "private": (1.0, 5)}
MODERATORS = frozenset({"host", "presenter"})


def throttle(p: Participant, kind: str) -> None:
    bucket = p.buckets.get(kind)
    if bucket is None:
        rate, burst = LIMITS[kind]
        bucket = p.buckets[kind] = TokenBucket(rate, burst)
    if not bucket.take():
        raise RequestError("rate_limited", f"too many {kind} actions, slow down")


def _text(params: dict[str, Any], key: str, limit: int) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise RequestError("bad_request", f"{key} must be 1 to {limit} characters")
    return value.strip()


def _int(params: dict[str, Any], key: str) -> int:
    value = params.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError("bad_request", f"{key} must be an integer")
    return value


def _store_errors(exc: Exception) -> RequestError:
    if isinstance(exc, AlreadyVoted):
        return RequestError("conflict", "you already voted")
    if isinstance(exc, NotOpen):
        return RequestError("conflict", "the poll is not open")
    return RequestError("not_found", str(exc))


async def chapter(p: Participant, prefix: str, text: str) -> None:
    """A chapter mark in the room's recording, if it is being recorded (chapters.py)."""
    recordings = p.rooms.recordings
    if recordings is not None:
        await recordings.note(p.room_or_fail().name, title(prefix, text))


# ---- Q&A ----------------------------------------------------------------------------------

async def qa_ask(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    text = _text(params, "text", MAX_QUESTION)
    throttle(p, "question")
    room = p.room_or_fail()
    question = await p.store.add_question(room.name, p.id, p.name, text)
    room.broadcast("questionAdded", {"question": question})
    return {"question": question}


async def qa_upvote(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    qid = _int(params, "questionId")
    throttle(p, "vote")
    room = p.room_or_fail()
    try:
        question = await p.store.upvote_question(room.name, qid, p.identity)
    except (AlreadyVoted, NotFound) as exc:
        raise _store_errors(exc) from None
    room.broadcast("questionUpdated", {"question": question})
    return {"question": question}


async def _qa_state(p: Participant, params: dict[str, Any], state: str) -> dict[str, Any]:
    qid = _int(params, "questionId")
    room = p.room_or_fail()
    try:
        question = await p.store.set_question_state(room.name, qid, state)
    except NotFound as exc:
        raise _store_errors(exc) from None
    room.broadcast("questionUpdated", {"question": question})
    if state == "answered":
        await chapter(p, "Answered: ", question["text"])
    return {"question": question}


async def qa_answer(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return await _qa_state(p, params, "answered")


async def qa_dismiss(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return await _qa_state(p, params, "dismissed")


async def qa_list(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return {"questions": await p.store.questions(p.room_or_fail().name)}


# ---- polls --------------------------------------------------------------------------------

async def poll_create(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    question = _text(params, "question", MAX_POLL_TEXT)
    options = params.get("options")
    if (not isinstance(options, list) or not 2 <= len(options) <= MAX_OPTIONS
            or not all(isinstance(o, str) and o.strip() and len(o) <= MAX_POLL_TEXT
                       for o in options)):
        raise RequestError("bad_request", f"options: 2 to {MAX_OPTIONS} short texts")
    poll = await p.store.create_poll(p.room_or_fail().name, question,
                                     [o.strip() for o in options])
    return {"poll": poll}


async def _poll_state(p: Participant, params: dict[str, Any], state: str) -> dict[str, Any]:
    pid = _int(params, "pollId")
    room = p.room_or_fail()
    try:
        poll = await p.store.set_poll_state(room.name, pid, state)
    except NotFound as exc:
        raise _store_errors(exc) from None
    room.broadcast("pollUpdated", {"poll": poll})
    if state == "open":
        await chapter(p, "Poll: ", poll["question"])
    return {"poll": poll}


async def poll_open(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return await _poll_state(p, params, "open")


async def poll_close(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return await _poll_state(p, params, "closed")


async def poll_vote(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    pid, option = _int(params, "pollId"), _int(params, "option")
    throttle(p, "vote")
    room = p.room_or_fail()
    try:
        poll = await p.store.vote_poll(room.name, pid, p.identity, option)
    except (AlreadyVoted, NotFound, NotOpen) as exc:
        raise _store_errors(exc) from None
    room.broadcast("pollUpdated", {"poll": poll})
    return {"poll": poll}


async def poll_list(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    polls = await p.store.polls(p.room_or_fail().name)
    if p.role not in MODERATORS:
        polls = [poll for poll in polls if poll["state"] != "draft"]
    return {"polls": polls}


# ---- chat control, private messages, reactions ----------------------------------------------

async def set_chat(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    enabled = params.get("enabled")
    if not isinstance(enabled, bool):
        raise RequestError("bad_request", "enabled must be true or false")
    room = p.room_or_fail()
    settings = await p.store.update_settings(room.name, {"chat": enabled})
    room.chat_enabled = enabled
    room.broadcast("settingsChanged", {"settings": settings})
    return {"settings": settings}


async def private_message(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    text = _text(params, "text", MAX_PRIVATE)
    target_id = params.get("participantId")
    room = p.room_or_fail()
    target = room.participants.get(target_id) if isinstance(target_id, str) else None
    if target is None or not target.joined or target is p:
        raise RequestError("not_found", "no such participant")
    if p.role != "host" and target.role != "host":
        raise RequestError("forbidden", "private messages go between hosts and participants")
    throttle(p, "private")
    message = {"from": p.id, "name": p.name, "to": target.id, "text": text,
               "ts": int(time.time() * 1000)}
    target.send_event("privateMessage", {"message": message})
    return {"message": message}


async def reaction(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    emoji = params.get("emoji")
    if emoji not in REACTIONS:
        raise RequestError("bad_request", "emoji must be one of " + " ".join(sorted(REACTIONS)))
    throttle(p, "reaction")
    p.room_or_fail().broadcast("reaction", {"participantId": p.id, "emoji": emoji})
    return {}


METHODS = {
    "qaAsk": qa_ask, "qaUpvote": qa_upvote, "qaAnswer": qa_answer, "qaDismiss": qa_dismiss,
    "qaList": qa_list, "pollCreate": poll_create, "pollOpen": poll_open,
    "pollClose": poll_close, "pollVote": poll_vote, "pollList": poll_list,
    "setChat": set_chat, "privateMessage": private_message, "reaction": reaction,
}
