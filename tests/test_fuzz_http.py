"""Property-based tests of the HTTP border: bodies, paths and queries of every endpoint.

Against a running server (dev mode, so the dev token endpoint is live): generated bodies
(valid ones, mutated ones, any JSON, nesting past the limit, numbers past 64 bits, bytes that
are not UTF-8), odd path segments (NUL and other control characters, '..', percent escapes,
lone surrogates as broken UTF-8) and recording grants (expiries of thousands of digits,
Unicode digits, bad signatures, file names with NUL) never get a 500: the answer is a 2xx or a
4xx, a JSON error naming the field where the body is at fault, and the server keeps serving.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from signaling.grants import grant_path
from signaling.tokens import mint
from tests.support.fuzz import fuzz_examples
from tests.support.junk import EDGE_INTS, EDITS, JUNK, RAW, TEXT, dumps, mangle, mutated
from tests.support.server import API_KEY, JWT_SECRET, RunningServer, running_server

pytestmark = pytest.mark.fuzz

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ANSWERS = {200, 201, 400, 401, 403, 404, 405, 409, 413}
RECORDING = "rec-fuzz"
PLAYLIST = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.m4s\n" \
           "#EXT-X-ENDLIST\n"


def fuzz(ci_examples: int) -> settings:
    return settings(max_examples=fuzz_examples(ci_examples), deadline=None,
                    suppress_health_check=list(HealthCheck))


class Http:
    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def call(self, method: str, path: str, body: bytes | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        url = URL(self.server.base_url + path, encoded=True)
        async with self.session.request(method, url, data=body, headers=headers) as r:
            return r.status, await r.read()

    async def healthy(self) -> None:
        status, body = await self.call("GET", "/api/health")
        assert status == 200 and json.loads(body)["status"] == "ok"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[Http]:
    async with running_server(tmp_path / "data", dev=True) as server, \
            aiohttp.ClientSession() as session:
        await server.create_room("room-1")
        files = server.state.recordings.directory / RECORDING
        files.mkdir(parents=True, exist_ok=True)
        (files / "index.m3u8").write_text(PLAYLIST)
        (files / "seg_00000.m4s").write_bytes(b"\x00" * 64)
        await server.state.store.put_recording({"id": RECORDING, "room": "room-1",
                                                "state": "ready", "duration": 2.0})
        http = Http(server, session)
        yield http
        await http.healthy()


def check_answer(status: int, body: bytes, where: str) -> None:
    assert status in ANSWERS, (status, body[:300], where[:300])
    if status == 400 and body.startswith(b"{"):
        error = json.loads(body)["error"]
        assert error["code"] in ("bad_json", "bad_request"), error
        fields = error.get("data", {}).get("fields", [])
        assert all(f.startswith("body") and f in error["message"] for f in fields), error


def segment(text: str) -> str:
    """A path segment as a client may send it: percent-encoded, lone surrogates as the broken
    UTF-8 they would be."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


ROOM = st.one_of(st.just("room-1"), st.just("none"), TEXT.map(segment),
                 st.sampled_from(["..", ".", "%00", "a%2Fb", "%2e%2e", "room-1%00", "x" * 300]))
