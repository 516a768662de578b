"""Analytics over HTTP (docs/analytics.md), the player's reports, the tab-visibility method,
and the `session.ended` webhook. `install(app)` (app.py) wires the event log in.

Access: the API key, or a token of a host of that room (`Authorization: Bearer <jwt>`);
anything else gets 401 (no credentials, a bad key or token) or 403 (a valid token of another
role or another room).
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from . import analytics, catchup, grants, replay_analytics, safe_json
from .events import Event, EventLog, RedisEvents, SqliteEvents
from .pages import page_response
from .state import STATE, AppState
from .tokens import TokenError, verify

log = logging.getLogger(__name__)

EVENTS = web.AppKey("events", EventLog)
MAX_REPORT = 32 * 1024
MAX_RANGES = 500
_SRC = re.compile(r"/recordings/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})/g/([0-9]{1,12})/"
                  r"([0-9a-f]{32})/[^?#]*")
# a participant's grant (catch-up in the room, catchup.py): id, participant, expiry, signature
_SRC_PARTICIPANT = re.compile(r"/recordings/([A-Za-z0-9][A-Za-z0-9_.-]{0,127})/p/"
                              r"([A-Za-z0-9_-]{1,66})/([0-9]{1,12})/([0-9a-f]{32})/[^?#]*")
_VIEWER = re.compile(r"[A-Za-z0-9_.@:+-]{1,128}")


def install(app: web.Application) -> EventLog:
    """Create the event log (SQLite, or Redis Streams with a Redis store), hang it on the
    rooms (rooms.events, for the hooks), add the routes and its start and stop."""
    state: AppState = app[STATE]
    config = state.config
    if config.store.startswith(("redis://", "rediss://")):
        backend: Any = RedisEvents(config.store, owner=config.node)
    else:
        backend = SqliteEvents(config.data_dir / "analytics.sqlite3")
    hash_key = config.effective_jwt_secret if config.analytics_hash_identities else ""
    log_ = EventLog(backend, node=config.node, retention_days=config.analytics_retention_days,
                    hash_key=hash_key)
    state.rooms.events = log_
    state.recordings.events = log_
    app[EVENTS] = log_
    log_.on_room_empty = lambda room, at: log_.spawn(session_ended(state, log_, room, at))

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await log_.start()
        yield
        await log_.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/api/rooms/{room}/sessions", list_sessions)
    app.router.add_get("/api/rooms/{room}/sessions/{session}/report", session_report)
    app.router.add_get("/api/recordings/{id}/analytics", recording_analytics)
    app.router.add_post("/api/player/report", player_report)
    app.router.add_get("/dashboard", dashboard_page)
    return log_


async def dashboard_page(request: web.Request) -> web.Response:
    """The hosts' analytics page (web_client/dashboard.html). The page holds no data: it asks
    for the API key or a host token and reads everything from the API above, whose access
    rules apply."""
    return page_response(request.app[STATE].config.web_root, "dashboard.html")


# ---- access --------------------------------------------------------------------------------


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def access(request: web.Request, room: str) -> web.Response | None:
    """None when the caller may read the analytics of `room`, else the refusal."""
    config = request.app[STATE].config
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else ""
    if not given:
        return _error(401, "unauthorized", "the API key or a host token is required")
    if config.api_key and hmac.compare_digest(given.encode(), config.api_key.encode()):
        return None
    try:
        grant = verify(config.effective_jwt_secret, given)
    except TokenError:
        return _error(401, "unauthorized", "the API key or a host token is required")
    if grant.role != "host" or grant.room != room:
        return _error(403, "forbidden", "only a host of this room may read its analytics")
    return None


# ---- sessions ------------------------------------------------------------------------------


RoomHandler = Callable[[web.Request, str, list[Event], float], Awaitable[web.StreamResponse]]


def room_analytics(handler: RoomHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A GET of a room's analytics: access checked, then `handler(request, room, the room's
    events, now)`."""

    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        room = request.match_info["room"]
        if (refused := access(request, room)) is not None:
            return refused
        return await handler(request, room, await request.app[EVENTS].read(room=room),
                             time.time())

    return checked


@room_analytics
async def list_sessions(request: web.Request, room: str, evs: list[Event], now: float
                        ) -> web.Response:
    return web.json_response({"sessions": [s.summary() for s in analytics.sessions(evs, now)]})


