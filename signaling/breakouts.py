"""Breakout groups: the host splits a room into groups, each its own Router, and reconvenes.

Assignments are kept by identity, so a participant who reconnects lands back in their group.
Moving someone replaces their media connections (MediaSession.move_to); everything else about
the room (participants, chat, hands) stays shared.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from . import schemas
from .errors import RequestError
from .methods import HOST, PARTICIPANTS, method
from .rooms import Group, Room, new_id

if TYPE_CHECKING:
    from .participant import Participant


def view(room: Room) -> dict[str, Any]:
    b = room.breakouts
    by_identity = {p.identity: p.id for p in room.participants.values() if p.joined}
    return {"open": b.open, "allowChoose": b.allow_choose, "endsAt": b.ends_at,
            "groups": [{"id": g.id, "name": g.name} for g in b.groups.values()],
            "assignments": {by_identity[i]: g for i, g in b.assignments.items()
                            if i in by_identity}}


def _changed(room: Room) -> dict[str, Any]:
    state = view(room)
    room.broadcast("breakoutsChanged", {"breakouts": state})
    return {"breakouts": state}


def _group(room: Room, group: str | None) -> str | None:
    """The group named by a request (None: the main room, where the params allow it)."""
    if group is not None and group not in room.breakouts.groups:
        raise RequestError("not_found", "no such group")
    return group


async def _place(room: Room, *participants: Participant) -> None:
    """While the groups are open, a participant's media follows their assignment."""
    if room.breakouts.open:
        await _move(room, [(p, room.breakouts.assignments.get(p.identity))
                           for p in participants])


async def _move(room: Room, moves: list[tuple[Participant, str | None]]) -> None:
    """Move several people at once: every mover's old connections are retired before anyone
    leaves, so nobody is offered a change on a connection that their own move replaces."""
    moves = [(p, g) for p, g in moves if p.joined and p.group != g]
    for participant, _ in moves:
        participant.media_session.begin_move()
    for participant, group in moves:
        if participant.joined:  # one may have left while the others moved
            await participant.media_session.move_to(group)


@method("breakoutCreate", HOST)
async def create(p: Participant, params: schemas.BreakoutCreate) -> dict[str, Any]:
    room = p.room_or_fail()
    if room.breakouts.open:
        raise RequestError("conflict", "close the open groups first")
    room.breakouts.groups = {g.id: g for g in (Group(new_id("g"), n)
                                               for n in params.group_names())}
    room.breakouts.assignments = {}
    return _changed(room)


@method("breakoutAssign", HOST)
async def assign(p: Participant, params: schemas.BreakoutAssign) -> dict[str, Any]:
    room = p.room_or_fail()
    target = room.participants.get(params.participant_id)
    if target is None or not target.joined:
        raise RequestError("not_found", "no such participant")
    group = _group(room, params.group_id)
    if group is None:
        room.breakouts.assignments.pop(target.identity, None)
    else:
        room.breakouts.assignments[target.identity] = group
    await _place(room, target)
    return _changed(room)


@method("breakoutAuto", HOST)
async def auto(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    """Spread the unassigned non-hosts evenly, filling the emptiest group first."""
    room = p.room_or_fail()
    b = room.breakouts
    if not b.groups:
        raise RequestError("conflict", "create groups first")
    sizes = {g: 0 for g in b.groups}
    for g in b.assignments.values():
        sizes[g] = sizes.get(g, 0) + 1
    spread = []
    for participant in room.participants.values():
        if participant.joined and participant.role != "host" and \
                participant.identity not in b.assignments:
            group = min(sizes, key=lambda g: (sizes[g], list(b.groups).index(g)))
            b.assignments[participant.identity] = group
            sizes[group] += 1
            spread.append(participant)
    await _place(room, *spread)
    return _changed(room)


@method("breakoutAllowChoose", HOST)
async def allow_choose(p: Participant, params: schemas.AllowChoose) -> dict[str, Any]:
    room = p.room_or_fail()
    room.breakouts.allow_choose = params.allowed
    return _changed(room)


@method("breakoutChoose", PARTICIPANTS)
async def choose(p: Participant, params: schemas.GroupChoice) -> dict[str, Any]:
    room = p.room_or_fail()
    if not room.breakouts.allow_choose:
        raise RequestError("conflict", "the host assigns the groups (choosing is off)")
    _group(room, params.group_id)
    room.breakouts.assignments[p.identity] = params.group_id
    await _place(room, p)
    return _changed(room)


@method("breakoutOpen", HOST)
async def open_groups(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    room = p.room_or_fail()
    b = room.breakouts
    if not b.groups:
        raise RequestError("conflict", "create groups first")
    for group in b.groups.values():
        if group.router_id is None:
            group.router_id = await p.media.create_router()
    b.open = True
    await _place(room, *room.participants.values())
    return _changed(room)


@method("breakoutBroadcast", HOST)
async def broadcast(p: Participant, params: schemas.Broadcast) -> dict[str, Any]:
    p.room_or_fail().broadcast("breakoutMessage", {"text": params.text, "name": p.name})
    return {}


@method("breakoutTimer", HOST)
async def timer(p: Participant, params: schemas.Timer) -> dict[str, Any]:
    seconds = params.seconds
    room = p.room_or_fail()
    b = room.breakouts
    if room.breakout_timer is not None:
        room.breakout_timer.cancel()
        room.breakout_timer = None
    b.ends_at = int(time.time() * 1000) + seconds * 1000 if seconds else None
    if seconds:
        # When time is up everyone returns to the main room, as the countdown promised.
        room.breakout_timer = asyncio.get_running_loop().call_later(
            seconds, lambda: asyncio.ensure_future(_close_room_groups(room)))
    return _changed(room)


async def _close_room_groups(room: Room) -> dict[str, Any]:
    b = room.breakouts
    b.open = False
    b.ends_at = None
    if room.breakout_timer is not None:
        room.breakout_timer.cancel()
        room.breakout_timer = None
    await _move(room, [(p, None) for p in room.participants.values()])
    media = next((p.media for p in room.participants.values()), None)
    for group in b.groups.values():
        if group.router_id is not None and media is not None:
            await media.close_router(group.router_id)
        group.router_id = None
    return _changed(room)


@method("breakoutClose", HOST)
async def close(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    return await _close_room_groups(p.room_or_fail())


@method("breakoutVisit", HOST)
async def visit(p: Participant, params: schemas.GroupVisit) -> dict[str, Any]:
    room = p.room_or_fail()
    group = _group(room, params.group_id)
    if group is not None and not room.breakouts.open:
        raise RequestError("conflict", "the groups are not open")
    await p.media_session.move_to(group)
    return {}