# (method, path template, valid body): {room} is filled from ROOM
ENDPOINTS: dict[str, tuple[str, str, st.SearchStrategy[dict[str, Any]]]] = {
    "createRoom": ("POST", "/api/rooms", st.fixed_dictionaries({}, optional={
        "name": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
        "type": st.sampled_from(["meeting", "webinar"]), "lobby": st.booleans(),
        "backstage": st.booleans(), "autoRecord": st.booleans()})),
    "token": ("POST", "/api/rooms/{room}/tokens", st.fixed_dictionaries({}, optional={
        "identity": st.text(min_size=1, max_size=20).filter(str.isalnum),
        "name": st.text(min_size=1, max_size=20).filter(str.isalnum),
        "role": st.sampled_from(["host", "presenter", "attendee", "service"]),
        "ttl": st.integers(1, 7 * 86400)})),
    "invite": ("POST", "/api/rooms/{room}/invites", st.fixed_dictionaries({}, optional={
        "role": st.sampled_from(["host", "presenter", "attendee", "service"]),
        "ttl": st.integers(1, 30 * 86400)})),
    "devToken": ("POST", "/api/dev/token", st.fixed_dictionaries(
        {"room": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)},
        optional={"name": st.text(min_size=1, max_size=20).filter(str.isalnum),
                  "type": st.sampled_from(["meeting", "webinar"]),
                  "identity": st.text(min_size=1, max_size=20).filter(str.isalnum)})),
    "recordingStart": ("POST", "/api/rooms/{room}/recordings", st.fixed_dictionaries(
        {}, optional={"mode": st.sampled_from(["composite", "pertrack"]),
                      "layout": st.sampled_from(["grid", "speaker"]),
                      "lowLatency": st.booleans()})),
    "recordingStop": ("POST", "/api/rooms/{room}/recordings/stop", st.just({})),
    "getRoom": ("GET", "/api/rooms/{room}", st.just({})),
    "listRecordings": ("GET", "/api/rooms/{room}/recordings", st.just({})),
    "getRecording": ("GET", "/api/recordings/{room}", st.just({})),
    "roomPage": ("GET", "/r/{room}", st.just({})),
    "static": ("GET", "/static/{room}", st.just({})),
    "socketWithoutUpgrade": ("GET", "/ws?token={room}&identity={room}&name={room}",
                             st.just({})),
    "player": ("GET", "/play?src={room}&chapters={room}", st.just({})),
    # analytics (docs/analytics.md)
    "sessions": ("GET", "/api/rooms/{room}/sessions", st.just({})),
    "sessionReport": ("GET", "/api/rooms/{room}/sessions/{room}/report?format={room}",
                      st.just({})),
    "recordingAnalytics": ("GET", "/api/recordings/{room}/analytics?viewer={room}",
                           st.just({})),
    "dashboard": ("GET", "/dashboard?room={room}&token={room}", st.just({})),
    "playerReport": ("POST", "/api/player/report", st.fixed_dictionaries(
        {"src": st.just(grant_path(JWT_SECRET, RECORDING, 86400) + "/index.m3u8"),
         "viewId": st.from_regex(r"v-[a-z0-9]{1,12}", fullmatch=True)},
        optional={"viewer": st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True),
                  "ranges": st.lists(st.lists(st.floats(0, 5), min_size=2, max_size=3)),
                  "seeks": st.lists(st.lists(st.floats(0, 5), min_size=2, max_size=2)),
                  "pauses": st.integers(0, 9), "visible": st.floats(0, 9),
                  "live": st.booleans(), "final": st.booleans(), "rate": st.floats(0, 4),
                  "position": st.floats(0, 5), "duration": st.floats(0, 5)})),
}


@functools.cache
def bodies(endpoint: str) -> st.SearchStrategy[bytes | None]:
    """Bodies for an endpoint: its valid ones mutated, none, any JSON, broken JSON, JSON
    mangled, bytes that are not UTF-8. Built once per endpoint."""
    valid = ENDPOINTS[endpoint][2]

    def encoded(value: Any) -> bytes:
        return dumps(value).encode("utf-8", "surrogatepass")

    return st.one_of(
        mutated(valid).map(encoded), mutated(valid).map(encoded), st.none(),
        JUNK.map(encoded), RAW.map(lambda raw: raw.text.encode()),
        st.builds(lambda v, edits: mangle(dumps(v), edits).encode("utf-8", "surrogatepass"),
                  valid, EDITS),
        st.binary(max_size=64).map(lambda b: b + b"\xff"),
    )


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
@fuzz(30)
@given(data=st.data())
async def test_endpoint_never_fails(http: Http, endpoint: str, data: st.DataObject) -> None:
    method, template, _ = ENDPOINTS[endpoint]
    path = template.replace("{room}", data.draw(ROOM))
    body = data.draw(bodies(endpoint)) if method == "POST" else None
    headers = AUTH if data.draw(st.integers(0, 9)) else {}
    status, answer = await http.call(method, path, body, headers)
    check_answer(status, answer, f"{method} {path} {body!r}")
    # (a server that went down fails the next request, and the fixture's end checks health)


EXPIRY = st.one_of(
    st.integers(0, 2**40).map(str), st.sampled_from(EDGE_INTS).map(str),
    st.sampled_from(["²", "٣٣", "1" * 5000, "9" * 13, "-1", "+1", " 1", "1\x00", "0x10", ""]),
    TEXT,
)
FILE = st.one_of(
    st.sampled_from(["index.m3u8", "seg_00000.m4s", "missing.m4s", "..", ".", ".hidden",
                     "../index.m3u8", "a/../../x", "index.m3u8\x00", "\x00", "x\x01y",
                     "%2e%2e%2fetc", "a" * 300]),
    TEXT,
)
QUERY = st.one_of(
    st.just({}),
    st.fixed_dictionaries({}, optional={
        "_HLS_msn": st.one_of(st.integers(0, 5).map(str), st.sampled_from(EDGE_INTS).map(str),
                              TEXT, st.sampled_from(["²", "1" * 5000, "-1", ""])),
        "_HLS_part": st.one_of(st.integers(0, 5).map(str), TEXT, st.just("9" * 3000)),
    }),
)


