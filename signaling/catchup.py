"""Catching up inside the room: a participant rewinds the stage to the live HLS (with DVR) of
the room's running recording, watches it faster, and comes back to the live WebRTC stage.

`catchUp {rewound: true}` mints the caller's own grant for the live playlist (grants.py,
`/recordings/<id>/p/<participant>/...`): the file route serves it only while that participant
is in the room the recording is of, so it ends with their session and a removed participant's
requests are refused. The result carries the chapter marks noted so far (wall-clock), which
the client places on its scrubber through the playlist's EXT-X-PROGRAM-DATE-TIME.
`catchUp {rewound: false}`: back on the live stage. Hosts get `rewoundChanged {count}` at each
change: how many people in the room watch behind live now.

While rewound, the participant's live videos are held by the server (MediaSession.set_rewound:
nothing sent, whatever the client's tile reports say, and each as its tile was last reported
once back); the sound is muted in the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import schemas
from .errors import RequestError
from .grants import participant_grant_path
from .methods import PARTICIPANTS, method

if TYPE_CHECKING:
    from .participant import Participant
    from .rooms import Room
    from .state import AppState

GRANT_TTL = 6 * 3600  # an upper bound; the grant ends with the session before that


def count(room: Room) -> int:
    return sum(1 for pid in room.rewound
               if (p := room.participants.get(pid)) is not None and p.joined)


def _set(p: Participant, room: Room, rewound: bool) -> None:
    if (p.id in room.rewound) == rewound:
        return
    if rewound:
        room.rewound.add(p.id)
    else:
        room.rewound.discard(p.id)
    room.tell_hosts("rewoundChanged", {"count": count(room)})


def left(p: Participant) -> None:
    """The participant left (or was removed): no longer rewound."""
    if p.room is not None and p.id in p.room.rewound:
        _set(p, p.room, False)


def watching_room(state: AppState, recording_id: str, participant: str) -> bool:
    """Whether `participant` is in the room whose running recording this is: the check of a
    participant's grant on every file request (here, or on another node of the room)."""
    recordings = state.recordings
    for name, active in recordings.active.items():
        if active.id == recording_id:
            room = recordings.rooms.get(name)
            if room is None:
                return False
            who = room.participants.get(participant)
            return (who is not None and who.joined) or participant in room.remote
    return False


@method("catchUp", PARTICIPANTS)
async def catch_up(p: Participant, params: schemas.CatchUp) -> dict[str, Any]:
    room = p.room_or_fail()
    if not params.rewound:
        _set(p, room, False)
        await p.media_session.set_rewound(False)
        return {}
    if p.group is not None or not room.sees_media(p):
        raise RequestError("forbidden", "only the main room's audience may watch the stage")
    recordings = p.rooms.recordings
    active = recordings.active.get(room.name) if recordings is not None else None
    if active is None or active.mode != "composite":
        raise RequestError("not_found", "the stage is not being recorded with live HLS")
    base = participant_grant_path(recordings.secret, active.id, p.id, GRANT_TTL)
    marks = await p.store.recording_chapters(active.id)
    _set(p, room, True)
    await p.media_session.set_rewound(True)
    return {"recordingId": active.id, "playlist": f"{base}/index.m3u8",
            "started": active.started,
            "marks": [{"at": m["at"], "title": m["title"]} for m in marks]}
