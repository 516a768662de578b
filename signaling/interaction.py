"""Chat, Q&A, polls, private messages and reactions (webinars and meetings alike).

Each participant has its own token buckets per kind of action, so one person flooding
questions or reactions is refused with `rate_limited` while everyone else is unaffected.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import events, schemas
from .chapters import title
from .errors import RequestError
from .methods import ALL, HOST, MODERATORS, PARTICIPANTS, method
from .ratelimit import TokenBucket
from .store import AlreadyVoted, NotFound, NotOpen

if TYPE_CHECKING:
    from .participant import Participant

# (steady rate per second, burst) per kind of action
LIMITS = {"chat": (1.0, 5), "question": (0.2, 3), "vote": (2.0, 10), "reaction": (2.0, 6),
          "private": (1.0, 5)}


def throttle(p: Participant, kind: str) -> None:
    bucket = p.buckets.get(kind)
    if bucket is None:
        rate, burst = LIMITS[kind]
        bucket = p.buckets[kind] = TokenBucket(rate, burst)
    if not bucket.take():
        raise RequestError("rate_limited", f"too many {kind} actions, slow down")


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

@method("qaAsk", PARTICIPANTS)
async def qa_ask(p: Participant, params: schemas.Question) -> dict[str, Any]:
    throttle(p, "question")
    room = p.room_or_fail()
    question = await p.store.add_question(room.name, p.id, p.name, params.text)
    room.broadcast("questionAdded", {"question": question})
    events.note(p, "qa.ask", question=question["id"])
    return {"question": question}


@method("qaUpvote", PARTICIPANTS)
async def qa_upvote(p: Participant, params: schemas.QuestionRef) -> dict[str, Any]:
    throttle(p, "vote")
    room = p.room_or_fail()
    try:
        question = await p.store.upvote_question(room.name, params.question_id, p.identity)
    except (AlreadyVoted, NotFound) as exc:
        raise _store_errors(exc) from None
    events.note(p, "qa.upvote", question=params.question_id)
    room.broadcast("questionUpdated", {"question": question})
    return {"question": question}


async def _qa_state(p: Participant, params: schemas.QuestionRef, state: str
                    ) -> dict[str, Any]:
    room = p.room_or_fail()
    try:
        question = await p.store.set_question_state(room.name, params.question_id, state)
    except NotFound as exc:
        raise _store_errors(exc) from None
    room.broadcast("questionUpdated", {"question": question})
    if state == "answered":
        await chapter(p, "Answered: ", question["text"])
    return {"question": question}


@method("qaAnswer", MODERATORS)
async def qa_answer(p: Participant, params: schemas.QuestionRef) -> dict[str, Any]:
    return await _qa_state(p, params, "answered")


@method("qaDismiss", MODERATORS)
async def qa_dismiss(p: Participant, params: schemas.QuestionRef) -> dict[str, Any]:
    return await _qa_state(p, params, "dismissed")


@method("qaList", ALL)
async def qa_list(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    return {"questions": await p.store.questions(p.room_or_fail().name)}


# ---- polls --------------------------------------------------------------------------------

@method("pollCreate", MODERATORS)
async def poll_create(p: Participant, params: schemas.PollCreate) -> dict[str, Any]:
    poll = await p.store.create_poll(p.room_or_fail().name, params.question,
                                     list(params.options))
    return {"poll": poll}


async def _poll_state(p: Participant, params: schemas.PollRef, state: str) -> dict[str, Any]:
    room = p.room_or_fail()
    try:
        poll = await p.store.set_poll_state(room.name, params.poll_id, state)
    except NotFound as exc:
        raise _store_errors(exc) from None
    room.broadcast("pollUpdated", {"poll": poll})
    if state == "open":
        await chapter(p, "Poll: ", poll["question"])
    return {"poll": poll}


@method("pollOpen", MODERATORS)
async def poll_open(p: Participant, params: schemas.PollRef) -> dict[str, Any]:
    return await _poll_state(p, params, "open")


@method("pollClose", MODERATORS)
async def poll_close(p: Participant, params: schemas.PollRef) -> dict[str, Any]:
    return await _poll_state(p, params, "closed")


@method("pollVote", PARTICIPANTS)
async def poll_vote(p: Participant, params: schemas.PollVote) -> dict[str, Any]:
    throttle(p, "vote")
    room = p.room_or_fail()
    try:
        poll = await p.store.vote_poll(room.name, params.poll_id, p.identity, params.option)
    except (AlreadyVoted, NotFound, NotOpen) as exc:
        raise _store_errors(exc) from None
    room.broadcast("pollUpdated", {"poll": poll})
    events.note(p, "poll.vote", poll=params.poll_id, option=params.option)
    return {"poll": poll}


@method("pollList", ALL)
async def poll_list(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    polls = await p.store.polls(p.room_or_fail().name)
    if p.role not in MODERATORS:
        polls = [poll for poll in polls if poll["state"] != "draft"]
    return {"polls": polls}


# ---- chat, private messages, reactions ------------------------------------------------------

@method("chat", ALL)
async def chat(p: Participant, params: schemas.Chat) -> dict[str, Any]:
    room = p.room_or_fail()
    if not room.chat_enabled and p.role not in MODERATORS:
        raise RequestError("chat_disabled", "the host turned the chat off")
    throttle(p, "chat")
    message = await p.store.add_chat(room.name, p.id, p.name, params.text)
    room.broadcast("chat", {"message": message})
    events.note(p, "chat", message=message["id"])
    return {"message": message}


@method("setChat", HOST)
async def set_chat(p: Participant, params: schemas.SetChat) -> dict[str, Any]:
    enabled = params.enabled
    room = p.room_or_fail()
    settings = await p.store.update_settings(room.name, {"chat": enabled})
    room.chat_enabled = enabled
    room.broadcast("settingsChanged", {"settings": settings})
    return {"settings": settings}


@method("privateMessage", ALL)
async def private_message(p: Participant, params: schemas.PrivateMessage) -> dict[str, Any]:
    room = p.room_or_fail()
    target = room.participants.get(params.participant_id)
    if target is None or not target.joined or target is p:
        raise RequestError("not_found", "no such participant")
    if p.role != "host" and target.role != "host":
        raise RequestError("forbidden", "private messages go between hosts and participants")
    throttle(p, "private")
    message = {"from": p.id, "name": p.name, "to": target.id, "text": params.text,
               "ts": int(time.time() * 1000)}
    target.send_event("privateMessage", {"message": message})
    return {"message": message}


@method("reaction", PARTICIPANTS)
async def reaction(p: Participant, params: schemas.Reaction) -> dict[str, Any]:
    throttle(p, "reaction")
    p.room_or_fail().broadcast("reaction", {"participantId": p.id, "emoji": params.emoji})
    events.note(p, "reaction", emoji=params.emoji)
    return {}

