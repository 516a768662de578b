"""Recording a room: plain-RTP taps from the room's Router to the recorder process.

A tap is a PipeTransport whose far end is the recorder's RTP port; every track of the room's
main group is piped into it (the recorder depacketizes, lays out or remuxes, and writes HLS
with DVR and the VOD). The index of recordings lives in the Store; files are served by
`/recordings/<id>/g/<expiry>/<signature>/<file>` only, see grants.py. Room events noted while
recording become chapters when the VOD is made, see chapters.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mediaserver.api import MediaControl

from . import chapters
from .errors import RequestError
from .grants import grant_path
from .recorder_link import RecorderError, RecorderLink
from .rooms import Room, Track, new_id
from .store import Store
from .webhooks import Webhooks

if TYPE_CHECKING:
    from .cluster import Cluster

log = logging.getLogger(__name__)

MODES = ("composite", "pertrack")
LAYOUTS = ("grid", "speaker")
# In the recordings directory while the recorder has work left from a shutdown that ended
# before it was done (the ids it could not finalize): every start runs the recorder, which
# finishes that work as after a crash, until a shutdown finds it done.
UNFINISHED = ".unfinished"
WEBHOOKS_WAIT = 0.5  # at shutdown, for deliveries in flight


@dataclass
class Active:
    id: str
    pipe: str
    mode: str
    layout: str
    low_latency: bool = False  # composite: LL-HLS parts as well (docs/recording.md)
    started: float = field(default_factory=time.time)
    taps: dict[str, int] = field(default_factory=dict)  # track id -> SSRC in the pipe
    names: set[str] = field(default_factory=set)
    presenter: str | None = None  # participant id of the presenter last noted
    last_title: str | None = None  # of the last chapter mark
    resume: asyncio.Task | None = None  # after a recorder crash, until the taps are back


class Recordings:
    def __init__(self, store: Store, media: MediaControl, directory: Path, secret: str,
                 webhooks: Webhooks) -> None:
        self.store = store
        self.media = media
        self.directory = directory
        self.secret = secret
        self.webhooks = webhooks
        self.events: Any = None  # the analytics event log (events.py), set by analytics_api
        self.active: dict[str, Active] = {}  # room name -> running recording
        self.rooms: dict[str, Room] = {}
        self.link = RecorderLink(directory, self._on_event, self._on_restart)
        self._interrupted: dict[str, dict[str, Any]] = {}  # id -> the crash's finalize event
        self._spawning = asyncio.Lock()
        # with several nodes: which recording runs in each room, whichever node runs it
        # (app.py sets it; cluster.py `claim_recording`)
        self.shared: Cluster | None = None

    def stop_process(self) -> asyncio.Task:
        """Shutdown: the recorder gets SIGTERM and finalizes every running recording; the
        stops asked for them give the VODs their entries (and recording.ready webhooks); then
        it leaves. All within the link's stop_seconds: whatever is not finalized by then is
        left for the next start (UNFINISHED). Every running recording is taken before this
        returns (a session closed meanwhile touches none); await the task for the rest."""
        self.link.terminate()
        taken = [(active.id, asyncio.create_task(self._stop_quietly(self.rooms[name])))
                 for name, active in list(self.active.items()) if name in self.rooms]
        return asyncio.create_task(self._stop_process(taken))

    async def _stop_process(self, taken: list[tuple[str, asyncio.Task]]) -> None:
        await asyncio.gather(*(task for _, task in taken))
        started, code = self.link.process is not None, await self.link.stop()
        unfinished = [rid for rid, task in taken if not task.result()]
        marker = self.directory / UNFINISHED
        if unfinished or (started and code != 0):  # 0: it finished all it had to do
            log.warning("shutdown: recordings %s not finalized in time; the next start "
                        "finishes them", ", ".join(unfinished) or "(from before)")
            await asyncio.to_thread(marker.write_text, "".join(f"{r}\n" for r in unfinished))
        elif started:
            marker.unlink(missing_ok=True)
        try:
            await asyncio.wait_for(self.webhooks.drain(), WEBHOOKS_WAIT)
        except TimeoutError:
            log.warning("shutdown: webhook deliveries given up after %.1f s", WEBHOOKS_WAIT)

    async def finish_unfinished(self) -> None:
        """At start: a shutdown left work unfinished (UNFINISHED). The recorder finalizes it
        as it starts (what it does after a crash); its recording.ready events, marked
        interrupted, make the entries ready (_on_event)."""
        marker = self.directory / UNFINISHED
        if not marker.exists():
            return
        log.info("the recorder finishes what the last shutdown left: %s",
                 " ".join(marker.read_text().split()) or "(from before)")
        async with self._spawning:
            if self.link.process is None:
                await self.link.start()

    # ---- the room's lifecycle ------------------------------------------------------------

    def recording(self, room: Room) -> bool:
        return room.name in self.active

    def anywhere(self, room: Room) -> bool:
        """A recording of the room runs, here or on another node."""
        return self.recording(room) or room.remote_recording is not None

    def mode_of(self, room: Room) -> str | None:
        """The running recording's mode ("composite": with live HLS), None if none runs."""
        active = self.active.get(room.name)
        if active is None:
            return room.remote_recording["mode"] if room.remote_recording else None
        return active.mode

    async def tracks_published(self, room: Room, tracks: list[Track], role: str) -> None:
        """New tracks of one participant: tapped into the room's running recording. In a
        room that records by itself (auto_record), the first host or presenter to publish
        starts the recording, which takes every track, these included; in a webinar still
        backstage, going live does (`went_live`): the rehearsal is nobody's recording."""
        if not tracks:
            return
        if room.auto_record and not self.anywhere(room) and role in ("host", "presenter"):
            if room.live:
                await self.start(room)
            return
        for track in tracks:
            await self.track_added(room, track)

    async def went_live(self, room: Room) -> None:
        """A webinar that records by itself starts at go-live with what its stage publishes."""
        if room.auto_record and not self.anywhere(room) and room.tracks_in(None):
            await self.start(room)

    async def room_ended(self, room: Room) -> None:
        """The last participant left: the recording stops and its VOD is made now."""
        if self.recording(room):
            await self.stop(room)

    # ---- control ------------------------------------------------------------------------

    async def start(self, room: Room, mode: str = "composite", layout: str = "grid",
                    low_latency: bool = False) -> dict[str, Any]:
        if mode not in MODES or layout not in LAYOUTS or not isinstance(low_latency, bool):
            raise RequestError("bad_request", f"mode: {'/'.join(MODES)}, layout: "
                               f"{'/'.join(LAYOUTS)}, lowLatency: true/false")
        if room.name in self.active or room.remote_recording is not None:
            raise RequestError("conflict", "the room is already being recorded")
        active = Active(new_id("rec"), "", mode, layout, low_latency)
        for track in room.tracks_in(None):  # who presents as it starts is no chapter
            if who := chapters.presenter(room, track):
                active.presenter = who[0]
        self.active[room.name] = active  # taken: a second start now gets `conflict`
        self.rooms[room.name] = room
        try:
            if self.shared is not None and not await self.shared.claim_recording(
                    room.name, {"recordingId": active.id, "mode": mode}):
                raise RequestError("conflict", "the room is already being recorded")
            async with self._spawning:  # the recorder process starts with the first recording
                if self.link.process is None:
                    await self.link.start()
            await self._attach(room, active)
        except BaseException:
            self.active.pop(room.name, None)
            raise
        await self.store.put_recording({"id": active.id, "room": room.name, "mode": mode,
                                        "state": "recording", "started": active.started})
        room.broadcast("recordingChanged", {"recording": True, "recordingId": active.id,
                                                "mode": active.mode})
        if self.events is not None:
            self.events.emit("recording.start", room.name, recordingId=active.id)
        return {"recordingId": active.id, "mode": mode, "layout": layout,
                "lowLatency": low_latency}

    async def _over(self, room: Room, active: Active) -> None:
        room.broadcast("recordingChanged", {"recording": False, "recordingId": active.id,
                                            "mode": active.mode})
        if self.shared is not None:
            try:
                await self.shared.drop_recording(room.name, active.id)
            except Exception:  # (Redis gone: the entry's node ends with us, it counts as over)
                log.exception("recording %s: could not clear the shared state", active.id)

    async def _attach(self, room: Room, active: Active) -> None:
        """Start (or, after a crash, resume) the recording in the recorder and tap every
        track of the main room into it."""
        try:
            started = await self.link.call("start", recording_id=active.id, room=room.name,
                                           mode=active.mode, layout=active.layout,
                                           low_latency=active.low_latency)
        except RecorderError as exc:
            raise RequestError("internal", f"the recorder refused: {exc}") from None
        pipe = await self.media.create_pipe_transport(room.router_id)
        await self.media.connect_pipe_transport(pipe.id, "127.0.0.1", started["rtp_port"])
        active.pipe, active.taps = pipe.id, {}
        for track in room.tracks_in(None):
            await self.track_added(room, track, live=False)

    async def note(self, room_name: str, title: str) -> None:
        """A chapter mark, now, in the room's running recording (none is running: nothing)."""
        at = time.time()
        active = self.active.get(room_name)
        if active is None or title == active.last_title:
            return
        active.last_title = title
        await self.store.add_recording_chapter(active.id, at, title)

    async def track_added(self, room: Room, track: Track, live: bool = True) -> None:
        """A track to record; `live`: just published (a new presenter is a chapter)."""
        active = self.active.get(room.name)
        if active is None:
            return
        if live and (who := chapters.presenter(room, track)) and who[0] != active.presenter:
            active.presenter = who[0]
            await self.note(room.name, who[1])
        if not active.pipe or track.group is not None or track.id in active.taps:
            return  # not tapped yet (its attach takes every track), or not in the main room
        active.taps[track.id] = 0  # taken: a second call while this one waits does nothing
        params = await self.media.pipe_consume(active.pipe, track.producer_id)
        name = next((p.name for p in room.participants.values()
                     if p.id == track.participant_id),
                    room.remote.get(track.participant_id, {}).get("name", "guest"))
        active.taps[track.id] = params.ssrc or 0
        active.names.add(name)
        codec = track.codec
        await self.link.call("add_track", recording_id=active.id, ssrc=params.ssrc,
                             kind=track.kind, participant_name=name,
                             participant=track.participant_id, source=track.source,
                             codec={"name": codec.name, "payload_type": codec.payload_type,
                                    "clock_rate": codec.clock_rate,
                                    "channels": codec.channels})

    async def speaker(self, room: Room, track: Track | None) -> None:
        """The room's active speaker (speaking.py) for the composite's speaker layout: the
        SSRC of their tapped audio (None: nobody, the recorder's own levels decide)."""
        active = self.active.get(room.name)
        if active is None or active.mode != "composite":
            return
        ssrc = (active.taps.get(track.id) or None) if track is not None else None
        await self.link.call("speaker", recording_id=active.id, ssrc=ssrc)

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
        active = self.active.get(room.name)
        if active is not None and active.resume is not None:
            await asyncio.shield(active.resume)  # back in the restarted recorder first
        if active is None or self.active.pop(room.name, None) is not active:
            raise RequestError("conflict", "the room is not being recorded")
        await self.media.close_pipe_transport(active.pipe)
        try:
            result = await self.link.call("stop", recording_id=active.id, timeout=120)
        except RecorderError as exc:
            raise RequestError("internal", f"the recorder failed: {exc}") from None
        finally:  # over, whatever the recorder says: nobody is told "● Recording" any more
            await self._over(room, active)
            if self.events is not None:
                self.events.emit("recording.stop", room.name, recordingId=active.id)
        return await self._finished(room.name, active.id, result, sorted(active.names))

    async def _finished(self, room: str, rid: str, result: dict[str, Any],
                        names: list[str]) -> dict[str, Any]:
        entry = {**(await self.store.get_recording(rid) or {"id": rid, "room": room}),
                 "state": "ready", "duration": result.get("duration"),
                 "size": result.get("size"), "participants": names or
                 result.get("participants", []), "interrupted": result.get("interrupted",
                                                                           False),
                 "files": {k: Path(v).name for k, v in result.items()
                           if k in ("playlist", "mp4", "poster") and v}}
        if result.get("error"):  # it failed on the way: the VOD holds what came before
            entry["error"] = result["error"]
        marks = await self.store.recording_chapters(rid)
        made = await asyncio.to_thread(chapters.write, self.directory / rid, marks,
                                       float(result.get("duration") or 0), entry.get("started"))
        if made is not None:
            entry["chapters"] = made
            entry["files"]["chapters"] = chapters.VTT
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
            links["player"] = "/play?src=" + quote(links["playlist"], safe="") + (
                "&chapters=" + quote(links["chapters"], safe="") if "chapters" in links else "")
        return {**entry, "links": links}

    # ---- recorder events ----------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "recording.failed":
            self._on_failed(event)
        if event.get("event") != "recording.ready" or not event.get("interrupted"):
            return
        # A crash interrupted it; the restarted recorder finalized what was written. One that
        # is being resumed goes on into the same playlist: its stop makes the VOD.
        rid = event["recording_id"]
        if any(a.id == rid for a in self.active.values()):
            self._interrupted[rid] = event
            return
        asyncio.ensure_future(self._finished(event.get("room", ""), rid, event,
                                             event.get("participants", [])))

    def _on_failed(self, event: dict[str, Any]) -> None:
        """The recorder's compositor died (a bug): nothing more gets recorded, so stop now
        and make the VOD of what was written rather than showing "● Recording" to the end."""
        room = next((self.rooms.get(name) for name, a in self.active.items()
                     if a.id == event.get("recording_id")), None)
        log.error("recording %s failed: %s", event.get("recording_id"), event.get("error"))
        if room is not None:
            asyncio.ensure_future(self._stop_quietly(room))

    async def _stop_quietly(self, room: Room) -> bool:
        try:
            await self.stop(room)
        except RequestError as exc:  # stopped meanwhile by a host, or the recorder is gone
            log.warning("stopping the recording of %s: %s", room.name, exc.message)
            return False
        return True

    def _on_restart(self) -> None:
        """Resume the rooms that were being recorded: same id, same playlist."""
        for room_name, active in list(self.active.items()):
            room = self.rooms.get(room_name)
            if room is None:
                self.active.pop(room_name, None)
            else:
                active.resume = asyncio.ensure_future(self._resume(room, active))

    async def _resume(self, room: Room, active: Active) -> None:
        old, active.pipe = active.pipe, ""
        try:
            if old:
                await self.media.close_pipe_transport(old)
            await self._attach(room, active)
        except Exception:
            log.exception("could not resume recording %s", active.id)
            if self.active.get(room.name) is active:
                del self.active[room.name]
            await self._over(room, active)
            if event := self._interrupted.pop(active.id, None):  # the crash's VOD is all
                await self._finished(room.name, active.id, event, sorted(active.names))
        finally:
            active.resume = None
            self._interrupted.pop(active.id, None)
