"""The border's parsers on their own: params schemas, JSON within limits, stores refusing ids
they cannot hold, recording grants and blocking-reload directives. Property-based tests are
marked fuzz (bounded in `make test`, 100,000 cases each under `make fuzz`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import signaling.participant  # noqa: F401  (importing it registers every method)
from signaling import safe_json, schemas
from signaling.errors import RequestError
from signaling.grants import check, grant_path
from signaling.hls_reload import BadDirective, directives
from signaling.methods import METHODS
from signaling.store import NotFound
from tests.support.fuzz import fuzz_examples
from tests.support.junk import EDGE_INTS, JUNK, KEYS, TEXT, dumps
from tests.test_store_contract import store  # noqa: F401  (the two stores, as a fixture)


def refusal(method: str, params: Any) -> RequestError:
    with pytest.raises(RequestError) as info:
        schemas.params(method, params)
    assert info.value.code == "bad_request"
    return info.value


def test_every_method_has_a_schema() -> None:
    assert set(schemas.PARAMS) == set(METHODS)


# ---- the classes of the issue ----------------------------------------------------------------

@pytest.mark.parametrize(("method", "params", "fields"), [
    # an object or a list where a string is expected
    ("unpublish", {"trackId": {"a": 1}}, ["params.trackId"]),
    ("chat", {"text": ["hi"]}, ["params.text"]),
    ("privateMessage", {"participantId": ["p-1"], "text": {}},
     ["params.participantId", "params.text"]),
    # a list, a string, a float or a boolean where an id is expected
    ("qaUpvote", {"questionId": [1]}, ["params.questionId"]),
    ("pollOpen", {"pollId": "1"}, ["params.pollId"]),
    ("pollVote", {"pollId": 1.0, "option": True}, ["params.pollId", "params.option"]),
    # integers past 53 and 64 bits, negative ones
    ("qaAnswer", {"questionId": 2**64 + 1}, ["params.questionId"]),
    ("pollClose", {"pollId": 2**53}, ["params.pollId"]),
    ("qaDismiss", {"questionId": -1}, ["params.questionId"]),
    ("setNotes", {"text": "", "baseVersion": 10**4000}, ["params.baseVersion"]),
    ("join", {"sinceChatId": 2**63}, ["params.sinceChatId"]),
    ("subscriberAnswer", {"sdp": "v=0", "offerId": -5}, ["params.offerId"]),
    # strict booleans, enums, ranges
    ("mute", {"trackId": "t-1", "muted": "true"}, ["params.muted"]),
    ("raiseHand", {"raised": 1}, ["params.raised"]),
    ("muteParticipant", {"participantId": "p-1", "kind": "screen"}, ["params.kind"]),
    ("reaction", {"emoji": "💩"}, ["params.emoji"]),
    ("recordStart", {"mode": "film", "layout": 3}, ["params.mode", "params.layout"]),
    ("breakoutTimer", {"seconds": 4 * 3600 + 1}, ["params.seconds"]),
    ("breakoutCreate", {"count": 21}, ["params.count"]),
    ("breakoutCreate", {}, ["params"]),
    # text lengths, NUL and control characters, lone surrogates
    ("chat", {"text": "x" * 2001}, ["params.text"]),
    ("chat", {"text": "   "}, ["params.text"]),
    ("qaAsk", {"text": "why\x00"}, ["params.text"]),
    ("pollCreate", {"question": "q\nq", "options": ["a"]},
     ["params.question", "params.options"]),
    ("pollCreate", {"question": "q", "options": ["a", "b\x07"]}, ["params.options[1]"]),
    ("breakoutBroadcast", {"text": "\ud800"}, ["params.text"]),
    ("publish", {"sdp": "v=0", "names": {"0": 7}}, ["params.names.0"]),
    ("publish", {"sdp": "v=0", "sources": {"0": "window"}}, ["params.sources.0"]),
    ("requestKeyframe", {"trackId": "t" * 129}, ["params.trackId"]),
    # missing
    ("mute", {}, ["params.trackId", "params.muted"]),
])
def test_bad_params_name_their_fields(method: str, params: dict[str, Any],
                                      fields: list[str]) -> None:
    error = refusal(method, params)
    assert error.data == {"fields": fields}
    assert error.message == "; ".join(
        f"{f}: {problem}" for f, problem in re.findall(r"(params[^:]*): ([^;]+)",
                                                      error.message))
    for field in fields:
        assert f"{field}: " in error.message


def test_messages_say_what_is_wanted() -> None:
    assert refusal("unpublish", {"trackId": {}}).message == "params.trackId: must be a string"
    assert refusal("qaUpvote", {"questionId": 2**64}).message == \
        "params.questionId: must be at most 9007199254740991"
    assert refusal("mute", {"trackId": "t", "muted": 1}).message == \
        "params.muted: must be true or false"
    assert refusal("chat", {"text": "x" * 2001}).message == \
        "params.text: must be at most 2000 characters"
    assert refusal("chat", {}).message == "params.text: is required"
    assert refusal("breakoutCreate", {}).message == "params: count or names is required"
    assert "must not contain control characters" in refusal("chat", {"text": "a\x00"}).message


def test_valid_params_are_typed_and_trimmed() -> None:
    chat = schemas.params("chat", {"text": "  hello\n", "unknown": [1, 2]})
    assert isinstance(chat, schemas.Chat) and chat.text == "hello"
    notes = schemas.params("setNotes", {"text": "  keep\tme\n", "baseVersion": 0})
    assert notes.text == "  keep\tme\n"  # notes are a document: kept as written
    vote = schemas.params("pollVote", {"pollId": schemas.MAX_ID, "option": 9})
    assert (vote.poll_id, vote.option) == (schemas.MAX_ID, 9)
    assert schemas.params("breakoutCreate", {"count": 3}).group_names() == \
        ["Group 1", "Group 2", "Group 3"]
    assert schemas.params("breakoutCreate", {"names": [" A ", "B"], "count": 9}).group_names() \
        == ["A", "B"]
    assert schemas.params("breakoutAssign", {"participantId": "p-1", "groupId": None}
                          ).group_id is None
    assert schemas.params("muteParticipant", {"participantId": "p-1"}).kind == "audio"
    start = schemas.params("recordStart", {"mode": "pertrack"})
    assert (start.mode, start.layout, start.low_latency) == ("pertrack", "grid", False)


# What web_client/js sends (grep "request(" there); each must pass its schema.
WEB_CLIENT = [
    ("ping", {}), ("join", {}), ("join", {"keepMedia": True}), ("restartIce", {}),
    ("probe", {"sdp": "v=0"}), ("probeDone", {}),
    ("probeInfo", {}), ("probe", {"sdp": "v=0", "name": "turn-tcp"}),
    ("probeDone", {"name": "turn-tcp"}),
    ("publish", {"sdp": "v=0", "names": {"0": "microphone", "1": "camera"}}),
    ("publish", {"sdp": "v=0", "names": {"2": "screen"}, "sources": {"2": "screen"}}),
    ("unpublish", {"trackId": "t-1a2b"}),
    ("subscriberAnswer", {"sdp": "v=0", "offerId": 3}),
    ("mute", {"trackId": "t-1a2b", "muted": True}), ("leave", {}),
    ("setTrackView", {"trackId": "t-1a2b", "visible": True, "width": 640, "height": 360}),
    ("setTrackView", {"trackId": "t-1a2b", "visible": False, "width": 0, "height": 0}),
    ("setVisibility", {"visible": True}),
    ("chat", {"text": "hello"}), ("privateMessage", {"participantId": "p-1", "text": "hi"}),
    ("setChat", {"enabled": False}), ("raiseHand", {"raised": True}),
    ("muteParticipant", {"participantId": "p-1", "kind": "video"}),
    ("removeParticipant", {"participantId": "p-1"}), ("promote", {"participantId": "p-1"}),
    ("demote", {"participantId": "p-1"}), ("admit", {"participantId": "p-1"}),
    ("refuse", {"participantId": "p-1"}), ("lobbyList", {}), ("getNotes", {}),
    ("setNotes", {"text": "notes", "baseVersion": 4}), ("setLive", {"live": True}),
    ("pollList", {}), ("pollCreate", {"question": "Which?", "options": ["a", "b"]}),
    ("pollOpen", {"pollId": 1}), ("pollClose", {"pollId": 1}),
    ("pollVote", {"pollId": 1, "option": 0}), ("qaList", {}), ("qaAsk", {"text": "Why?"}),
    ("qaUpvote", {"questionId": 2}), ("qaAnswer", {"questionId": 2}),
    ("qaDismiss", {"questionId": 2}), ("reaction", {"emoji": "👏"}),
    ("recordStart", {"mode": "composite", "layout": "grid"}), ("recordStop", {}),
    ("breakoutCreate", {"count": 2}), ("breakoutAuto", {}), ("breakoutOpen", {}),
    ("breakoutClose", {}), ("breakoutVisit", {"groupId": None}),
    ("breakoutVisit", {"groupId": "g-1"}), ("breakoutTimer", {"seconds": 300}),
    ("breakoutAllowChoose", {"allowed": True}), ("breakoutBroadcast", {"text": "5 min"}),
    ("breakoutAssign", {"participantId": "p-1", "groupId": None}),
    ("breakoutAssign", {"participantId": "p-1", "groupId": "g-1"}),
    ("breakoutChoose", {"groupId": "g-1"}),
    ("catchUp", {"rewound": True}), ("catchUp", {"rewound": False}),
]


@pytest.mark.parametrize(("method", "params"), WEB_CLIENT)
def test_what_the_web_client_sends_passes(method: str, params: dict[str, Any]) -> None:
    schemas.params(method, params)


def test_web_client_list_covers_its_requests() -> None:
    """Every method the web client names literally is in WEB_CLIENT (host.js, polls.js, qa.js
    and breakouts.js pass the method through a helper: their methods are listed by hand)."""
    root = Path(__file__).resolve().parent.parent / "web_client" / "js"
    sent = set()
    for path in root.glob("*.js"):
        sent |= set(re.findall(r"request\('(\w+)'", path.read_text()))
        sent |= set(re.findall(r"call\('(\w+)'", path.read_text()))
    assert sent and sent <= {m for m, _ in WEB_CLIENT}, sent - {m for m, _ in WEB_CLIENT}


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(method=st.sampled_from(sorted(schemas.PARAMS)),
       params=st.dictionaries(KEYS, JUNK, max_size=6))
def test_any_params_validate_or_name_the_fields(method: str, params: dict[str, Any]) -> None:
    """Any object: a model, or bad_request whose message names every field in data.fields."""
    try:
        params = safe_json.loads(dumps(params))  # as a client's message would bring it
    except safe_json.BadJson:
        params = {}
    try:
        model = schemas.params(method, params)
    except RequestError as exc:
        assert exc.code == "bad_request"
        assert exc.data is not None and exc.data["fields"]
        for field in exc.data["fields"]:
            assert field.startswith("params") and f"{field}: " in exc.message
    else:
        assert isinstance(model, schemas.PARAMS[method])


# ---- JSON within limits ----------------------------------------------------------------------

def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_nesting_limit() -> None:
    assert safe_json.loads(nested(safe_json.MAX_DEPTH)) is not None
    for depth in (safe_json.MAX_DEPTH + 1, 1000, 100_000):
        with pytest.raises(safe_json.BadJson, match="nested deeper than 32"):
            safe_json.loads(nested(depth))
    deep_object = '{"a":' * 40 + "1" + "}" * 40
    with pytest.raises(safe_json.BadJson):
        safe_json.loads(deep_object)
    # brackets inside strings are text, not nesting
    assert safe_json.loads(json.dumps({"text": "[" * 5000 + "{" * 5000})) == \
        {"text": "[" * 5000 + "{" * 5000}
    assert safe_json.loads(json.dumps(["\\\"[[[", "]"] * 50)) == ["\\\"[[[", "]"] * 50


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1" * 5000,
                                  "{", "", "\ud800", b"\xff\xfe"])
def test_not_json(text: str | bytes) -> None:
    with pytest.raises(safe_json.BadJson):
        safe_json.loads(text)


def json_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(json_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(json_depth, value), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                          allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children,
                                                                        max_size=3),
    max_leaves=40)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(JSON_VALUES)
def test_json_values_parse_as_json_does(value: Any) -> None:
    text = json.dumps(value)
    if json_depth(value) <= safe_json.MAX_DEPTH:
        assert safe_json.loads(text) == json.loads(text)
    else:
        with pytest.raises(safe_json.BadJson):
            safe_json.loads(text)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(300))
@given(st.one_of(st.text(st.sampled_from('[]{}",:\\ 1a'), max_size=200), st.text(),
                 st.binary()))
def test_any_text_is_json_or_bad_json(text: str | bytes) -> None:
    try:
        safe_json.loads(text)
    except safe_json.BadJson:
        pass


# ---- stores: ids they cannot hold are not found ----------------------------------------------

async def test_store_refuses_ids_out_of_range(store) -> None:  # noqa: F811
    await store.create_room("r")
    question = await store.add_question("r", "p-1", "Ann", "why?")
    poll = await store.create_poll("r", "which?", ["a", "b"])
    await store.set_poll_state("r", poll["id"], "open")
    for bad in (2**63, 2**64 + 1, -1, -(2**63) - 1, 10**5000):
        with pytest.raises(NotFound):
            await store.upvote_question("r", bad, "ann")
        with pytest.raises(NotFound):
            await store.set_question_state("r", bad, "answered")
        with pytest.raises(NotFound):
            await store.set_poll_state("r", bad, "closed")
        with pytest.raises(NotFound):
            await store.vote_poll("r", bad, "ann", 0)
        with pytest.raises(NotFound):
            await store.vote_poll("r", poll["id"], "ann", bad)
    # and the real ones still work
    assert (await store.upvote_question("r", question["id"], "ann"))["votes"] == 1
    assert (await store.vote_poll("r", poll["id"], "ann", 1))["total"] == 1


# ---- recording grants and blocking-reload directives -------------------------------------------

def test_grant_shapes() -> None:
    path = grant_path("secret", "rec-1", ttl=60, now=1000)
    _, _, rid, _, expires, signature = path.split("/")
    assert check("secret", rid, expires, signature, now=1000)
    for bad_expiry in ("1" * 5000, "²", "٣", "-1", "+1060", " 1060", "1060\x00", ""):
        assert not check("secret", rid, bad_expiry, signature, now=1000)
    for bad_signature in ("é" * 32, signature.upper(), signature[:-1], "\x00" * 32):
        assert not check("secret", rid, expires, bad_signature, now=1000)
    for bad_id in ("rec-1\x00", "\ud800", "../rec-1", ""):
        assert not check("secret", bad_id, expires, signature, now=1000)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(500))
@given(rid=TEXT, expires=st.one_of(TEXT, st.sampled_from(EDGE_INTS).map(str)),
       signature=st.one_of(TEXT, st.text("0123456789abcdef", min_size=32, max_size=32)))
def test_any_grant_is_checked_without_raising(rid: str, expires: str, signature: str) -> None:
    assert check("secret", rid, expires, signature) in (True, False)


@pytest.mark.fuzz
@settings(max_examples=fuzz_examples(500))
@given(st.dictionaries(st.sampled_from(["_HLS_msn", "_HLS_part", "x"]),
                       st.one_of(TEXT, st.sampled_from(EDGE_INTS).map(str)), max_size=3))
def test_any_directives_parse_or_are_refused(query: dict[str, str]) -> None:
    try:
        wanted = directives(query)
    except BadDirective:
        return
    if wanted is not None:
        msn, part = wanted
        assert 0 <= msn < 10**10 and (part is None or 0 <= part < 10**10)
