"""The recorder process: recordings driven over a control socket (Unix domain).

The socket speaks the media plane's JSON-lines RPC (mediaserver/rpc.py): one JSON object per
line each way, requests `{"id", "method", "params": {...}}`, answers `{"id", "result": {...}}`
or `{"id", "error": {"type", "message"}}`; events `{"event": "recording.ready" |
"recording.failed", ...}` go to every connected client (kept until one connects). Error types:
`bad_request` (not JSON, unknown method, params missing, unknown or of the wrong JSON type),
`recording` (refused: no such active recording, already running, shutting down, a bad
recording id, mode, layout, kind, codec or ssrc), `internal` (anything else; logged). Methods:

    start         {recording_id, room?, mode?: composite|pertrack, layout?: grid|speaker,
                   low_latency?: bool (composite: LL-HLS parts; default from the command line)}
                  -> {rtp_port, resumed, directory}
    add_track     {recording_id, ssrc, kind, codec: {name, payload_type, clock_rate, channels},
                   participant_name?, participant?, source?: camera|microphone|screen}
                  -> {track_id} (composite: a screen is the main picture)
    remove_track  {recording_id, ssrc} -> {}
    layout        {recording_id, layout} -> {}
    speaker       {recording_id, ssrc: int | null} -> {} (composite: the track's participant
                  is the active speaker, null: the recorder's own audio levels decide)
    stop          {recording_id} -> {playlist, mp4, poster, duration, size, ...}
    list          {} -> {recordings: [...]}
    stats         {} -> {recordings: [{recording_id, mode, tracks, output_seconds, ...}]}
                  (composite: wall_lag, queued; per-track: frames), for benchmarks
    ping          {} -> {pid}

At start-up every recording left in state "recording" by a crash is finalized (ENDLIST, MP4,
poster: a playable VOD of what was written) and marked "interrupted"; a later `start` with the
same recording_id resumes it into the same playlist after an EXT-X-DISCONTINUITY.

SIGTERM, SIGINT or the server's death (mediaserver/lifetime.py) shut it down: `start` is
refused, every running recording is finalized (a `stop` asked meanwhile, or just after, gets
the same answer), and the process leaves once that is done and its clients have hung up, or
after `stop_seconds` at the latest. A finalization still running then (the MP4 of a very long
recording) is left as a crash would leave it, for the next start to finish; the exit code says
so (EXIT_UNFINISHED, otherwise 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import os
import shutil
import signal
import time
import types
import typing
from pathlib import Path
from typing import Any

from mediaserver.lifetime import watch_parent
from mediaserver.rpc import BadRequest, RpcServer

from . import vod
from .composite import CompositeOptions
from .recording import Recording, read_state, write_state

log = logging.getLogger(__name__)
TICK = 0.02
STOP_SECONDS = 3.0  # the longest a shutdown may take (docs/operations.md)
EXIT_UNFINISHED = 75  # exit code (EX_TEMPFAIL): work is left for the next start


class RecorderService:
    def __init__(self, rtp_host: str, recordings: Path, options: CompositeOptions | None = None,
                 max_delay: float = 0.15) -> None:
        self.rtp_host = rtp_host
        self.root = recordings
        self.options = options or CompositeOptions()
        self.max_delay = max_delay
        self.active: dict[str, Recording] = {}
        # the control socket; what the recorder raises on purpose (ValueError, KeyError:
        # no such recording, a bad layout, codec, ssrc...) is a `recording` error
        self.rpc = RpcServer(self._handle, lambda exc: "recording"
                             if isinstance(exc, (ValueError, KeyError)) else None)
        self._recovering: dict[str, asyncio.Task] = {}
        self._closing = asyncio.Event()
        self._failed: set[str] = set()
        self._stops: dict[str, asyncio.Task] = {}  # recording id -> its finalization

    # ---- recovery -------------------------------------------------------------------------

    def start_recovery(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            state = read_state(d)
            if state is not None and state.get("status") == "recording":
                self._recovering[d.name] = asyncio.create_task(self._recover(d, state))

    async def _recover(self, directory: Path, state: dict) -> None:
        result: dict = {}
        for work in directory.glob(".parts*"):  # an MP4 build cut short by a shutdown
            shutil.rmtree(work, ignore_errors=True)
        try:
            if state.get("mode") == "composite":
                rec = await asyncio.to_thread(vod.recover, directory)
                if rec is not None and rec.playlist.segments:
                    result = await asyncio.to_thread(vod.finalize, directory, rec.playlist)
            state["status"] = "interrupted"
            write_state(directory, state)
            self.rpc.push({"event": "recording.ready", "recording_id": directory.name,
                           "room": state.get("room"), "mode": state.get("mode"),
                           "participants": state.get("participants", []),
                           "interrupted": True, "directory": str(directory), **result})
        except Exception as exc:
            log.exception("recovering %s failed", directory)
            self.rpc.push({"event": "recording.failed", "recording_id": directory.name,
                           "error": repr(exc)})

    # ---- operations -----------------------------------------------------------------------

    async def _handle(self, method: str, params: dict[str, Any]) -> Any:
        """A request: the operation `op_<method>`, its params checked against its signature
        (names and JSON types) first."""
        operation = getattr(self, f"op_{method}", None)
        if operation is None:
            raise BadRequest(f"unknown method {method[:64]!r}")
        try:
            inspect.signature(operation).bind(**params)
        except TypeError as exc:
            raise BadRequest(f"{method}: {exc}") from None
        hints = typing.get_type_hints(operation)
        for name, value in params.items():
            kinds = _types(hints[name])
            if type(value) not in kinds:  # exactly: no bool for an int
                raise BadRequest(f"{method}: {name} must be "
                                 f"{' or '.join(k.__name__ for k in kinds)}")
        return await operation(**params)

    async def op_start(self, recording_id: str, room: str = "", mode: str = "composite",
                       layout: str = "grid", low_latency: bool | None = None) -> dict:
        if self._closing.is_set():
            raise ValueError("the recorder is shutting down")
        if recording_id in self.active:
            raise ValueError(f"recording {recording_id} is already running")
        if task := self._recovering.get(recording_id):
            await task
        options = dataclasses.replace(self.options)
        if low_latency is not None:
            options.low_latency = low_latency
        rec = Recording(recording_id, room, mode, layout, self.root, options, self.max_delay)
        self.active[recording_id] = rec
        try:
            port = await rec.open(self.rtp_host)
        except BaseException:
            self.active.pop(recording_id, None)
            raise
        return {"rtp_port": port, "resumed": rec.resumed, "directory": str(rec.dir)}

    def _get(self, recording_id: str) -> Recording:
        rec = self.active.get(recording_id)
        if rec is None:
            raise ValueError(f"no active recording {recording_id!r}")
        return rec

    async def op_add_track(self, recording_id: str, ssrc: int, kind: str,
                           codec: dict[str, Any], participant_name: str = "",
                           participant: str | None = None, source: str = "") -> dict:
        track_id = self._get(recording_id).add_track(ssrc, kind, codec, participant_name,
                                                      participant, source)
        return {"track_id": track_id}

    async def op_remove_track(self, recording_id: str, ssrc: int) -> dict:
        self._get(recording_id).remove_track(ssrc)
        return {}

    async def op_layout(self, recording_id: str, layout: str) -> dict:
        self._get(recording_id).set_layout(layout)
        return {}

    async def op_speaker(self, recording_id: str, ssrc: int | None) -> dict:
        rec = self._get(recording_id)
        track = rec.tracks.get(ssrc) if ssrc is not None else None
        if ssrc is not None and track is None:
            raise ValueError(f"no track with ssrc {ssrc}")
        if rec.compositor is not None:
            rec.compositor.set_speaker(track.participant if track is not None else None)
        return {}

    async def op_stop(self, recording_id: str) -> dict:
        task = self._stops.get(recording_id) or self._stop_task(self._get(recording_id))
        return await asyncio.shield(task)  # the requester gone, it still finishes
    def _stop_task(self, rec: Recording) -> asyncio.Task:
        """The one finalization of a recording, whoever asks for it (a `stop`, the shutdown);
        kept once done while shutting down, for a `stop` that comes late."""
        task = self._stops.get(rec.id)
        if task is None:
            task = self._stops[rec.id] = asyncio.create_task(self._stop(rec))
            if not self._closing.is_set():
                task.add_done_callback(lambda _: self._stops.pop(rec.id, None))
        return task

    async def _stop(self, rec: Recording) -> dict:
        try:
            result = await rec.stop()
        except Exception as exc:
            self.rpc.push({"event": "recording.failed", "recording_id": rec.id,
                           "error": repr(exc)})
            raise
        finally:
            self.active.pop(rec.id, None)
        self.rpc.push({"event": "recording.ready", "interrupted": False, **result})
        return result

    async def op_list(self) -> dict:
        out = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            state = read_state(d)
            if state is not None:
                out.append({**state, "active": d.name in self.active})
        return {"recordings": out}

    async def op_stats(self) -> dict:
        return {"recordings": [rec.stats() for rec in self.active.values()]}

    async def op_ping(self) -> dict:
        return {"pid": os.getpid()}

    async def _ticker(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            if now - last > 0.25:
                log.warning("event loop stalled for %.0f ms", (now - last) * 1000)
            last = now
            for rec in list(self.active.values()):
                rec.tick(now)
                if rec.failure and rec.id not in self._failed:
                    self._failed.add(rec.id)
                    self.rpc.push({"event": "recording.failed", "recording_id": rec.id,
                                   "error": rec.failure})

    async def _shutdown(self, seconds: float) -> bool:
        """Finalize every running recording; return once that is done and the clients (the
        server, waiting for the answers) have hung up, or after `seconds`. False: some
        finalization (or a recovery from start-up) is still running."""
        stops = [self._stop_task(rec) for rec in list(self.active.values())]
        stops += self._recovering.values()
        deadline = asyncio.get_running_loop().time() + seconds
        if stops:  # asyncio.wait cancels none of them (a cancelled one would look done)
            done, pending = await asyncio.wait(stops, timeout=seconds)
            for task in done:
                if not task.cancelled():
                    task.exception()  # a failed stop is reported already (recording.failed)
            if pending:
                return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rpc.hung_up.wait(),
                                   max(0.0, deadline - asyncio.get_running_loop().time()))
        return True

    async def serve(self, control: Path, stop_seconds: float = STOP_SECONDS,
                    parent: int = 0) -> None:
        self.start_recovery()
        with contextlib.suppress(FileNotFoundError):
            control.unlink()
        server = await self.rpc.serve(str(control))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._closing.set)

        def parent_gone() -> None:
            # The server died without stopping us: finalize and leave, as on SIGTERM. An
            # orphan would record an idle room for ever while the next server's recorder
            # recovers the same directories.
            log.warning("the server is gone: finalizing and exiting")
            self._closing.set()

        watch_parent(parent, parent_gone)
        ticker = asyncio.create_task(self._ticker())
        log.info("recorder listening on %s, recordings in %s", control, self.root)
        try:
            await self._closing.wait()
            finished = await self._shutdown(stop_seconds)
        finally:
            ticker.cancel()
            server.close()
            with contextlib.suppress(FileNotFoundError):
                control.unlink()
        if not finished:
            # Its thread cannot be stopped, and would hold the exit up: leave now. What was
            # written stays valid; the next start finalizes it (start_recovery).
            left = [rid for rid, task in [*self._stops.items(), *self._recovering.items()]
                    if not task.done()]
            log.warning("shutdown: finalization of %s not done after %.1f s; the next start "
                        "finishes it", ", ".join(left), stop_seconds)
            logging.shutdown()
            os._exit(EXIT_UNFINISHED)


def _types(hint: Any) -> tuple[type, ...]:
    """The JSON value types a param's annotation allows: `str | None` -> (str, NoneType),
    `dict[str, Any]` -> (dict,)."""
    arms = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return tuple(typing.get_origin(arm) or arm for arm in arms)