@fuzz(200)
@given(data=st.data())
async def test_recording_paths_never_fail(http: Http, data: st.DataObject) -> None:
    """Recording URLs: granted or not, any expiry, signature, file name and blocking-reload
    query; 200, 400, 403 or 404 and never a 500."""
    secret = http.server.config.effective_jwt_secret
    granted = grant_path(secret, RECORDING, ttl=3600)
    _, _, rid, _, expires, signature = granted.split("/")
    if data.draw(st.booleans()):
        rid = data.draw(st.one_of(st.just(RECORDING), TEXT))
        expires = data.draw(st.one_of(st.just(expires), EXPIRY))
        signature = data.draw(st.one_of(st.just(signature), TEXT,
                                        st.text("0123456789abcdef", min_size=32, max_size=32)))
    name = data.draw(FILE)
    query = data.draw(QUERY)
    path = "/recordings/" + "/".join(segment(s) if s else "%20" for s in
                                     (rid, "g", expires, signature)) + "/" + segment(name)
    if query:
        path += "?" + "&".join(f"{k}={segment(v)}" for k, v in query.items())
    status, answer = await http.call("GET", path)
    check_answer(status, answer, path)
    assert status in (200, 400, 403, 404), (status, path)


async def test_recording_path_examples(http: Http) -> None:
    """The classes of the fuzzer's findings, one each: 403 without a grant, 400 for control
    characters and broken directives, 404 for escapes, never a 500."""
    secret = http.server.config.effective_jwt_secret
    granted = grant_path(secret, RECORDING, ttl=3600)
    cases = {
        f"/recordings/{RECORDING}/g/{'1' * 5000}/{'0' * 32}/index.m3u8": 403,
        f"/recordings/{RECORDING}/g/%C2%B2/{'0' * 32}/index.m3u8": 403,
        f"/recordings/{RECORDING}/g/1/%C3%A9%C3%A9/index.m3u8": 403,
        f"{granted}/index.m3u8%00": 400,
        f"{granted}/%00": 400,
        f"{granted}/index.m3u8%0A": 400,
        f"{granted}/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd": 404,
        f"{granted}/..%2Findex.m3u8": 404,
        f"{granted}/.hidden": 404,
        f"{granted}/index.m3u8?_HLS_msn={'1' * 5000}": 400,
        f"{granted}/index.m3u8?_HLS_msn=%C2%B2": 400,
        f"{granted}/index.m3u8?_HLS_msn=1&_HLS_part={'9' * 3000}": 400,
        f"{granted}/index.m3u8?_HLS_msn=0": 200,
        f"{granted}/index.m3u8": 200,
        f"{granted}/seg_00000.m4s": 200,
    }
    for path, expected in cases.items():
        status, answer = await http.call("GET", path)
        assert status == expected, (path[:120], status, answer[:200])


async def test_body_examples(http: Http) -> None:
    """One of each class: deep nesting, numbers past 64 bits and of thousands of digits, wrong
    types, NUL; 400 with the field named, never a 500."""
    deep = "[" * 5000 + "]" * 5000
    cases: list[tuple[str, bytes, str, list[str]]] = [
        ("/api/rooms", deep.encode(), "bad_json", []),
        ("/api/rooms", b'{"name": ' + b"[" * 2000 + b"]" * 2000 + b"}", "bad_json", []),
        ("/api/rooms", b'{"name": "\\u0000x"}', "bad_request", ["body.name"]),
        ("/api/rooms", b'{"lobby": "yes", "type": 7}', "bad_request",
         ["body.type", "body.lobby"]),
        ("/api/rooms/room-1/tokens", b'{"ttl": 18446744073709551617}', "bad_request",
         ["body.ttl"]),
        ("/api/rooms/room-1/tokens", b'{"ttl": ' + b"9" * 5000 + b"}", "bad_json", []),
        ("/api/rooms/room-1/tokens", b'{"identity": {"a": 1}, "name": ["x"]}', "bad_request",
         ["body.identity", "body.name"]),
        ("/api/rooms/room-1/invites", b'{"role": "admin"}', "bad_request", ["body.role"]),
        ("/api/rooms/room-1/recordings", b'{"mode": "film", "lowLatency": 1}', "bad_request",
         ["body.mode", "body.lowLatency"]),
        ("/api/dev/token", b'{"room": "r\\u0000"}', "bad_request", ["body.room"]),
        ("/api/dev/token", b"\xff\xfe", "bad_json", []),
        ("/api/rooms", b"NaN", "bad_json", []),
    ]
    for path, body, code, fields in cases:
        status, answer = await http.call("POST", path, body, AUTH)
        assert status == 400, (path, body[:60], status, answer[:200])
        error = json.loads(answer)["error"]
        assert error["code"] == code, (path, body[:60], error)
        assert error.get("data", {}).get("fields", []) == fields, (path, body[:60], error)
        assert all(f"{f}: " in error["message"] for f in fields), error
    await http.healthy()


