"""Room features beyond media: raised hands, shared notes, host controls and the webinar stage.

Handlers take the calling Participant and the request params, like the core methods; their
permissions are in permissions.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import RequestError
from .rooms import set_live
from .store import NotesConflict

if TYPE_CHECKING:
    from .participant import Participant

MAX_NOTES = 20_000


def _bool(params: dict[str, Any], key: str) -> bool:
    value = params.get(key)
    if not isinstance(value, bool):
        raise RequestError("bad_request", f"{key} must be true or false")
    return value


def _target(p: Participant, params: dict[str, Any]) -> Participant:
    target_id = params.get("participantId")
    if not isinstance(target_id, str):
        raise RequestError("bad_request", "participantId must be a string")
    target = p.room_or_fail().participants.get(target_id)
    if target is None or not target.joined:
        raise RequestError("not_found", "no such participant")
    return target


async def raise_hand(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    raised = _bool(params, "raised")
    room = p.room_or_fail()
    await p.store.set_hand(room.name, p.identity, raised)
    room.hands = await p.store.hands(room.name)
    room.broadcast("handRaised", {"participantId": p.id, "raised": raised})
    return {"hands": room.hand_ids()}


async def get_notes(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return {"notes": await p.store.get_notes(p.room_or_fail().name)}


async def set_notes(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    text, base = params.get("text"), params.get("baseVersion")
    if not isinstance(text, str) or len(text) > MAX_NOTES:
        raise RequestError("bad_request", f"text must be a string of at most {MAX_NOTES} chars")
    if not isinstance(base, int) or isinstance(base, bool):
        raise RequestError("bad_request", "baseVersion must be the version you edited")
    room = p.room_or_fail()
    try:
        notes = await p.store.set_notes(room.name, text, base, p.name)
    except NotesConflict as conflict:
        # Nothing is lost: the editor gets the current text to merge with theirs.
        raise RequestError("conflict", "the notes changed while you edited them",
                           {"notes": conflict.current}) from None
    room.broadcast("notesChanged", {"notes": notes})
    return {"notes": notes}


async def mute_participant(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    """A host mutes someone's track (they may unmute themselves, as in every meeting tool)."""
    target = _target(p, params)
    kind = params.get("kind", "audio")
    if kind not in ("audio", "video"):
        raise RequestError("bad_request", "kind must be audio or video")
    for track in list(target.published.values()):
        if track.kind == kind and not track.muted:
            await target.set_muted(track, True)
    return {}


async def remove_participant(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    target = _target(p, params)
    if target is p:
        raise RequestError("bad_request", "use leave to leave")
    await target.close("removed by the host", code=4403)
    return {}


async def promote(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    """Bring a webinar attendee on stage: they may publish camera and microphone."""
    target = _target(p, params)
    target.on_stage = True
    room = p.room_or_fail()
    if target.identity in room.hands:
        await p.store.set_hand(room.name, target.identity, False)
        room.hands = await p.store.hands(room.name)
        room.broadcast("handRaised", {"participantId": target.id, "raised": False})
    room.broadcast("stageChanged", {"participantId": target.id, "onStage": True})
    return {}


async def demote(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    target = _target(p, params)
    target.on_stage = False
    if target.role == "attendee":
        for track in list(target.published.values()):
            await target.unpublish_track(track)
    p.room_or_fail().broadcast("stageChanged", {"participantId": target.id, "onStage": False})
    return {}


def _waiting(p: Participant, params: dict[str, Any]) -> Participant:
    target_id = params.get("participantId")
    target = p.room_or_fail().waiting.get(target_id) if isinstance(target_id, str) else None
    if target is None:
        raise RequestError("not_found", "nobody with that id is waiting")
    return target


async def lobby_list(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return {"waiting": [w.public() for w in p.room_or_fail().waiting.values()]}


async def admit(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    target = _waiting(p, params)
    room = p.room_or_fail()
    room.admitted.add(target.identity)
    room.waiting.pop(target.id, None)
    target.send_event("admitted", {})
    room.tell_hosts("lobbyLeft", {"participantId": target.id, "admitted": True})
    return {}


async def refuse(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    target = _waiting(p, params)
    target.send_event("refused", {})
    # the close below tells every host `lobbyLeft`, as when someone gives up waiting
    await target.close("refused by the host", code=4403)
    return {}


async def broadcast_live(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    """Start (live: true) or pause (false) the webinar broadcast to the audience."""
    live = _bool(params, "live")
    room = p.room_or_fail()
    set_live(room, live)
    if room.bus is not None:
        room.bus({"t": "live", "live": live})
    room.broadcast("liveChanged", {"live": live})
    return {"live": live}


async def record_start(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    mode, layout = params.get("mode"), params.get("layout", "grid")
    if not isinstance(mode, str):
        raise RequestError("bad_request", "mode must be composite or pertrack")
    return await p.rooms.recordings.start(p.room_or_fail(), mode, layout,
                                          params.get("lowLatency", False))


async def record_stop(p: Participant, params: dict[str, Any]) -> dict[str, Any]:
    return {"recording": await p.rooms.recordings.stop(p.room_or_fail())}


METHODS = {
    "recordStart": record_start, "recordStop": record_stop,
    "setLive": broadcast_live, "lobbyList": lobby_list, "admit": admit, "refuse": refuse,
    "raiseHand": raise_hand, "getNotes": get_notes, "setNotes": set_notes,
    "muteParticipant": mute_participant, "removeParticipant": remove_participant,
    "promote": promote, "demote": demote,
}
