"""The recorder process: recordings driven over a JSON-lines control socket (Unix domain).

One JSON object per line each way. Requests carry an `op` and an optional `id` echoed in the
answer; answers are `{"id", "ok": true, "result": {...}}` or `{"id", "ok": false, "error"}`;
events are `{"event": "recording.ready" | "recording.failed", ...}`, sent to every connected
client (kept until one connects). Operations:

    start         {recording_id, room, mode: composite|pertrack, layout: grid|speaker,
                   low_latency?: bool (composite: LL-HLS parts; default from the command line)}
                  -> {rtp_port, resumed, directory}
    add_track     {recording_id, ssrc, kind, codec: {name, payload_type, clock_rate, channels},
                   participant_name, participant?} -> {track_id}
    remove_track  {recording_id, ssrc} -> {}
    layout        {recording_id, layout} -> {}
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
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from mediaserver.lifetime import watch_parent

from . import vod
from .composite import CompositeOptions
from .recording import Recording, read_state, write_state

log = logging.getLogger(__name__)
TICK = 0.02
STOP_SECONDS = 3.0  # the longest a shutdown may take (docs/operations.md)
MAX_PENDING = 64  # requests of one client answered at once; its next lines wait to be read
EXIT_UNFINISHED = 75  # exit code (EX_TEMPFAIL): work is left for the next start


class RecorderService:
    def __init__(self, rtp_host: str, recordings: Path, options: CompositeOptions | None = None,
                 max_delay: float = 0.15) -> None:
        self.rtp_host = rtp_host
        self.root = recordings
        self.options = options or CompositeOptions()
        self.max_delay = max_delay
        self.active: dict[str, Recording] = {}
        self.clients: set[asyncio.StreamWriter] = set()
        self.pending_events: list[dict] = []
        self._recovering: dict[str, asyncio.Task] = {}
        self._closing = asyncio.Event()
        self._failed: set[str] = set()
        self._stops: dict[str, asyncio.Task] = {}  # recording id -> its finalization
        self._hung_up = asyncio.Event()  # no client is connected
        self._hung_up.set()

    # ---- events ---------------------------------------------------------------------------

    def emit(self, event: dict) -> None:
        line = (json.dumps(event) + "\n").encode()
        if not self.clients:
            self.pending_events = [*self.pending_events[-999:], event]
        for w in list(self.clients):
            w.write(line)

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
            self.emit({"event": "recording.ready", "recording_id": directory.name,
                       "room": state.get("room"), "mode": state.get("mode"),
                       "participants": state.get("participants", []), "interrupted": True,
                       "directory": str(directory), **result})
        except Exception as exc:
            log.exception("recovering %s failed", directory)
            self.emit({"event": "recording.failed", "recording_id": directory.name,
                       "error": repr(exc)})

    # ---- operations -----------------------------------------------------------------------

    async def op_start(self, req: dict) -> dict:
        rid = str(req["recording_id"])
        if self._closing.is_set():
            raise ValueError("the recorder is shutting down")
        if rid in self.active:
            raise ValueError(f"recording {rid} is already running")
        if task := self._recovering.get(rid):
            await task
        options = dataclasses.replace(self.options)
        if req.get("low_latency") is not None:
            options.low_latency = bool(req["low_latency"])
        rec = Recording(rid, str(req.get("room", "")), req.get("mode", "composite"),
                        req.get("layout", "grid"), self.root, options, self.max_delay)
        self.active[rid] = rec
        try:
            port = await rec.open(self.rtp_host)
        except BaseException:
            self.active.pop(rid, None)
            raise
        return {"rtp_port": port, "resumed": rec.resumed, "directory": str(rec.dir)}

    def _get(self, req: dict) -> Recording:
        rec = self.active.get(str(req.get("recording_id")))
        if rec is None:
            raise ValueError(f"no active recording {req.get('recording_id')!r}")
        return rec

    async def op_add_track(self, req: dict) -> dict:
        track_id = self._get(req).add_track(
            int(req["ssrc"]), str(req["kind"]), dict(req["codec"]),
            str(req.get("participant_name", "")), req.get("participant"))
        return {"track_id": track_id}

    async def op_remove_track(self, req: dict) -> dict:
        self._get(req).remove_track(int(req["ssrc"]))
        return {}

    async def op_layout(self, req: dict) -> dict:
        self._get(req).set_layout(str(req["layout"]))
        return {}

    async def op_stop(self, req: dict) -> dict:
        task = self._stops.get(str(req.get("recording_id"))) or self._stop_task(self._get(req))
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
            self.emit({"event": "recording.failed", "recording_id": rec.id, "error": repr(exc)})
            raise
        finally:
            self.active.pop(rec.id, None)
        self.emit({"event": "recording.ready", "interrupted": False, **result})
        return result

    async def op_list(self, req: dict) -> dict:
        out = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir()):
            state = read_state(d)
            if state is not None:
                out.append({**state, "active": d.name in self.active})
        return {"recordings": out}

    async def op_stats(self, req: dict) -> dict:
        return {"recordings": [rec.stats() for rec in self.active.values()]}

    async def op_ping(self, req: dict) -> dict:
        return {"pid": os.getpid()}

    # ---- transport ------------------------------------------------------------------------

    async def _answer(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        rid = None
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            rid = req.get("id")
            handler = getattr(self, f"op_{req.get('op')}", None)
            if handler is None:
                raise ValueError(f"unknown op {req.get('op')!r}")
            answer = {"id": rid, "ok": True, "result": await handler(req)}
        except Exception as exc:
            answer = {"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if not writer.is_closing():
            writer.write((json.dumps(answer) + "\n").encode())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        self._hung_up.clear()
        for event in self.pending_events:
            writer.write((json.dumps(event) + "\n").encode())
        self.pending_events = []
        tasks: set[asyncio.Task] = set()
        try:
            while line := await reader.readline():
                if line.strip():
                    if len(tasks) >= MAX_PENDING:
                        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    task = asyncio.create_task(self._answer(writer, line))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        except (ConnectionError, ValueError, asyncio.CancelledError):
            pass  # client gone, garbage, or the service shutting down
        finally:
            self.clients.discard(writer)
            if not self.clients:
                self._hung_up.set()
            writer.close()

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
                    self.emit({"event": "recording.failed", "recording_id": rec.id,
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
            await asyncio.wait_for(self._hung_up.wait(),
                                   max(0.0, deadline - asyncio.get_running_loop().time()))
        return True

    async def serve(self, control: Path, stop_seconds: float = STOP_SECONDS,
                    parent: int = 0) -> None:
        self.start_recovery()
        with contextlib.suppress(FileNotFoundError):
            control.unlink()
        server = await asyncio.start_unix_server(self._client, path=str(control))
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
