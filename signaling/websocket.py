"""The WebSocket endpoint: authentication, message framing, limits and dispatch.

Each socket gets one Participant. Requests are handled one at a time in arrival order, so a
client's publish and its subscriber answers never race. Outgoing messages go through a bounded
queue drained by a writer task: a slow client cannot stall the room, and one that falls too far
behind is disconnected.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from mediaserver.api import MediaError

from .errors import RequestError
from .participant import Participant
from .ratelimit import TokenBucket
from .sdp import SdpError
from .tokens import TokenError, verify

log = logging.getLogger(__name__)

SEND_QUEUE = 1000
CLOSE_TOKEN = 4401
CLOSE_POLICY = 1008
MAX_REJECTED = 200  # rate-limited messages tolerated before the socket is closed


async def handle(request: web.Request) -> web.WebSocketResponse:
    state = request.app["state"]
    config = state.config
    ws = web.WebSocketResponse(max_msg_size=config.max_message, heartbeat=20.0)
    await ws.prepare(request)
    try:
        grant = verify(config.effective_jwt_secret, request.query.get("token"))
    except TokenError as exc:
        await ws.send_json({"event": "error", "data": {"code": exc.code, "message": str(exc)}})
        await ws.close(code=CLOSE_TOKEN, message=exc.code.encode())
        return ws

    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SEND_QUEUE)
    closing: list[str] = []

    def send(message: dict[str, Any]) -> None:
        if closing:
            return
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            closing.append("too slow to receive events")
            queue._queue.clear()  # type: ignore[attr-defined]  # drop the backlog, then close
            queue.put_nowait(None)

    participant = Participant(grant, state.rooms, state.store, state.media, send)
    state.sessions.add(participant)

    def on_closed(reason: str) -> None:
        if not closing:
            closing.append(reason)
            send_none()

    def send_none() -> None:
        try:
            queue.put_nowait(None)
        except asyncio.QueueFull:
            pass

    participant.on_closed = on_closed
    writer = asyncio.create_task(_writer(ws, queue, closing))
    bucket = TokenBucket(config.messages_per_second, 2 * config.messages_per_second)
    rejected = 0
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    send({"error": {"code": "bad_request", "message": "text frames only"}})
                continue
            if not bucket.take():
                rejected += 1
                send({"error": {"code": "rate_limited", "message": "too many messages"}})
                if rejected > MAX_REJECTED:
                    closing.append("flooding")
                    send_none()
                    break
                continue
            reply = await _dispatch(participant, msg.data)
            if reply is not None:
                send(reply)
            if closing:
                break
    finally:
        state.sessions.discard(participant)
        try:
            await participant.close(closing[0] if closing else "connection closed")
        except Exception:
            log.exception("error while closing participant %s", participant.id)
        send_none()
        try:
            await asyncio.wait_for(writer, 5)
        except (TimeoutError, Exception):
            writer.cancel()
        if ws.exception() is not None and ws.close_code is None:
            await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"message too big")
    return ws


async def _writer(ws: web.WebSocketResponse, queue: asyncio.Queue, closing: list[str]) -> None:
    while True:
        message = await queue.get()
        if message is None:
            break
        if ws.closed:
            return
        try:
            await ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            return
    if not ws.closed:
        reason = closing[0] if closing else "closed"
        code = CLOSE_POLICY if reason in ("flooding", "too slow to receive events") else 1000
        await ws.close(code=code, message=reason.encode()[:120])


async def _dispatch(participant: Participant, text: str) -> dict[str, Any] | None:
    try:
        message = json.loads(text)
    except ValueError:
        return {"error": {"code": "bad_json", "message": "message is not valid JSON"}}
    if not isinstance(message, dict):
        return {"error": {"code": "bad_request", "message": "message must be a JSON object"}}
    request_id = message.get("id")
    if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
        return {"error": {"code": "bad_request", "message": "id must be an integer or string"}}
    method = message.get("method")
    params = message.get("params", {})
    if not isinstance(method, str):
        return _error(request_id, "bad_request", "method must be a string")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return _error(request_id, "bad_request", "params must be an object")
    try:
        result = await participant.handle(method, params)
    except RequestError as exc:
        return _error(request_id, exc.code, exc.message)
    except SdpError as exc:
        return _error(request_id, "bad_sdp", str(exc))
    except MediaError as exc:
        return _error(request_id, "not_found", str(exc))
    except Exception:
        log.exception("internal error in %s from %s", method, participant.id)
        return _error(request_id, "internal", "internal error")
    return {"id": request_id, "result": result}


def _error(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": message}}
