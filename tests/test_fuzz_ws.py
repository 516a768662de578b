"""Property-based tests of every WebSocket method's params, through the real dispatch.

For each method of the method table (signaling/methods.py), generated params (valid ones,
fields replaced by wrong types, numbers past 64 bits, long and odd text, nesting past the limit,
unknown fields, not an object at all) and mangled message texts go through
`websocket._dispatch` with a real Participant of a running server (store, rooms, media worker,
recorder). The reply is always a result or an error with a documented code, never `internal`;
and the room stays consistent: after every message a following valid request still works. A
last test sends random and mutated messages over a real socket while two aiortc participants
exchange video; at the end they still decode each other's pattern.

`make test` runs a bounded share of cases; `make fuzz` runs 100,000 per method
(docs/operations.md, "Fuzzing").
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling import schemas
from signaling.participant import Participant
from signaling.tokens import verify
from signaling.websocket import _dispatch
from tests.support.client import Client
from tests.support.fuzz import fuzz_examples
from tests.support.junk import EDITS, JUNK, RAW, TEXT, Raw, dumps, mangle, mutated
from tests.support.sdp_samples import CHROME_OFFER
from tests.support.server import JWT_SECRET, RunningServer
from tests.support.tracks import FrameChecker, PatternVideoTrack

pytestmark = pytest.mark.fuzz

# Every code a request may end with (docs/protocol.md) but `internal`.
DOCUMENTED = {"bad_json", "bad_request", "unknown_method", "not_joined", "already_joined",
              "forbidden", "bad_sdp", "not_found", "conflict", "chat_disabled", "rate_limited"}


def fuzz(ci_examples: int) -> settings:
    """Settings of a property over a running server: its fixture serves every example."""
    return settings(max_examples=fuzz_examples(ci_examples), deadline=None,
                    suppress_health_check=list(HealthCheck))


@dataclass
class Room:
    """A host (whose messages are fuzzed) and an attendee in one room of a running server."""

    server: RunningServer
    name: str
    host: Participant | None = None
    other: Participant | None = None
    events: deque = field(default_factory=lambda: deque(maxlen=200))

    async def participant(self, identity: str, role: str) -> Participant:
        state = self.server.state
        grant = verify(JWT_SECRET, self.server.token(self.name, identity, role=role))
        p = Participant(grant, state.rooms, state.store, state.media, self.events.append)
        reply = await _dispatch(p, '{"id": 0, "method": "join"}')
        assert "result" in reply, reply
        return p

    async def ensure(self) -> None:
        """Both present and joined (a fuzzed leave or removeParticipant may have ended one)."""
        if self.host is None or not self.host.joined:
            self.host = await self.participant("host", "host")
            reply = await _dispatch(self.host, json.dumps(
                {"id": 0, "method": "publish", "params": {"sdp": CHROME_OFFER}}))
            assert "result" in reply, reply  # tracks for the track methods to name
        if self.other is None or not self.other.joined:
            self.other = await self.participant("other", "attendee")

    async def close(self) -> None:
        for p in (self.host, self.other):
            if p is not None:
                await p.close("done")

    async def ids(self, kinds: set[str]) -> dict[str, list[Any]]:
        """Ids of these kinds that exist now, for valid references."""
        assert self.host is not None and self.other is not None and self.host.room is not None
        store = self.server.state.store
        room = self.host.room
        found: dict[str, list[Any]] = {
            "participant": [self.other.id, self.host.id],
            "track": [t.id for t in self.host.media_session.published.values()] + list(room.tracks),
            "group": list(room.breakouts.groups),
            "offer": [self.host.media_session.offer_id],
        }
        if "question" in kinds:
            found["question"] = [q["id"] for q in await store.questions(self.name)]
        if "poll" in kinds:
            found["poll"] = [p["id"] for p in await store.polls(self.name)]
        return found


@dataclass(frozen=True)
class Existing:
    """A reference to something that exists when the message is sent (the `index`-th of its
    kind, or `fallback` when there is none): strategies must not depend on the room's state."""

    kind: str
    index: int
    fallback: Any


