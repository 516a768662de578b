"""The recorder process (recorder/, its own process) and its control socket, which speaks the
media plane's JSON-lines RPC (RpcClient; methods in recorder/service.py).

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
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mediaserver.api import RpcClient, RpcError, end_process, stopping_within

log = logging.getLogger(__name__)

RESTART_DELAY = 0.5
STOP_SECONDS = 3.0  # the recorder's part of a shutdown (docs/operations.md)
EXIT_WAIT = 0.5  # past that, it gets this long to exit before SIGKILL


class RecorderError(Exception):
    """A call that failed: `type` says how (the recorder's `bad_request`, `recording`,
    `internal`, or `not_connected`, `lost`, `timeout`)."""

    def __init__(self, message: str, type_: str = "internal") -> None:
        super().__init__(message)
        self.type = type_


# the recorder is gone (exited, crashed, restarting): no answer came or can come
LINK_ERRORS = {"not_connected": "recorder not connected", "lost": "recorder connection lost"}


class RecorderLink:
    def __init__(self, recordings: Path, on_event: Callable[[dict[str, Any]], None],
                 on_restart: Callable[[], None] | None = None,
                 stop_seconds: float = STOP_SECONDS) -> None:
        self.recordings = recordings
        self.control = Path("/nonexistent/control.sock")  # a private directory at start()
        self.on_event = on_event
        self.on_restart = on_restart
        self.process: asyncio.subprocess.Process | None = None
        self._rpc = RpcClient(on_event)  # a new one for each recorder process
        self._watcher: asyncio.Task | None = None  # restarts the recorder when it exits
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
        self._watcher = asyncio.create_task(self._watch())

    async def _spawn(self) -> None:
        await self._rpc.close()  # the last process's connection, and its reader, go
        self._rpc = RpcClient(self.on_event)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder", "serve", "--rtp-host", "127.0.0.1",
            "--control", str(self.control), "--recordings", str(self.recordings),
            "--stop-seconds", str(self.stop_seconds), "--parent", str(os.getpid()),
            start_new_session=True)
        for _ in range(300):  # the socket appears once the recorder listens (30 s at most)
            if self.control.exists():
                try:
                    await self._rpc.connect(str(self.control))
                    break
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
            if self.process.returncode is not None:
                raise RecorderError("the recorder exited at start")
            await asyncio.sleep(0.1)
        else:
            raise RecorderError("the recorder did not start")

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

    async def call(self, op: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        """The recorder's answer to `op` (its result, a dict), or RecorderError."""
        if self._deadline is not None:  # shutting down: the recorder is gone by then
            timeout = min(timeout, self._deadline - asyncio.get_running_loop().time())
        try:
            return await self._rpc.call(op, params, max(0.0, timeout)) or {}
        except RpcError as exc:
            message = LINK_ERRORS.get(exc.type) or \
                (str(exc) if exc.type == "timeout" else f"{exc.type}: {exc}")
            raise RecorderError(message, exc.type) from None

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
        await self._rpc.close()
        if self.process is not None:
            assert self._deadline is not None
            await end_process(self.process, self._deadline - asyncio.get_running_loop().time())
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        # the socket's private directory goes too (one per server run)
        shutil.rmtree(self.control.parent, ignore_errors=True)
        return None if self.process is None else self.process.returncode
