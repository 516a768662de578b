"""Engagement analytics (docs/analytics.md): the event log, sessions and the per-session
report, access, the webhook, and the store behind it (SQLite; Redis Streams)."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import random
import time
from pathlib import Path

import aiohttp
import pytest

from signaling import analytics, replay_analytics
from signaling.analytics_api import EVENTS
from signaling.events import COLUMNS, Event, EventLog, RedisEvents, SqliteEvents
from tests.support.client import Client
from tests.support.hooks import hook_receiver
from tests.support.redis_server import redis_server
from tests.support.server import API_KEY, RunningServer
from tests.support.tracks import PatternVideoTrack
from tests.test_active_speaker_room import SwitchedTone, speaker_is

KEY = {"Authorization": f"Bearer {API_KEY}"}


def ev(at: float, kind: str, pid: str = "", identity: str = "", **data) -> Event:
    return Event(at, kind, "r", pid, identity, identity.title(), "host", data=data)


# ---- pure: sessions and the report from known events ----------------------------------------


SCRIPT = [
    ev(100, "join", "p1", "ann"), ev(110, "join", "p2", "bea"),
    ev(112, "track.publish", "p2", "bea", track="t1", media="video", source="camera"),
    ev(120, "speak.start", "", "ann"), ev(130, "speak.stop", "", "ann"),
    ev(130, "speak.start", "", "bea"),
    ev(140, "visibility", "p2", "bea", visible=False), ev(150, "visibility", "p2", "bea",
                                                         visible=True),
    ev(145, "chat", "p2", "bea"), ev(146, "chat", "p2", "bea"), ev(147, "qa.ask", "p2", "bea"),
    ev(148, "qa.upvote", "p1", "ann"), ev(149, "poll.vote", "p2", "bea"),
    ev(150, "reaction", "p2", "bea"), ev(151, "hand", "p2", "bea", raised=True),
    ev(152, "hand", "p2", "bea", raised=False),
    ev(155, "track.mute", "p2", "bea", track="t1", media="video", source="camera", muted=True),
    ev(158, "track.mute", "p2", "bea", track="t1", media="video", source="camera", muted=False),
    ev(160, "drop", "p2", "bea"), ev(165, "resume", "p2", "bea"),
    ev(170, "move", "p2", "bea", group="g-1", groupName="Group 1"),
    ev(180, "leave", "p2", "bea"), ev(190, "leave", "p1", "ann"),
    # a second session of the same room
    ev(300, "join", "p3", "ann"), ev(310, "leave", "p3", "ann"),
]


def test_sessions_and_report_from_known_events() -> None:
    events = sorted(SCRIPT, key=lambda e: e.at)
    found = analytics.sessions(events, now=1000)
    assert [(s.id, s.started, s.ended) for s in found] == [("s-100000", 100, 190),
                                                            ("s-300000", 300, 310)]
    assert found[0].summary() == {"id": "s-100000", "started": 100, "ended": 190,
                                  "participants": 2, "peak": 2}
    rep = analytics.report(found[0], now=1000, all_events=events)
    people = {p["identity"]: p for p in rep["participants"]}
    bea, ann = people["bea"], people["ann"]
    assert bea["intervals"] == [[110, 180]]  # the drop kept her place
    assert bea["presentSeconds"] == 65  # 110-160, 165-180
    assert bea["talkSeconds"] == 45  # 130 until she left at 180, but not while away
    assert bea["cameraSeconds"] == 65 - 2 - 3  # from 112, without 155-158
    assert bea["visibleSeconds"] == 65 - 10
    assert (bea["chat"], bea["questions"], bea["upvotes"], bea["votes"], bea["reactions"],
            bea["hands"]) == (2, 1, 0, 1, 1, 1)
    assert bea["breakouts"] == ["Group 1"]
    assert ann["presentSeconds"] == 90 and ann["talkSeconds"] == 10 and ann["upvotes"] == 1
    # 10 x (0.4 x 65/90 + 0.2 x 55/65 + 0.2 x 45/60 + 0.2 x 1)
    assert bea["score"] == round(10 * (0.4 * 65 / 90 + 0.2 * 55 / 65 + 0.2 * 45 / 60 + 0.2), 1)
    assert ann["score"] == round(10 * (0.4 + 0.2 + 0.2 * 10 / 60 + 0.2 * 1 / 5), 1)
    assert rep["timeline"] == [[100, 1], [110, 2], [160, 1], [165, 2], [180, 1], [190, 0]]
    session = rep["session"]
    assert session["peak"] == 2
    assert session["average"] == round((10 * 1 + 50 * 2 + 5 + 15 * 2 + 10) / 90, 2)
    assert session["funnel"] == {"invited": 0, "joined": 2, "stayedToEnd": 2}


def test_a_node_restart_ends_what_it_had_open() -> None:
    events = [Event(100, "join", "r", "p1", "ann", node="a"),
              Event(150, "chat", "r", "p1", "ann", node="a"),
              Event(400, "node.start", "", node="a"),
              Event(500, "join", "r", "p2", "bea", node="a")]
    found = analytics.sessions(events, now=600)
    assert [(s.started, s.ended) for s in found] == [(100, 150), (500, None)]


# ---- the log: never blocks, never raises -----------------------------------------------------


class Broken:
    async def open(self) -> None: ...
    async def write(self, events) -> None:
        raise OSError("disk full")
    async def read(self, room=None, recording=None):
        return []
    async def purge(self, before: float) -> int:
        return 0
    async def close(self) -> None: ...


async def test_failures_are_counted_not_raised() -> None:
    log = EventLog(Broken(), max_queue=3)
    await log.start()
    for _ in range(5):
        log.emit("chat", "r", identity="x")  # no exception, whatever the backend does
    await log.flush()
    assert log.failed + log.dropped + log.written >= 5 and log.written == 0
    assert log.dropped >= 2 - 1 and log.failed >= 3
    await log.stop()


async def test_sqlite_retention_and_hashing(tmp_path: Path) -> None:
    log = EventLog(SqliteEvents(tmp_path / "a.sqlite3"), retention_days=2, hash_key="k" * 32)
    await log.start()
    log.emit("join", "r", session="p1", identity="dr-lee", name="Dr Lee",
             at=time.time() - 3 * 86400)
    log.emit("join", "r", session="p2", identity="dr-lee", name="Dr Lee")
    await log.flush()
    assert await log.purge() == 1
    read = await log.read(room="r")
    # a room's read carries the nodes' starts (what a restarted node had open ended)
    assert [e.kind for e in read] == ["node.start", "join"]
    kept = read[1]
    assert kept.identity == log.who("dr-lee") != "dr-lee" and kept.name == ""
    await log.stop()


async def test_redis_streams(tmp_path: Path) -> None:
    async with redis_server(tmp_path / "redis") as url:
        one, two = (EventLog(RedisEvents(url), node=n, retention_days=1) for n in "ab")
        await one.start()
        await two.start()
        one.emit("join", "r", session="p1", identity="ann", at=time.time() - 2 * 86400)
        one.emit("join", "r", session="p2", identity="ann")
        two.emit("join", "r", session="p3", identity="bea")
        two.emit("play", "r", session="v1", identity="bea", recording="rec-1", ranges=[[0, 5]])
        await one.flush()
        await two.flush()
        room = await one.read(room="r")
        assert sorted(e.node for e in room if e.kind == "node.start") == ["a", "b"]
        assert [(e.session, e.node) for e in room if e.kind != "node.start"] == \
            [("p1", "a"), ("p2", "a"), ("p3", "b")]
        assert [e.data for e in await two.read(recording="rec-1")] == [{"ranges": [[0, 5]]}]
        # an entry as the log wrote them before rows were packed into one field
        old = Event(time.time(), "play", "r", "v0", "cy", recording="rec-1", node="a",
                    data={"ranges": [[5, 9]]})
        await one.backend.redis.xadd("ms:events:rec:rec-1", dict(zip(
            COLUMNS, (str(v) for v in old.row()), strict=True)))
        assert [(e.identity, e.data) for e in await two.read(recording="rec-1")] == \
            [("bea", {"ranges": [[0, 5]]}), ("cy", {"ranges": [[5, 9]]})]
        # streams are trimmed by their ids, the time each event was appended
        assert await one.purge(now=time.time() + 0.5 * 86400) == 0
        assert await one.purge(now=time.time() + 1.5 * 86400) >= 4
        assert await two.read(room="r") == []  # the starts too: purged with the rest
        await one.stop()
        await two.stop()


# ---- through the real server: a scripted meeting ----------------------------------------------


async def get(server: RunningServer, path: str, headers: dict | None = None
              ) -> tuple[int, object]:
    headers = KEY if headers is None else headers
    async with aiohttp.ClientSession() as s, s.get(server.base_url + path, headers=headers) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()


def close_to(value: float, expected: float, within: float = 1.0) -> bool:
    return abs(value - expected) <= within


async def test_scripted_meeting_report(server: RunningServer) -> None:
    await server.create_room("adboard")
    ann = Client(server.base_url, server.token("adboard", "ann", "Dr Ann"))
    bea = Client(server.base_url, server.token("adboard", "bea", "Dr Bea", role="presenter"))
    tones = [SwitchedTone(440), SwitchedTone(660)]
    camera = PatternVideoTrack(2)
    try:
        await ann.connect()
        t_ann = time.time()
        await ann.join()
        await ann.publish(tones[0])
        await bea.connect()
        t_bea = time.time()
        await bea.join()
        published = await bea.publish(tones[1], camera)
        t_cam = time.time()
        video = next(t["id"] for t in published["tracks"] if t["kind"] == "video")
        # Ann speaks ~2 s, then Bea until she leaves
        tones[0].loud = True
        await speaker_is(bea, ann.self_id)
        t_ann_talk = time.time()
        await asyncio.sleep(2)
        tones[0].loud, tones[1].loud = False, True
        await speaker_is(ann, bea.self_id)
        t_bea_talk = time.time()
        # Bea's tab hidden for ~1 s, her camera muted for ~1 s
        await bea.request("setVisibility", {"visible": False})
        t_hidden = time.time()
        await asyncio.sleep(1)
        await bea.request("setVisibility", {"visible": True})
        hidden = time.time() - t_hidden
        await bea.request("mute", {"trackId": video, "muted": True})
        t_muted = time.time()
        await asyncio.sleep(1)
        await bea.request("mute", {"trackId": video, "muted": False})
        muted = time.time() - t_muted
        # known interactions
        await bea.request("chat", {"text": "hello"})
        await bea.request("chat", {"text": "the dose?"})
        question = (await bea.request("qaAsk", {"text": "Renal dose?"}))["question"]
        await ann.request("qaUpvote", {"questionId": question["id"]})
        poll = (await ann.request("pollCreate", {"question": "Which?",
                                                 "options": ["a", "b"]}))["poll"]
        await ann.request("pollOpen", {"pollId": poll["id"]})
        await bea.request("pollVote", {"pollId": poll["id"], "option": 1})
        await ann.request("pollVote", {"pollId": poll["id"], "option": 0})
        await bea.request("reaction", {"emoji": "👏"})
        await bea.request("reaction", {"emoji": "🎉"})
        await bea.request("raiseHand", {"raised": True})
        await bea.request("raiseHand", {"raised": False})
        await bea.close()
        t_bea_left = time.time()
        await asyncio.sleep(0.5)
        await ann.close()
        t_ann_left = time.time()
    finally:
        for tone in tones:
            tone.stop()
        camera.stop()
        await asyncio.gather(ann.close(), bea.close(), return_exceptions=True)

    status, body = await get(server, "/api/rooms/adboard/sessions")
    assert status == 200
    (session,) = body["sessions"]
    assert session["participants"] == 2 and session["peak"] == 2
    assert close_to(session["started"], t_ann) and close_to(session["ended"], t_ann_left)
    status, rep = await get(server, f"/api/rooms/adboard/sessions/{session['id']}/report")
    assert status == 200
    people = {p["identity"]: p for p in rep["participants"]}
    a, b = people["ann"], people["bea"]
    assert (a["name"], a["role"], b["role"]) == ("Dr Ann", "host", "presenter")
    assert close_to(a["presentSeconds"], t_ann_left - t_ann)
    assert close_to(b["presentSeconds"], t_bea_left - t_bea)
    assert close_to(a["talkSeconds"], t_bea_talk - t_ann_talk)
    assert close_to(b["talkSeconds"], t_bea_left - t_bea_talk)
    assert close_to(b["cameraSeconds"], t_bea_left - t_cam - muted)
    assert close_to(b["visibleSeconds"], t_bea_left - t_bea - hidden)
    assert a["cameraSeconds"] == 0 and close_to(a["visibleSeconds"], a["presentSeconds"], 0.01)
    assert (b["chat"], b["questions"], b["upvotes"], b["votes"], b["reactions"], b["hands"]) \
        == (2, 1, 0, 1, 2, 1)
    assert (a["chat"], a["questions"], a["upvotes"], a["votes"], a["reactions"], a["hands"]) \
        == (0, 0, 1, 1, 0, 0)
    assert 0 <= b["score"] <= 10 and 0 <= a["score"] <= 10
    assert rep["timeline"][0][1] == 1 and max(c for _, c in rep["timeline"]) == 2
    assert rep["timeline"][-1][1] == 0
    # the talk time is the room's own speaking intervals
    assert close_to(b["talkSeconds"], t_bea_left - t_bea_talk)

    # the CSV: one row per participant, the same figures
    status, text = await get(server, f"/api/rooms/adboard/sessions/{session['id']}/report"
                                     "?format=csv")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["identity"] for r in rows] == [p["identity"] for p in rep["participants"]]
    for row, p in zip(rows, rep["participants"], strict=True):
        for col in analytics.CSV_COLUMNS:
            if col in ("intervals", "breakouts", "identity", "name", "role"):
                continue
            assert float(row[col]) == p[col], col
        assert row["intervals"] == ";".join(f"{x}-{y}" for x, y in p["intervals"])

    # a second session of the same room is a separate session
    again = Client(server.base_url, server.token("adboard", "ann", "Dr Ann"))
    await again.connect()
    await again.join()
    await again.close()
    status, body = await get(server, "/api/rooms/adboard/sessions")
    assert [s["id"] for s in body["sessions"]][0] == session["id"]
    assert len(body["sessions"]) == 2 and body["sessions"][1]["participants"] == 1


async def test_access(server: RunningServer) -> None:
    await server.create_room("mine")
    await server.create_room("other")
    paths = ["/api/rooms/mine/sessions", "/api/rooms/mine/sessions/s-1/report"]
    for path in paths:
        assert (await get(server, path, {}))[0] == 401
        assert (await get(server, path, {"Authorization": "Bearer wrong"}))[0] == 401
        attendee = server.token("mine", "a1", role="attendee")
        assert (await get(server, path, {"Authorization": f"Bearer {attendee}"}))[0] == 403
        presenter = server.token("mine", "p1", role="presenter")
        assert (await get(server, path, {"Authorization": f"Bearer {presenter}"}))[0] == 403
        elsewhere = server.token("other", "h1", role="host")
        assert (await get(server, path, {"Authorization": f"Bearer {elsewhere}"}))[0] == 403
    host = server.token("mine", "h1", role="host")
    assert (await get(server, paths[0], {"Authorization": f"Bearer {host}"}))[0] == 200
    assert (await get(server, paths[1], {"Authorization": f"Bearer {host}"}))[0] == 404
    assert (await get(server, paths[0]))[0] == 200


async def test_session_ended_webhook(server: RunningServer) -> None:
    async with hook_receiver(server) as received:
        await server.create_room("thanks")
        c = Client(server.base_url, server.token("thanks", "dr-lee", "Dr Lee"))
        await c.connect()
        await c.join()
        await c.request("chat", {"text": "bye"})
        await c.close()
        headers, body = await asyncio.wait_for(received.get(), 10)
        assert headers["X-Mediaserver-Event"] == "session.ended"
        assert headers["X-Mediaserver-Signature"].startswith("sha256=")
        data = body["data"]
        assert data["room"] == "thanks" and data["session"]["participants"] == 1
        (person,) = data["participants"]
        assert person["identity"] == "dr-lee" and person["presentSeconds"] >= 0


@pytest.mark.parametrize("n", [1])
def test_csv_columns_cover_the_json(n: int) -> None:
    rep = analytics.report(analytics.sessions(sorted(SCRIPT, key=lambda e: e.at), 1000)[0],
                           1000)
    for p in rep["participants"]:
        assert set(analytics.CSV_COLUMNS) <= set(p)


# ---- replay analytics: the player's reports --------------------------------------------------


async def test_replay_analytics_from_player_reports(server: RunningServer) -> None:
    from signaling.grants import grant_path

    await server.create_room("vod")
    await server.state.store.put_recording({"id": "rec-1", "room": "vod", "state": "ready",
                                            "started": time.time(), "duration": 100.0})
    src = grant_path(server.config.effective_jwt_secret, "rec-1") + "/index.m3u8"

    async def post(body: dict) -> int:
        async with aiohttp.ClientSession() as s, s.post(server.base_url + "/api/player/report",
                                                        json=body) as r:
            return r.status

    # Dr A on replay: 0-30, skips to 60, plays to 80, back to 70, plays to 90, stops there
    assert await post({"src": src, "viewId": "v1", "viewer": "dr-a", "ranges": [[0, 30, 1]],
                       "seeks": [[30, 60]]}) == 200
    assert await post({"src": src, "viewId": "v1", "viewer": "dr-a",
                       "ranges": [[60, 80, 1], [70, 90, 2]], "seeks": [[80, 70]], "pauses": 1,
                       "final": True}) == 200
    # Dr B live: the first 10 s
    assert await post({"src": src, "viewId": "v2", "viewer": "dr-b", "live": True,
                       "ranges": [[0, 10]]}) == 200
    # no grant, a bad grant, a bad body
    assert await post({"src": "/recordings/rec-1/g/1/" + "0" * 32 + "/index.m3u8",
                       "viewId": "v3", "ranges": [[0, 50]]}) == 403
    assert await post({"src": src, "viewId": "v3", "ranges": [[0, "x"]]}) == 400

    status, a = await get(server, "/api/recordings/rec-1/analytics")
    assert status == 200
    assert (a["views"], a["uniqueViewers"]) == (2, 2)
    assert a["liveMinutes"] == round(10 / 60, 2)
    assert a["replayMinutes"] == round((30 + 20 + 10) / 60, 2)  # 70-90 at twice the speed
    assert a["perSecond"] == [2] * 10 + [1] * 20 + [0] * 30 + [1] * 30 + [0] * 10
    assert a["unwatched"] == [[30, 60], [90, 100]]
    assert a["skipped"] == [[30, 60]]
    assert a["rewatched"] == [[70, 80]]
    assert a["dropoff"][0] == [0, 1.0] and a["dropoff"][10] == [10, 0.5]
    assert a["dropoff"][89] == [89, 0.5] and a["dropoff"][90] == [90, 0.0]
    assert a["completion"] == {"25": 0.5, "50": 0.5, "75": 0.5, "100": 0.0}

    status, b = await get(server, "/api/recordings/rec-1/analytics?viewer=dr-b")
    assert status == 200 and b["views"] == 1 and b["viewer"] == "dr-b"
    assert b["perSecond"][:11] == [1] * 10 + [0] and b["completion"]["25"] == 0.0

    # access: as for sessions
    assert (await get(server, "/api/recordings/rec-1/analytics", {}))[0] == 401
    attendee = server.token("vod", "a1", role="attendee")
    assert (await get(server, "/api/recordings/rec-1/analytics",
                      {"Authorization": f"Bearer {attendee}"}))[0] == 403
    host = server.token("vod", "h1", role="host")
    assert (await get(server, "/api/recordings/rec-1/analytics",
                      {"Authorization": f"Bearer {host}"}))[0] == 200
    assert (await get(server, "/api/recordings/nope/analytics"))[0] == 404
    assert a["links"] == {}  # ready, without files here; with them the player's links


# ---- the replay figures against their definition; reads, metrics, the dashboard --------------


def reference_figures(events: list[Event], duration: float) -> dict:
    """docs/analytics.md's definitions, second by second in plain Python."""
    n = math.ceil(duration)
    views: dict[str, dict] = {}
    for e in events:
        v = views.setdefault(e.session, {"plays": [0] * n, "jumped": [False] * n, "end": None})
        for a, b, *_ in e.data.get("ranges", []):
            if b <= a or a < 0:
                continue
            v["end"] = b if v["end"] is None else max(v["end"], b)
            for s in range(n):
                v["plays"][s] += a <= s + 0.5 < b  # a second counts when its middle is played
        for a, b in e.data.get("seeks", []):
            for s in range(n):
                v["jumped"][s] |= a <= s + 0.5 < b  # forward only: a > b covers nothing
    played = [v for v in views.values() if v["end"] is not None]
    per = [sum(v["plays"][s] > 0 for v in played) for s in range(n)]
    again = [any(v["plays"][s] > 1 for v in played) for s in range(n)]
    skipped = [any(v["jumped"][s] and not v["plays"][s] for v in played) for s in range(n)]
    drop = [[s, round(sum(v["end"] > s for v in played) / len(played), 3)] for s in range(n)]
    return {"perSecond": per, "rewatched": again, "skipped": skipped, "dropoff": drop}