def ref(kind: str, fallback: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(Existing, st.just(kind), st.integers(0, 20), fallback) | fallback


def references(value: Any) -> set[str]:
    if isinstance(value, Existing):
        return {value.kind}
    if isinstance(value, dict):
        return set().union(*map(references, value.values()))
    if isinstance(value, list):
        return set().union(*map(references, value))
    return set()


def resolve(value: Any, ids: dict[str, list[Any]]) -> Any:
    if isinstance(value, Existing):
        found = ids[value.kind]
        return found[value.index % len(found)] if found else value.fallback
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def valid_params(method: str) -> st.SearchStrategy[dict[str, Any]]:
    """Params the method's schema accepts (refs to what exists, or to nothing)."""
    text = st.text(min_size=1, max_size=30).filter(str.strip)
    ident = st.integers(0, schemas.MAX_ID)
    participant = ref("participant", st.text(min_size=1, max_size=10))
    track = ref("track", st.text(min_size=1, max_size=10))
    group = ref("group", st.text(min_size=1, max_size=10))
    question = ref("question", ident)
    poll = ref("poll", ident)
    sdp = st.sampled_from([CHROME_OFFER, "v=0\r\n", ""]) | st.text(max_size=40)
    fields: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "join": ({}, {"sinceChatId": ident}),
        "publish": ({"sdp": sdp}, {"names": st.dictionaries(st.sampled_from(["0", "1"]), text)}),
        "unpublish": ({"trackId": track}, {}),
        "mute": ({"trackId": track, "muted": st.booleans()}, {}),
        "subscriberAnswer": ({"sdp": sdp}, {"offerId": ref("offer", ident)}),
        "requestKeyframe": ({"trackId": track}, {}),
        "chat": ({"text": text}, {}),
        "probe": ({"sdp": sdp}, {}),
        "recordStart": ({"mode": st.sampled_from(["composite", "pertrack"])},
                        {"layout": st.sampled_from(["grid", "speaker"]),
                         "lowLatency": st.booleans()}),
        "setLive": ({"live": st.booleans()}, {}),
        "raiseHand": ({"raised": st.booleans()}, {}),
        "setNotes": ({"text": st.text(max_size=30), "baseVersion": st.integers(0, 5)}, {}),
        "muteParticipant": ({"participantId": participant},
                            {"kind": st.sampled_from(["audio", "video"])}),
        "qaAsk": ({"text": text}, {}),
        "pollCreate": ({"question": text, "options": st.lists(text, min_size=2, max_size=10)},
                       {}),
        "pollVote": ({"pollId": poll, "option": st.integers(0, 9)}, {}),
        "setChat": ({"enabled": st.booleans()}, {}),
        "privateMessage": ({"participantId": participant, "text": text}, {}),
        "reaction": ({"emoji": st.sampled_from(schemas.REACTIONS)}, {}),
        "breakoutCreate": ({}, {"count": st.integers(1, 20),
                                "names": st.lists(text, min_size=1, max_size=20)}),
        "breakoutAssign": ({"participantId": participant}, {"groupId": st.none() | group}),
        "breakoutAllowChoose": ({"allowed": st.booleans()}, {}),
        "breakoutChoose": ({"groupId": group}, {}),
        "breakoutBroadcast": ({"text": text}, {}),
        "breakoutTimer": ({"seconds": st.integers(0, 4 * 3600)}, {}),
        "breakoutVisit": ({}, {"groupId": st.none() | group}),
    }
    for name in ("admit", "refuse", "removeParticipant", "promote", "demote"):
        fields[name] = ({"participantId": participant}, {})
    for name in ("qaUpvote", "qaAnswer", "qaDismiss"):
        fields[name] = ({"questionId": question}, {})
    for name in ("pollOpen", "pollClose"):
        fields[name] = ({"pollId": poll}, {})
    required, optional = fields.get(method, ({}, {}))
    valid = st.fixed_dictionaries(required, optional=optional)
    if method == "breakoutCreate":  # count or names
        valid = valid.filter(lambda p: p) | st.fixed_dictionaries({"count": st.integers(1, 20)})
    return valid


