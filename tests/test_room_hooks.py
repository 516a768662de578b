"""What a node does with the bus messages of another (cluster_sync.py), and the recording
hooks the room's lifecycle calls (recordings.py), without Redis or a recorder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from mediaserver.api import Codec
from signaling.cluster import Cluster, track_to_wire
from signaling.cluster_sync import RoomSync
from signaling.recordings import Recordings
from signaling.rooms import Room, Track

VP8 = Codec("VP8", 96, 90000)


@dataclass
class Here:
    """A participant connected to this node, as the room sees one."""

    id: str
    role: str = "attendee"
    group: str | None = None
    joined: bool = True
    on_stage: bool = False
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)

    def send_event(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def on_track_published(self, track: Track) -> None:
        self.published.append(track.id)

    def on_track_unpublished(self, track: Track) -> None:
        self.unpublished.append(track.id)


def room_with(*people: Here) -> Room:
    room = Room("shared", "w1.rt-1")
    room.participants = {p.id: cast(Any, p) for p in people}
    return room


def test_bus_messages_update_this_nodes_copy_of_the_room() -> None:
    ann, bob = Here("p-ann"), Here("p-bob", group="g-1")
    room = room_with(ann, bob)
    sync = RoomSync(cast(Cluster, None))  # receiving touches no Redis

    sync.received(room, {"t": "participant", "op": "add", "node": "n2", "participant": {
        "id": "p-cy", "name": "Cy", "role": "host", "identity": "cy", "node": "n2"}})
    assert room.remote == {"p-cy": {"id": "p-cy", "name": "Cy", "role": "host"}}

    camera = Track("t-1", "p-cy", "video", "camera", "w1.pr-1", VP8, "cy")
    sync.received(room, {"t": "track", "op": "add", "track": track_to_wire(camera)})
    assert room.tracks["t-1"] == camera and ann.published == ["t-1"] and bob.published == []
    sync.received(room, {"t": "track", "op": "mute", "trackId": "t-1", "muted": True})
    assert room.tracks["t-1"].muted
    sync.received(room, {"t": "track", "op": "remove", "trackId": "t-1"})
    assert "t-1" not in room.tracks and ann.unpublished == ["t-1"]
    sync.received(room, {"t": "track", "op": "remove", "trackId": "t-1"})  # twice: nothing

    sync.received(room, {"t": "event", "event": "chat", "data": {"text": "hi"},
                         "exclude": "p-bob"})
    sync.received(room, {"t": "event", "event": "trackMuted", "data": {}, "exclude": None,
                         "group": "g-1", "media": True})
    assert ann.events == [("chat", {"text": "hi"})] and bob.events == [("trackMuted", {})]

    sync.received(room, {"t": "live", "live": False})
    assert room.live is False
    sync.received(room, {"t": "participant", "op": "remove", "participantId": "p-cy"})
    assert room.remote == {}


class Recorded(Recordings):
    """Recordings whose start and taps are only noted (no recorder process)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(cast(Any, None), cast(Any, None), directory, "s" * 32,
                         cast(Any, None))
        self.calls: list[tuple[str, str]] = []

    async def start(self, room: Room, mode: str = "composite", layout: str = "grid",
                    low_latency: bool = False) -> dict[str, Any]:
        self.calls.append(("start", room.name))
        self.active[room.name] = cast(Any, object())
        return {}

    async def track_added(self, room: Room, track: Track, live: bool = True) -> None:
        self.calls.append(("tap", track.id))

    async def stop(self, room: Room) -> dict[str, Any]:
        self.calls.append(("stop", room.name))
        del self.active[room.name]
        return {}


async def test_auto_record_starts_with_the_first_host_or_presenter_to_publish(
        tmp_path: Path) -> None:
    recordings = Recorded(tmp_path)
    room = Room("adboard", "w1.rt-1", auto_record=True)
    camera = Track("t-1", "p-1", "video", "camera", "w1.pr-1", VP8, "a")
    voice = Track("t-2", "p-2", "audio", "mic", "w1.pr-2", Codec("opus", 111, 48000, 2), "b")
    await recordings.tracks_published(room, [camera], "attendee")
    assert recordings.calls == [("tap", "t-1")]  # not recording: the tap does nothing
    await recordings.tracks_published(room, [], "host")
    await recordings.tracks_published(room, [voice], "presenter")
    assert recordings.calls[-1] == ("start", "adboard") and recordings.recording(room)
    await recordings.tracks_published(room, [voice], "host")
    assert recordings.calls[-1] == ("tap", "t-2")

    await recordings.room_ended(room)
    assert recordings.calls[-1] == ("stop", "adboard") and not recordings.recording(room)
    await recordings.room_ended(room)  # nothing running: nothing to stop
    assert len(recordings.calls) == 4


async def test_an_auto_recorded_webinar_with_a_backstage_records_from_going_live(
        tmp_path: Path) -> None:
    """The rehearsal is nobody's recording: publishing backstage starts nothing, going live
    starts it with what the stage publishes then."""
    recordings = Recorded(tmp_path)
    room = Room("launch", "w1.rt-1", auto_record=True, live=False)
    camera = Track("t-1", "p-1", "video", "camera", "w1.pr-1", VP8, "a")
    await recordings.went_live(room)  # live with nothing on stage: nothing to record yet
    room.tracks[camera.id] = camera
    await recordings.tracks_published(room, [camera], "host")
    assert recordings.calls == [] and not recordings.recording(room)
    room.live = True
    await recordings.went_live(room)
    assert recordings.calls == [("start", "launch")] and recordings.recording(room)
    await recordings.went_live(room)  # live again after a pause: the same recording goes on
    assert recordings.calls == [("start", "launch")]


async def test_a_room_that_does_not_auto_record_only_taps(tmp_path: Path) -> None:
    recordings = Recorded(tmp_path)
    room = Room("meeting", "w1.rt-1")
    camera = Track("t-1", "p-1", "video", "camera", "w1.pr-1", VP8, "a")
    await recordings.tracks_published(room, [camera], "host")
    assert recordings.calls == [("tap", "t-1")]