def runs_of(flags: list[bool]) -> list[list[int]]:
    out: list[list[int]] = []
    for s, flag in enumerate(flags):
        if flag and out and out[-1][1] == s:
            out[-1][1] = s + 1
        elif flag:
            out.append([s, s + 1])
    return out


def random_reports(seed: int) -> tuple[list[Event], float]:
    """Player reports of up to 9 views with odd ranges (negative, empty, overlapping) and
    seeks both ways, and the recording's duration."""
    rng = random.Random(seed)
    duration = rng.choice([45.0, 60.5, 90.0])
    events = []
    for v in range(rng.randint(1, 9)):
        for k in range(rng.randint(1, 6)):
            ranges = []
            for _ in range(rng.randint(0, 3)):
                a = round(rng.uniform(-1, duration), rng.choice([0, 2]))
                ranges.append([a, round(a + rng.choice([-2, 0, rng.uniform(0, 40)]), 2),
                               rng.choice([1, 1.5])])
            seeks = [[rng.uniform(0, duration), rng.uniform(0, duration)]
                     for _ in range(rng.randint(0, 2))]
            events.append(Event(k, "play", "r", f"v{v}", f"dr-{v % 4}", recording="rec",
                                data={"ranges": ranges, "seeks": seeks}))
    return events, duration


