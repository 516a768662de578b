"""HTTP API: rooms, tokens (API key), dev tokens (dev mode only), health and the web client."""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

from aiohttp import web

from .errors import RequestError
from .pages import page_response
from .recording_files import add_recording_routes
from .state import STATE
from .tokens import ROLES, mint

ROOM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BODY = 16 * 1024


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=request.content_length)
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error":{"code":"bad_json","message":"invalid JSON"}}',
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text='{"error":{"code":"bad_request","message":"body must be an object"}}',
            content_type="application/json")
    return body


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
    body = await _json_body(request)
    name = body.get("name") or f"room-{secrets.token_hex(4)}"
    if not isinstance(name, str) or not ROOM_NAME.match(name):
        return _error(400, "bad_request", "room name: 1-64 letters, digits, '-', '_' or '.'")
    room_type = body.get("type", "meeting")
    if room_type not in ("meeting", "webinar"):
        return _error(400, "bad_request", "type must be meeting or webinar")
    lobby, backstage = body.get("lobby", False), body.get("backstage", False)
    if not isinstance(lobby, bool) or not isinstance(backstage, bool):
        return _error(400, "bad_request", "lobby and backstage must be true or false")
    room, created = await request.app[STATE].store.create_room(
        name, {"type": room_type, "lobby": lobby, "backstage": backstage})
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


async def _token_request(request: web.Request, default_ttl: int, max_ttl: int
                         ) -> tuple[str, dict[str, Any], str, int] | web.Response:
    """Room name, body, role and ttl of a token or invitation request, or the error reply."""
    name = request.match_info["room"]
    if await request.app[STATE].store.get_room(name) is None:
        return _error(404, "not_found", "no such room")
    body = await _json_body(request)
    role, ttl = body.get("role", "attendee"), body.get("ttl", default_ttl)
    if role not in ROLES:
        return _error(400, "bad_request", f"role must be one of {', '.join(ROLES)}")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= max_ttl:
        return _error(400, "bad_request", f"ttl must be 1 to {max_ttl} seconds")
    return name, body, role, ttl


@require_key
async def create_token(request: web.Request) -> web.Response:
    parsed = await _token_request(request, 3600, 7 * 86400)
    if isinstance(parsed, web.Response):
        return parsed
    name, body, role, ttl = parsed
    identity = body.get("identity") or f"user-{secrets.token_hex(4)}"
    display = body.get("name") or identity
    if not (isinstance(identity, str) and isinstance(display, str) and 0 < len(identity) <= 128
            and 0 < len(display) <= 100):
        return _error(400, "bad_request", "identity and name must be short strings")
    token = mint(request.app[STATE].config.effective_jwt_secret, name, identity, display, role,
                 ttl)
    return web.json_response({"token": token, "url": f"/r/{name}?token={token}"})


@require_key
async def create_invite(request: web.Request) -> web.Response:
    """A link many people can use (e.g. the attendee link of a webinar)."""
    parsed = await _token_request(request, 7 * 86400, 30 * 86400)
    if isinstance(parsed, web.Response):
        return parsed
    name, _, role, ttl = parsed
    token = mint(request.app[STATE].config.effective_jwt_secret, name, "*", "Guest", role, ttl,
                 invite=True)
    return web.json_response({"token": token, "url": f"/r/{name}?token={token}"})


async def dev_token(request: web.Request) -> web.Response:
    """Dev mode only: any visitor gets a host token for any room, created on the spot."""
    state = request.app[STATE]
    if not state.config.dev:
        return _error(404, "not_found", "dev tokens are disabled in production mode")
    body = await _json_body(request)
    room, name = body.get("room"), body.get("name") or "guest"
    if not isinstance(room, str) or not ROOM_NAME.match(room):
        return _error(400, "bad_request", "room name: 1-64 letters, digits, '-', '_' or '.'")
    if not isinstance(name, str) or not 0 < len(name) <= 100:
        return _error(400, "bad_request", "name must be 1 to 100 characters")
    room_type = body.get("type", "meeting")
    if room_type not in ("meeting", "webinar"):
        return _error(400, "bad_request", "type must be meeting or webinar")
    await state.store.create_room(room, {"type": room_type})
    identity = body.get("identity")
    if not isinstance(identity, str) or not 0 < len(identity) <= 128:
        identity = f"dev-{secrets.token_hex(4)}"
    token = mint(state.config.effective_jwt_secret, room, identity, name, "host", 12 * 3600)
    return web.json_response({"token": token})


@require_key
async def start_recording(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["room"]
    if await state.store.get_room(name) is None:
        return _error(404, "not_found", "no such room")
    body = await _json_body(request)
    room = await state.rooms.open(name)
    try:
        result = await state.recordings.start(room, body.get("mode", "composite"),
                                              body.get("layout", "grid"),
                                              body.get("lowLatency", False))
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
    app.router.add_static("/static/", web_root, show_index=False, follow_symlinks=False)