def message(method: str, params: Any, how: str) -> str:
    if how == "absent":
        return json.dumps({"id": 1, "method": method})
    return dumps({"id": 1, "method": method, "params": params})


def check_reply(reply: dict[str, Any] | None, text: str) -> None:
    assert reply is not None
    if "result" in reply:
        assert "id" in reply and isinstance(reply["result"], dict)  # a mangled id may differ
        return
    error = reply["error"]
    assert error["code"] in DOCUMENTED, (error, text[:300])
    assert isinstance(error["message"], str) and error["message"]
    if error["code"] == "bad_request" and "data" in error and "fields" in error["data"]:
        fields = error["data"]["fields"]
        assert fields and all(f.startswith("params") for f in fields), error
        assert all(f in error["message"] for f in fields), error
    json.dumps(reply)  # it can be sent


async def still_works(room: Room) -> None:
    """The room holds up: a valid request of the host succeeds (joining it again if a fuzzed
    leave ended it), the store answers, and the room lists only joined participants."""
    await room.ensure()
    assert room.host is not None and room.host.room is not None
    for probe in ('{"id": 2, "method": "ping"}', '{"id": 3, "method": "getNotes"}'):
        reply = await _dispatch(room.host, probe)
        assert reply is not None and "result" in reply, reply
    live = room.server.state.rooms.rooms.get(room.name)
    assert live is room.host.room
    assert all(p.joined for p in live.participants.values())


@pytest.fixture
async def room(server: RunningServer) -> Any:
    await server.create_room("fuzz", type="webinar")
    r = Room(server, "fuzz")
    await r.ensure()
    yield r
    await r.close()


@functools.cache
def cases(method: str) -> st.SearchStrategy[tuple[str, Any, Any]]:
    """(how, params, edits): mutated params; no params at all; or a valid message mangled.
    Built once per method: strategies are costly to build, cheap to draw from."""
    valid = valid_params(method)
    return st.one_of(
        st.tuples(st.just("params"), mutated(valid), st.none()),
        st.tuples(st.just("params"), mutated(valid), st.none()),
        st.tuples(st.just("absent"), st.none(), st.none()),
        st.tuples(st.just("text"), valid, EDITS),
    )


@pytest.mark.parametrize("method", sorted(schemas.PARAMS))
@fuzz(25)
@given(data=st.data())
async def test_method_params(room: Room, method: str, data: st.DataObject) -> None:
    await room.ensure()
    how, params, edits = data.draw(cases(method))
    text = message(method, resolve(params, await room.ids(references(params))), how)
    if edits is not None:  # the whole message mangled
        text = mangle(text, edits)
    check_reply(await _dispatch(room.host, text), text)
    await still_works(room)


@fuzz(100)
@given(envelope=st.one_of(
    JUNK,
    st.fixed_dictionaries({}, optional={"id": JUNK, "method": JUNK | st.sampled_from(
        sorted(schemas.PARAMS)), "params": JUNK}),
    st.builds(lambda depth: Raw('{"id": 1, "method": "chat", "params": ' + "[" * depth
                                + "]" * depth + "}"), st.integers(25, 3000)),
    RAW, TEXT.map(Raw),
))
async def test_message_envelope(room: Room, envelope: Any) -> None:
    """Whole messages of any shape: never an exception; bad_json has no id."""
    text = dumps(envelope)
    reply = await _dispatch(room.host, text)
    assert reply is not None
    if "error" in reply:
        assert reply["error"]["code"] in DOCUMENTED, (reply, text[:300])
        if reply["error"]["code"] == "bad_json":
            assert "id" not in reply
    await still_works(room)