@pytest.mark.parametrize("seed", range(6))
def test_replay_figures_match_their_definition(seed: int, monkeypatch) -> None:
    events, duration = random_reports(seed)
    expected = reference_figures(events, duration)
    figures = replay_analytics.analyze(events, duration)
    monkeypatch.setattr(replay_analytics, "BLOCK_CELLS", 100)  # views in blocks of one or two
    assert replay_analytics.analyze(events, duration) == figures
    assert figures["perSecond"] == expected["perSecond"]
    assert figures["unwatched"] == runs_of([c == 0 for c in expected["perSecond"]])
    assert figures["rewatched"] == runs_of(expected["rewatched"])
    assert figures["skipped"] == runs_of(expected["skipped"])
    if figures["views"]:
        assert figures["dropoff"] == expected["dropoff"]


async def test_room_reads_leave_out_player_reports(tmp_path: Path) -> None:
    """SQLite as Redis: a room's events are its own, a recording's are its viewers'."""
    log = EventLog(SqliteEvents(tmp_path / "a.sqlite3"))
    await log.start()
    log.emit("join", "r", session="p1", identity="ann")
    log.emit("play", "r", session="v1", identity="bea", recording="rec-1", ranges=[[0, 5]])
    assert [e.kind for e in await log.read(room="r")] == ["node.start", "join"]
    assert [e.kind for e in await log.read(recording="rec-1")] == ["play"]
    assert [e.kind for e in await log.read(room="r", recording="rec-1")] == ["play"]
    await log.stop()