# ---- analytics: credentials, ids and queries -------------------------------------------------


def bearer(text: str) -> dict[str, str]:
    """An Authorization header, as far as HTTP can carry `text` (latin-1, no line breaks)."""
    value = "".join(c for c in text if " " <= c <= "\xff" and c != "\x7f")
    return {"Authorization": f"Bearer {value}"}


def credentials() -> st.SearchStrategy[tuple[str, dict[str, str]]]:
    """(what the credential is, its header): the key, host tokens of room-1 and of another
    room, other roles, expired, tampered, junk, none."""
    def token(room: str, role: str, ttl: int = 600, now: float | None = None) -> str:
        return mint(JWT_SECRET, room, "fuzz-host", "Fuzz", role, ttl, now=now)

    good = [("key", AUTH), ("host", bearer(token("room-1", "host")))]
    refused = [
        ("other-room", bearer(token("room-2", "host"))),
        ("attendee", bearer(token("room-1", "attendee"))),
        ("presenter", bearer(token("room-1", "presenter"))),
        ("expired", bearer(token("room-1", "host", ttl=60, now=1_000_000))),
        ("tampered", bearer(token("room-1", "host")[:-4] + "AAAA")),
        ("none", {}), ("empty", {"Authorization": "Bearer "}),
        ("basic", {"Authorization": f"Basic {API_KEY}"}),
        ("long", bearer("x" * 6000)),
    ]
    return st.one_of(st.sampled_from(good + refused),
                     TEXT.map(lambda t: ("junk", bearer(t))))


QUERY_VALUE = st.one_of(TEXT, st.sampled_from(
    ["json", "csv", "CSV", "", "-1", "9" * 5000, "%00", "a%00b", "dr-a", "x" * 129,
     "1e999", "NaN"]).map(str))
SESSION_ID = st.one_of(st.sampled_from(["s-1", "s--1", "s-" + "9" * 400, "s-1.5", "", "%00",
                                        "..", "s-18446744073709551617"]), TEXT)


@fuzz(150)
@given(data=st.data())
async def test_analytics_queries_never_fail(http: Http, data: st.DataObject) -> None:
    """Sessions, reports and recording analytics with any credential, session or recording
    id and query: 401/403 without a grant for that room, else 400 for a bad query, 404 for
    what does not exist, 200; never a 500."""
    who, headers = data.draw(credentials())
    kind = data.draw(st.sampled_from(["sessions", "report", "recording"]))
    query = "&".join(f"{k}={segment(data.draw(QUERY_VALUE))}" for k in
                     data.draw(st.lists(st.sampled_from(["format", "viewer", "x"]),
                                        max_size=3, unique=True)))
    if kind == "sessions":
        path = "/api/rooms/room-1/sessions"
    elif kind == "report":
        path = f"/api/rooms/room-1/sessions/{segment(data.draw(SESSION_ID)) or 's-1'}/report"
    else:
        rid = data.draw(st.one_of(st.just(RECORDING), TEXT))  # (none other exists)
        path = f"/api/recordings/{segment(rid) or RECORDING}/analytics"
    path += "?" + query if query else ""
    status, answer = await http.call("GET", path, headers=headers)
    check_answer(status, answer, f"{who} {path}")
    if status == 400 and not answer.startswith(b"{"):
        # aiohttp's own: a request line or a header past its 8190 bytes
        assert max(len(path), len(headers.get("Authorization", ""))) > 8000, answer[:200]
    elif who not in ("key", "host"):
        assert status in (401, 403, 404), (who, path, status)  # 404: no such route
    elif kind == "recording" and who == "host" and status == 403:
        # a recording that does not exist: a token gets the 403 of another room's recording,
        # only the API key may learn that it does not exist (analytics_api.recording_analytics)
        assert rid != RECORDING, (who, path, answer[:200])
    else:
        assert status in (200, 400, 404), (who, path, status, answer[:200])
    if status in (400, 401, 403) and answer.startswith(b"{"):
        assert json.loads(answer)["error"]["message"]


