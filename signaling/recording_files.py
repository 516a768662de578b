"""Serving a recording's files: only under a valid grant, never outside its directory.

`GET /recordings/<id>/g/<expiry>/<signature>/<file>` (grants.py), or under a participant's
grant `GET /recordings/<id>/p/<participant>/<expiry>/<signature>/<file>` while that participant
is in the room being recorded (catchup.py). Playlists are never cached;
with low-latency HLS a playlist request may carry `_HLS_msn`/`_HLS_part` and is held until the
playlist holds what it asks for, and a request for the part the playlist hints is held until
that part exists (hls_reload.py). Segments and parts never change once written.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from .catchup import watching_room
from .grants import check, check_participant
from .hls_reload import (
    READY,
    TOO_FAR,
    BadDirective,
    PlaylistWatcher,
    directives,
    wait_for_hinted,
    wait_for_playlist,
)
from .state import STATE

CONTENT_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/iso.segment",
                 ".mp4": "video/mp4", ".vtt": "text/vtt", ".jpg": "image/jpeg",
                 ".png": "image/png", ".webm": "video/webm", ".json": "application/json"}
WATCHER = web.AppKey("hls_watcher", PlaylistWatcher)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _bad_name(path: str) -> web.Response | None:
    """400 for a file name with control characters, 404 for one no recording file can have
    (a recording's files are plain names in its directory: no '..', no hidden files)."""
    if _CONTROL.search(path):
        return _error(400, "bad_request", "file name: must not contain control characters")
    if not _FILE_NAME.fullmatch(path):
        return _error(404, "not_found", "no such file")
    return None


def _headers(target: Path) -> dict[str, str]:
    # live playlists change with every part; segments and parts never change once written
    return {"Content-Type": CONTENT_TYPES.get(target.suffix, "application/octet-stream"),
            "Cache-Control": "no-cache" if target.suffix == ".m3u8" else "public, max-age=86400"}


async def recording_file(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if not check(state.config.effective_jwt_secret, request.match_info["id"],
                 request.match_info["expires"], request.match_info["sig"]):
        return _error(403, "forbidden", "no valid grant for this recording")
    return await _serve(request)


async def participant_file(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    rid, who = request.match_info["id"], request.match_info["pid"]
    if not (check_participant(state.config.effective_jwt_secret, rid, who,
                              request.match_info["expires"], request.match_info["sig"])
            and watching_room(state, rid, who)):
        return _error(403, "forbidden", "no valid grant for this recording")
    return await _serve(request)


async def _serve(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    rid, path = request.match_info["id"], request.match_info["path"]
    refused = _bad_name(path)  # before the file system sees the name
    if refused is not None:
        return refused
    root = (state.recordings.directory / rid).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):  # a link pointing out
        return _error(404, "not_found", "no such file")
    watcher = request.app[WATCHER]
    if target.suffix == ".m3u8" and target.is_file():
        try:
            wanted = directives(dict(request.query))
        except BadDirective as exc:
            return _error(400, "bad_request", str(exc))
        if wanted is not None:
            verdict, text = await wait_for_playlist(watcher, target, *wanted)
            if verdict == TOO_FAR:
                return _error(400, "bad_request", "_HLS_msn/_HLS_part too far ahead")
            if verdict != READY:
                return _error(503, "unavailable", "the playlist did not get there in time")
            return web.Response(text=text, headers=_headers(target))
    playlist = root / "index.m3u8"
    if not target.exists() and target.parent == root and playlist.is_file():
        await wait_for_hinted(watcher, playlist, target)  # the hinted part: until written
    if not target.is_file():
        return _error(404, "not_found", "no such file")
    response = web.FileResponse(target)
    response.headers.update(_headers(target))
    return response


async def _close_watcher(app: web.Application) -> None:
    await app[WATCHER].close()


def add_recording_routes(app: web.Application) -> None:
    app[WATCHER] = PlaylistWatcher()
    app.on_cleanup.append(_close_watcher)
    app.router.add_get("/recordings/{id}/g/{expires}/{sig}/{path:[^/]+}", recording_file)
    app.router.add_get("/recordings/{id}/p/{pid}/{expires}/{sig}/{path:[^/]+}",
                       participant_file)
