"""The lobby: attendees of a room with `lobby` wait until a host admits or refuses them.

With several signalling nodes the queue is the room's, not a node's: who waits is in Redis
(`ms:live:<room>:w`, each entry tagged with its node) and on the room's bus (`lobby` messages,
cluster_sync.py), so a host on any node sees everyone waiting and decides for them; the node
holding the waiting participant carries the decision out (`decide`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events, schemas
from .errors import RequestError
from .methods import HOST, method

if TYPE_CHECKING:
    from .participant import Participant
    from .rooms import Room, RoomRegistry


async def wait(p: Participant, room: Room) -> None:
    """`p` waits: every host, on every node, is told."""
    room.waiting[p.id] = p
    room.tell_hosts("lobbyRequest", {"participant": p.public()})
    await p.rooms.announce(room, {"t": "lobby", "op": "wait", "participant": p.public()})
    events.note(p, "lobby.wait")


async def left(rooms: RoomRegistry, room: Room, participant_id: str, admitted: bool) -> None:
    """Someone stopped waiting here (admitted, refused, gave up): every host is told."""
    data: dict[str, Any] = {"participantId": participant_id, **({"admitted": True}
                                                                if admitted else {})}
    room.tell_hosts("lobbyLeft", data)
    await rooms.announce(room, {"t": "lobby", "op": "left", **data})


async def decide(rooms: RoomRegistry, room: Room, participant_id: str, admit_them: bool,
                 by: str) -> None:
    """A host's decision, for a participant waiting on this node (else nothing)."""
    target = room.waiting.get(participant_id)
    if target is None:
        return
    if admit_them:
        room.admitted.add(target.identity)
        room.waiting.pop(target.id, None)
        target.send_event("admitted", {})
        events.note(target, "lobby.admit", by=by)
        await left(rooms, room, target.id, admitted=True)
    else:
        target.send_event("refused", {})
        events.note(target, "lobby.refuse", by=by)
        # its close tells every host `lobbyLeft`, as when someone gives up waiting
        await target.close("refused by the host", code=4403)


async def _decide(p: Participant, params: schemas.ParticipantRef, admit_them: bool) -> None:
    room = p.room_or_fail()
    pid = params.participant_id
    if pid in room.waiting:
        await decide(p.rooms, room, pid, admit_them, p.identity)
    elif pid in room.remote_waiting:  # waiting on another node: it carries it out
        await p.rooms.announce(room, {"t": "lobby", "op": "admit" if admit_them else "refuse",
                                      "participantId": pid, "by": p.identity})
    else:
        raise RequestError("not_found", "nobody with that id is waiting")


@method("lobbyList", HOST)
async def lobby_list(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    room = p.room_or_fail()
    return {"waiting": [w.public() for w in room.waiting.values()] +
            list(room.remote_waiting.values())}


@method("admit", HOST)
async def admit(p: Participant, params: schemas.ParticipantRef) -> dict[str, Any]:
    await _decide(p, params, True)
    return {}


@method("refuse", HOST)
async def refuse(p: Participant, params: schemas.ParticipantRef) -> dict[str, Any]:
    await _decide(p, params, False)
    return {}
