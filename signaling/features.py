"""Room features beyond media: raised hands, shared notes, host controls and the webinar stage.

Handlers take the calling Participant and its validated params (schemas.py) and register
themselves, with the roles allowed, in the method table (methods.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events, schemas
from .errors import RequestError
from .methods import ALL, HOST, PARTICIPANTS, method
from .rooms import set_live
from .store import NotesConflict

if TYPE_CHECKING:
    from .participant import Participant


def _target(p: Participant, params: schemas.ParticipantRef) -> Participant:
    target = p.room_or_fail().participants.get(params.participant_id)
    if target is None or not target.joined:
        raise RequestError("not_found", "no such participant")
    return target


@method("raiseHand", PARTICIPANTS)
async def raise_hand(p: Participant, params: schemas.RaiseHand) -> dict[str, Any]:
    raised = params.raised
    room = p.room_or_fail()
    await p.store.set_hand(room.name, p.identity, raised)
    room.hands = await p.store.hands(room.name)
    room.broadcast("handRaised", {"participantId": p.id, "raised": raised})
    events.note(p, "hand", raised=raised)
    return {"hands": room.hand_ids()}


@method("getNotes", ALL)
async def get_notes(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    return {"notes": await p.store.get_notes(p.room_or_fail().name)}


@method("setNotes", PARTICIPANTS)
async def set_notes(p: Participant, params: schemas.SetNotes) -> dict[str, Any]:
    room = p.room_or_fail()
    try:
        notes = await p.store.set_notes(room.name, params.text, params.base_version, p.name)
    except NotesConflict as conflict:
        # Nothing is lost: the editor gets the current text to merge with theirs.
        raise RequestError("conflict", "the notes changed while you edited them",
                           {"notes": conflict.current}) from None
    room.broadcast("notesChanged", {"notes": notes})
    return {"notes": notes}


@method("muteParticipant", HOST)
async def mute_participant(p: Participant, params: schemas.MuteParticipant
                           ) -> dict[str, Any]:
    """A host mutes someone's track (they may unmute themselves, as in every meeting tool)."""
    target = _target(p, params)
    for track in list(target.media_session.published.values()):
        if track.kind == params.kind and not track.muted:
            await target.media_session.set_muted(track, True)
    return {}


@method("removeParticipant", HOST)
async def remove_participant(p: Participant, params: schemas.ParticipantRef
                             ) -> dict[str, Any]:
    target = _target(p, params)
    if target is p:
        raise RequestError("bad_request", "use leave to leave")
    await target.close("removed by the host", code=4403)
    return {}


@method("promote", HOST)
async def promote(p: Participant, params: schemas.ParticipantRef) -> dict[str, Any]:
    """Bring a webinar attendee on stage: they may publish camera and microphone."""
    target = _target(p, params)
    target.on_stage = True
    room = p.room_or_fail()
    if target.identity in room.hands:
        await p.store.set_hand(room.name, target.identity, False)
        room.hands = await p.store.hands(room.name)
        room.broadcast("handRaised", {"participantId": target.id, "raised": False})
    room.broadcast("stageChanged", {"participantId": target.id, "onStage": True})
    events.note(target, "stage", onStage=True, by=p.identity)
    return {}


@method("demote", HOST)
async def demote(p: Participant, params: schemas.ParticipantRef) -> dict[str, Any]:
    target = _target(p, params)
    target.on_stage = False
    if target.role == "attendee":
        for track in list(target.media_session.published.values()):
            await target.media_session.unpublish(track)
    p.room_or_fail().broadcast("stageChanged", {"participantId": target.id, "onStage": False})
    events.note(target, "stage", onStage=False, by=p.identity)
    return {}


@method("setLive", HOST)
async def broadcast_live(p: Participant, params: schemas.SetLive) -> dict[str, Any]:
    """Start (live: true) or pause (false) the webinar broadcast to the audience."""
    live = params.live
    room = p.room_or_fail()
    set_live(room, live)
    if room.bus is not None:
        room.bus({"t": "live", "live": live})
    room.broadcast("liveChanged", {"live": live})
    events.note(p, "live", live=live)
    if live:
        await p.rooms.recordings.went_live(room)
    return {"live": live}


@method("recordStart", HOST)
async def record_start(p: Participant, params: schemas.RecordStart) -> dict[str, Any]:
    return await p.rooms.recordings.start(p.room_or_fail(), params.mode, params.layout,
                                          params.low_latency)


@method("recordStop", HOST)
async def record_stop(p: Participant, params: schemas.Empty) -> dict[str, Any]:
    return {"recording": await p.rooms.recordings.stop(p.room_or_fail())}

