"""The recorder process (recorder/, its own process) and its JSON-lines control socket.

Started by the signalling server; if it dies it is started again, and the listener is told so
the recordings that were running can be resumed (the recorder finalizes what the crash
interrupted and continues the same playlist after a discontinuity). Once the server is shutting
down (begin_stop) it is never started again.

It runs in a session of its own (a signal to the server's process group reaches the server
alone) and leaves by itself if the server dies (mediaserver/lifetime.py). At shutdown it gets
SIGTERM first thing and has `stop_seconds` to finalize what it records; see stop().
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mediaserver.api import end_process, stopping_within

log = logging.getLogger(__name__)

RESTART_DELAY = 0.5
STOP_SECONDS = 3.0  # the recorder's part of a shutdown (docs/operations.md)
EXIT_WAIT = 0.5  # past that, it gets this long to exit before SIGKILL


class RecorderError(Exception):
    pass


class RecorderLink:
    def __init__(self, recordings: Path, on_event: Callable[[dict[str, Any]], None],
                 on_restart: Callable[[], None] | None = None,
                 stop_seconds: float = STOP_SECONDS) -> None:
        self.recordings = recordings
        self.control = Path("/nonexistent/control.sock")  # a private directory at start()
        self.on_event = on_event
        self.on_restart = on_restart
        self.process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task] = []
        self._reader: asyncio.Task | None = None  # done: the recorder hung up
        self._stopping = asyncio.Event()
        self.stop_seconds = stop_seconds
        self._deadline: float | None = None  # loop time by which the recorder must be gone
        self.restarts = 0

    async def start(self) -> None:
        if self._stopping.is_set():
            raise RecorderError("the server is shutting down")
        self.recordings.mkdir(parents=True, exist_ok=True)
        self.control = Path(tempfile.mkdtemp(prefix="mediaserver-rec-")) / "control.sock"
        await self._spawn()
        self._tasks.append(asyncio.create_task(self._watch()))

    async def _spawn(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder", "serve", "--rtp-host", "127.0.0.1",
            "--control", str(self.control), "--recordings", str(self.recordings),
            "--stop-seconds", str(self.stop_seconds), "--parent", str(os.getpid()),
            start_new_session=True)
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
        self._reader = asyncio.create_task(self._read(reader))
        self._tasks.append(self._reader)

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            assert self.process is not None
            code = await self.process.wait()
            # As the server shuts down the recorder may be signalled before it (systemd
            # signals every process of the service): that is no crash.
            if await stopping_within(self._stopping, RESTART_DELAY):
                return
            log.error("recorder exited with %s; restarting", code)
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
        if self._writer is None or self._writer.is_closing() or self._reader is None or \
                self._reader.done():  # (an answer would never come)
            raise RecorderError("recorder not connected")
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending[request_id] = fut
        self._writer.write((json.dumps({"id": request_id, "op": op, **params}) + "\n").encode())
        if self._deadline is not None:  # shutting down: the recorder is gone by then
            timeout = min(timeout, self._deadline - loop.time())
        try:
            reply = await asyncio.wait_for(fut, max(0.0, timeout))
        except TimeoutError:
            raise RecorderError(f"no answer to {op} within {timeout:.1f} s") from None
        finally:
            self._pending.pop(request_id, None)
        if not reply.get("ok"):
            raise RecorderError(str(reply.get("error")))
        return reply.get("result") or {}

    def begin_stop(self) -> None:
        """Shutting down: from now on the recorder is not started again, whatever exits."""
        self._stopping.set()

    def terminate(self) -> None:
        """The first step of a shutdown: SIGTERM now. The recorder finalizes what it records
        (a `stop` asked meanwhile gets the answer) within `stop_seconds`, then leaves."""
        self.begin_stop()
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().time() + self.stop_seconds + EXIT_WAIT
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    async def stop(self) -> int | None:
        """Hang up (the recorder leaves once it has answered and finalized) and wait for its
        exit: SIGKILL if it is still there EXIT_WAIT after its `stop_seconds`. Its exit code
        (None: it never ran): 0 once it has done all it had to."""
        self.terminate()
        if self._writer is not None:
            self._writer.close()
        if self.process is not None:
            assert self._deadline is not None
            await end_process(self.process, self._deadline - asyncio.get_running_loop().time())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # the socket's private directory goes too (one per server run)
        shutil.rmtree(self.control.parent, ignore_errors=True)
        return None if self.process is None else self.process.returncode