@room_analytics
async def session_report(request: web.Request, room: str, evs: list[Event], now: float
                         ) -> web.StreamResponse:
    form = request.query.get("format", "json")
    if form not in ("json", "csv"):
        return _error(400, "bad_request", "format must be json or csv")
    found = analytics.find(evs, request.match_info["session"], now)
    if found is None:
        return _error(404, "not_found", "no such session")
    rep = analytics.report(found, now, evs)
    if form == "csv":
        return web.Response(text=analytics.to_csv(rep), content_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{room}-{found.id}.csv"'})
    return web.json_response(rep)


async def session_ended(state: AppState, log_: EventLog, room: str, emptied: float) -> None:
    """The room emptied on this node at `emptied`: if that ended the room's session on every
    node, the signed `session.ended` webhook with its summary (docs/analytics.md), sent once.

    Every node writes its own leave before it reads (the flush), so of the nodes whose last
    participants leave at the same moment, at least the last to read sees the session ended
    in the shared log; the claim in the store (SET NX with Redis) lets only one of those
    that do send it."""
    webhooks = state.recordings.webhooks
    if not webhooks.url:
        return
    try:
        evs = await log_.read(room=room)  # flushes this node's events first
        now = time.time()
        ours = [s for s in analytics.sessions(evs, now) if s.started <= emptied]
        if not ours or ours[-1].ended is None:  # someone is still in, here or elsewhere
            return
        found = ours[-1]
        if not await log_.backend.claim(f"session.ended:{room}:{found.id}"):
            return  # another node sent it
        found.since = (ours[-2].ended or 0.0) if len(ours) > 1 else 0.0  # as find() does
        rep = analytics.report(found, now, evs)
        people = [{k: p[k] for k in ("identity", "name", "role", "presentSeconds",
                                     "talkSeconds", "score")} for p in rep["participants"]]
        webhooks.send("session.ended", {"room": room, "session": rep["session"],
                                        "participants": people})
    except Exception:
        log.exception("session.ended for %s", room)


# ---- recordings ----------------------------------------------------------------------------


async def recording_analytics(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entry = await state.store.get_recording(request.match_info["id"])
    if entry is None:
        # the room is unknown, so only the API key may learn that it does not exist: a
        # token gets the 403 it would get for another room's recording
        refused = access(request, "\0")
        return refused if refused is not None else _error(404, "not_found", "no such recording")
    if (refused := access(request, entry["room"])) is not None:
        return refused
    viewer = request.query.get("viewer")
    if viewer is not None and not _VIEWER.fullmatch(viewer):
        return _error(400, "bad_request", "viewer must be 1-128 of A-Z a-z 0-9 _ . @ : + -")
    log_ = request.app[EVENTS]
    who = log_.who(viewer) if viewer else None
    views = await log_.views(entry["id"])  # one summary per view (docs/analytics.md)
    if views:
        result = replay_analytics.from_summaries(views, entry.get("duration"), who)
    else:  # none kept (reports from before the summaries, in Redis): from the reports
        evs = await log_.read(recording=entry["id"])
        result = replay_analytics.analyze(evs, entry.get("duration"), who)
    if viewer:
        result["viewer"] = viewer
    # to play it on the dashboard: the same links (with grants) a host gets from recordStop
    result["links"] = state.recordings.describe(entry)["links"]
    return web.json_response(result)


def _floats(value: Any, width: tuple[int, ...], limit: int = MAX_RANGES) -> list[list[float]]:
    if not isinstance(value, list) or len(value) > limit:
        raise ValueError(f"a list of at most {limit} items")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) not in width or not all(
                isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x < 1e7
                for x in item):
            raise ValueError("items are lists of numbers")
        out.append([float(x) for x in item])
    return out


async def player_report(request: web.Request) -> web.Response:
    """What one view of the player page played since its last report (docs/analytics.md);
    the playlist path it plays (`src`, with the grant) is its credential."""
    raw = await request.content.read(MAX_REPORT + 1)
    if len(raw) > MAX_REPORT:
        return _error(413, "too_large", "a report is at most 32 KiB")
    try:
        body = safe_json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
        src = str(body.get("src", "")).split("?")[0]
        match, watcher = _SRC.fullmatch(src), _SRC_PARTICIPANT.fullmatch(src)
        view = str(body.get("viewId", ""))
        viewer = str(body.get("viewer", "") or "")
        if not _VIEWER.fullmatch(view) or (viewer and not _VIEWER.fullmatch(viewer)):
            raise ValueError("viewId (and viewer) must be 1-128 of A-Z a-z 0-9 _ . @ : + -")
        data = {"ranges": _floats(body.get("ranges", []), (2, 3)),
                "seeks": _floats(body.get("seeks", []), (2,)),
                "live": bool(body.get("live", False)), "final": bool(body.get("final", False))}
        if watcher is not None:  # catch-up inside the room: DVR viewing of the live event
            data["dvr"] = True
        for key in ("pauses", "visible", "duration", "position", "rate"):
            value = body.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and \
                    0 <= value < 1e7:
                data[key] = value
    except (safe_json.BadJson, ValueError) as exc:
        return _error(400, "bad_request", str(exc))
    state = request.app[STATE]
    secret = state.config.effective_jwt_secret
    if not ((match is not None and grants.check(secret, *match.groups())) or
            (watcher is not None and grants.check_participant(secret, *watcher.groups())
             and catchup.watching_room(state, *watcher.groups()[:2]))):
        return _error(403, "forbidden", "src must be a recording's playlist under a valid grant")
    entry = await state.store.get_recording((match or watcher).group(1))
    if entry is None:
        return _error(404, "not_found", "no such recording")
    request.app[EVENTS].emit("play", entry["room"], session=view,
                             identity=viewer or f"anon-{view}", recording=entry["id"], **data)
    return web.json_response({})
