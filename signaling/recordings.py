"""Recording a room: plain-RTP taps from the room's Router to the recorder process.

A tap is a PipeTransport whose far end is the recorder's RTP port; every track of the room's
main group is piped into it (the recorder depacketizes, lays out or remuxes, and writes HLS
with DVR and the VOD). The index of recordings lives in the Store; files are served by
`/recordings/<id>/g/<expiry>/<signature>/<file>` only, see grants.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mediaserver.api import MediaControl

from .errors import RequestError
from .grants import grant_path
from .recorder_link import RecorderError, RecorderLink
from .rooms import Room, Track, new_id
from .store import Store
from .webhooks import Webhooks

log = logging.getLogger(__name__)

MODES = ("composite", "pertrack")
LAYOUTS = ("grid", "speaker")


@dataclass
class Active:
    id: str
    pipe: str
    mode: str
    layout: str
    taps: dict[str, int] = field(default_factory=dict)  # track id -> SSRC in the pipe
    names: set[str] = field(default_factory=set)


class Recordings:
    def __init__(self, store: Store, media: MediaControl, directory: Path, secret: str,
                 webhooks: Webhooks) -> None:
        self.store = store
        self.media = media
        self.directory = directory
        self.secret = secret
        self.webhooks = webhooks
        self.active: dict[str, Active] = {}  # room name -> running recording
        self.rooms: dict[str, Room] = {}
        self.link = RecorderLink(directory, self._on_event, self._on_restart)

    async def stop_process(self) -> None:
        for room_name in list(self.active):
            room = self.rooms.get(room_name)
            if room is not None:
                try:
                    await self.stop(room)
                except RequestError:
                    log.exception("stopping the recording of %s", room_name)
        if self.link.process is not None:
            await self.link.stop()
        await self.webhooks.drain()

    # ---- control ------------------------------------------------------------------------

    async def start(self, room: Room, mode: str = "composite", layout: str = "grid",
                    recording_id: str | None = None) -> dict[str, Any]:
        if self.link.process is None:
            await self.link.start()  # the recorder process starts with the first recording
        if mode not in MODES or layout not in LAYOUTS:
            raise RequestError("bad_request", f"mode: {'/'.join(MODES)}, layout: "
                               f"{'/'.join(LAYOUTS)}")
        if room.name in self.active:
            raise RequestError("conflict", "the room is already being recorded")
        rid = recording_id or new_id("rec")
        try:
            started = await self.link.call("start", recording_id=rid, room=room.name,
                                           mode=mode, layout=layout)
        except RecorderError as exc:
            raise RequestError("internal", f"the recorder refused: {exc}") from None
        pipe = await self.media.create_pipe_transport(room.router_id)
        await self.media.connect_pipe_transport(pipe["id"], "127.0.0.1", started["rtp_port"])
        active = Active(rid, pipe["id"], mode, layout)
        self.active[room.name] = active
        self.rooms[room.name] = room
        for track in room.tracks_in(None):
            await self.track_added(room, track)
        await self.store.put_recording({"id": rid, "room": room.name, "mode": mode,
                                        "state": "recording", "started": time.time()})
        room.broadcast("recordingChanged", {"recording": True, "recordingId": rid})
        return {"recordingId": rid, "mode": mode, "layout": layout}

    async def track_added(self, room: Room, track: Track) -> None:
        active = self.active.get(room.name)
        if active is None or track.group is not None or track.id in active.taps:
            return
        params = await self.media.pipe_consume(active.pipe, track.producer_id)
        name = next((p.name for p in room.participants.values()
                     if p.id == track.participant_id),
                    room.remote.get(track.participant_id, {}).get("name", "guest"))
        active.taps[track.id] = params.ssrc or 0
        active.names.add(name)
        codec = track.codec
        await self.link.call("add_track", recording_id=active.id, ssrc=params.ssrc,
                             kind=track.kind, participant_name=name,
                             participant=track.participant_id,
                             codec={"name": codec.name, "payload_type": codec.payload_type,
                                    "clock_rate": codec.clock_rate,
                                    "channels": codec.channels})

    async def track_removed(self, room: Room, track: Track) -> None:
        active = self.active.get(room.name)
        if active is None or track.id not in active.taps:
            return
        ssrc = active.taps.pop(track.id)
        try:
            await self.link.call("remove_track", recording_id=active.id, ssrc=ssrc)
        except RecorderError as exc:
            log.warning("remove_track: %s", exc)

    async def stop(self, room: Room) -> dict[str, Any]:
        active = self.active.pop(room.name, None)
        if active is None:
            raise RequestError("conflict", "the room is not being recorded")
        await self.media.close_pipe_transport(active.pipe)
        try:
            result = await self.link.call("stop", recording_id=active.id, timeout=120)
        except RecorderError as exc:
            raise RequestError("internal", f"the recorder failed: {exc}") from None
        room.broadcast("recordingChanged", {"recording": False, "recordingId": active.id})
        return await self._finished(room.name, active.id, result, sorted(active.names))

    async def _finished(self, room: str, rid: str, result: dict[str, Any],
                        names: list[str]) -> dict[str, Any]:
        entry = {**(await self.store.get_recording(rid) or {"id": rid, "room": room}),
                 "state": "ready", "duration": result.get("duration"),
                 "size": result.get("size"), "participants": names or
                 result.get("participants", []), "interrupted": result.get("interrupted",
                                                                           False),
                 "files": {k: Path(v).name for k, v in result.items()
                           if k in ("playlist", "mp4", "poster", "chapters") and v}}
        await self.store.put_recording(entry)
        public = self.describe(entry)
        self.webhooks.send("recording.ready", public)
        return public

    def describe(self, entry: dict[str, Any], ttl: int = 7 * 86400) -> dict[str, Any]:
        """The index entry with links carrying an expiring grant."""
        base = grant_path(self.secret, entry["id"], ttl)
        links = {kind: f"{base}/{name}" for kind, name in entry.get("files", {}).items()}
        if entry.get("state") == "recording":
            links["playlist"] = f"{base}/index.m3u8"
        if "playlist" in links:
            links["player"] = "/play?src=" + quote(links["playlist"], safe="")
        return {**entry, "links": links}

    # ---- recorder events ----------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "recording.ready" and event.get("interrupted"):
            # a crash interrupted it; the restarted recorder finalized what was written
            asyncio.ensure_future(self._finished(event.get("room", ""), event["recording_id"],
                                                 event, event.get("participants", [])))

    def _on_restart(self) -> None:
        """Resume the rooms that were being recorded: same id, same playlist."""
        for room_name, active in list(self.active.items()):
            room = self.rooms.get(room_name)
            self.active.pop(room_name, None)
            if room is not None:
                asyncio.ensure_future(self._resume(room, active))

    async def _resume(self, room: Room, active: Active) -> None:
        await self.media.close_pipe_transport(active.pipe)
        try:
            await self.start(room, active.mode, active.layout, recording_id=active.id)
        except RequestError:
            log.exception("could not resume recording %s", active.id)