def test_report_carries_the_strips() -> None:
    """presentIntervals and talkIntervals (the dashboard's strips), in the JSON only."""
    events = sorted(SCRIPT, key=lambda e: e.at)
    rep = analytics.report(analytics.sessions(events, 1000)[0], 1000, events)
    bea = next(p for p in rep["participants"] if p["identity"] == "bea")
    assert bea["presentIntervals"] == [[110, 160], [165, 180]]
    assert bea["talkIntervals"] == [[130, 160], [165, 180]]
    assert "presentIntervals" not in analytics.CSV_COLUMNS


async def test_event_log_counters_in_metrics(server: RunningServer) -> None:
    log = server.runner.app[EVENTS]
    before = log.written
    for i in range(5):
        log.emit("chat", "m", session="p1", identity=f"x{i}")
    await log.flush()
    text = await server.metrics()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
              if line.startswith("mediaserver_analytics_events_")}
    assert values["mediaserver_analytics_events_written_total"] >= before + 5
    assert values["mediaserver_analytics_events_dropped_total"] == 0
    assert values["mediaserver_analytics_events_failed_total"] == 0
    assert values["mediaserver_analytics_events_queued"] == 0


async def test_dashboard_page_is_served_with_its_chart_library(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(server.base_url + "/dashboard?room=x") as r:
            assert r.status == 200 and r.content_type == "text/html"
            page = await r.text()
        # fetched by `make setup` / `make test` from the npm registry, served by us
        for asset in ("/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.min.css"):
            assert asset in page
            async with s.get(server.base_url + asset) as r:
                assert r.status == 200, f"{asset}: run `make setup` (it fetches uPlot)"
        assert '<link rel="modulepreload" href="/static/js/dashcharts.js">' in page
        assert "cdn" not in page.lower() and "https://" not in page
