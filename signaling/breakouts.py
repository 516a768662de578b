"""Breakout groups: the host splits a room into groups, each its own Router, and reconvenes.

Assignments are kept by identity, so a participant who reconnects lands back in their group.
Moving someone replaces their media connections (MediaSession.move_to); everything else about
the room (participants, chat, hands) stays shared.

With several signalling nodes the groups are one state for the room: each change is shared
(`rooms.announce` of {"t": "breakouts", "state"}: kept in Redis for nodes that open the room
later, and on the room's bus), and every node moves its own participants to their groups
(`adopt`); a group's Router, on the worker of the node that opened the groups, is reached by
the others over its RPC socket. The host's node runs the timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mediaserver.api import MediaError

from . import schemas
from .errors import RequestError
from .methods import HOST, PARTICIPANTS, method
from .rooms import Breakouts, Group, Room, new_id

if TYPE_CHECKING:
    from mediaserver.api import MediaControl

    from .cluster import Cluster
    from .participant import Participant
    from .rooms import RoomRegistry

# With several nodes, a closed group's Router is closed this long after the others were told
# to move their participants back (cluster_sync.py)
MOVE_BACK_WAIT = 10.0


def view(room: Room) -> dict[str, Any]:
    b = room.breakouts
    by_identity = {i: pid for pid, i in room.remote_identities.items()}
    by_identity.update({p.identity: p.id for p in room.participants.values() if p.joined})
    return {"open": b.open, "allowChoose": b.allow_choose, "endsAt": b.ends_at,
            "groups": [{"id": g.id, "name": g.name} for g in b.groups.values()],
            "assignments": {by_identity[i]: g for i, g in b.assignments.items()
                            if i in by_identity}}


async def _changed(room: Room, rooms: RoomRegistry) -> dict[str, Any]:
    state = view(room)
    await rooms.announce(room, {"t": "breakouts", "state": dump(room.breakouts)})
    room.broadcast("breakoutsChanged", {"breakouts": state})
    return {"breakouts": state}


def dump(b: Breakouts) -> dict[str, Any]:
    """The groups as Redis and the bus carry them."""
    return {"open": b.open, "allowChoose": b.allow_choose, "endsAt": b.ends_at,
            "groups": [[g.id, g.name, g.router_id] for g in b.groups.values()],
            "assignments": b.assignments}


def load(state: dict[str, Any]) -> Breakouts:
    return Breakouts(bool(state["open"]), bool(state["allowChoose"]), state.get("endsAt"),
                     {gid: Group(gid, name, router) for gid, name, router in state["groups"]},
                     dict(state["assignments"]))


async def adopt(room: Room, state: dict[str, Any],
                reach: Callable[[str], Awaitable[None]]) -> None:
    """Another node changed the groups: take the room's state and move our participants."""
    was_open = room.breakouts.open
    room.breakouts = load(state)
    for group in room.breakouts.groups.values():
        if group.router_id is not None:
            await reach(group.router_id)
    if room.breakouts.open:
        await _place(room, *room.participants.values())
    elif was_open:
        await _move(room, [(p, None) for p in room.participants.values()])


def _identity_of(room: Room, participant_id: str) -> tuple[Participant | None, str]:
    """A participant of the room on this node or another: (theirs here or None, identity)."""
    target = room.participants.get(participant_id)
    if target is not None and target.joined:
        return target, target.identity
    identity = room.remote_identities.get(participant_id)
    if identity is None:
        raise RequestError("not_found", "no such participant")
    return None, identity


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
    return await _changed(room, p.rooms)


@method("breakoutAssign", HOST)
async def assign(p: Participant, params: schemas.BreakoutAssign) -> dict[str, Any]:
    room = p.room_or_fail()
    target, identity = _identity_of(room, params.participant_id)
    group = _group(room, params.group_id)
    if group is None:
        room.breakouts.assignments.pop(identity, None)
    else:
        room.breakouts.assignments[identity] = group
    if target is not None:
        await _place(room, target)  # one on another node: that node moves them (adopt)
    return await _changed(room, p.rooms)


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
    people = [(p, p.identity, p.role) for p in room.participants.values() if p.joined]
    people += [(None, identity, room.remote.get(pid, {}).get("role"))
               for pid, identity in room.remote_identities.items()]
    for participant, identity, role in people:
        if role != "host" and identity not in b.assignments:
            group = min(sizes, key=lambda g: (sizes[g], list(b.groups).index(g)))
            b.assignments[identity] = group
            sizes[group] += 1
            if participant is not None:
                spread.append(participant)
    await _place(room, *spread)
    return await _changed(room, p.rooms)


@method("breakoutAllowChoose", HOST)
async def allow_choose(p: Participant, params: schemas.AllowChoose) -> dict[str, Any]:
    room = p.room_or_fail()
    room.breakouts.allow_choose = params.allowed
    return await _changed(room, p.rooms)


@method("breakoutChoose", PARTICIPANTS)
async def choose(p: Participant, params: schemas.GroupChoice) -> dict[str, Any]:
    room = p.room_or_fail()
    if not room.breakouts.allow_choose:
        raise RequestError("conflict", "the host assigns the groups (choosing is off)")
    _group(room, params.group_id)
    room.breakouts.assignments[p.identity] = params.group_id
    await _place(room, p)
    return await _changed(room, p.rooms)


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
    return await _changed(room, p.rooms)


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
            seconds, lambda: asyncio.ensure_future(_close_room_groups(room, p.rooms)))
    return await _changed(room, p.rooms)


async def _close_room_groups(room: Room, rooms: RoomRegistry) -> dict[str, Any]:
    b = room.breakouts
    b.open = False
    b.ends_at = None
    if room.breakout_timer is not None:
        room.breakout_timer.cancel()
        room.breakout_timer = None
    await _move(room, [(p, None) for p in room.participants.values()])
    media = next((p.media for p in room.participants.values()), None)
    routers = [g.router_id for g in b.groups.values() if g.router_id is not None]
    for group in b.groups.values():
        group.router_id = None
    result = await _changed(room, rooms)
    if media is not None:
        if rooms.cluster is None:
            await _close_routers(media, routers, None)
        else:  # after the other nodes have moved theirs back (a transport still on a
            # closed Router would end its session, 4503 media_restart)
            asyncio.get_running_loop().call_later(MOVE_BACK_WAIT, lambda: asyncio.ensure_future(
                _close_routers(media, routers, rooms.cluster)))
    return result


async def _close_routers(media: MediaControl, routers: list[str], cluster: Cluster | None
                         ) -> None:
    for router_id in routers:
        with contextlib.suppress(MediaError, RuntimeError):  # another node's, gone with it
            if cluster is not None:
                await cluster.reach(router_id)
            await media.close_router(router_id)


@method("breakoutClose", HOST)
async def close(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    return await _close_room_groups(p.room_or_fail(), p.rooms)


@method("breakoutVisit", HOST)
async def visit(p: Participant, params: schemas.GroupVisit) -> dict[str, Any]:
    room = p.room_or_fail()
    group = _group(room, params.group_id)
    if group is not None and not room.breakouts.open:
        raise RequestError("conflict", "the groups are not open")
    await p.media_session.move_to(group)
    return {}