def random_message(rng: random.Random, methods: list[str]) -> str:
    """A random or mutated valid message for the live socket (never leave: it would end it)."""
    method = rng.choice(methods)
    examples: dict[str, Any] = {
        "chat": {"text": "hi"}, "raiseHand": {"raised": True}, "qaAsk": {"text": "why?"},
        "reaction": {"emoji": "👍"}, "mute": {"trackId": "t-1", "muted": True},
        "setNotes": {"text": "n", "baseVersion": 0}, "pollVote": {"pollId": 1, "option": 0},
        "requestKeyframe": {"trackId": "t-1"}, "qaUpvote": {"questionId": 1},
    }
    params: Any = dict(examples.get(method, {}))
    junk = [None, True, 2**64, -1, 10**400, "x" * 3000, "\x00", "\ud800", [], {}, [[[[1]]]],
            {"a": {"b": {}}}, 1.5, ""]
    roll = rng.random()
    if roll < 0.3 and params:
        params[rng.choice(sorted(params))] = rng.choice(junk)
    elif roll < 0.4:
        params = rng.choice(junk)
    elif roll < 0.5:
        params["extra"] = rng.choice(junk)
    text = json.dumps({"id": rng.randrange(1000), "method": method, "params": params})
    if rng.random() < 0.15:
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice(["", "\x00", "]", "{", '"', "é"]) + text[cut + 1:]
    elif rng.random() < 0.05:
        depth = rng.choice([33, 100, 5000])
        text = '{"id": 1, "method": "chat", "params": ' + "[" * depth + "]" * depth + "}"
    return text


async def test_live_socket_fuzz_keeps_media_flowing(server: RunningServer) -> None:
    """Random and mutated messages over a real socket, from a third participant and from one
    of two that exchange video: the socket stays open, answers every message with a documented
    code, and at the end both still decode each other's pattern."""
    await server.create_room("livefuzz")
    a = Client(server.base_url, server.token("livefuzz", "a"))
    b = Client(server.base_url, server.token("livefuzz", "b"))
    tasks: list[asyncio.Task] = []
    session = aiohttp.ClientSession()
    try:
        for c in (a, b):
            await c.connect()
            await c.join()
        await a.publish(PatternVideoTrack(11))
        await b.publish(PatternVideoTrack(12))
        seen_by_b, seen_by_a = FrameChecker(), FrameChecker()
        tasks.append(asyncio.create_task(seen_by_b.run(
            await b.remote_track(await b.tracks_of(a.self_id, "video")))))
        tasks.append(asyncio.create_task(seen_by_a.run(
            await a.remote_track(await a.tracks_of(b.self_id, "video")))))
        await seen_by_b.wait_for(11, 10, timeout=20)
        await seen_by_a.wait_for(12, 10, timeout=20)

        # this socket's message rate limit is lifted (tested in test_bad_input): the fuzz
        # goes as fast as the server answers
        server.state.config = dataclasses.replace(server.state.config,
                                                  messages_per_second=10_000)
        url = server.base_url.replace("http", "ws", 1) + "/ws?token=" + \
            server.token("livefuzz", "mallory", role="attendee")
        ws = await session.ws_connect(url)
        methods = sorted(m for m in schemas.PARAMS if m != "leave")
        rng = random.Random(9)
        batches = fuzz_examples(300) // 20
        for batch in range(batches + 1):
            texts = [random_message(rng, methods) for _ in range(20)] if batch else \
                ['{"id": 0, "method": "join"}']
            for text in texts:
                await ws.send_str(text)
            replies = 0
            while replies < len(texts):  # one reply per message; events may come between
                msg = await ws.receive(timeout=10)
                assert msg.type == aiohttp.WSMsgType.TEXT, (msg, ws.close_code)
                reply = json.loads(msg.data)
                if "event" in reply:
                    continue
                replies += 1
                if "error" in reply:
                    assert reply["error"]["code"] in DOCUMENTED, reply
        await ws.send_str('{"id": 1, "method": "leave"}')
        assert (await ws.receive_json(timeout=10)) == {"id": 1, "result": {}}
        await ws.close()

        # the media still flows both ways and the session of each is intact
        for checker, sender in ((seen_by_b, 11), (seen_by_a, 12)):
            before = checker.senders[sender].readable
            await checker.wait_for(sender, before + 30, timeout=20)
        chat = await b.request("chat", {"text": "after the fuzz"})
        assert chat["message"]["text"] == "after the fuzz"
        assert {p.identity for p in server.state.rooms.rooms["livefuzz"].participants.values()
                } == {"a", "b"}
    finally:
        for task in tasks:
            task.cancel()
        await session.close()
        await a.close()
        await b.close()
