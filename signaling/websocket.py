"""The WebSocket endpoint: authentication, message framing, limits and dispatch.

Each socket gets one Participant. Requests are handled one at a time in arrival order, so a
client's publish and its subscriber answers never race. Outgoing messages go through a bounded
queue drained by a writer task: a slow client cannot stall the room, and one that falls too far
behind is disconnected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import secrets
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from mediaserver.api import MediaError

from . import safe_json, schemas, turn
from .errors import RequestError
from .media_session import media_ports
from .participant import Participant
from .ratelimit import FloodGuard, TokenBucket
from .sdp import SdpError
from .session_token import TokenRefresher
from .state import STATE
from .tokens import Grant, TokenError, verify

IDENTITY = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

log = logging.getLogger(__name__)

SEND_QUEUE = 1000
CLOSE_TOKEN = 4401
CLOSE_POLICY = 1008
# Rate-limited messages tolerated within REJECT_WINDOW before the socket is closed: a burst
# now and then over a two-hour meeting is refused message by message, only a flood ends it.
MAX_REJECTED = 200
REJECT_WINDOW = 60.0
# A request id is echoed in the reply: an integer JavaScript holds exactly, or a short string.
MAX_ID_LENGTH = 128


async def handle(request: web.Request) -> web.WebSocketResponse:
    state = request.app[STATE]
    config = state.config
    ws = web.WebSocketResponse(max_msg_size=config.max_message, heartbeat=20.0)
    await ws.prepare(request)
    try:
        grant = verify(config.effective_jwt_secret, request.query.get("token"))
        if grant.invite:
            grant = invited_grant(grant, request.query.get("identity"), request.query.get("name"))
    except TokenError as exc:
        await ws.send_json({"event": "error", "data": {"code": exc.code, "message": str(exc)}})
        await ws.close(code=CLOSE_TOKEN, message=exc.code.encode())
        return ws

    out = Outbox()
    participant = Participant(grant, state.rooms, state.store, state.media, out.send)
    participant.tokens = TokenRefresher(config.effective_jwt_secret, grant,
                                        participant.send_event)
    participant.turn = turn.issuer(config.turn_urls, config.turn_secret, config.turn_ttl)
    participant.media_session.ports = media_ports(config)
    state.sessions.add(participant)

    def on_closed(reason: str, code: int) -> None:
        # Closed from inside (leave) or outside (replaced, media lost): let the reply of the
        # request being handled go out first, then end the socket.
        asyncio.get_running_loop().call_soon(out.end, reason, code)

    participant.on_closed = on_closed
    writer = asyncio.create_task(_writer(ws, out))
    bucket = TokenBucket(config.messages_per_second, 2 * config.messages_per_second)
    flood = FloodGuard(MAX_REJECTED, REJECT_WINDOW)
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    out.send({"error": {"code": "bad_request", "message": "text frames only"}})
                continue
            if not bucket.take():
                out.send({"error": {"code": "rate_limited", "message": "too many messages"}})
                if flood.flooding():
                    out.end("flooding")
                    break
                continue
            reply = await _dispatch(participant, msg.data)
            if reply is not None:
                out.send(reply)
            if out.ended:
                break
    finally:
        state.sessions.discard(participant)
        try:
            if (not out.ended or participant.keep_place) and participant.joined and \
                    config.grace_period > 0:
                # The client vanished without leaving (network switch, closed laptop), or its
                # media went silent: keep its place; a new session with the same identity
                # takes it back.
                participant.suspend(config.grace_period)
            else:
                await participant.close(out.reason or "connection closed")
        except Exception:
            log.exception("error while closing participant %s", participant.id)
        out.end("connection closed")
        try:
            await asyncio.wait_for(writer, 5)
        except (TimeoutError, Exception):
            writer.cancel()
        if ws.exception() is not None and ws.close_code is None:
            await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG, message=b"message too big")
    return ws


def invited_grant(grant: Grant, identity: str | None, name: str | None) -> Grant:
    """An invitation link is shared: each holder gets an identity of their own, which the
    client keeps (and sends again) so that a reconnect takes its place back."""
    if identity is None or not IDENTITY.match(identity):
        identity = secrets.token_hex(8)
    name = CONTROL.sub("", name or "").strip()[:100] or "Guest"  # shown to everyone
    return dataclasses.replace(grant, identity=f"guest-{identity}", name=name, invite=False)


class Outbox:
    """Messages to one client, in order; `end` queues the close after what is already queued."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SEND_QUEUE + 1)
        self.ended = False
        self.reason = ""
        self.code = 1000

    def send(self, message: dict[str, Any]) -> None:
        if self.ended:
            return
        if self.queue.qsize() >= SEND_QUEUE:
            # Too far behind: drop the backlog rather than grow without bound, and close.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.end("too slow to receive events")
            return
        self.queue.put_nowait(message)

    def end(self, reason: str, code: int = 1000) -> None:
        if self.ended:
            return
        self.ended = True
        self.reason = reason
        self.code = CLOSE_POLICY if reason in ("flooding", "too slow to receive events") else code
        self.queue.put_nowait(None)


async def _writer(ws: web.WebSocketResponse, out: Outbox) -> None:
    while True:
        message = await out.queue.get()
        if message is None:
            break
        if ws.closed:
            return
        try:
            await ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            return
    if not ws.closed:
        await ws.close(code=out.code, message=out.reason.encode()[:120])


async def _dispatch(participant: Participant, text: str) -> dict[str, Any] | None:
    try:
        message = safe_json.loads(text)
    except safe_json.BadJson as exc:
        return {"error": {"code": "bad_json", "message": str(exc)}}
    if not isinstance(message, dict):
        return {"error": {"code": "bad_request", "message": "message must be a JSON object"}}
    request_id = message.get("id")
    if not _valid_id(request_id):
        return {"error": {"code": "bad_request", "message": "id must be an integer of at most "
                          f"{schemas.MAX_ID} or a string of at most {MAX_ID_LENGTH} characters"}}
    method = message.get("method")
    params = message.get("params", {})
    if not isinstance(method, str):
        return _error(request_id, "bad_request", "method must be a string")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return _error(request_id, "bad_request", "params must be an object")
    try:
        # Who may call it first, then what it was given: a caller that may not use a method
        # learns nothing about its params.
        handler = participant.handler_for(method)
        result = await handler(participant, schemas.params(method, params))
    except RequestError as exc:
        reply = _error(request_id, exc.code, exc.message)
        if exc.data is not None:
            reply["error"]["data"] = exc.data
        return reply
    except SdpError as exc:
        return _error(request_id, "bad_sdp", str(exc))
    except MediaError as exc:
        return _error(request_id, "not_found", str(exc))
    except Exception:
        log.exception("internal error in %s from %s", method, participant.id)
        return _error(request_id, "internal", "internal error")
    return {"id": request_id, "result": result}


def _valid_id(request_id: Any) -> bool:
    if isinstance(request_id, str):
        return len(request_id) <= MAX_ID_LENGTH
    return isinstance(request_id, int) and not isinstance(request_id, bool) and \
        abs(request_id) <= schemas.MAX_ID


def _error(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "error": {"code": code, "message": message}}
