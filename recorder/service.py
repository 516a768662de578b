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
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import time
from pathlib import Path

from . import vod
from .composite import CompositeOptions
from .recording import Recording, read_state, write_state

log = logging.getLogger(__name__)
TICK = 0.02


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
        rec = self._get(req)
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
        for event in self.pending_events:
            writer.write((json.dumps(event) + "\n").encode())
        self.pending_events = []
        tasks: set[asyncio.Task] = set()
        try:
            while line := await reader.readline():
                if line.strip():
                    task = asyncio.create_task(self._answer(writer, line))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        except (ConnectionError, ValueError, asyncio.CancelledError):
            pass  # client gone, garbage, or the service shutting down
        finally:
            self.clients.discard(writer)
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

    async def serve(self, control: Path) -> None:
        self.start_recovery()
        with contextlib.suppress(FileNotFoundError):
            control.unlink()
        server = await asyncio.start_unix_server(self._client, path=str(control))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._closing.set)
        parent = os.getppid()

        def watch_parent() -> None:
            # The server died without stopping us: finalize and leave, as on SIGTERM. An
            # orphan would record an idle room for ever while the next server's recorder
            # recovers the same directories.
            if os.getppid() != parent:
                log.warning("the server (pid %d) is gone: finalizing and exiting", parent)
                self._closing.set()
            else:
                loop.call_later(1.0, watch_parent)

        watch_parent()
        ticker = asyncio.create_task(self._ticker())
        log.info("recorder listening on %s, recordings in %s", control, self.root)
        try:
            await self._closing.wait()
            for rid in list(self.active):  # a clean shutdown finalizes what is running
                with contextlib.suppress(Exception):
                    await self.op_stop({"recording_id": rid})
        finally:
            ticker.cancel()
            server.close()
            with contextlib.suppress(FileNotFoundError):
                control.unlink()