@fuzz(60)
@given(report=bodies("playerReport"), viewer=st.one_of(st.none(), QUERY_VALUE))
async def test_player_reports_then_the_figures(http: Http, report: bytes | None,
                                               viewer: str | None) -> None:
    """Whatever a player sends under a valid grant (huge, negative, reversed, ragged ranges,
    any rate), the recording's figures still come out: 200, or 400 for a bad `viewer`."""
    status, answer = await http.call("POST", "/api/player/report", report)
    check_answer(status, answer, repr(report))
    assert status in (200, 400, 403, 413), (status, answer[:200])  # 403: src mangled
    path = f"/api/recordings/{RECORDING}/analytics"
    if viewer is not None:
        path += f"?viewer={segment(viewer)}"
    status, answer = await http.call("GET", path, headers=AUTH)
    assert status in (200, 400), (status, path, answer[:300])
    if status == 200:
        figures = json.loads(answer)
        assert len(figures["perSecond"]) == 2 and figures["views"] >= 0


async def test_analytics_examples(http: Http) -> None:
    """One of each class, with the answer it must get."""
    host = bearer(mint(JWT_SECRET, "room-1", "h", "H", "host"))
    other = bearer(mint(JWT_SECRET, "room-2", "h", "H", "host"))
    attendee = bearer(mint(JWT_SECRET, "room-1", "a", "A", "attendee"))
    rec = f"/api/recordings/{RECORDING}/analytics"
    grant = grant_path(JWT_SECRET, RECORDING, 600) + "/index.m3u8"
    cases: list[tuple[str, str, dict[str, str], bytes | None, int]] = [
        ("GET", "/api/rooms/room-1/sessions", {}, None, 401),
        ("GET", "/api/rooms/room-1/sessions", bearer("wrong"), None, 401),
        ("GET", "/api/rooms/room-1/sessions", attendee, None, 403),
        ("GET", "/api/rooms/room-1/sessions", other, None, 403),
        ("GET", "/api/rooms/room-1/sessions", host, None, 200),
        ("GET", "/api/rooms/room-1/sessions/s-1/report", AUTH, None, 404),
        ("GET", "/api/rooms/room-1/sessions/%00/report", AUTH, None, 404),
        ("GET", "/api/rooms/room-1/sessions/s-1/report?format=xml", AUTH, None, 400),
        ("GET", "/api/rooms/room-1/sessions/s-1/report?format=xml", {}, None, 401),
        ("GET", "/api/recordings/nope/analytics", {}, None, 401),
        ("GET", "/api/recordings/nope/analytics", AUTH, None, 404),
        ("GET", "/api/recordings/nope/analytics", host, None, 403),  # as another room's
        ("GET", rec, other, None, 403),
        ("GET", rec + "?viewer=" + "x" * 129, AUTH, None, 400),
        ("GET", rec + "?viewer=a%00b", host, None, 400),
        ("GET", rec + "?viewer=", AUTH, None, 400),
        ("GET", rec + "?viewer=dr-a", AUTH, None, 200),
        ("POST", "/api/player/report", {}, b"{", 400),
        ("POST", "/api/player/report", {}, b'{"src": "' + grant.encode() + b'", "viewId": "v",'
         b' "ranges": [[-1, 5]]}', 400),
        ("POST", "/api/player/report", {}, b'{"src": "' + grant.encode() + b'", "viewId": "v",'
         b' "ranges": [[0, 1e300]]}', 400),
        ("POST", "/api/player/report", {}, b'{"src": "' + grant.encode() + b'", "viewId": "v",'
         b' "ranges": [[0, 1, 0]], "pauses": -3}', 200),
        ("POST", "/api/player/report", {}, b'{"src": "/recordings/x/g/1/' + b"0" * 32 +
         b'/index.m3u8", "viewId": "v"}', 403),
        ("POST", "/api/player/report", {}, b'{"src": "x", "viewId": "v", "ranges": '
         + b"[" + b"[0,1]," * 600 + b"[0,1]]}", 400),
        ("POST", "/api/player/report", {}, b" " * (40 * 1024), 413),
    ]
    for method, path, headers, body, expected in cases:
        status, answer = await http.call(method, path, body, headers)
        assert status == expected, (method, path[:80], status, answer[:200])
        if status >= 400:
            assert json.loads(answer)["error"]["message"], answer
    await http.healthy()
