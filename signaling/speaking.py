"""Active speaker in rooms: the media plane's choice (mediaserver/speaker.py, one per Router)
becomes the `activeSpeaker` event of the room or breakout group the Router serves, a speaking
interval of the participant, and the composite recorder's speaker (recordings.py).

Every signalling node with people in a room reaches the room's Routers (cluster.py attaches
their workers), and every worker pushes its events to each node connected to it: so each node
delivers the event to its own participants (Room.deliver) instead of relaying it over the bus,
which would deliver it twice. For the same reason each node keeps the speaking intervals of
the participants connected to it: the union over the nodes is the room's, without doubles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .recordings import Recordings
    from .rooms import Room, RoomRegistry, Track

log = logging.getLogger(__name__)

MAX_INTERVALS = 1000  # kept per identity, the oldest dropped first
MAX_IDENTITIES = 2000  # per room, the one heard least recently dropped first


@dataclass(slots=True)
class Turn:
    start: float  # seconds since the epoch
    end: float | None = None  # None: still speaking


@dataclass
class SpeakingLog:
    """When each participant (by identity, so reconnects add up) was the active speaker: a
    bounded list of (start, end) intervals in seconds since the epoch, end None while it
    lasts. One per Room; its Routers (main room, breakout groups) each have a speaker."""

    intervals: dict[str, deque[Turn]] = field(default_factory=dict)
    speaking: dict[str, Turn] = field(default_factory=dict)  # router id -> the open turn
    # router id -> the track of its speaker, as last announced (None: nobody)
    tracks: dict[str, Track | None] = field(default_factory=dict)

    def changed(self, router_id: str, identity: str | None, at: float) -> None:
        """The speaker of one Router is now `identity` (None: nobody, or not from here)."""
        previous = self.speaking.pop(router_id, None)
        if previous is not None:
            previous.end = at
        if identity is None:
            return
        turn = self.speaking[router_id] = Turn(at)
        kept = self.intervals.pop(identity, None) or deque(maxlen=MAX_INTERVALS)
        kept.append(turn)
        self.intervals[identity] = kept  # last in the dict: heard most recently
        while len(self.intervals) > MAX_IDENTITIES:
            del self.intervals[next(iter(self.intervals))]

    def intervals_of(self, identity: str) -> list[tuple[float, float | None]]:
        """(start, end) of each time `identity` was the active speaker, oldest first; end
        None: speaking now."""
        return [(turn.start, turn.end) for turn in self.intervals.get(identity, ())]

    def speaking_time(self, identity: str, now: float | None = None) -> float:
        """Seconds `identity` spent as the active speaker (the open interval up to `now`)."""
        now = time.time() if now is None else now
        return sum((end if end is not None else now) - start
                   for start, end in self.intervals_of(identity))


def find_router(rooms: RoomRegistry, router_id: str) -> tuple[Room, str | None] | None:
    """The room and group (None: the main room) whose media Router is `router_id`."""
    for room in rooms.rooms.values():
        if room.router_id == router_id:
            return room, None
        for group in room.breakouts.groups.values():
            if group.router_id == router_id:
                return room, group.id
    return None  # an edge Router (mirrors), or a room not open here


def on_active_speaker(rooms: RoomRegistry, recordings: Recordings | None, router_id: str,
                      producer_id: str | None) -> None:
    """The media plane's listener (MediaControl.on_active_speaker)."""
    found = find_router(rooms, router_id)
    if found is None:
        return
    room, group = found
    track = None
    if producer_id is not None:
        track = next((t for t in room.tracks.values()
                      if t.producer_id == producer_id and t.group == group), None)
        if track is None:
            return  # not a track of the room (any more): nothing to tell
    turns = room.speaking
    if router_id in turns.tracks and turns.tracks[router_id] is track:
        return
    turns.tracks[router_id] = track
    local = room.participants.get(track.participant_id) if track is not None else None
    turns.changed(router_id, local.identity if local is not None else None, time.time())
    if rooms.events is not None:  # analytics: speak.start / speak.stop (events.py)
        rooms.events.speaker(room.name, router_id, local.identity if local else None)
    room.deliver("activeSpeaker", speaker_of(room, group), group=group, media=True)
    if group is None and recordings is not None and recordings.recording(room):
        task = asyncio.ensure_future(recordings.speaker(room, track))
        task.add_done_callback(_logged)


def current(room: Room, group: str | None) -> Track | None:
    """The active speaker's track in the room's main group or a breakout group."""
    return room.speaking.tracks.get(room.router_of_group(group))


def speaker_of(room: Room, group: str | None, seen: bool = True) -> dict[str, str | None]:
    """What `activeSpeaker` said last there, for the event and for late joiners (join,
    moved): both None while nobody has spoken yet, or for someone who may not see the
    media yet (`seen` False: a webinar attendee backstage)."""
    track = current(room, group) if seen else None
    return {"participantId": track.participant_id if track else None,
            "trackId": track.id if track else None}


def _logged(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("telling the recorder the active speaker: %r", task.exception())
