"""The recorder process (recorder/, its own process) and its JSON-lines control socket.

Started by the signalling server; if it dies it is started again, and the listener is told so
the recordings that were running can be resumed (the recorder finalizes what the crash
interrupted and continues the same playlist after a discontinuity).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class RecorderError(Exception):
    pass


class RecorderLink:
    def __init__(self, recordings: Path, on_event: Callable[[dict[str, Any]], None],
                 on_restart: Callable[[], None] | None = None) -> None:
        self.recordings = recordings
        self.control = Path("/nonexistent/control.sock")  # a private directory at start()
        self.on_event = on_event
        self.on_restart = on_restart
        self.process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.restarts = 0

    async def start(self) -> None:
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.control = Path(tempfile.mkdtemp(prefix="mediaserver-rec-")) / "control.sock"
        await self._spawn()
        self._tasks.append(asyncio.create_task(self._watch()))

    async def _spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder", "serve", "--rtp-host", "127.0.0.1",
            "--control", str(self.control), "--recordings", str(self.recordings))
        for _ in range(300):  # the socket appears once the recorder listens (30 s at most)
            if self.control.exists():
                try:
                    reader, self._writer = await asyncio.open_unix_connection(str(self.control))
                    break
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
            if self.process.returncode is not None:
                raise RecorderError("the recorder exited at start")
            await asyncio.sleep(0.1)
        else:
            raise RecorderError("the recorder did not start")
        self._tasks.append(asyncio.create_task(self._read(reader)))

    async def _watch(self) -> None:
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            log.error("recorder exited with %s; restarting", code)
            await asyncio.sleep(0.5)
            try:
                await self._spawn()
            except RecorderError:
                log.exception("recorder did not come back")
                continue
            self.restarts += 1
            if self.on_restart is not None:
                self.on_restart()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if "event" in message:
                    self.on_event(message)
                    continue
                fut = self._pending.pop(message.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(message)
        except (ConnectionError, ValueError):
            pass
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RecorderError("recorder connection lost"))
        self._pending.clear()

    async def call(self, op: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        if self._writer is None or self._writer.is_closing():
            raise RecorderError("recorder not connected")
        request_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        self._writer.write((json.dumps({"id": request_id, "op": op, **params}) + "\n").encode())
        reply = await asyncio.wait_for(fut, timeout)
        if not reply.get("ok"):
            raise RecorderError(str(reply.get("error")))
        return reply.get("result") or {}

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._writer is not None:
            self._writer.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()  # the recorder finalizes running recordings on SIGTERM
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
        # the socket's private directory goes too (one per server run)
        shutil.rmtree(self.control.parent, ignore_errors=True)
