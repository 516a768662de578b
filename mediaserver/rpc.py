"""JSON lines over a Unix socket: the one RPC layer of our child processes.

Media workers serve the control API with it (remote_control.py) and the recorder serves its
operations (recorder/service.py). One JSON object per line each way:

    request  {"id": 7, "method": "create_router", "params": {...}}
    reply    {"id": 7, "result": ...}  or  {"id": 7, "error": {"type": ..., "message": ...}}
    event    {"event": "transportClosed", ...}   pushed by the server to every client

Error types: `bad_request` (not JSON, unknown method, params of the wrong shape), whatever
the server's `classify` names, and `internal` (logged there). A client whose requests come
faster than they are answered has at most MAX_PENDING in progress; its further lines wait
to be read. Control calls are rare next to packets: JSON over a local socket costs nothing
that matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20
MAX_PENDING = 64
KEPT_EVENTS = 1000  # pushed while no client is connected, delivered to the next one

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class RpcError(Exception):
    """A call that failed: `type` says how (bad_request, internal, not_connected, lost,
    timeout, or one of the server's own)."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_


class BadRequest(Exception):
    """Raised by a handler for params it cannot take: a bad_request reply."""


class RpcServer:
    def __init__(self, handle: Handler,
                 classify: Callable[[Exception], str | None] = lambda exc: None) -> None:
        """`handle(method, params)` answers a request; `classify(exc)` names the error type
        of an exception it raised (None: internal, logged)."""
        self._handle = handle
        self._classify = classify
        self.clients: set[asyncio.StreamWriter] = set()
        self.hung_up = asyncio.Event()  # set while no client is connected
        self.hung_up.set()
        self._kept: list[bytes] = []

    async def serve(self, path: str) -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(self._client, path=path, limit=MAX_LINE)

    def push(self, event: dict[str, Any]) -> None:
        line = (json.dumps(event) + "\n").encode()
        if not self.clients:
            self._kept = [*self._kept[-(KEPT_EVENTS - 1):], line]
        for writer in list(self.clients):
            writer.write(line)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.add(writer)
        self.hung_up.clear()
        for line in self._kept:
            writer.write(line)
        self._kept = []
        tasks: set[asyncio.Task] = set()
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                if len(tasks) >= MAX_PENDING:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                task = asyncio.create_task(self._answer(writer, line))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        except (ConnectionError, ValueError, asyncio.CancelledError):
            # the client is gone, sent a line over MAX_LINE, or we are shutting down (a
            # re-raised cancellation would be logged as an error by asyncio)
            pass
        finally:
            self.clients.discard(writer)
            if not self.clients:
                self.hung_up.set()
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        reply = await self.reply_to(line)
        if not writer.is_closing():
            writer.write((json.dumps(reply) + "\n").encode())

    async def reply_to(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line; never raises."""
        request_id = None
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise BadRequest("a request is a JSON object")
            request_id = request.get("id")
            if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
                request_id = None
                raise BadRequest("a request needs an id (number or string)")
            method, params = request.get("method"), request.get("params", {})
            if not isinstance(method, str) or not isinstance(params, dict):
                raise BadRequest("a request has a method (string) and params (object)")
        except (ValueError, BadRequest) as exc:
            return _error(request_id, "bad_request", str(exc))
        try:
            return {"id": request_id, "result": await self._handle(method, params)}
        except BadRequest as exc:
            return _error(request_id, "bad_request", str(exc))
        except Exception as exc:  # reported to the caller; the server keeps serving
            kind = self._classify(exc)
            if kind is None:
                log.exception("%s failed", method)
                kind = "internal"
            return _error(request_id, kind, str(exc) or type(exc).__name__)


def _error(request_id: Any, kind: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"type": kind, "message": message}}


class RpcClient:
    def __init__(self, on_event: Callable[[dict[str, Any]], None] = lambda event: None) -> None:
        self._on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None

    async def connect(self, path: str) -> None:
        """Raises OSError (FileNotFoundError, ConnectionRefusedError) if nobody listens."""
        reader, self._writer = await asyncio.open_unix_connection(path, limit=MAX_LINE)
        self._reader_task = asyncio.create_task(self._read(reader))

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing() and \
            self._reader_task is not None and not self._reader_task.done()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if "event" in message:
                    try:
                        self._on_event(message)
                    except Exception:
                        log.exception("event listener failed on %s", message.get("event"))
                    continue
                fut = self._pending.pop(message.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(message)
        except (ConnectionError, ValueError):
            pass
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(RpcError("lost", "connection lost"))
            self._pending.clear()

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        if not self.connected:
            # the server hung up (exited, crashed): no reply can come; waiting would be for ever
            raise RpcError("not_connected", "not connected")
        assert self._writer is not None
        request_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        self._writer.write((json.dumps({"id": request_id, "method": method,
                                        "params": params or {}}) + "\n").encode())
        try:
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RpcError("timeout", f"no answer to {method} within {timeout:.1f} s") from None
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            error = reply["error"]
            raise RpcError(str(error.get("type")), str(error.get("message")))
        return reply.get("result")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
