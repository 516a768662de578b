"""HTTP API: rooms, tokens (API key), dev tokens (dev mode only), health and the web client."""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from . import events, safe_json, schemas
from .errors import RequestError
from .pages import page_response
from .recording_files import add_recording_routes
from .state import STATE
from .tokens import mint

MAX_BODY = 16 * 1024
_PLAIN_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}"
STATIC_NAME = re.compile(rf"(?:{_PLAIN_NAME}/){{0,3}}{_PLAIN_NAME}")  # the web client's files
Body = TypeVar("Body", bound=schemas.Params)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _bad_body(code: str, message: str, data: dict[str, Any] | None = None) -> web.HTTPBadRequest:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return web.HTTPBadRequest(text=json.dumps({"error": error}),
                              content_type="application/json")


async def _body(request: web.Request, model: type[Body]) -> Body:
    """The request's JSON body checked against `model` (schemas.py); no body is {}.
    Raises 400 `bad_json` or `bad_request` naming the fields at fault, or 413."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    raw = await request.read() if request.can_read_body else b""
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    try:
        data = safe_json.loads(raw) if raw else {}
    except safe_json.BadJson as exc:
        raise _bad_body("bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise _bad_body("bad_request", "body must be a JSON object")
    try:
        return schemas.validate(model, data, where="body")
    except RequestError as exc:
        raise _bad_body(exc.code, exc.message, exc.data) from None


def _authorized(request: web.Request) -> bool:
    key = request.app[STATE].config.api_key
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    return bool(key) and hmac.compare_digest(given.encode(), key.encode())


def require_key(handler):  # type: ignore[no-untyped-def]
    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not _authorized(request):
            return _error(401, "unauthorized", "a valid API key is required")
        return await handler(request)

    return wrapped


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"status": "ok", "rooms": len(state.rooms.rooms),
                              "participants": state.rooms.participant_count})


@require_key
async def create_room(request: web.Request) -> web.Response:
    body = await _body(request, schemas.CreateRoom)
    settings: dict[str, Any] = {"type": body.type, "lobby": body.lobby,
                                "backstage": body.backstage}
    if body.auto_record:
        settings["autoRecord"] = True
    room, created = await request.app[STATE].store.create_room(
        body.name or f"room-{secrets.token_hex(4)}", settings)
    return web.json_response({"room": room}, status=201 if created else 200)


@require_key
async def get_room(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["room"]
    room = await state.store.get_room(name)
    if room is None:
        return _error(404, "not_found", "no such room")
    live = state.rooms.rooms.get(name)
    participants = live.public_participants() if live else []
    return web.json_response({"room": room, "participants": participants})


async def _room_exists(request: web.Request) -> bool:
    return await request.app[STATE].store.get_room(request.match_info["room"]) is not None


@require_key
async def create_token(request: web.Request) -> web.Response:
    if not await _room_exists(request):
        return _error(404, "not_found", "no such room")
    body = await _body(request, schemas.TokenRequest)
    name = request.match_info["room"]
    identity = body.identity or f"user-{secrets.token_hex(4)}"
    token = mint(request.app[STATE].config.effective_jwt_secret, name, identity,
                 body.name or identity[:schemas.MAX_NAME], body.role, body.ttl)
    events.room_event(request.app[STATE].rooms, name, "token", identity=identity, role=body.role)
    return web.json_response({"token": token, "url": f"/r/{name}?token={token}"})


@require_key
async def create_invite(request: web.Request) -> web.Response:
    """A link many people can use (e.g. the attendee link of a webinar)."""
    if not await _room_exists(request):
        return _error(404, "not_found", "no such room")
    body = await _body(request, schemas.InviteRequest)
    name = request.match_info["room"]
    token = mint(request.app[STATE].config.effective_jwt_secret, name, "*", "Guest", body.role,
                 body.ttl, invite=True)
    events.room_event(request.app[STATE].rooms, name, "token", invite=True, role=body.role)
    return web.json_response({"token": token, "url": f"/r/{name}?token={token}"})


async def dev_token(request: web.Request) -> web.Response:
    """Dev mode only: any visitor gets a host token for any room, created on the spot."""
    state = request.app[STATE]
    if not state.config.dev:
        return _error(404, "not_found", "dev tokens are disabled in production mode")
    body = await _body(request, schemas.DevToken)
    await state.store.create_room(body.room, {"type": body.type})
    identity = body.identity or f"dev-{secrets.token_hex(4)}"
    token = mint(state.config.effective_jwt_secret, body.room, identity, body.name or "guest",
                 "host", 12 * 3600)
    return web.json_response({"token": token})


@require_key
async def start_recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["room"]
    if await state.store.get_room(name) is None:
        return _error(404, "not_found", "no such room")
    body = await _body(request, schemas.RecordingOptions)
    room = await state.rooms.open(name)
    try:
        result = await state.recordings.start(room, body.mode, body.layout, body.low_latency)
    except RequestError as exc:
        await state.rooms.release_if_empty(room)
        return _error(409 if exc.code == "conflict" else 400, exc.code, exc.message)
    return web.json_response(result, status=201)


@require_key
async def stop_recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    room = state.rooms.rooms.get(request.match_info["room"])
    if room is None:
        return _error(409, "conflict", "the room is not being recorded")
    try:
        result = await state.recordings.stop(room)
    except RequestError as exc:
        return _error(409, exc.code, exc.message)
    await state.rooms.release_if_empty(room)
    return web.json_response({"recording": result})


@require_key
async def list_recordings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entries = await state.store.list_recordings(request.match_info["room"])
    return web.json_response({"recordings": [state.recordings.describe(e) for e in entries]})


@require_key
async def get_recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entry = await state.store.get_recording(request.match_info["id"])
    if entry is None:
        return _error(404, "not_found", "no such recording")
    return web.json_response({"recording": state.recordings.describe(entry)})


async def room_page(request: web.Request) -> web.Response:
    return page_response(request.app[STATE].config.web_root, "room.html")


async def player_page(request: web.Request) -> web.Response:
    return page_response(request.app[STATE].config.web_root, "player.html")


async def index_page(request: web.Request) -> web.Response:
    return page_response(request.app[STATE].config.web_root, "index.html")


def static_files(web_root: Any) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The web client's files. A name is checked before the file system sees it (one too long,
    with NUL or with '..' is simply not one of ours); links never lead out of `web_root`."""
    root = Path(web_root).resolve()

    async def static_file(request: web.Request) -> web.StreamResponse:
        name = request.match_info["path"]
        if not STATIC_NAME.fullmatch(name):
            return _error(404, "not_found", "no such file")
        target = (root / name).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return _error(404, "not_found", "no such file")
        return web.FileResponse(target)

    return static_file


def add_routes(app: web.Application, web_root: Any) -> None:
    app.router.add_get("/api/health", health)
    app.router.add_post("/api/rooms", create_room)
    app.router.add_get("/api/rooms/{room}", get_room)
    app.router.add_post("/api/rooms/{room}/tokens", create_token)
    app.router.add_post("/api/rooms/{room}/invites", create_invite)
    app.router.add_post("/api/dev/token", dev_token)
    app.router.add_post("/api/rooms/{room}/recordings", start_recording)
    app.router.add_post("/api/rooms/{room}/recordings/stop", stop_recording)
    app.router.add_get("/api/rooms/{room}/recordings", list_recordings)
    app.router.add_get("/api/recordings/{id}", get_recording)
    add_recording_routes(app)
    app.router.add_get("/r/{room}", room_page)
    app.router.add_get("/play", player_page)
    app.router.add_get("/", index_page)
    app.router.add_get("/static/{path:.+}", static_files(web_root))
