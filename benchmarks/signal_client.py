"""A lean docs/protocol.md client for the bots: one WebSocket, requests and events.

tests.support.client.Client builds aiortc peer connections; the bots bring their own
transports, so they only need the JSON request/response/event plumbing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class SignalError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class SignalClient:
    def __init__(self, http: aiohttp.ClientSession, base_url: str, token: str,
                 on_event: Callable[[str, dict[str, Any]], None]) -> None:
        self.http = http
        self.url = base_url.replace("http", "ws", 1) + f"/ws?token={token}"
        self.on_event = on_event
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None
        self.close_reason = ""

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(self.url, max_msg_size=0, heartbeat=None)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    self.close_reason = str(msg.extra or "")
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "event" in data:
                    try:
                        self.on_event(data["event"], data.get("data") or {})
                    except Exception:  # a bot bug must not stop the socket's reader
                        log.exception("event handler failed for %s", data["event"])
                    continue
                fut = self._pending.pop(data.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
        finally:
            self.close_code = self.ws.close_code
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"socket closed ({self.close_code})"))
            self._pending.clear()
            try:
                self.on_event("_closed", {"code": self.close_code, "reason": self.close_reason})
            except Exception:
                log.exception("close handler failed")

    async def request(self, method: str, params: dict[str, Any] | None = None,
                      timeout: float = 30) -> dict[str, Any]:
        if self.ws is None or self.ws.closed:
            raise ConnectionError("socket not open")
        request_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        await self.ws.send_str(json.dumps({"id": request_id, "method": method,
                                           "params": params or {}}))
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            raise SignalError(reply["error"].get("code", "?"), reply["error"].get("message", ""))
        return reply.get("result") or {}

    async def close(self, leave: bool = True) -> None:
        if leave and self.ws is not None and not self.ws.closed:
            try:
                await self.request("leave", timeout=3)
            except (SignalError, ConnectionError, TimeoutError, RuntimeError):
                pass
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 3)
            except (TimeoutError, asyncio.CancelledError, Exception):
                self._reader.cancel()
